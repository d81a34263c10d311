"""``engine.approvals``: list pending approvals, decide them, read the audit trail.

A decision is one transaction on the journal (allow-list check, conditional write, audit line,
wake-up signal), so it works from any process that can open the journal: the CLI, a web
handler, or the worker's own process.
"""

from __future__ import annotations

import builtins
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, PrivateAttr

from bandmaster.engine._approval_pause import Decision, signal_name
from bandmaster.engine._redaction import Redactor
from bandmaster.errors import AlreadyDecided, ApprovalNotFound, InvalidInput, NotAuthorized, UsageError
from bandmaster.store import ApprovalRow, ApprovalStore, AuditRow, SQLiteStore


class Approval(BaseModel):
    """One approval as a decider sees it."""

    run_id: str
    seq: int
    name: str
    workflow: str
    payload: Any = None
    approvers: list[str] | None
    default: str | None
    status: Literal["pending", "decided"]
    created_at: datetime
    deadline: datetime | None
    decision: Decision | None
    # The clock the deadline is on: the engine's (``Engine(clock=...)``), not part of the data.
    _clock: Callable[[], float] = PrivateAttr(default=time.time)

    @property
    def time_left(self) -> float | None:
        if self.deadline is None or self.status != "pending":
            return None
        return max(0.0, self.deadline.timestamp() - self._clock())


class AuditEntry(BaseModel):
    """One line of the append-only audit: every decision, the default firing, and every refused
    or late attempt."""

    run_id: str
    seq: int
    name: str
    at: datetime
    who: str | None  # None: the timed default
    event: str  # decided / default / refused / too_late / closed
    action: str | None
    comment: str | None
    default_fired: bool
    detail: str | None


def _dt(stamp: float) -> datetime:
    return datetime.fromtimestamp(stamp, UTC)


def _approval(row: ApprovalRow, clock: Callable[[], float]) -> Approval:
    approval = Approval(
        run_id=row.run_id,
        seq=row.seq,
        name=row.name,
        workflow=row.workflow,
        payload=json.loads(row.payload) if row.payload is not None else None,
        approvers=row.approvers,
        default=row.default_action,
        status=row.status,
        created_at=_dt(row.created_at),
        deadline=_dt(row.deadline) if row.deadline is not None else None,
        decision=Decision.from_row(row) if row.status == "decided" else None,
    )
    approval._clock = clock
    return approval


def _entry(row: AuditRow) -> AuditEntry:
    return AuditEntry(
        run_id=row.run_id,
        seq=row.seq,
        name=row.name,
        at=_dt(row.at),
        who=row.who,
        event=row.event,
        action=row.action,
        comment=row.comment,
        default_fired=row.default_fired,
        detail=row.detail,
    )


def check_list_status(status: object) -> None:
    """``InvalidInput`` unless ``status`` is a filter ``approvals.list`` knows (either backend)."""
    if status not in ("pending", "decided", None):
        raise InvalidInput(f"approvals.list(status={status!r}): use 'pending', 'decided' or None")


class Approvals:
    """The approvals desk of an engine: ``engine.approvals``."""

    def __init__(
        self,
        store: SQLiteStore,
        *,
        on_decided: Callable[[], None] | None = None,
        redactor_for: Callable[[str], Redactor | None] | None = None,
    ) -> None:
        self._table = ApprovalStore(store)
        self._clock = store.now
        self._on_decided = on_decided
        self._redactor_for = redactor_for  # run id -> its redactor: comments are written redacted

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
        rows = self._table.list(status=status, run_id=run_id, name=name, limit=limit)
        return [_approval(r, self._clock) for r in rows]

    async def get(self, run_id: str, *, name: str | None = None) -> Approval:
        """The run's pending approval (of ``name``), else its latest one."""
        return _approval(self._find(run_id, name), self._clock)

    async def decide(
        self, run_id: str, action: str, *, by: str, comment: str | None = None, name: str | None = None
    ) -> Decision:
        """Decide the run's pending approval (``name`` picks one when several are pending).

        Raises ``NotAuthorized`` when ``by`` is not in its allow-list, ``AlreadyDecided`` when a
        person or the timed default was first; both leave an audit line and change nothing else.
        """
        if not isinstance(action, str) or not action.strip():
            raise InvalidInput(f"decide(action={action!r}): give an action, e.g. 'approve' or 'override'")
        if not isinstance(by, str) or not by.strip():
            raise InvalidInput(f"decide(by={by!r}): say who decides (it is audited)")
        row = self._find(run_id, name)
        redactor = self._redactor_for(run_id) if self._redactor_for is not None and comment else None
        if redactor is not None:  # a person's free text goes to the approvals and audit tables
            comment = str(redactor.redact(comment))
        result = self._table.decide(
            run_id, row.seq, action=action, by=by, comment=comment, signal=signal_name(row.name, row.seq)
        )
        if result.outcome == "refused":
            raise NotAuthorized(run_id, row.name, by, row.approvers or [])
        if result.outcome == "run_finished":
            raise UsageError(
                f"run {run_id} is {result.run_status}; its approval {row.name!r} can no longer be decided"
            )
        if result.outcome == "already_decided":
            won = result.row
            at = _dt(won.decided_at).isoformat(timespec="seconds") if won.decided_at else "?"
            raise AlreadyDecided(
                run_id, won.name, action=won.action, by=won.decided_by, at=at, timed_out=won.timed_out
            )
        if self._on_decided is not None:
            self._on_decided()
        return Decision.from_row(result.row)

    async def approve(
        self, run_id: str, *, by: str, comment: str | None = None, name: str | None = None
    ) -> Decision:
        return await self.decide(run_id, "approve", by=by, comment=comment, name=name)

    async def override(
        self, run_id: str, *, by: str, comment: str | None = None, name: str | None = None
    ) -> Decision:
        return await self.decide(run_id, "override", by=by, comment=comment, name=name)

    async def audit(self, run_id: str | None = None, *, limit: int = 1000) -> builtins.list[AuditEntry]:
        """The audit trail, oldest first: who, when, what, and whether the default fired."""
        return [_entry(r) for r in self._table.audit(run_id=run_id, limit=limit)]

    def _find(self, run_id: str, name: str | None) -> ApprovalRow:
        rows = self._table.list(run_id=run_id, name=name, limit=1000)
        if not rows:
            what = f"named {name!r} " if name is not None else ""
            raise ApprovalNotFound(
                f"run {run_id!r} has no approval {what}in the journal; `bandmaster approvals list` shows "
                f"pending ones"
            )
        pending = [r for r in rows if r.status == "pending"]
        if len(pending) > 1 and name is None:
            names = sorted({r.name for r in pending})
            if len(names) > 1:
                raise UsageError(
                    f"run {run_id} has {len(pending)} pending approvals ({', '.join(names)}); pass name=..."
                )
        return pending[0] if pending else rows[-1]
