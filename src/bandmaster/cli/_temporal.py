"""The CLI's backend options (``--backend``, and the Temporal cluster's address), and the
process exit that the Temporal SDK needs. ``backends.py`` builds the backend they name."""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from bandmaster.errors import UsageError

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


def check_backend(backend: str) -> None:
    if backend not in BACKENDS:
        raise UsageError(
            f"backend {backend!r} is unknown; use one of {', '.join(BACKENDS)} (BANDMASTER_BACKEND)"
        )


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
