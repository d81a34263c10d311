"""``bandmaster stats``, ``export``, ``import`` and ``archive``: the journal as numbers, as files,
and kept to size.

    bandmaster stats --db bm.db --since 24h [--workflow W] [--json] [--plot out.png] [--exact]
    bandmaster export --db bm.db --status failed --since 7d --to failed.jsonl.gz
    bandmaster import failed.jsonl.gz --db other.db
    bandmaster archive --db bm.db --older-than 7d --to archive/
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, ParamSpec, TypeVar

import typer
from rich.table import Column

from bandmaster.cli import _console as ui
from bandmaster.cli._backends import Where, build, journal_of
from bandmaster.cli._console import fail as _fail
from bandmaster.cli._options import DbOption
from bandmaster.engine.backend import Backend
from bandmaster.engine.stats_report import cost_text
from bandmaster.errors import BandmasterError, UsageError
from bandmaster.observe.stats import Stats, compute
from bandmaster.store import check_readable, journal_error, resolve_db_path
from bandmaster.store.archive import archive as archive_runs
from bandmaster.store.export import export_runs, import_runs

P = ParamSpec("P")
T = TypeVar("T")


def _call(what: str, journal: Path, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Run an API call on ``journal``; usage errors exit 2 with their message, other bandmaster
    errors (and SQLite's, on a damaged journal) exit 1."""
    try:
        return fn(*args, **kwargs)
    except sqlite3.Error as exc:
        raise _fail(f"{what}: {journal_error(journal, exc, 'reading journal')}", 1) from exc
    except (UsageError, ValueError) as exc:
        raise _fail(f"{what}: {exc}") from exc
    except BandmasterError as exc:
        raise _fail(f"{what}: {exc}", 1) from exc
    except OSError as exc:  # an output folder or file this process cannot write, a full disk
        where = f" {exc.filename}" if exc.filename else ""
        raise _fail(f"{what}: cannot write{where}: {exc.strerror or exc}", 1) from exc


def _readable(path: Path) -> None:
    """A read command's first check: a journal, sound (else one line, never a traceback)."""
    if path.exists():
        _call("journal", path, check_readable, path)


