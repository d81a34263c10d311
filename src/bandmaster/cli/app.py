"""``bandmaster``: run workflows, run workers, inspect and steer runs.

Exit codes: 0 success, 1 a run failed (or was cancelled), 2 usage or input error.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import statistics
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from bandmaster.cli.approvals import approvals_app
from bandmaster.cli.demo import demo
from bandmaster.cli.guard_notes import guard_notes
from bandmaster.cli.loader import load_workflow, load_workflows
from bandmaster.cli.models import models_app
from bandmaster.cli.observe import MetricsHostOption, MetricsPortOption, TraceOption, worker_hooks
from bandmaster.cli.temporal import (
    BackendOption,
    LocalOption,
    NamespaceOption,
    TargetOption,
    TaskQueueOption,
    backend_from_env,
    check_backend,
    exit_now_if_temporal_was_used,
)
from bandmaster.engine.runtime import Engine, RunInfo
from bandmaster.errors import BandmasterError, RunCancelled, RunFailed, UsageError
from bandmaster.models.registry import Registry
from bandmaster.observe.stats_archive import retention_loop
from bandmaster.observe.stats_db import parse_duration
from bandmaster.store.journal_file import check_readable

if TYPE_CHECKING:
    from bandmaster.temporal.engine import TemporalEngine

app = typer.Typer(
    name="bandmaster",
    help="Durable orchestration for AI workflows, embedded on SQLite.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
runs_app = typer.Typer(help="Inspect runs in the journal.", no_args_is_help=True)
app.add_typer(runs_app, name="runs")
app.add_typer(models_app, name="models")
app.command()(demo)
app.add_typer(approvals_app, name="approvals")

console = Console()
err = Console(stderr=True)

ModelsOption = Annotated[
    str | None,
    typer.Option(
        "--models", envvar="BANDMASTER_MODELS", help="Model registry file (models.yaml) for bm.call_model"
    ),
]
DbOption = Annotated[
    str | None,
    typer.Option("--db", help="Journal path or sqlite:/// URL [default: $BANDMASTER_DB or ./bandmaster.db]"),
]


def _fail(message: str, code: int = 2) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}", highlight=False)
    return typer.Exit(code)


def _parse_json(text: str, what: str) -> Any:
    if text.startswith("@"):
        path = Path(text[1:])
        if not path.is_file():
            raise _fail(f"{what}: no such file {path}")
        text = path.read_text()
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise _fail(f"{what} is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from exc


def _run(coro: Any) -> Any:
    try:
        return asyncio.run(coro)
    except typer.Exit:
        raise
    except (UsageError, ValueError) as exc:
        raise _fail(str(exc)) from exc
    except BandmasterError as exc:
        raise _fail(str(exc), 1) from exc
    except sqlite3.Error as exc:  # a read the store did not translate: still one line
        raise _fail(f"journal error: {exc}; run `bandmaster doctor` on the journal", 1) from exc


def _print_json(value: Any) -> None:
    console.print_json(json.dumps(value, default=str))


# --- run -------------------------------------------------------------------------------------


@app.command()
def run(
    target: Annotated[str, typer.Argument(help="MODULE:WORKFLOW, e.g. examples/quickstart/triage.py:triage")],
    input: Annotated[str | None, typer.Option("--input", "-i", help="JSON input, or @file.json")] = None,
    batch: Annotated[Path | None, typer.Option(help="JSONL file: one run per line")] = None,
    concurrency: Annotated[int, typer.Option(min=1, help="Runs in flight at once (batch)")] = 50,
    run_id: Annotated[str | None, typer.Option(help="Run id (idempotent start)")] = None,
    db: DbOption = None,
    models: ModelsOption = None,
) -> None:
    """Run a workflow in this process and print its result (or a batch, with a summary)."""
    if (input is None) == (batch is None):
        raise _fail("give exactly one of --input JSON and --batch FILE.jsonl")
    try:
        wf = load_workflow(target)
        registry = _registry(models)
    except BandmasterError as exc:
        raise _fail(str(exc)) from exc
    if batch is not None:
        inputs = _read_jsonl(batch)
        code = _run(_run_batch(wf, inputs, db, concurrency, registry))
        raise typer.Exit(code)
    value = _parse_json(input or "null", "--input")

    async def one() -> Any:
        async with Engine(db, workflows=[wf], registry=registry) as engine:
            args, kwargs = wf.input_from_json(value)
            handle = await engine.start(wf, *args, run_id=run_id, **kwargs)
            try:
                result = await handle.result()
            except RunFailed as exc:
                err.print(f"[red]run {exc.run_id} failed:[/] {exc.error_type}: {exc.message}")
                return 1
            except RunCancelled as exc:
                err.print(f"[yellow]{exc}[/]")
                return 1
            _print_json(wf.output_codec.to_jsonable(result))
            return 0

    raise typer.Exit(_run(one()))


def _read_jsonl(path: Path) -> list[Any]:
    if not path.is_file():
        raise _fail(f"--batch: no such file {path}")
    inputs = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            inputs.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise _fail(f"{path}:{number} is not valid JSON ({exc.msg})") from exc
    if not inputs:
        raise _fail(f"{path} has no inputs")
    return inputs


def _registry(models: str | None) -> Registry | None:
    return Registry.load(models) if models else None


async def _run_batch(
    wf: Any, inputs: list[Any], db: str | None, concurrency: int, registry: Registry | None
) -> int:
    latencies: list[float] = []
    failures: list[str] = []
    results: list[Any] = []
    started = time.perf_counter()
    async with Engine(db, workflows=[wf], concurrency=max(concurrency, 1), registry=registry) as engine:
        gate = asyncio.Semaphore(concurrency)
        with Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[failed]} failed"),
            TimeElapsedColumn(),
            console=console,
        ) as progress:
            bar = progress.add_task(wf.name, total=len(inputs), failed=0)

            async def one(value: Any) -> None:
                async with gate:
                    t0 = time.perf_counter()
                    args, kwargs = wf.input_from_json(value)
                    handle = await engine.start(wf, *args, **kwargs)
                    try:
                        results.append(await handle.result())
                    except (RunFailed, RunCancelled) as exc:
                        failures.append(str(exc))
                    latencies.append(time.perf_counter() - t0)
                    progress.update(bar, advance=1, failed=len(failures))

            await asyncio.gather(*(one(v) for v in inputs))
    wall = time.perf_counter() - started
    _print_batch_summary(wf.name, len(inputs), failures, latencies, wall, results)
    return 1 if failures else 0


def _print_batch_summary(
    name: str, total: int, failures: list[str], latencies: list[float], wall: float, results: list[Any]
) -> None:
    table = Table(title=f"batch summary: {name}", show_header=False)
    table.add_row("runs", str(total))
    table.add_row("completed", str(total - len(failures)))
    table.add_row("failed", str(len(failures)))
    table.add_row("wall time", f"{wall:.2f} s ({total / wall:.0f} runs/s)")
    if latencies:
        ordered = sorted(latencies)
        table.add_row("latency p50", f"{statistics.median(ordered) * 1000:.1f} ms")
        table.add_row(
            "latency p99", f"{ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000:.1f} ms"
        )
    outcome = _tally(results)
    if outcome:
        table.add_row("results", ", ".join(f"{k}: {v}" for k, v in outcome))
    console.print(table)
    for message in failures[:5]:
        err.print(f"[red]{message}[/]")


def _tally(results: list[Any]) -> list[tuple[str, int]]:
    """Count results by their first string field (e.g. a routing decision) when they have one."""
    counts: dict[str, int] = {}
    for result in results:
        data = result.model_dump() if hasattr(result, "model_dump") else result
        if isinstance(data, dict):
            label = next((str(v) for v in data.values() if isinstance(v, str)), None)
        else:
            label = str(data) if isinstance(data, str | int | bool) else None
        if label is not None:
            counts[label] = counts.get(label, 0) + 1
    return sorted(counts.items(), key=lambda kv: -kv[1])[:8]


# --- worker ----------------------------------------------------------------------------------


@app.command()
def worker(
    modules: Annotated[list[str], typer.Argument(help="Modules or files defining @bm.workflow functions")],
    db: DbOption = None,
    concurrency: Annotated[int, typer.Option(min=1, help="Runs executed at once")] = 100,
    lease: Annotated[float, typer.Option(help="Seconds a claim lasts without heartbeat")] = 10.0,
    poll: Annotated[float, typer.Option(help="Seconds between polls for ready runs")] = 0.1,
    grace: Annotated[float, typer.Option(help="Seconds to drain on SIGTERM")] = 10.0,
    models: ModelsOption = None,
    trace: TraceOption = False,
    metrics_port: MetricsPortOption = None,
    metrics_host: MetricsHostOption = "127.0.0.1",
    retention: Annotated[
        str | None, typer.Option(help="Archive finished runs older than this (7d), on a schedule")
    ] = None,
    archive_dir: Annotated[
        Path | None, typer.Option(help="Where --retention writes archives [default: delete them]")
    ] = None,
    rollup_every: Annotated[
        float, typer.Option(min=0, help="Seconds between passes adding ended runs to stats rollups (0: off)")
    ] = 30.0,
    busy_timeout: Annotated[
        float, typer.Option(min=0, help="Seconds a journal write waits for another process's write lock")
    ] = 10.0,
    backend: BackendOption = "embedded",
    target: TargetOption = "localhost:7233",
    namespace: NamespaceOption = "default",
    task_queue: TaskQueueOption = "bandmaster",
    local_activities: LocalOption = False,
) -> None:
    """Execute queued runs of these workflows until SIGTERM/SIGINT (then drain gracefully)."""
    try:
        check_backend(backend)
        workflows = load_workflows(modules)
        registry = _registry(models)
        hooks = worker_hooks(trace, metrics_port, metrics_host)
        if retention is not None:
            parse_duration(retention, what="--retention")
    except BandmasterError as exc:
        raise _fail(str(exc)) from exc
    if backend == "temporal":
        from bandmaster.cli.temporal import serve as serve_temporal

        options = {"target": target, "namespace": namespace, "task_queue": task_queue}
        raise typer.Exit(
            _run(
                serve_temporal(
                    workflows, registry, **options, local_activities=local_activities, concurrency=concurrency
                )
            )
        )

    async def serve() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        engine = Engine(
            db,
            workflows=workflows,
            concurrency=concurrency,
            lease=lease,
            poll_interval=poll,
            registry=registry,
            hooks=hooks,
            rollup_every=rollup_every or None,
            busy_timeout=busy_timeout,
        )
        await engine.open()
        names = ", ".join(sorted(engine.workflows))
        err.print(f"worker {engine.owner} serving [bold]{names}[/] from {engine.path}", highlight=False)
        keeper = (
            asyncio.create_task(retention_loop(engine.path, retention, archive_dir)) if retention else None
        )
        await stop.wait()
        err.print("draining…")
        if keeper is not None:
            keeper.cancel()
        await engine.close(grace=grace)
        return 0

    raise typer.Exit(_run(serve()))


# --- runs, signal, cancel -------------------------------------------------------------------


async def _client(db: str | None) -> Engine | TemporalEngine:
    """The backend to ask. A journal that fails its quick check is refused (never shown with
    holes, never written further); one this process cannot write is opened read-only."""
    if backend_from_env() == "temporal":  # BANDMASTER_BACKEND=temporal: the Temporal cluster is the journal
        from bandmaster.cli.temporal import temporal_client

        return await temporal_client()
    engine = Engine(db, worker=False)
    if not engine.path.exists():
        raise _fail(f"no journal at {engine.path}; pass --db or set BANDMASTER_DB")
    check_readable(engine.path)
    await engine.open()
    return engine


@runs_app.command("list")
def runs_list(
    db: DbOption = None,
    status: Annotated[
        str | None, typer.Option(help="queued/running/waiting/completed/failed/cancelled")
    ] = None,
    workflow: Annotated[str | None, typer.Option(help="Only runs of this workflow")] = None,
    limit: Annotated[int, typer.Option(min=1)] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """List runs, newest first."""
    statuses = ("queued", "running", "waiting", "completed", "failed", "cancelled")
    if status is not None and status not in statuses:
        raise _fail(f"--status {status!r} is not a run status; use one of {', '.join(statuses)}")

    async def main() -> list[RunInfo]:
        engine = await _client(db)
        try:
            return await engine.list(status=status, workflow=workflow, limit=limit)
        finally:
            await engine.close()

    found = _run(main())
    if as_json:
        _print_json([r.model_dump(mode="json", exclude={"steps"}) for r in found])
        return
    table = Table("run", "workflow", "status", "created", "duration")
    for r in found:
        end = r.ended_at or r.updated_at
        table.add_row(
            r.id,
            r.workflow,
            _status(r.status),
            f"{r.created_at:%Y-%m-%d %H:%M:%S}",
            f"{(end - r.created_at).total_seconds():.2f} s",
        )
    console.print(table)


def _status(status: str) -> str:
    colour = {"completed": "green", "failed": "red", "cancelled": "yellow", "waiting": "cyan"}.get(
        status, "white"
    )
    return f"[{colour}]{status}[/]"


@runs_app.command("show")
def runs_show(
    run_id: Annotated[str, typer.Argument(help="Run id")],
    db: DbOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Show a run and its step timeline."""

    async def main() -> RunInfo:
        engine = await _client(db)
        try:
            return await engine.describe(run_id)
        finally:
            await engine.close()

    info = _run(main())
    if as_json:
        _print_json(info.model_dump(mode="json"))
        return
    console.print(f"[bold]{info.id}[/]  {info.workflow}  {_status(info.status)}")
    console.print(f"input: {json.dumps(info.input)[:200]}", highlight=False)
    if info.output is not None:
        console.print(f"output: {json.dumps(info.output)[:200]}", highlight=False)
    if info.error:
        console.print(
            f"[red]error: {info.error.get('type')}: {info.error.get('message')}[/]", highlight=False
        )
    table = Table("seq", "name", "kind", "status", "attempts", "duration", "error")
    for s in info.steps:
        table.add_row(
            str(s.seq),
            s.name,
            s.kind,
            _status(s.status),
            str(s.attempts),
            f"{s.duration * 1000:.1f} ms" if s.duration is not None else "",
            (s.error or {}).get("message", "")[:60],
        )
    console.print(table)
    for line in guard_notes(info.steps):  # re-asks and rule violations of guarded model calls
        console.print(line, highlight=False, markup=False)


