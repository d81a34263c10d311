"""``bandmaster schedules``: list the journal's schedules, pause and resume them.

Workers read the pause state on every pass, so a pause takes effect within a second on every
worker. Resuming starts from now: the ticks that fell while paused are not caught up.
"""

from __future__ import annotations

import getpass
from collections.abc import Callable
from typing import Annotated, TypeVar

import typer

from bandmaster.cli import _console as ui
from bandmaster.errors import BandmasterError
from bandmaster.store.sqlite import SQLiteStore, resolve_db_path
from bandmaster.triggers.desk import ScheduleInfo, Schedules

T = TypeVar("T")

schedules_app = typer.Typer(help="Cron schedules (bm.schedule): list, pause, resume.", no_args_is_help=True)
DbOption = Annotated[
    str | None,
    typer.Option("--db", help="Journal path or sqlite:/// URL [default: $BANDMASTER_DB or ./bandmaster.db]"),
]
NameArgument = Annotated[str, typer.Argument(help="The schedule's name (bandmaster schedules list)")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON")]
ByOption = Annotated[str | None, typer.Option("--by", help="Who (kept with the schedule) [default: $USER]")]


def _with(db: str | None, use: Callable[[Schedules], T]) -> T:
    path = resolve_db_path(db)
    if not path.exists():
        raise ui.fail(f"no journal at {path}; pass --db or set BANDMASTER_DB")
    try:
        store = SQLiteStore(path)
    except BandmasterError as exc:
        raise ui.fail(str(exc)) from exc
    try:
        return use(Schedules(store))
    except BandmasterError as exc:
        raise ui.fail(str(exc)) from exc
    finally:
        store.close()


def _when(info: ScheduleInfo) -> str:
    return f"{info.next_tick:%Y-%m-%d %H:%M:%S}Z" if info.next_tick is not None else "paused"


@schedules_app.command("list")
def list_schedules(db: DbOption = None, as_json: JsonOption = False) -> None:
    """Schedules with their workflow, cron, catch-up policy and next tick (UTC)."""
    found = _with(db, lambda desk: desk.list())
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


@schedules_app.command("pause")
def pause(name: NameArgument, db: DbOption = None, by: ByOption = None) -> None:
    """Stop starting runs of the schedule (on every worker, within a second)."""
    info = _with(db, lambda desk: desk.pause(name, by=by or getpass.getuser()))
    ui.line("paused ", info.name)


@schedules_app.command("resume")
def resume(name: NameArgument, db: DbOption = None, by: ByOption = None) -> None:
    """Start runs again from the next tick (ticks missed while paused are not started)."""
    info = _with(db, lambda desk: desk.resume(name, by=by or getpass.getuser()))
    ui.line("resumed ", info.name, "; next tick ", _when(info))
