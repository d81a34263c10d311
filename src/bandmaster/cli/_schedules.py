"""``bandmaster schedules``: list the schedules, pause and resume them.

Embedded, they live in the journal and workers read the pause state on every pass (within a
second). With ``--backend temporal`` (or ``BANDMASTER_BACKEND=temporal``) they are Temporal
Schedules. Resuming starts from now: the ticks that fell while paused are not caught up.
"""

from __future__ import annotations

import asyncio
import getpass
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import typer

from bandmaster.cli import _console as ui
from bandmaster.cli._backends import Where, opened
from bandmaster.cli._temporal import (
    BackendOption,
    NamespaceOption,
    TargetOption,
    check_backend,
)
from bandmaster.engine import ScheduleDesk, ScheduleInfo
from bandmaster.errors import BandmasterError

T = TypeVar("T")

schedules_app = typer.Typer(help="Cron schedules (bm.schedule): list, pause, resume.", no_args_is_help=True)
DbOption = Annotated[
    str | None,
    typer.Option("--db", help="Journal path or sqlite:/// URL [default: $BANDMASTER_DB or ./bandmaster.db]"),
]
NameArgument = Annotated[str, typer.Argument(help="The schedule's name (bandmaster schedules list)")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON")]
ByOption = Annotated[str | None, typer.Option("--by", help="Who (kept with the schedule) [default: $USER]")]


def _with(
    db: str | None, backend: str, target: str, namespace: str, use: Callable[[ScheduleDesk], Awaitable[T]]
) -> T:
    try:
        check_backend(backend)
    except BandmasterError as exc:
        raise ui.fail(str(exc)) from exc

    async def main() -> T:
        async with opened(Where(backend, db, target, namespace)) as engine:
            return await use(engine.schedules)

    try:
        return asyncio.run(main())
    except BandmasterError as exc:
        raise ui.fail(str(exc)) from exc


def _when(info: ScheduleInfo) -> str:
    return f"{info.next_tick:%Y-%m-%d %H:%M:%S}Z" if info.next_tick is not None else "paused"


@schedules_app.command("list")
def list_schedules(
    db: DbOption = None,
    as_json: JsonOption = False,
    backend: BackendOption = "embedded",
    target: TargetOption = "localhost:7233",
    namespace: NamespaceOption = "default",
) -> None:
    """Schedules with their workflow, cron, catch-up policy and next tick (UTC)."""
    found: list[ScheduleInfo] = _with(db, backend, target, namespace, lambda desk: desk.list())
    if as_json:
        ui.print_json([s.model_dump(mode="json") for s in found])
        return
    table = ui.table(
        ui.id_column("name", (s.name for s in found)),
        *("workflow", "cron", "catchup", "status", "next tick", "last tick"),
    )
    for s in found:
        table.add_row(
            s.name,
            s.workflow,
            s.cron,
            s.catchup,
            "paused" if s.paused else "active",
            _when(s),
            f"{s.last_tick:%Y-%m-%d %H:%M:%S}Z",
        )
    ui.show(table)


def _change(action: str, name: str, **where: Any) -> ScheduleInfo:
    by = where.pop("by") or getpass.getuser()

    def use(desk: ScheduleDesk) -> Awaitable[ScheduleInfo]:
        return desk.pause(name, by=by) if action == "pause" else desk.resume(name, by=by)

    return _with(where["db"], where["backend"], where["target"], where["namespace"], use)


@schedules_app.command("pause")
def pause(
    name: NameArgument,
    db: DbOption = None,
    by: ByOption = None,
    backend: BackendOption = "embedded",
    target: TargetOption = "localhost:7233",
    namespace: NamespaceOption = "default",
) -> None:
    """Stop starting runs of the schedule (on every worker, within a second)."""
    info = _change("pause", name, db=db, by=by, backend=backend, target=target, namespace=namespace)
    ui.line("paused ", info.name)


@schedules_app.command("resume")
def resume(
    name: NameArgument,
    db: DbOption = None,
    by: ByOption = None,
    backend: BackendOption = "embedded",
    target: TargetOption = "localhost:7233",
    namespace: NamespaceOption = "default",
) -> None:
    """Start runs again from the next tick (ticks missed while paused are not started)."""
    info = _change("resume", name, db=db, by=by, backend=backend, target=target, namespace=namespace)
    ui.line("resumed ", info.name, "; next tick ", _when(info))
