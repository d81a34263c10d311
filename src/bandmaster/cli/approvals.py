"""``bandmaster approvals``: list pending human approvals and decide them.

Deciding is one transaction on the journal, so this works beside running workers: the run
wakes up on whichever worker polls next.
"""

from __future__ import annotations

import asyncio
import getpass
import json
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from bandmaster.engine.approval import Decision
from bandmaster.engine.approvals import Approvals
from bandmaster.engine.runtime import Engine
from bandmaster.errors import BandmasterError, UsageError

T = TypeVar("T")

approvals_app = typer.Typer(
    help="Human approvals: list pending ones, approve or override.", no_args_is_help=True
)
console = Console()
err = Console(stderr=True)

DbOption = Annotated[
    str | None,
    typer.Option("--db", help="Journal path or sqlite:/// URL [default: $BANDMASTER_DB or ./bandmaster.db]"),
]
NameOption = Annotated[
    str | None, typer.Option("--name", help="Which approval, when the run has several pending")
]
CommentOption = Annotated[str | None, typer.Option("--comment", help="Why (kept in the audit trail)")]
ByOption = Annotated[
    str | None, typer.Option("--by", help="Who decides (checked against the allow-list) [default: $USER]")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON")]


def _with_desk(db: str | None, use: Callable[[Approvals], Awaitable[T]]) -> T:
    async def main() -> T:
        engine = Engine(db, worker=False)
        await engine.open()
        try:
            return await use(engine.approvals)
        finally:
            await engine.close()

    try:
        return asyncio.run(main())
    except (UsageError, ValueError) as exc:
        err.print(f"[bold red]error:[/] {exc}", highlight=False)
        raise typer.Exit(2) from exc
    except BandmasterError as exc:  # AlreadyDecided, NotAuthorized: the decision was not applied
        err.print(f"[bold red]error:[/] {exc}", highlight=False)
        raise typer.Exit(1) from exc


def _left(seconds: float | None) -> str:
    if seconds is None:
        return "no deadline"
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


@approvals_app.command("list")
def list_approvals(
    status: Annotated[str, typer.Option(help="pending, decided or all")] = "pending",
    name: Annotated[str | None, typer.Option("--name", help="Only approvals of this name")] = None,
    limit: Annotated[int, typer.Option(help="At most this many")] = 100,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Approvals, oldest first: pending ones by default."""
    if status not in ("pending", "decided", "all"):
        err.print(f"[bold red]error:[/] --status {status!r}: use pending, decided or all")
        raise typer.Exit(2)
    wanted: Any = None if status == "all" else status
    found = _with_desk(db, lambda desk: desk.list(status=wanted, name=name, limit=limit))
    if as_json:
        console.print_json(json.dumps([a.model_dump(mode="json") for a in found]))
        return
    table = Table("run", "name", "workflow", "status", "default", "time left", "decision", "payload")
    for a in found:
        decision = a.decision
        decided = (
            f"{decision.action} by {decision.by or 'default'} ({decision.at:%H:%M:%S})" if decision else ""
        )
        table.add_row(
            a.run_id,
            a.name,
            a.workflow,
            a.status,
            a.default or "",
            _left(a.time_left) if a.status == "pending" else "",
            decided,
            json.dumps(a.payload)[:60],
        )
    console.print(table)


def _decide(
    action: str,
    run_id: str,
    name: str | None,
    comment: str | None,
    by: str | None,
    db: str | None,
    as_json: bool,
) -> None:
    who = by or getpass.getuser()
    decision: Decision = _with_desk(
        db, lambda desk: desk.decide(run_id, action, by=who, comment=comment, name=name)
    )
    if as_json:
        console.print_json(decision.model_dump_json())
        return
    console.print(f"run {run_id}: {decision.action} by {decision.by}", highlight=False)


@approvals_app.command("approve")
def approve(
    run_id: Annotated[str, typer.Argument(help="Run id")],
    name: NameOption = None,
    comment: CommentOption = None,
    by: ByOption = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Approve the run's pending approval."""
    _decide("approve", run_id, name, comment, by, db, as_json)


@approvals_app.command("override")
def override(
    run_id: Annotated[str, typer.Argument(help="Run id")],
    name: NameOption = None,
    comment: CommentOption = None,
    by: ByOption = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Override: do not let the default (or the workflow's normal path) go ahead."""
    _decide("override", run_id, name, comment, by, db, as_json)


@approvals_app.command("decide")
def decide(
    run_id: Annotated[str, typer.Argument(help="Run id")],
    action: Annotated[str, typer.Argument(help="The action your workflow understands")],
    name: NameOption = None,
    comment: CommentOption = None,
    by: ByOption = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Decide with a custom action (what the workflow's Decision.action will be)."""
    _decide(action, run_id, name, comment, by, db, as_json)


@approvals_app.command("audit")
def audit(
    run_id: Annotated[str | None, typer.Argument(help="Only this run")] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """The audit trail: who decided what and when, refusals, late attempts, defaults fired."""
    entries = _with_desk(db, lambda desk: desk.audit(run_id))
    if as_json:
        console.print_json(json.dumps([e.model_dump(mode="json") for e in entries]))
        return
    table = Table("at", "run", "name", "who", "event", "action", "comment", "default")
    for e in entries:
        table.add_row(
            f"{e.at:%Y-%m-%d %H:%M:%S}",
            e.run_id,
            e.name,
            e.who or "",
            e.event,
            e.action or "",
            e.comment or "",
            "yes" if e.default_fired else "",
        )
    console.print(table)
