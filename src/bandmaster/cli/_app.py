"""``bandmaster``: run workflows, run workers, inspect and steer runs.

Exit codes: 0 success, 1 a run failed (or was cancelled), 2 usage or input error.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import json
import sqlite3
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from bandmaster._types import RUN_ORDERS
from bandmaster.cli import _console as ui
from bandmaster.cli import _doctor, _graph, _pii, _replay, _stats
from bandmaster.cli._approvals import approvals_app
from bandmaster.cli._backends import Where, build, opened
from bandmaster.cli._backends import serve as serve_backend
from bandmaster.cli._console import fail
from bandmaster.cli._consume import consume
from bandmaster.cli._demo import demo
from bandmaster.cli._files import loads, read_text, user_json
from bandmaster.cli._guard_notes import guard_notes
from bandmaster.cli._loader import load_workflow, load_workflows
from bandmaster.cli._logs import LogJsonOption, LogLevelOption, setup_logging
from bandmaster.cli._models import models_app
from bandmaster.cli._observe import (
    AlertWebhookOption,
    DashboardUrlOption,
    MetricsHostOption,
    MetricsPortOption,
    TraceOption,
    alert_hooks,
    worker_hooks,
)
from bandmaster.cli._options import (
    RUN_ID_HELP,
    BudgetOption,
    DbOption,
    ModelsOption,
    PriorityOption,
    TenantOption,
    run_terms,
)
from bandmaster.cli._outbox import outbox_app
from bandmaster.cli._runs import resolve_run_id, waiting_on
from bandmaster.cli._schedules import schedules_app
from bandmaster.cli._server import server as _server
from bandmaster.cli._temporal import (
    BackendOption,
    LocalOption,
    NamespaceOption,
    TargetOption,
    TaskQueueOption,
    check_backend,
    exit_now_if_temporal_was_used,
)
from bandmaster.cli._tokens import tokens_app as _tokens_app
from bandmaster.engine import Engine, RunInfo, RunTerms, load_schedules
from bandmaster.engine.backend import Backend
from bandmaster.engine.hooks import Hooks, RunFinished
from bandmaster.engine.stats_report import Unserved, no_worker_note
from bandmaster.errors import BandmasterError, RunCancelled, RunFailed, UsageError
from bandmaster.models import Registry
from bandmaster.store.reading import parse_duration

app = typer.Typer(
    name="bandmaster",
    help="Durable orchestration for AI workflows, embedded on SQLite.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    add_completion=True,
)
runs_app = typer.Typer(help="Inspect runs in the journal.", no_args_is_help=True)
app.add_typer(runs_app, name="runs")
app.add_typer(models_app, name="models")
app.command()(demo)
app.add_typer(approvals_app, name="approvals")
app.add_typer(schedules_app, name="schedules")
app.add_typer(outbox_app, name="outbox")
app.command("consume")(consume)


def _print_version(value: bool) -> None:
    if value:
        try:
            version = importlib.metadata.version("bandmaster")
        except importlib.metadata.PackageNotFoundError:  # a source tree on sys.path, not installed
            from bandmaster import __version__ as version
        typer.echo(f"bandmaster {version}")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit"),
    ] = False,
) -> None:
    """Durable orchestration for AI workflows, embedded on SQLite."""


def _parse_json(text: str, what: str) -> Any:
    return user_json(text, what)


def _run(coro: Any) -> Any:
    try:
        return asyncio.run(coro)
    except typer.Exit:
        raise
    except (UsageError, ValueError) as exc:
        raise fail(str(exc)) from exc
    except BandmasterError as exc:
        raise fail(str(exc), 1) from exc
    except sqlite3.Error as exc:  # a read the store did not translate: still one line
        raise fail(f"journal error: {exc}; run `bandmaster doctor` on the journal", 1) from exc


def _print_json(value: Any) -> None:
    ui.print_json(value)


# --- run -------------------------------------------------------------------------------------


@app.command()
def run(
    target: Annotated[str, typer.Argument(help="MODULE:WORKFLOW, e.g. examples/quickstart/triage.py:triage")],
    input: Annotated[str | None, typer.Option("--input", "-i", help="JSON input, or @file.json")] = None,
    batch: Annotated[Path | None, typer.Option(help="JSONL file: one run per line")] = None,
    concurrency: Annotated[int, typer.Option(min=1, help="Runs in flight at once (batch)")] = 50,
    run_id: Annotated[str | None, typer.Option(help="Run id (idempotent start)")] = None,
    priority: PriorityOption = 0,
    tenant: TenantOption = None,
    budget_usd: BudgetOption = None,
    db: DbOption = None,
    models: ModelsOption = None,
    log_level: LogLevelOption = "warning",
    log_json: LogJsonOption = False,
) -> None:
    """Run a workflow in this process and print its result (or a batch, with a summary)."""
    setup_logging(log_level, log_json)
    if (input is None) == (batch is None):
        raise fail("give exactly one of --input JSON and --batch FILE.jsonl")
    terms = run_terms(priority, tenant, budget_usd)
    try:
        wf = load_workflow(target)
        registry = _registry(models)
    except BandmasterError as exc:
        raise fail(str(exc)) from exc
    if batch is not None:
        inputs = _read_jsonl(batch)
        code = _run(_run_batch(wf, inputs, db, concurrency, registry, terms))
        raise typer.Exit(code)
    value = _parse_json(input or "null", "--input")

    async def one() -> Any:
        parked = _Parked()
        async with Engine(db, workflows=[wf], registry=registry, hooks=[parked]) as engine:
            args, kwargs = wf.input_from_json(value)
            handle = await engine.start(wf, *args, run_id=run_id, **_terms_kwargs(terms), **kwargs)
            ui.line(f"run {handle.id} ({wf.name}) started in {engine.path}", err=True)
            announcer = asyncio.create_task(_announce_waits(engine, handle.id, parked, db))
            try:
                result = await handle.result()
            except RunFailed as exc:
                ui.line((f"run {exc.run_id} failed:", "red"), f" {exc.error_type}: {exc.message}", err=True)
                return 1
            except RunCancelled as exc:
                ui.line((str(exc), "yellow"), err=True)
                return 1
            finally:
                announcer.cancel()
            _print_json(wf.output_codec.to_jsonable(result))
            return 0

    raise typer.Exit(_run(one()))


@app.command()
def start(
    target: Annotated[str, typer.Argument(help="MODULE:WORKFLOW, e.g. examples/quickstart/triage.py:triage")],
    input: Annotated[str, typer.Option("--input", "-i", help="JSON input, or @file.json")] = "null",
    run_id: Annotated[str | None, typer.Option(help="Run id (idempotent start)")] = None,
    priority: PriorityOption = 0,
    tenant: TenantOption = None,
    budget_usd: BudgetOption = None,
    db: DbOption = None,
) -> None:
    """Queue a run for `bandmaster worker` processes and print only its id (nothing executes
    here): `id=$(bandmaster start app.py:triage --input '{...}' --priority 5 --tenant acme)`."""
    terms = run_terms(priority, tenant, budget_usd)
    try:
        wf = load_workflow(target)
    except BandmasterError as exc:
        raise fail(str(exc)) from exc
    value = _parse_json(input, "--input")

    async def queue() -> str:
        async with opened(Where.from_env(db), must_exist=False) as engine:
            args, kwargs = wf.input_from_json(value)
            handle = await engine.start(wf, *args, run_id=run_id, **_terms_kwargs(terms), **kwargs)
            return handle.id

    typer.echo(_run(queue()))


def _terms_kwargs(terms: RunTerms) -> dict[str, Any]:
    return {"priority": terms.priority, "tenant": terms.tenant, "budget_usd": terms.budget_usd}


class _Parked(Hooks):
    """Wakes ``_announce_waits`` whenever a run of this process parks on a wait."""

    def __init__(self) -> None:
        self.event = asyncio.Event()

    def run_finished(self, event: RunFinished) -> None:
        if event.outcome == "suspended":
            self.event.set()


async def _announce_waits(engine: Engine, run_id: str, parked: _Parked, db: str | None) -> None:
    """Say on stderr what the run waits for and how to send it, once per new wait."""
    told = None
    while True:
        await parked.event.wait()
        parked.event.clear()
        waiting = waiting_on(await engine.describe(run_id))
        if waiting is not None and waiting != told:
            ui.line(waiting.describe(run_id, db), err=True)
            told = waiting


def _read_jsonl(path: Path) -> list[Any]:
    inputs = []
    for number, line in enumerate(read_text(path, "--batch").splitlines(), 1):
        if line.strip():
            inputs.append(loads(line, f"{path}:{number}"))
    if not inputs:
        raise fail(f"{path} has no inputs")
    return inputs


def _registry(models: str | None) -> Registry | None:
    return Registry.load(models) if models else None


async def _run_batch(
    wf: Any, inputs: list[Any], db: str | None, concurrency: int, registry: Registry | None, terms: RunTerms
) -> int:
    latencies: list[float] = []
    failures: list[str] = []
    results: list[Any] = []
    started = time.perf_counter()
    async with Engine(db, workflows=[wf], concurrency=max(concurrency, 1), registry=registry) as engine:
        gate = asyncio.Semaphore(concurrency)
        with Progress(
            TextColumn("{task.description}", style="bold", markup=False),  # the workflow's name
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[failed]} failed"),
            TimeElapsedColumn(),
            console=ui.stdout(),
        ) as progress:
            bar = progress.add_task(wf.name, total=len(inputs), failed=0)

            async def one(value: Any) -> None:
                async with gate:
                    t0 = time.perf_counter()
                    args, kwargs = wf.input_from_json(value)
                    handle = await engine.start(wf, *args, **_terms_kwargs(terms), **kwargs)
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
    table = ui.table("measure", "value", title=f"batch summary: {name}", show_header=False)
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
    ui.show(table)
    for message in failures[:5]:
        ui.line((message, "red"), err=True)


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
    alert_webhook: AlertWebhookOption = None,
    dashboard_url: DashboardUrlOption = None,
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
    schedules: Annotated[
        Path | None,
        typer.Option(
            "--schedules", help="YAML with a `schedules:` mapping, ticked besides @bm.schedule ones"
        ),
    ] = None,
    live_steps: Annotated[
        bool, typer.Option("--live-steps", help="Publish steps as they start, for `runs watch` and SSE")
    ] = False,
    backend: BackendOption = "embedded",
    target: TargetOption = "localhost:7233",
    namespace: NamespaceOption = "default",
    task_queue: TaskQueueOption = "bandmaster",
    local_activities: LocalOption = False,
    log_level: LogLevelOption = "warning",
    log_json: LogJsonOption = False,
    default_version: Annotated[
        list[str] | None,
        typer.Option(
            "--default-version",
            help="NAME=VERSION: runs of NAME started by name get this hosted version, not the newest",
        ),
    ] = None,
) -> None:
    """Execute queued runs of these workflows until SIGTERM/SIGINT (then drain gracefully)."""
    setup_logging(log_level, log_json)
    try:
        check_backend(backend)
        workflows = load_workflows(modules)
        pins = _pins(default_version or [])
        configured = load_schedules(schedules) if schedules is not None else []
        registry = _registry(models)
        hooks = worker_hooks(trace, metrics_port, metrics_host) + alert_hooks(alert_webhook, dashboard_url)
        if retention is not None:
            parse_duration(retention, what="--retention")
    except BandmasterError as exc:
        raise fail(str(exc)) from exc
    where = Where(backend, db, target, namespace, task_queue)
    embedded = {
        "concurrency": concurrency,
        "lease": lease,
        "poll_interval": poll,
        "hooks": hooks,
        "rollup_every": rollup_every or None,
        "busy_timeout": busy_timeout,
        "schedules": configured,
        "live_steps": live_steps,
        "default_versions": pins,
    }
    temporal = {
        "local_activities": local_activities,
        "max_concurrent_activities": concurrency,
        "schedules": configured,
        "default_versions": pins,
    }
    served = serve_backend(
        where,
        workflows,
        registry,
        grace=grace,
        retention=retention,
        archive_dir=archive_dir,
        embedded=embedded,
        temporal=temporal,
    )
    raise typer.Exit(_run(served))


def _pins(values: list[str]) -> dict[str, str]:
    pins: dict[str, str] = {}
    for value in values:
        name, sep, version = value.partition("=")
        if not sep or not name or not version:
            raise UsageError(
                f"--default-version {value!r}: use NAME=VERSION, e.g. --default-version triage=1"
            )
        pins[name] = version
    return pins


# --- runs, signal, cancel -------------------------------------------------------------------


async def _client(db: str | None) -> Backend:
    """The backend to ask (``BANDMASTER_BACKEND``, else the journal ``db``). A journal that
    fails its quick check is refused (never shown with holes, never written further); one this
    process cannot write is opened read-only."""
    engine = build(Where.from_env(db))
    await engine.open()
    return engine


@runs_app.command("list")
def runs_list(
    db: DbOption = None,
    status: Annotated[
        str | None, typer.Option(help="queued/running/waiting/completed/failed/cancelled")
    ] = None,
    workflow: Annotated[str | None, typer.Option(help="Only runs of this workflow")] = None,
    tenant: Annotated[str | None, typer.Option(help="Only runs of this tenant")] = None,
    limit: Annotated[int, typer.Option(min=1)] = 50,
    search: Annotated[
        str | None, typer.Option(help="Only runs whose id or journaled input contains this text")
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="Only runs created within this long: 24h, 7d, 90m")
    ] = None,
    order: Annotated[str, typer.Option(help="newest, oldest, longest or shortest first")] = "newest",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """List runs, newest first (or in --order)."""
    statuses = ("queued", "running", "waiting", "completed", "failed", "cancelled")
    if status is not None and status not in statuses:
        raise fail(f"--status {status!r} is not a run status; use one of {', '.join(statuses)}")
    if order not in RUN_ORDERS:
        raise fail(f"--order {order!r}: use one of {', '.join(RUN_ORDERS)}")
    try:
        after = (
            datetime.now(UTC) - timedelta(seconds=parse_duration(since, what="--since")) if since else None
        )
    except BandmasterError as exc:
        raise fail(str(exc)) from exc

    async def main() -> tuple[list[RunInfo], list[Unserved]]:
        engine = await _client(db)
        try:
            found = await engine.list(
                status=status,
                workflow=workflow,
                tenant=tenant,
                limit=limit,
                search=search,
                created_after=after,
                order=order,  # checked above
            )
            return found, await engine.unserved()
        finally:
            await engine.close()

    found, unserved = _run(main())
    notes = {r.id: note for r in found if (note := no_worker_note(unserved, r))}
    if as_json:
        _print_json([r.model_dump(mode="json", exclude={"steps"}) | _note(notes.get(r.id)) for r in found])
        return
    table = ui.table(
        ui.id_column("run", (r.id for r in found)),
        "workflow",
        "status",
        "tenant",
        "priority",
        "created",
        "duration",
    )
    for r in found:
        end = r.ended_at or r.updated_at
        note = notes.get(r.id)
        table.add_row(
            r.id,
            r.workflow_key,
            ui.status(r.status, note),
            r.tenant or "",
            str(r.priority),
            f"{r.created_at:%Y-%m-%d %H:%M:%S}",
            f"{(end - r.created_at).total_seconds():.2f} s",
        )
    ui.show(table)


def _note(note: str | None) -> dict[str, str]:
    return {"note": note} if note is not None else {}


@runs_app.command("show")
def runs_show(
    run_id: Annotated[str, typer.Argument(help=RUN_ID_HELP)],
    db: DbOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Show a run and its step timeline (and, when it waits, on what and how to send it)."""

    async def main() -> RunInfo:
        engine = await _client(db)
        try:
            return await engine.describe(await resolve_run_id(engine, run_id))
        finally:
            await engine.close()

    info = _run(main())
    if as_json:
        _print_json(info.model_dump(mode="json"))
        return
    ui.line((info.id, "bold"), f"  {info.workflow}  ", ui.status(info.status))
    if not info.terms.default:
        budget = f"${info.budget_usd:g}" if info.budget_usd is not None else "none"
        ui.line(f"priority: {info.priority}  tenant: {info.tenant or '-'}  budget: {budget}")
    ui.line(f"input: {ui.cut(json.dumps(info.input, ensure_ascii=False), 200)}")
    if info.output is not None:
        ui.line(f"output: {ui.cut(json.dumps(info.output, ensure_ascii=False), 200)}")
    if info.error:
        ui.line((f"error: {info.error.get('type')}: {info.error.get('message')}", "red"))
    waiting = waiting_on(info) if info.status == "waiting" else None
    if waiting is not None:
        ui.line((waiting.describe(info.id, db), "cyan"))
    table = ui.table("seq", "name", "kind", "status", "attempts", "duration", "error")
    for s in info.steps:
        table.add_row(
            str(s.seq),
            s.name,
            s.kind,
            ui.status(s.status),
            str(s.attempts),
            f"{s.duration * 1000:.1f} ms" if s.duration is not None else "",
            ui.cut(str((s.error or {}).get("message", "")), 60),
        )
    ui.show(table)
    for note in guard_notes(info.steps):  # re-asks and rule violations of guarded model calls
        ui.line(note)


