"""``bandmaster demo``: the flagship examples end to end, with a report.

The demos' code lives in ``examples/support_triage/`` and ``examples/contract_review/`` of the
repository (examples to read and copy, not part of the library). Wheels ship both folders as
package data (``bandmaster/_examples/``), so the demo runs from a pip install as from a checkout;
this command finds the folder, runs it and prints its report.
"""

from __future__ import annotations

import asyncio
import sys
import webbrowser
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from bandmaster.cli import _console as term  # `ui` is the --ui option here
from bandmaster.errors import BandmasterError

SHIPPED = Path(__file__).resolve().parents[1] / "_examples"  # in a wheel: package data
CHECKOUT = Path(__file__).resolve().parents[3] / "examples"  # in a source checkout
EXAMPLES = {
    "support-triage": ("support_triage", "demo.py"),
    "contract-review": ("contract_review", "review.py"),
}


def _examples(example: str, folder: Path | None) -> Path:
    if example not in EXAMPLES:
        raise term.fail(f"unknown example {example!r}; choose one of {', '.join(EXAMPLES)}")
    name, entry = EXAMPLES[example]
    candidates = [folder] if folder is not None else [SHIPPED / name, CHECKOUT / name]
    for found in candidates:
        if (found / entry).is_file():
            sys.path.insert(0, str(found))
            return found
    raise term.fail(
        f"no {example} example at {' or '.join(map(str, candidates))}; this bandmaster install lacks "
        f"its examples: reinstall it, or pass --examples PATH/TO/examples/{name} from a source checkout"
    )


def _print_review(report: Any) -> None:
    table = term.table(title=f"Contract review: {report.completed}/{report.contracts} sample contracts")
    for column in ("contract", "risk (gold)", "compliant (gold)", "issues found", "missed", "chunks"):
        table.add_column(column)
    for r in report.results:
        missed = sorted(set(r.gold_issues) - set(r.issues))
        table.add_row(
            r.contract,
            f"{r.risk} ({r.gold_risk})",
            f"{r.compliant} ({r.gold_compliant})",
            ", ".join(r.issues) or "-",
            ", ".join(missed) or "-",
            str(r.chunks),
        )
    term.show(table)
    term.line(
        f"compliance accuracy {report.compliance_accuracy:.3f} · issues precision "
        f"{report.issue_precision:.3f} recall {report.issue_recall:.3f} · risk accuracy "
        f"{report.risk_accuracy:.3f} · {report.long_contracts} long contracts summarised by map-reduce · "
        f"{report.model_calls} model calls · ${report.cost_per_contract:.5f} per contract · "
        f"p50 {report.p50_ms:.0f} ms, p99 {report.p99_ms:.0f} ms"
    )


def _print(report: Any, html_path: Path | None) -> None:
    summary = term.table(
        title=f"Support triage on {report.dataset}: {report.completed}/{report.tickets} tickets"
    )
    summary.add_column("measure")
    summary.add_column("value", justify="right")
    from report_html import summary_rows  # type: ignore[import-not-found]  # one format for both

    rows = summary_rows(report)
    for name, value in rows:
        summary.add_row(name, value)
    term.show(summary)
    routes = term.table(title="Routes")
    routes.add_column("route")
    routes.add_column("tickets", justify="right")
    for route, count in report.routes.items():
        routes.add_row(route, str(count))
    steps = term.table(title="Steps")
    for column in ("step", "calls", "p50 ms", "p99 ms", "retries"):
        steps.add_column(column, justify="left" if column == "step" else "right")
    for s in report.latency:
        steps.add_row(s.step, str(s.calls), f"{s.p50_ms:.2f}", f"{s.p99_ms:.2f}", str(s.retries))
    term.show(routes)
    term.show(steps)
    for run in getattr(report, "drift", None) or []:  # reviewers' overrides fed to Cascade.feedback
        drift = term.table(
            title=f"Drift check: reviewer feedback, guard rail ±{run.max_drift:.2f} (fitted {run.fitted:.3f})"
        )
        for column in ("window", "drifted", "accuracy", "escalated", "threshold", "overrides"):
            drift.add_column(column, justify="right")
        for w in run.windows:
            drift.add_row(
                str(w.window), "yes" if w.drifted else "no", f"{w.accuracy:.3f}", f"{w.escalation:.0%}",
                f"{w.threshold:.3f}", str(w.overrides),
            )  # fmt: skip
        term.show(drift)
    if html_path is not None:
        term.line(f"HTML report: {html_path}")


