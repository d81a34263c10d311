"""The CLI's Temporal backend: ``bandmaster worker --backend temporal`` and, with
``BANDMASTER_BACKEND=temporal``, ``runs``/``signal``/``cancel`` against a Temporal cluster.
temporalio is imported only when the backend is used."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, Any

import typer

from bandmaster.cli import _console as ui
from bandmaster.errors import UsageError

if TYPE_CHECKING:
    from bandmaster.temporal.engine import TemporalEngine

BACKENDS = ("embedded", "temporal")

BackendOption = Annotated[
    str, typer.Option("--backend", envvar="BANDMASTER_BACKEND", help="embedded (SQLite) or temporal")
]
TargetOption = Annotated[
    str,
    typer.Option("--target", envvar="BANDMASTER_TEMPORAL_TARGET", help="Temporal frontend host:port"),
]
NamespaceOption = Annotated[
    str, typer.Option("--namespace", envvar="BANDMASTER_TEMPORAL_NAMESPACE", help="Temporal namespace")
]
TaskQueueOption = Annotated[
    str, typer.Option("--task-queue", envvar="BANDMASTER_TEMPORAL_TASK_QUEUE", help="Temporal task queue")
]
LocalOption = Annotated[
    bool, typer.Option("--local-activities", help="Temporal: run every step as a local activity")
]


def backend_from_env() -> str:
    backend = os.environ.get("BANDMASTER_BACKEND", "embedded")
    check_backend(backend)
    return backend


def check_backend(backend: str) -> None:
    if backend not in BACKENDS:
        raise UsageError(
            f"backend {backend!r} is unknown; use one of {', '.join(BACKENDS)} (BANDMASTER_BACKEND)"
        )


def temporal_engine(**options: Any) -> TemporalEngine:
    """A ``TemporalEngine``; a ``UsageError`` with the install command without the extra."""
    try:
        from bandmaster.temporal.engine import TemporalEngine
    except ImportError as exc:
        raise UsageError(str(exc)) from exc
    return TemporalEngine(**options)


async def temporal_client() -> TemporalEngine:
    """A client (no worker) configured from ``BANDMASTER_TEMPORAL_*``."""
    engine = temporal_engine(
        target=os.environ.get("BANDMASTER_TEMPORAL_TARGET", "localhost:7233"),
        namespace=os.environ.get("BANDMASTER_TEMPORAL_NAMESPACE", "default"),
        task_queue=os.environ.get("BANDMASTER_TEMPORAL_TASK_QUEUE", "bandmaster"),
        worker=False,
    )
    await engine.open()
    return engine


async def serve(
    workflows: list[Any],
    registry: object | None,
    *,
    target: str,
    namespace: str,
    task_queue: str,
    local_activities: bool,
    concurrency: int,
    schedules: Sequence[Any] = (),
) -> int:
    """Host ``workflows`` on a Temporal task queue until SIGTERM/SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    engine = temporal_engine(
        target=target,
        namespace=namespace,
        task_queue=task_queue,
        workflows=workflows,
        worker=True,
        registry=registry,
        local_activities=local_activities,
        max_concurrent_activities=concurrency,
        schedules=schedules,
    )
    await engine.open()
    names = ", ".join(sorted(engine.workflows))
    ui.line(
        f"temporal worker pid {os.getpid()} serving ",
        (names, "bold"),
        f" on {target} (namespace {namespace}, task queue {task_queue})",
        err=True,
    )
    await stop.wait()
    ui.line("stopping…", err=True)
    await engine.close()
    return 0


def exit_now_if_temporal_was_used(code: object) -> None:
    """End the process without interpreter teardown once a Temporal client existed in it.

    The SDK's Rust threads can outlive the event loop and abort CPython's finalisation
    ("PyGILState_Release ... finalizing", temporalio/sdk-python#300), which would turn a
    finished command's exit code into SIGABRT. Everything is done by now: flush and leave."""
    if "temporalio.bridge.client" not in sys.modules:
        return
    if isinstance(code, str):
        sys.stderr.write(code + "\n")
    status = code if isinstance(code, int) else (0 if code is None else 1)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
