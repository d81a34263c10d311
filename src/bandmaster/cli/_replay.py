"""``bandmaster replay``: re-run the current workflow code over recorded runs.

    bandmaster replay app.py:triage --db bm.db                       # did routing change?
    bandmaster replay app.py:triage --db bm.db --runs "since=7d limit=500" --max-diff 0
    bandmaster replay app.py:triage --db bm.db --live-models --models models.yaml
    bandmaster replay app.py:triage --db bm.db --golden labels.jsonl --decision route
    bandmaster replay app.py --db bm.db --determinism                 # safe to deploy?

Exit codes: 0 within ``--max-diff`` (or no ``--max-diff``), 1 more runs changed than
``--max-diff`` allows (with ``--determinism``: a run the code would not resume), 2 usage or
input error.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from bandmaster.cli import _console as ui
from bandmaster.cli._loader import load_workflow, load_workflows
from bandmaster.cli._options import DbOption, ModelsOption
from bandmaster.errors import BandmasterError, UsageError

if TYPE_CHECKING:
    from bandmaster.replay import DeterminismReport, ReplayReport

R = TypeVar("R")
SHOWN = 50  # changed runs listed in the table; --json has them all


def parse_max_diff(text: str) -> int | float:
    """``3`` (runs), ``0.05`` or ``5%`` (a fraction of the replayed runs)."""
    try:
        if text.endswith("%"):
            value: int | float = float(text[:-1]) / 100
        elif "." in text:
            value = float(text)
        else:
            value = int(text)
    except ValueError:
        value = -1
    if value < 0 or (isinstance(value, float) and value > 1):
        raise UsageError(f"--max-diff {text!r}: give a count of runs (3) or a fraction (0.05 or 5%)")
    return value


def replay(
    target: Annotated[
        str,
        typer.Argument(help="MODULE:WORKFLOW: the current code to replay (with --determinism, MODULE: all)"),
    ],
    db: DbOption = None,
    runs: Annotated[
        str | None,
        typer.Option(
            "--runs", help="Which runs: 'status=completed|failed since=7d limit=1000 version=V' or ids"
        ),
    ] = None,
    live_models: Annotated[
        bool,
        typer.Option("--live-models", help="Call today's models (--models) instead of the recorded answers"),
    ] = False,
    models: ModelsOption = None,
    golden: Annotated[
        str | None, typer.Option("--golden", help='JSONL labels: {"run_id": ..., "label": ...} per line')
    ] = None,
    golden_key: Annotated[
        str | None, typer.Option("--golden-key", help="Match labels by this input field (ticket.id) instead")
    ] = None,
    decision: Annotated[
        str, typer.Option("--decision", help="What is scored: output, output.FIELD, route, route:ROUTER")
    ] = "output",
    max_diff: Annotated[
        str | None,
        typer.Option("--max-diff", help="Exit 1 when more runs changed: a count (0) or fraction (5%)"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the full report as JSON")] = False,
    determinism: Annotated[
        bool,
        typer.Option(
            "--determinism",
            help="Check that the code would resume every recorded run (all statuses); exit 1 if not",
        ),
    ] = False,
) -> None:
    """Replay recorded runs with the current workflow code and report changed decisions."""
    from bandmaster.replay import replay_runs  # loaded on use: the other commands stay fast

    if determinism:
        _check_determinism(target, db, runs, as_json)
        return
    limit = _reported(lambda: parse_max_diff(max_diff)) if max_diff is not None else None

    def replay_now() -> ReplayReport:
        wf = load_workflow(target)
        registry = None
        if models is not None:
            from bandmaster.models import Registry

            registry = Registry.load(models)
        return asyncio.run(
            replay_runs(
                wf,
                db=db,
                runs=runs,
                live_models=live_models,
                registry=registry,
                golden=golden,
                golden_key=golden_key,
                decision=decision,
            )
        )

    report = _reported(replay_now)
    if as_json:
        ui.print_json(report.to_json())
    else:
        _print(report)
    if limit is not None and report.exceeds(limit):
        ui.line(
            (
                f"{len(report.changed)} of {len(report.runs)} runs changed; --max-diff is {max_diff}",
                "bold red",
            ),
            err=True,
        )
        raise typer.Exit(1)


def _reported(make: Callable[[], R]) -> R:
    """``make()``'s report; a bad input exits 2, a failure of the replay itself 1."""
    try:
        return make()
    except (UsageError, ValueError) as exc:
        raise ui.fail(str(exc)) from exc
    except BandmasterError as exc:
        raise ui.fail(str(exc), 1) from exc