@app.command("signal")
def signal_run(
    run_id: Annotated[str, typer.Argument(help="Run id")],
    name: Annotated[str, typer.Argument(help="Signal name (what the run waits for)")],
    payload: Annotated[str, typer.Argument(help="JSON payload, or @file.json")] = "null",
    db: DbOption = None,
) -> None:
    """Send a signal to a run."""
    value = _parse_json(payload, "payload")

    async def main() -> None:
        engine = await _client(db)
        try:
            await engine.signal(run_id, name, value)
        finally:
            await engine.close()

    _run(main())
    console.print(f"signal {name!r} sent to {run_id}", highlight=False)


@app.command()
def cancel(run_id: Annotated[str, typer.Argument(help="Run id")], db: DbOption = None) -> None:
    """Cancel a run."""

    async def main() -> str:
        engine = await _client(db)
        try:
            return await engine.cancel(run_id)
        finally:
            await engine.close()

    status = _run(main())
    console.print(f"run {run_id}: {status}{' (cancel requested)' if status == 'running' else ''}")


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
    except SystemExit as exc:
        exit_now_if_temporal_was_used(exc.code)
        raise


import bandmaster.cli.graph  # noqa: E402, F401  registers `bandmaster graph`
from bandmaster.cli import doctor as _doctor  # noqa: E402, F401  registers `bandmaster doctor`
from bandmaster.cli import pii as _pii_commands  # noqa: E402, F401  registers `bandmaster pii`
from bandmaster.cli import replay as _replay  # noqa: E402, F401  registers `bandmaster replay`
from bandmaster.cli import stats as _stats  # noqa: E402, F401  registers stats, export, import, archive
from bandmaster.cli.server import server as _server  # noqa: E402  registers `bandmaster server`
from bandmaster.cli.tokens import tokens_app as _tokens_app  # noqa: E402  `bandmaster tokens`

app.command("server")(_server)
app.add_typer(_tokens_app, name="tokens")
