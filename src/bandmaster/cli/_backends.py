"""The one place the CLI builds a backend from its options: ``--backend embedded`` (a SQLite
journal, ``--db``) or ``--backend temporal`` (``--target``, ``--namespace``, ``--task-queue``),
or the ``BANDMASTER_BACKEND`` / ``BANDMASTER_TEMPORAL_*`` variables. Every command past this
point talks to a ``Backend`` (``bandmaster.engine.backend``) and never asks which one it is;
what a backend cannot do raises ``NotSupported`` saying why. temporalio is imported only when
the Temporal backend is chosen.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bandmaster.cli import _console as ui
from bandmaster.cli._temporal import check_backend
from bandmaster.engine import Engine, Workflow
from bandmaster.engine.backend import Backend
from bandmaster.engine.backend_kit import describe_key
from bandmaster.errors import UsageError
from bandmaster.store import check_readable


@dataclass(frozen=True, slots=True)
class Where:
    """Which backend a command talks to."""

    backend: str = "embedded"
    db: str | None = None
    target: str = "localhost:7233"
    namespace: str = "default"
    task_queue: str = "bandmaster"

    @classmethod
    def from_env(cls, db: str | None = None) -> Where:
        """For the commands without backend options (runs, start, signal, cancel, models, stats)."""
        backend = os.environ.get("BANDMASTER_BACKEND", "embedded")
        check_backend(backend)
        return cls(
            backend,
            db,
            os.environ.get("BANDMASTER_TEMPORAL_TARGET", "localhost:7233"),
            os.environ.get("BANDMASTER_TEMPORAL_NAMESPACE", "default"),
            os.environ.get("BANDMASTER_TEMPORAL_TASK_QUEUE", "bandmaster"),
        )


def build(
    where: Where,
    *,
    workflows: Iterable[Workflow[..., Any]] = (),
    registry: object | None = None,
    worker: bool = False,
    must_exist: bool = True,
    embedded: Mapping[str, Any] | None = None,
    temporal: Mapping[str, Any] | None = None,
) -> Backend:
    """The backend ``where`` names, not yet open. ``must_exist``: refuse a journal that is not
    there (a client reading runs) instead of creating it. ``embedded`` and ``temporal``: the
    options only that backend has (a worker's lease, a Temporal worker's local activities)."""
    check_backend(where.backend)
    if where.backend == "temporal":
        try:
            from bandmaster.temporal import TemporalEngine
        except ImportError as exc:  # the message is the install command
            raise UsageError(str(exc)) from exc
        # A client (not a worker) keeps starts and signals in an outbox while Temporal is down.
        outbox = None if worker else os.environ.get("BANDMASTER_TEMPORAL_OUTBOX") or None
        return TemporalEngine(
            where.target,
            namespace=where.namespace,
            task_queue=where.task_queue,
            workflows=workflows,
            worker=worker,
            registry=registry,
            outbox=outbox,
            **(temporal or {}),
        )
    engine = Engine(where.db, workflows=workflows, worker=worker, registry=registry, **(embedded or {}))
    if not worker and must_exist and not engine.path.exists():
        raise UsageError(f"no journal at {engine.path}; pass --db or set BANDMASTER_DB")
    if engine.path.is_file():
        check_readable(engine.path)  # a damaged journal is refused, never shown with holes
    return engine


def journal_of(backend: Backend) -> Path | None:
    """The SQLite journal the backend keeps its runs in, if it has one: what the journal-file
    tools (``stats --exact``/``--plot``, ``export``, ``doctor``) read directly."""
    return backend.path if isinstance(backend, Engine) else None


@asynccontextmanager
async def opened(where: Where, **options: Any) -> AsyncIterator[Backend]:
    """``build(where, **options)``, open for the block."""
    backend = build(where, **options)
    await backend.open()
    try:
        yield backend
    finally:
        await backend.close()


async def serve(
    where: Where,
    workflows: list[Workflow[..., Any]],
    registry: object | None,
    *,
    grace: float,
    retention: str | None = None,
    archive_dir: Path | None = None,
    embedded: Mapping[str, Any] | None = None,
    temporal: Mapping[str, Any] | None = None,
) -> int:
    """``bandmaster worker``: host ``workflows`` until SIGTERM/SIGINT, then drain."""
    if retention is not None and where.backend != "embedded":
        raise UsageError(
            "--retention archives runs of the embedded journal; on Temporal, set the namespace's "
            "retention period instead"
        )
    backend = build(
        where, workflows=workflows, registry=registry, worker=True, embedded=embedded, temporal=temporal
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await backend.open()
    names = ", ".join(sorted(describe_key(wf.name, wf.version) for wf in workflows))
    keeper = None
    if isinstance(backend, Engine):
        ui.line(f"worker {backend.owner} serving ", (names, "bold"), f" from {backend.path}", err=True)
        if retention is not None:
            from bandmaster.store.archive import retention_loop

            keeper = asyncio.create_task(retention_loop(backend.path, retention, archive_dir))
    else:
        ui.line(
            f"temporal worker pid {os.getpid()} serving ",
            (names, "bold"),
            f" on {where.target} (namespace {where.namespace}, task queue {where.task_queue})",
            err=True,
        )
    await stop.wait()
    ui.line("draining…", err=True)
    if keeper is not None:
        keeper.cancel()
    if isinstance(backend, Engine):
        await backend.close(grace=grace)  # active runs get `grace` seconds, then go back to the queue
    else:
        await backend.close()
    return 0
