"""``TemporalEngine.approvals``: the approvals desk of the Temporal backend (list, get, decide),
with the same methods and errors as the embedded ``engine.approvals``.

Listing reads the ``bm.approval.<seq>`` memos of workflow executions through Temporal's
visibility (no worker is asked): pending approvals live only in running executions, so listing
them scans this task queue's running runs; decided ones are looked for among the most recent
``scan`` runs. Deciding is the workflow's ``bandmaster.decide`` update (temporal/approval.py):
the workflow itself checks the allow-list and settles the race with the timed default, and the
answer is the decision that stands. A reviewer's comment passes through the workflow's
redactor (``@bm.workflow(redact=...)``, else ``TemporalEngine(redact=...)``) before it leaves
this process, as on the embedded desk. A client that does not host the workflow cannot: when
the approval's memo says the run redacts (``redacts``), a comment is refused rather than sent.
"""

from __future__ import annotations

import asyncio
import builtins
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from temporalio.client import Client, WorkflowExecutionDescription, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from bandmaster.engine.backend import Capabilities
from bandmaster.engine.backend_kit import (
    Approval,
    AuditEntry,
    Decision,
    Redactor,
    Workflow,
    check_list_status,
    redactor_for,
)
from bandmaster.errors import (
    AlreadyDecided,
    ApprovalNotFound,
    BackendUnavailable,
    InvalidInput,
    NotAuthorized,
    UsageError,
)
from bandmaster.temporal._approval import (
    ALREADY_DECIDED,
    AMBIGUOUS,
    APPROVAL_PREFIX,
    DECIDE_UPDATE,
    NOT_AUTHORIZED,
    NOT_FOUND,
)
from bandmaster.temporal._history import STATUS
from bandmaster.temporal._visibility import runs_query

DECIDE_TIMEOUT = 30.0  # seconds a decision waits for a worker to run the workflow's update
SCAN = 1000  # runs read, newest first, when looking for approvals across runs


def _stamp(value: float | None) -> datetime | None:
    return datetime.fromtimestamp(value, UTC) if value is not None else None


def approvals_in(memo: Mapping[str, Any]) -> builtins.list[Approval]:
    """The approvals recorded in one execution's memo, by seq."""
    out = []
    for key, row in memo.items():
        if not key.startswith(APPROVAL_PREFIX) or not isinstance(row, dict):
            continue
        decision = row.get("decision")
        out.append(
            Approval(
                run_id=row["run_id"],
                seq=row["seq"],
                name=row["name"],
                workflow=row["workflow"],
                payload=row.get("payload"),
                approvers=row.get("approvers"),
                default=row.get("default"),
                status=row["status"],
                created_at=_stamp(row["created"]) or datetime.now(UTC),
                deadline=_stamp(row.get("deadline")),
                decision=Decision.model_validate(decision) if decision else None,
            )
        )
    return sorted(out, key=lambda a: a.seq)


class DeskHost(Protocol):
    """What the desk needs of its engine (a ``TemporalEngine``)."""

    @property
    def capabilities(self) -> Capabilities: ...

    @property
    def client(self) -> Client: ...

    @property
    def task_queue(self) -> str: ...

    @property
    def workflows(self) -> Mapping[str, Workflow[..., Any]]: ...

    @property
    def redact(self) -> Redactor | None: ...