def demo(
    data: Annotated[
        Path | None,
        typer.Option(help="Banking77 or CLINC150 folder to run on instead of the bundled tickets"),
    ] = None,
    limit: Annotated[int | None, typer.Option(help="Triage only the first N tickets")] = None,
    chaos: Annotated[bool, typer.Option(help="Inject model timeouts, 429s, 503s and garbage")] = False,
    chaos_rate: Annotated[float, typer.Option(help="Share of model calls that fail under --chaos")] = 0.1,
    db: Annotated[Path, typer.Option(help="Journal for the demo (recreated)")] = Path(".bandmaster/demo.db"),
    html: Annotated[Path | None, typer.Option(help="Where to write the HTML report")] = Path(
        ".bandmaster/demo-report.html"
    ),
    json_out: Annotated[bool, typer.Option("--json", help="Print the report as JSON")] = False,
    example: Annotated[
        str, typer.Option(help="support-triage (patient tickets) or contract-review (the legal pipeline)")
    ] = "support-triage",
    examples: Annotated[Path | None, typer.Option(help="The example's folder in a source checkout")] = None,
    ui: Annotated[
        bool, typer.Option(help="Then serve the dashboard on the demo's journal (extra: server) until Ctrl-C")
    ] = False,
    port: Annotated[int, typer.Option(help="Port of the dashboard with --ui")] = 8080,
) -> None:
    """Run a flagship example end to end on the embedded engine and report."""
    serve = _dashboard_server() if ui else None  # a missing extra fails now, not after the demo
    if data is not None and not data.is_dir():
        raise term.fail(
            f"--data {data}: no such folder; give a Banking77 folder (train.csv, test.csv) or a "
            "CLINC150 folder (data_full.json), see the README's Datasets section"
        )
    _examples(example, examples)
    db.parent.mkdir(parents=True, exist_ok=True)
    try:
        report = _run_example(example, db, data, limit, chaos_rate if chaos else 0.0, json_out)
    except BandmasterError as exc:  # a folder that holds neither dataset, a bad --limit ...
        raise term.fail(str(exc)) from exc
    except ImportError as exc:  # scikit-learn, Presidio, matplotlib: the demo extra
        raise term.fail(term.missing_extra("bandmaster demo", "demo", exc)) from exc
    html_path = None
    if example == "support-triage" and html is not None:
        from report_html import write_html

        html_path = write_html(report, html)
    if json_out:
        term.print_json(text=report.model_dump_json())
    elif example == "contract-review":
        _print_review(report)
    else:
        _print(report, html_path)
    if serve is not None:
        serve(db, port)


def _run_example(
    example: str, db: Path, data: Path | None, limit: int | None, chaos: float, quiet: bool
) -> Any:
    if example == "contract-review":
        from review import run_review  # type: ignore[import-not-found]

        return asyncio.run(run_review(db=db, limit=limit, cache_dir=db.parent / "models"))
    from demo import run_demo  # type: ignore[import-not-found]

    with Progress(
        TextColumn("triage", style="bold"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=term.stdout(),
        transient=quiet,
        disable=quiet,
    ) as progress:
        task = progress.add_task("triage", total=None)

        def advance(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        return asyncio.run(
            run_demo(
                db=db,
                data=data,
                limit=limit,
                chaos=chaos,
                cache_dir=db.parent / "models",
                on_progress=advance,
            )
        )


def _dashboard_server() -> Callable[[Path, int], None]:
    """What ``--ui`` serves with; checked before the demo runs."""
    try:
        import uvicorn

        from bandmaster.server import create_app, create_token
        from bandmaster.store import SQLiteStore
    except ImportError as exc:
        raise term.fail(term.missing_extra("--ui", "server", exc)) from exc

    def serve(db: Path, port: int) -> None:
        """The dashboard on the demo's journal, on 127.0.0.1, with a fresh token for the demo's
        compliance officer (the approver its PHI reviews allow)."""
        store = SQLiteStore(db)
        try:
            issued = create_token(store, "compliance", ["admin"], by="bandmaster demo")
        finally:
            store.close()
        url = f"http://127.0.0.1:{port}/login"
        term.line(f"dashboard: {url}  (log in with ", (issued.secret, "bold"), "; Ctrl-C stops it)")
        webbrowser.open(url)
        uvicorn.run(create_app(db), host="127.0.0.1", port=port, log_level="warning", access_log=False)

    return serve
