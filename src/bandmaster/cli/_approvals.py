"""``bandmaster approvals``: list pending human approvals and decide them.

Embedded, deciding is one transaction on the journal, so this works beside running workers: the
run wakes up on whichever worker polls next. With ``--backend temporal`` (or
``BANDMASTER_BACKEND=temporal``) the commands go to that backend's ``approvals`` desk (the same
errors on both); a ``--comment`` is redacted with the workflow's redactor, which on Temporal
this process knows only from ``--module``.
"""

from __future__ import annotations

import asyncio
import getpass
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, TypeVar

import typer

from bandmaster.cli import _backends as backends
from bandmaster.cli import _console as ui
from bandmaster.cli._loader import load_workflows
from bandmaster.cli._runs import resolve_run_id
from bandmaster.cli._temporal import (
    BackendOption,
    NamespaceOption,
    TargetOption,
    TaskQueueOption,
    check_backend,
)
from bandmaster.engine import Approval, Decision
from bandmaster.engine.backend import ApprovalDesk
from bandmaster.errors import BandmasterError, UsageError

T = TypeVar("T")

approvals_app = typer.Typer(
    help="Human approvals: list pending ones, approve or override.", no_args_is_help=True
)
RunIdArgument = Annotated[str, typer.Argument(help="Run id, or a unique start of one")]
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
ModuleOption = Annotated[
    list[str] | None,
    typer.Option(
        "--module",
        help="Module or file defining the run's @bm.workflow (repeatable), so a --comment is redacted "
        "with its redactor; on Temporal a comment for a redacting run is refused without it",
    ),
]


@dataclass
class Where:
    """Which approvals desk: the embedded journal or a Temporal cluster, and the workflows known."""

    db: str | None = None
    backend: str = "embedded"
    target: str = "localhost:7233"
    namespace: str = "default"
    task_queue: str = "bandmaster"
    modules: list[str] = field(default_factory=list)


def _fail(exc: Exception, code: int) -> typer.Exit:
    return ui.fail(str(exc), code)


Desk = ApprovalDesk


def _with_desk(where: Where, use: Callable[[Desk, str | None], Awaitable[T]], run_id: str | None = None) -> T:
    """Open the desk, turn ``run_id`` (maybe a prefix) into a full id, and ``use`` them."""
    try:
        check_backend(where.backend)
        workflows = load_workflows(where.modules)
    except BandmasterError as exc:  # a wrong backend or --module is a usage error
        raise _fail(exc, 2) from exc

    async def main() -> T:
        chosen = backends.Where(where.backend, where.db, where.target, where.namespace, where.task_queue)
        async with backends.opened(chosen, workflows=workflows, must_exist=False) as engine:
            full_id = await resolve_run_id(engine, run_id) if run_id is not None else None
            return await use(engine.approvals, full_id)

    try:
        return asyncio.run(main())
    except (UsageError, ValueError) as exc:
        raise _fail(exc, 2) from exc
    except BandmasterError as exc:  # AlreadyDecided, NotAuthorized: the decision was not applied
        raise _fail(exc, 1) from exc


def _left(seconds: float | None) -> str:
    if seconds is None:
        return "no deadline"
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def _decided(a: Approval) -> str:
    decision = a.decision
    return f"{decision.action} by {decision.by or 'default'} ({decision.at:%H:%M:%S})" if decision else ""


@approvals_app.command("list")
def list_approvals(
    status: Annotated[str, typer.Option(help="pending, decided or all")] = "pending",
    name: Annotated[str | None, typer.Option("--name", help="Only approvals of this name")] = None,
    limit: Annotated[int, typer.Option(help="At most this many")] = 100,
    db: DbOption = None,
    as_json: JsonOption = False,
    backend: BackendOption = "embedded",
    target: TargetOption = "localhost:7233",
    namespace: NamespaceOption = "default",
    task_queue: TaskQueueOption = "bandmaster",
) -> None:
    """Approvals, oldest first: pending ones by default."""
    if status not in ("pending", "decided", "all"):
        raise ui.fail(f"--status {status!r}: use pending, decided or all")
    wanted: Any = None if status == "all" else status
    where = Where(db, backend, target, namespace, task_queue)
    found = _with_desk(where, lambda desk, _: desk.list(status=wanted, name=name, limit=limit))
    if as_json:
        ui.print_json([a.model_dump(mode="json") for a in found])
        return
    table = ui.table(
        ui.id_column("run", (a.run_id for a in found)),
        *("name", "workflow", "status", "default", "time left", "decision", "payload"),
    )
    for a in found:
        table.add_row(
            a.run_id,
            a.name,
            a.workflow,
            a.status,
            a.default or "",
            _left(a.time_left) if a.status == "pending" else "",
            _decided(a),
            ui.cut(json.dumps(a.payload, ensure_ascii=False), 60),
        )
    ui.show(table)


