"""``bandmaster outbox``: what a Temporal client kept while its frontend was unreachable.

    bandmaster outbox status --outbox outbox.db          # counts, and the oldest entries
    bandmaster outbox flush --outbox outbox.db --target temporal:7233   # forward them now

An engine given ``outbox=`` forwards its entries itself whenever it is open and Temporal
answers; ``flush`` is for the entries a short-lived client (``bandmaster start``) left behind.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Annotated

import typer

from bandmaster.cli import _console as ui
from bandmaster.cli._temporal import NamespaceOption, TargetOption, TaskQueueOption
from bandmaster.errors import BandmasterError

if TYPE_CHECKING:
    from bandmaster.temporal import Outbox

outbox_app = typer.Typer(help="A Temporal client's outbox: starts and signals kept while it was down.")

OutboxOption = Annotated[
    str,
    typer.Option(
        "--outbox", envvar="BANDMASTER_TEMPORAL_OUTBOX", help="The outbox file (TemporalEngine(outbox=...))"
    ),
]
SHOWN = 50


def _open(path: str) -> Outbox:
    try:
        from bandmaster.temporal import Outbox
    except ImportError as exc:
        raise ui.fail(str(exc)) from exc
    try:
        return Outbox.existing(path)
    except BandmasterError as exc:
        raise ui.fail(str(exc)) from exc


@outbox_app.command("status")
def status(
    outbox: OutboxOption,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """How many starts and signals wait to be forwarded, which were refused, and the oldest."""
    box = _open(outbox)
    try:
        counts = box.counts()
        entries = box.entries(limit=SHOWN)
    finally:
        box.close()
    if as_json:
        ui.print_json(
            {
                "counts": counts,
                "entries": [
                    {
                        "id": e.id,
                        "kind": e.kind,
                        "run_id": e.run_id,
                        "name": e.name,
                        "status": e.status,
                        "attempts": e.attempts,
                        "age": round(time.time() - e.created_at, 3),
                        "last_error": e.last_error,
                    }
                    for e in entries
                ],
            }
        )
        return
    ui.line(
        f"waiting: {counts['pending_start']} starts, {counts['pending_signal']} signals; "
        f"refused: {counts['failed_start']} starts, {counts['failed_signal']} signals"
    )
    if not entries:
        return
    run_column = ui.id_column("run", (e.run_id for e in entries))
    headers = ("#", "kind", run_column, "workflow / signal", "status", "age", "tries", "last error")
    table = ui.table(*headers, title="oldest entries")
    now = time.time()
    for e in entries:
        age = f"{now - e.created_at:.0f}s"
        table.add_row(str(e.id), e.kind, e.run_id, e.name, e.status, age, str(e.attempts), e.last_error or "")
    ui.show(table)


@outbox_app.command("flush")
def flush(
    outbox: OutboxOption,
    target: TargetOption = "localhost:7233",
    namespace: NamespaceOption = "default",
    task_queue: TaskQueueOption = "bandmaster",
    timeout: Annotated[float, typer.Option("--timeout", help="Give up after this many seconds")] = 60.0,
) -> None:
    """Forward the waiting entries now; exit 1 if some still wait after --timeout."""
    _open(outbox).close()  # exists and is an outbox: say so before connecting anywhere
    from bandmaster.temporal import TemporalEngine

    async def main() -> int:
        engine = TemporalEngine(
            target, namespace=namespace, task_queue=task_queue, worker=False, outbox=outbox
        )
        async with engine:
            return await engine.drain_outbox(timeout)

    try:
        left = asyncio.run(main())
    except BandmasterError as exc:
        raise ui.fail(str(exc), 1) from exc
    if left:
        ui.line(f"{left} entries still wait after {timeout:g}s: is Temporal at {target} up?", err=True)
        raise typer.Exit(1)
    ui.line("the outbox is empty: every start and signal was forwarded")