def _check_determinism(target: str, db: str | None, runs: str | None, as_json: bool) -> None:
    from bandmaster.replay import check_determinism

    report = _reported(lambda: asyncio.run(check_determinism(load_workflows([target]), db=db, runs=runs)))
    if as_json:
        ui.print_json(report.to_json())
    else:
        _print_determinism(report)
    if not report.ok:
        raise typer.Exit(1)


def _print_determinism(report: DeterminismReport) -> None:
    names = ", ".join(report.workflows)
    ui.line(f"checked {report.checked} recorded runs of {names}: {len(report.divergent)} would not resume")
    if not report.divergent:
        return
    shown = report.divergent[:SHOWN]
    table = ui.table(
        ui.id_column("run", (d.run_id for d in shown)),
        "workflow",
        "seq",
        "recorded",
        "code now",
        "why",
        title="runs the new code would not resume",
    )
    for d in shown:
        table.add_row(d.run_id, d.workflow, str(d.seq), d.recorded, d.now or "(nothing)", d.reason)
    ui.show(table)
    if len(report.divergent) > SHOWN:
        ui.line(f"… and {len(report.divergent) - SHOWN} more (--json lists them all)")
    ui.line(
        "Deploy the change under a new workflow version, or let these runs finish first.",
        err=True,
    )


def _print(report: ReplayReport) -> None:
    from bandmaster.replay import describe

    summary = report.summary()
    ui.line(
        f"replayed {summary['runs']} runs of {report.workflow} ({report.mode}): "
        f"{summary['changed']} changed, {summary['diverged']} diverged"
    )
    if report.changed:
        shown = report.changed[:SHOWN]
        table = ui.table(
            ui.id_column("run", (r.run_id for r in shown)), "status", "what changed", title="changed runs"
        )
        for run in shown:
            table.add_row(run.run_id, f"{run.recorded_status} → {run.status}", describe(run))
        ui.show(table)
        if len(report.changed) > SHOWN:
            ui.line(f"… and {len(report.changed) - SHOWN} more (--json lists them all)")
    if report.mode == "live-models":
        calls = [call for run in report.runs for call in run.model_calls]
        changed_answers = sum(call.changed for call in calls)
        ui.line(
            f"model calls: {summary['model_calls_made']} live, {changed_answers} answers changed; "
            f"cost recorded ${report.recorded_cost:.6f}, live ${report.cost:.6f}, "
            f"delta {report.cost_delta:+.6f}"
        )
    if report.golden is not None:
        _print_golden(report)


def _print_golden(report: ReplayReport) -> None:
    golden = report.golden
    assert golden is not None
    ui.line(
        f"accuracy {golden.accuracy:.3f} ({golden.correct}/{golden.labelled} labelled runs; recorded "
        f"{golden.recorded_accuracy:.3f}); {golden.unlabelled_runs} runs without a label, "
        f"{golden.unmatched_labels} labels without a run"
    )
    predicted = sorted({p for row in golden.confusion.values() for p in row})
    table = ui.table("label \\ decision", *predicted, title="confusion")
    for label in sorted(golden.confusion):
        row: dict[str, Any] = golden.confusion[label]
        table.add_row(label, *(str(row.get(p, 0)) for p in predicted))
    ui.show(table)