@approvals_app.command("show")
def show(
    run_id: RunIdArgument,
    name: NameOption = None,
    db: DbOption = None,
    as_json: JsonOption = False,
    backend: BackendOption = "embedded",
    target: TargetOption = "localhost:7233",
    namespace: NamespaceOption = "default",
    task_queue: TaskQueueOption = "bandmaster",
) -> None:
    """The run's pending approval (of --name), else its latest one, with its decision."""
    where = Where(db, backend, target, namespace, task_queue)
    a: Approval = _with_desk(where, lambda desk, full_id: desk.get(full_id or run_id, name=name), run_id)
    if as_json:
        ui.print_json(text=a.model_dump_json())
        return
    lines = [
        f"run {a.run_id}  {a.workflow}  approval {a.name!r} (seq {a.seq}): {a.status}",
        f"payload: {json.dumps(a.payload, ensure_ascii=False)}",
        f"approvers: {', '.join(a.approvers) if a.approvers is not None else 'anyone'}",
        f"default: {a.default or 'none'}" + (f", {_left(a.time_left)} left" if a.status == "pending" else ""),
    ]
    if a.decision is not None:
        lines.append(f"decision: {_decided(a)}" + (f": {a.decision.comment}" if a.decision.comment else ""))
    for line in lines:
        ui.line(line)


def _decide(
    action: str,
    run_id: str,
    name: str | None,
    comment: str | None,
    by: str | None,
    where: Where,
    as_json: bool,
) -> None:
    who = by or getpass.getuser()
    decided_id = run_id

    async def decide(desk: Desk, full_id: str | None) -> Decision:
        nonlocal decided_id
        decided_id = full_id or run_id
        return await desk.decide(decided_id, action, by=who, comment=comment, name=name)

    decision: Decision = _with_desk(where, decide, run_id)
    if as_json:
        ui.print_json(text=decision.model_dump_json())
        return
    ui.line(f"run {decided_id}: {decision.action} by {decision.by}")


def _fixed_action_command(action: str, doc: str) -> Callable[..., None]:
    """A ``bandmaster approvals ACTION RUN`` command: ``decide`` with the action built in."""

    def command(
        run_id: RunIdArgument,
        name: NameOption = None,
        comment: CommentOption = None,
        by: ByOption = None,
        db: DbOption = None,
        as_json: JsonOption = False,
        module: ModuleOption = None,
        backend: BackendOption = "embedded",
        target: TargetOption = "localhost:7233",
        namespace: NamespaceOption = "default",
        task_queue: TaskQueueOption = "bandmaster",
    ) -> None:
        where = Where(db, backend, target, namespace, task_queue, module or [])
        _decide(action, run_id, name, comment, by, where, as_json)

    command.__doc__ = doc
    return command


approve = approvals_app.command("approve")(
    _fixed_action_command("approve", "Approve the run's pending approval.")
)
override = approvals_app.command("override")(
    _fixed_action_command(
        "override", "Override: do not let the default (or the workflow's normal path) go ahead."
    )
)


@approvals_app.command("decide")
def decide(
    run_id: RunIdArgument,
    action: Annotated[str, typer.Argument(help="The action your workflow understands")],
    name: NameOption = None,
    comment: CommentOption = None,
    by: ByOption = None,
    db: DbOption = None,
    as_json: JsonOption = False,
    module: ModuleOption = None,
    backend: BackendOption = "embedded",
    target: TargetOption = "localhost:7233",
    namespace: NamespaceOption = "default",
    task_queue: TaskQueueOption = "bandmaster",
) -> None:
    """Decide with a custom action (what the workflow's Decision.action will be)."""
    where = Where(db, backend, target, namespace, task_queue, module or [])
    _decide(action, run_id, name, comment, by, where, as_json)


@approvals_app.command("audit")
def audit(
    run_id: Annotated[
        str | None, typer.Argument(help="Only this run (an id or a unique start of one)")
    ] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
    backend: BackendOption = "embedded",
    target: TargetOption = "localhost:7233",
    namespace: NamespaceOption = "default",
    task_queue: TaskQueueOption = "bandmaster",
) -> None:
    """The audit trail: who decided what and when, refusals, late attempts, defaults fired
    (embedded journal only; on Temporal each decision is an update in the run's history)."""
    where = Where(db, backend, target, namespace, task_queue)
    entries = _with_desk(where, lambda desk, full_id: desk.audit(full_id), run_id)
    if as_json:
        ui.print_json([e.model_dump(mode="json") for e in entries])
        return
    run_column = ui.id_column("run", (e.run_id for e in entries))
    table = ui.table("at", run_column, "name", "who", "event", "action", "comment", "default")
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
    ui.show(table)