@runs_app.command("watch")
def runs_watch(
    run_id: Annotated[str, typer.Argument(help=RUN_ID_HELP)],
    db: DbOption = None,
    poll: Annotated[float, typer.Option(min=0.01, help="Seconds between journal reads")] = 0.05,
) -> None:
    """Follow a run live: steps as they end (model streams as they start), a model stream's
    tokens as they arrive, then the outcome. Exits 1 if the run failed or was cancelled."""
    from bandmaster.cli._watch import watch

    async def main() -> str:
        engine = await _client(db)
        try:
            full_id = await resolve_run_id(engine, run_id)
            streams = engine.capabilities.supports("token_streaming")
            every = max(poll, engine.capabilities.min_poll)  # a read may be a history fetch
            return await watch(
                engine.describe, full_id, poll=every, chunks=engine.chunks if streams else None
            )
        finally:
            await engine.close()

    if _run(main()) != "completed":
        raise typer.Exit(1)


@app.command("signal")
def signal_run(
    run_id: Annotated[str, typer.Argument(help=RUN_ID_HELP)],
    name: Annotated[str, typer.Argument(help="Signal name (what the run waits for)")],
    payload: Annotated[str, typer.Argument(help="JSON payload, or @file.json")] = "null",
    db: DbOption = None,
) -> None:
    """Send a signal to a run (kept until the run waits for it; a warning says when no wait for
    it is pending)."""
    value = _parse_json(payload, "payload")

    async def main() -> tuple[str, str | None]:
        engine = await _client(db)
        try:
            full_id = await resolve_run_id(engine, run_id)
            await engine.signal(full_id, name, value)
            return full_id, _unawaited(await engine.describe(full_id), name)
        finally:
            await engine.close()

    full_id, warning = _run(main())
    ui.line(f"signal {name!r} sent to {full_id}")
    if warning is not None:
        ui.warn(warning)