class TemporalApprovals:
    """The approvals desk of a ``TemporalEngine``: ``engine.approvals``."""

    def __init__(self, engine: DeskHost, *, scan: int = SCAN, decide_timeout: float = DECIDE_TIMEOUT):
        self.engine = engine
        self.scan = scan
        self.decide_timeout = decide_timeout

    async def list(
        self,
        *,
        status: Literal["pending", "decided"] | None = "pending",
        run_id: str | None = None,
        name: str | None = None,
        limit: int = 100,
    ) -> builtins.list[Approval]:
        """Approvals, oldest first; pending ones by default (``status=None``: all)."""
        check_list_status(status)
        if run_id is not None:
            found = await self._of_run(run_id)
        else:
            # Only running executions can wait for a decision.
            query = runs_query(self.engine.task_queue, status="Running" if status == "pending" else None)
            found = []
            seen = 0
            async for execution in self.engine.client.list_workflows(query):
                found.extend(approvals_in(await execution.memo()))
                seen += 1
                if seen >= self.scan:
                    break
        chosen = [
            a for a in found if (status is None or a.status == status) and (name is None or a.name == name)
        ]
        chosen.sort(key=lambda a: (a.created_at, a.run_id, a.seq))
        return chosen[:limit]

    async def _of_run(self, run_id: str) -> builtins.list[Approval]:
        """The run's approvals; none for a run that does not exist (as on the embedded desk)."""
        description = await self._describe(run_id)
        return approvals_in(await description.memo()) if description is not None else []

    async def _describe(self, run_id: str) -> WorkflowExecutionDescription | None:
        try:
            return await self.engine.client.get_workflow_handle(run_id).describe()
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                return None
            raise

    async def get(self, run_id: str, *, name: str | None = None) -> Approval:
        """The run's pending approval (of ``name``), else its latest one."""
        rows = [a for a in await self._of_run(run_id) if name is None or a.name == name]
        if not rows:
            raise _no_approval(run_id, name)
        pending = [a for a in rows if a.status == "pending"]
        return pending[0] if pending else rows[-1]

    async def decide(
        self, run_id: str, action: str, *, by: str, comment: str | None = None, name: str | None = None
    ) -> Decision:
        """Decide the run's pending approval (``name`` picks one when several are pending).

        Raises what the embedded desk raises, in the same order: ``ApprovalNotFound`` (no such
        run or approval), ``NotAuthorized`` when ``by`` is not in its allow-list,
        ``AlreadyDecided`` when a person or the timed default was first (nothing changes then,
        also after the run has ended), ``UsageError`` when the run ended with the approval still
        open; and ``BackendUnavailable`` when no worker runs the update in time."""
        if not isinstance(action, str) or not action.strip():
            raise InvalidInput(f"decide(action={action!r}): give an action, e.g. 'approve' or 'override'")
        if not isinstance(by, str) or not by.strip():
            raise InvalidInput(f"decide(by={by!r}): say who decides (it is audited)")
        handle = self.engine.client.get_workflow_handle(run_id)
        description = await self._describe(run_id)
        if description is None:
            raise _no_approval(run_id, name)
        memo = await description.memo()
        known = [a for a in approvals_in(memo) if name is None or a.name == name]
        if not known:
            raise _no_approval(run_id, name)
        run_status = STATUS.get(description.status, "running")
        if run_status != "running":  # no worker answers for an ended run: its memo does
            raise _refused_after_end(run_id, known, by, run_status)
        wf = self.engine.workflows.get(description.workflow_type)
        redactor = redactor_for(wf, self.engine.redact)
        if comment and redactor is not None:  # a person's free text leaves us
            comment = str(redactor.redact(comment))
        elif comment and _redacts(memo, name):
            raise UsageError(
                f"run {run_id} (workflow {description.workflow_type!r}) redacts what reaches Temporal, "
                "but this client does not host that workflow, so it cannot redact the comment before "
                "it is stored in the run's history; load the workflow (TemporalEngine(workflows=[...]), "
                "or `bandmaster approvals ... --module MODULE`) or decide without a comment"
            )
        request = {"action": action, "by": by, "comment": comment, "name": name}
        try:
            async with asyncio.timeout(self.decide_timeout):
                answer = await handle.execute_update(DECIDE_UPDATE, request, result_type=dict)
        except TimeoutError:
            raise BackendUnavailable(
                f"no worker ran the decision on run {run_id} within {self.decide_timeout:g}s; is a "
                f"`bandmaster worker --backend temporal` serving task queue {self.engine.task_queue!r}?"
            ) from None
        except WorkflowUpdateFailedError as exc:
            raise _refusal(run_id, known[-1].name, by, exc.cause) from None
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:  # ended between describe and update
                ended = await self._describe(run_id)
                if ended is None:
                    raise _no_approval(run_id, name) from None
                rows = [a for a in approvals_in(await ended.memo()) if name is None or a.name == name]
                status = STATUS.get(ended.status, "completed")
                raise _refused_after_end(run_id, rows or known, by, status) from None
            raise
        return Decision.model_validate(answer)

    async def approve(
        self, run_id: str, *, by: str, comment: str | None = None, name: str | None = None
    ) -> Decision:
        return await self.decide(run_id, "approve", by=by, comment=comment, name=name)

    async def override(
        self, run_id: str, *, by: str, comment: str | None = None, name: str | None = None
    ) -> Decision:
        return await self.decide(run_id, "override", by=by, comment=comment, name=name)

    async def audit(self, run_id: str | None = None, *, limit: int = 1000) -> builtins.list[AuditEntry]:
        raise self.engine.capabilities.unsupported("approval_audit")