def stats(
    db: DbOption = None,
    workflow: Annotated[str | None, typer.Option(help="Only runs of this workflow")] = None,
    since: Annotated[
        str | None, typer.Option(help="Only runs created within this long: 24h, 7d, 90m")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
    plot: Annotated[
        Path | None, typer.Option(help="Also draw latency and cost over time into this PNG")
    ] = None,
    exact: Annotated[
        bool,
        typer.Option(
            help="Exact percentiles from every step row (slow on big journals) instead of the rollups"
        ),
    ] = False,
) -> None:
    """Latency percentiles, failures, retries, fallbacks, cache hits and cost per step; tokens and cost
    per model; completion and cost per workflow; journal size per run and per day."""
    path = resolve_db_path(db)
    # Another backend (BANDMASTER_BACKEND) may have no statistics: NotSupported says why.
    backend = _call("stats", path, build, Where.from_env(db), must_exist=False)
    _call("stats", path, backend.capabilities.require, "stats")
    if journal_of(backend) is None:  # runs live elsewhere: the backend computes them
        if exact or plot is not None:
            raise _fail("stats: --exact and --plot read the SQLite journal; this backend has none")
        result = _call("stats", path, asyncio.run, _from_backend(backend, workflow, since))
        _show(result, as_json)
        return
    _readable(path)
    # The same computation as `backend.stats()`, with the options only a journal has (--exact).
    result = _call("stats", path, compute, path, workflow=workflow, since=since, exact=exact)
    if plot is not None:
        from bandmaster.observe.stats import plot as draw  # matplotlib only when asked

        slices = _call("--plot", path, draw, path, plot, workflow=workflow, since=since)
        if not as_json:
            ui.line(f"plot: {plot} ({slices} time slices)")
    _show(result, as_json)


async def _from_backend(backend: Backend, workflow: str | None, since: str | None) -> Stats:
    await backend.open()
    try:
        return await backend.stats(workflow=workflow, since=since)
    finally:
        await backend.close()


def _show(result: Stats, as_json: bool) -> None:
    if as_json:
        ui.print_json(text=result.model_dump_json())
        return
    _print(result)


def _ms(value: float | None) -> str:
    return "" if value is None else f"{value * 1000:.1f}"


def _pct(value: float | None) -> str:
    return "" if value is None else f"{value * 100:.1f}%"


def _print(s: Stats) -> None:
    scope = f"workflow {s.workflow}" if s.workflow else "all workflows"
    since = f", runs since {s.since:%Y-%m-%d %H:%M} UTC" if s.since else ""
    ui.line(
        (str(s.db), "bold"),
        f": {s.runs:,} runs, {s.steps:,} journal rows ({scope}{since}); "
        f"computed in {s.seconds:.2f} s"
        + ("" if s.percentiles_exact else " (percentiles within 0.5%; --exact for exact ones)"),
    )
    for u in s.unserved:  # waiting, never failing, until a worker hosting the version starts
        statuses = ", ".join(f"{count} {status}" for status, count in sorted(u.statuses.items()))
        ui.line((u.label, "yellow"), f": {u.runs:,} unfinished runs wait ({statuses})")
    if not s.runs:
        ui.line("no runs in this selection")
        return
    if s.unknown_cost_calls:
        total = sum(m.cost for m in s.models)
        ui.line(f"model cost: {cost_text(total, s.unknown_cost_calls)}: add prices to models.yaml")
    steps = ui.table(
        Column("step", no_wrap=True),
        "kind",
        "calls",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "failed",
        "retries/call",
        "fallback",
        "cache hit",
        "cost $",
        title="steps",
    )
    for st in s.step_stats:
        steps.add_row(
            st.name,
            st.kind,
            f"{st.calls:,}",
            _ms(st.p50),
            _ms(st.p95),
            _ms(st.p99),
            _pct(st.failure_rate),
            f"{st.retries_per_call:.2f}",
            _pct(st.fallback_rate),
            _pct(st.cache_hit_rate),
            f"{st.cost:.4f}" if st.kind == "model" else "-",
        )
    ui.show(steps)
    if s.models:
        models = ui.table(
            Column("model", no_wrap=True),
            "alias",
            "version",
            "calls",
            "failed",
            "tokens in",
            "tokens out",
            "cost",
            "as fallback",
            "cache hits",
            title="models",
        )
        for m in s.models:
            models.add_row(
                m.model,
                m.alias or "",
                m.version or "",
                f"{m.calls:,}",
                f"{m.failures:,}",
                f"{m.input_tokens:,}",
                f"{m.output_tokens:,}",
                cost_text(m.cost, m.unknown_cost_calls),
                f"{m.fallback_calls:,}",
                f"{m.cache_hits:,}",
            )
        ui.show(models)
    workflows = ui.table(
        Column("workflow", no_wrap=True),
        "runs",
        "by status",
        "completion",
        "cost/run $",
        "retries/run",
        "KB/run",
        title="workflows",
    )
    for w in s.workflows:
        workflows.add_row(
            w.workflow,
            f"{w.runs:,}",
            ", ".join(f"{k} {v}" for k, v in w.by_status.items()),
            _pct(w.completion_rate),
            f"{w.mean_cost_per_run:.5f}",
            f"{w.retries_per_run:.2f}",
            f"{w.bytes_per_run / 1024:.1f}",
        )
    ui.show(workflows)
    if s.tenants:
        tenants = ui.table(
            Column("tenant", no_wrap=True),
            "runs",
            "failed",
            "model calls",
            "calls failed",
            "cost $",
            title="tenants",
        )
        for t in s.tenants:
            tenants.add_row(
                t.tenant,
                f"{t.runs:,}",
                f"{t.failed:,}",
                f"{t.model_calls:,}",
                f"{t.model_failures:,}",
                f"{t.cost:.4f}",
            )
        ui.show(tenants)
    days = ui.table("day (UTC)", "runs", "rows", "MB", title="storage growth")
    for d in s.days[-14:]:
        days.add_row(str(d.day), f"{d.runs:,}", f"{d.steps:,}", f"{d.journal_bytes / 1e6:.2f}")
    ui.show(days)
    ui.line(f"journal file: {s.file_bytes / 1e6:.1f} MB ({s.free_bytes / 1e6:.1f} MB free pages)")


def export(
    to: Annotated[Path, typer.Option("--to", help="Output file: .jsonl, or .jsonl.gz to compress")],
    db: DbOption = None,
    workflow: Annotated[str | None, typer.Option(help="Only runs of this workflow")] = None,
    status: Annotated[str | None, typer.Option(help="Only runs with this status")] = None,
    since: Annotated[str | None, typer.Option(help="Only runs created within this long: 24h, 7d")] = None,
    older_than: Annotated[
        str | None, typer.Option(help="Only finished runs that ended more than this long ago")
    ] = None,
) -> None:
    """Write runs (with their steps and signals) as JSONL, one run per line."""
    path = resolve_db_path(db)
    _readable(path)
    count = _call(
        "export",
        path,
        export_runs,
        path,
        to,
        workflow=workflow,
        status=status,
        since=since,
        older_than=older_than,
    )
    ui.line(f"exported {count} runs to {to}")


def import_(
    files: Annotated[list[Path], typer.Argument(help="Files written by export or archive")],
    db: DbOption = None,
) -> None:
    """Bring exported or archived runs into a journal; runs already there are skipped."""
    path = resolve_db_path(db)
    result = _call("import", path, import_runs, path, files)
    ui.line(f"imported {result.imported} runs, skipped {result.skipped} already present")


def archive_cmd(
    older_than: Annotated[str, typer.Option(help="Archive runs that ended more than this long ago: 7d")],
    to: Annotated[Path, typer.Option("--to", help="Directory for the compressed JSONL files")],
    db: DbOption = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Runs per file (and per delete transaction)")] = 1000,
    vacuum: Annotated[bool, typer.Option(help="Rewrite the journal file afterwards to shrink it")] = False,
) -> None:
    """Move finished runs older than the cutoff into compressed files, then delete them from the
    journal. Safe to interrupt and rerun: nothing is lost or archived twice."""
    path = resolve_db_path(db)
    result = _call("archive", path, archive_runs, path, older_than, to, batch_size=batch_size, vacuum=vacuum)
    ui.line(
        f"archived {result.runs} runs into {len(result.files)} files in {to}"
        + (f" ({result.recovered_batches} interrupted batches finished)" if result.recovered_batches else "")
        + (f"; journal shrank by {result.freed_bytes / 1e6:.1f} MB" if result.freed_bytes else "")
    )