def _unawaited(info: RunInfo, name: str) -> str | None:
    """Why a signal just sent may never be read: the run waits for something else."""
    waiting = waiting_on(info) if info.status == "waiting" else None
    if waiting is None or (waiting.kind == "signal" and waiting.name == name):
        return None
    what = "a timer" if waiting.kind == "timer" else f"{waiting.kind} {waiting.name!r}"
    return (
        f"run {info.id} is not waiting for signal {name!r} but for {what}; the signal is kept "
        f"until the workflow calls bm.wait_for({name!r}), which may be never"
    )


@app.command()
def cancel(run_id: Annotated[str, typer.Argument(help=RUN_ID_HELP)], db: DbOption = None) -> None:
    """Cancel a run."""

    async def main() -> tuple[str, str]:
        engine = await _client(db)
        try:
            full_id = await resolve_run_id(engine, run_id)
            return full_id, await engine.cancel(full_id)
        finally:
            await engine.close()

    full_id, status = _run(main())
    ui.line(f"run {full_id}: {status}{' (cancel requested)' if status == 'running' else ''}")


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
    except SystemExit as exc:
        exit_now_if_temporal_was_used(exc.code)
        raise


app.command("server")(_server)
app.add_typer(_tokens_app, name="tokens")

# Commands defined in their own modules, registered here (the modules do not import the app).
app.command()(_doctor.doctor)
app.command("graph")(_graph.graph_command)
app.add_typer(_pii.pii_app, name="pii")
app.command()(_replay.replay)
app.command()(_stats.stats)
app.command()(_stats.export)
app.command("import")(_stats.import_)
app.command("archive")(_stats.archive_cmd)