def _redacts(memo: Mapping[str, Any], name: str | None) -> bool:
    """Whether the run's workflow redacts, as its approval memos say; an approval written before
    the memo carried ``redacts`` counts as redacting (unknown must not leak)."""
    rows = [
        row
        for key, row in memo.items()
        if key.startswith(APPROVAL_PREFIX) and isinstance(row, dict) and name in (None, row.get("name"))
    ]
    return any(row.get("redacts", True) for row in rows)


def _no_approval(run_id: str, name: str | None) -> ApprovalNotFound:
    what = f"named {name[:80]!r} " if name is not None else ""
    shown = run_id if len(run_id) <= 80 else f"{run_id[:80]}…"  # a run id is user input
    return ApprovalNotFound(
        f"run {shown!r} has no approval {what}open; GET /api/v1/approvals (or engine.approvals.list()) "
        "shows pending ones"
    )


def _refusal(run_id: str, name: str, by: str, cause: BaseException | None) -> Exception:
    """The bandmaster error for a decision the workflow refused."""
    if not isinstance(cause, ApplicationError):
        return UsageError(f"the decision on run {run_id} failed: {cause}")
    details = cause.details[0] if cause.details else None
    if cause.type == NOT_AUTHORIZED:
        return NotAuthorized(run_id, name, by, list(details or []))
    if cause.type == ALREADY_DECIDED and isinstance(details, dict):
        return _already_decided(run_id, name, Decision.model_validate(details))
    if cause.type == NOT_FOUND:
        return ApprovalNotFound(cause.message)
    if cause.type == AMBIGUOUS:
        return UsageError(cause.message)
    return UsageError(f"the decision on run {run_id} failed: {cause.message}")


def _target(run_id: str, rows: builtins.list[Approval]) -> Approval:
    """The approval a decision is for, as the embedded desk picks it: the pending one (of the
    one pending name), else the latest."""
    pending = [a for a in rows if a.status == "pending"]
    names = sorted({a.name for a in pending})
    if len(names) > 1:
        raise UsageError(
            f"run {run_id} has {len(pending)} pending approvals ({', '.join(names)}); pass name=..."
        )
    return pending[0] if pending else rows[-1]


def _refused_after_end(run_id: str, rows: builtins.list[Approval], by: str, run_status: str) -> Exception:
    """Why a decision on a run that has ended is refused, in the embedded desk's order: a
    decider outside the allow-list, then a decision already made, then a run that ended with
    its approval open."""
    row = _target(run_id, rows)
    if row.approvers is not None and by not in row.approvers:
        return NotAuthorized(run_id, row.name, by, row.approvers)
    if row.decision is not None:
        return _already_decided(run_id, row.name, row.decision)
    return UsageError(f"run {run_id} is {run_status}; its approval {row.name!r} can no longer be decided")


def _already_decided(run_id: str, name: str, decision: Decision) -> AlreadyDecided:
    return AlreadyDecided(
        run_id,
        name,
        action=decision.action,
        by=decision.by,
        at=decision.at.isoformat(timespec="seconds"),
        timed_out=decision.timed_out,
    )
