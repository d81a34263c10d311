"""Approvals in the journal: one row per ``bm.approval`` (pending until decided, decided once)
and an append-only audit of every attempt to decide one.

Exactly-once decision: a person's decision and the timed default both go through one
conditional write (``UPDATE ... WHERE status = 'pending'``) in an immediate transaction, so
whichever commits first wins and the other sees zero rows changed.
"""

from __future__ import annotations

import builtins
import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from bandmaster.store._sqlite import _SIGNAL_FOR_A_WAIT, FORMAT, SQLiteStore

_APPROVAL_COLUMNS = (
    "run_id, seq, name, workflow, payload, approvers, default_action, status, action, decided_by, "
    "comment, decided_at, timed_out, created_at, deadline"
)
_AUDIT_COLUMNS = "id, run_id, seq, name, at, who, event, action, comment, default_fired, detail"


@dataclass(slots=True)
class ApprovalRow:
    run_id: str
    seq: int
    name: str
    workflow: str
    payload: str | None
    approvers: list[str] | None
    default_action: str | None
    status: Literal["pending", "decided"]
    action: str | None
    decided_by: str | None
    comment: str | None
    decided_at: float | None
    timed_out: bool
    created_at: float
    deadline: float | None


@dataclass(slots=True)
class AuditRow:
    id: int
    run_id: str
    seq: int
    name: str
    at: float
    who: str | None
    event: str  # decided/default/refused/too_late/closed
    action: str | None
    comment: str | None
    default_fired: bool
    detail: str | None


Outcome = Literal["decided", "refused", "already_decided", "run_finished"]


@dataclass(slots=True)
class DecideResult:
    outcome: Outcome
    row: ApprovalRow
    run_status: str | None = None


def _approval(values: Sequence[Any]) -> ApprovalRow:
    row = ApprovalRow(*values)
    row.approvers = json.loads(values[5]) if values[5] is not None else None
    row.timed_out = bool(row.timed_out)
    return row


def _audit(values: Sequence[Any]) -> AuditRow:
    row = AuditRow(*values)
    row.default_fired = bool(row.default_fired)
    return row


class ApprovalStore:
    """The approvals tables of one SQLite journal (immediate transactions, not batched: a
    decision must be durable before it is reported)."""

    def __init__(self, store: SQLiteStore) -> None:
        self.store = store

    def open(
        self,
        *,
        run_id: str,
        seq: int,
        name: str,
        workflow: str,
        payload: str | None,
        approvers: Sequence[str] | None,
        default_action: str | None,
        deadline: float | None,
    ) -> None:
        """Record a pending approval; a re-execution of the same opening changes nothing."""
        values = (
            run_id,
            seq,
            name,
            workflow,
            payload,
            FORMAT,
            json.dumps(list(approvers)) if approvers is not None else None,
            default_action,
            self.store.now(),
            deadline,
        )
        self.store._write(
            lambda conn: conn.execute(
                "INSERT INTO approvals (run_id, seq, name, workflow, payload, fmt, approvers, "
                "default_action, status, created_at, deadline) VALUES (?,?,?,?,?,?,?,?,'pending',?,?) "
                "ON CONFLICT(run_id, seq) DO NOTHING",
                values,
            )
        )

    def get(self, run_id: str, seq: int) -> ApprovalRow | None:
        row = self.store._conn.execute(
            f"SELECT {_APPROVAL_COLUMNS} FROM approvals WHERE run_id = ? AND seq = ?", (run_id, seq)
        ).fetchone()
        return _approval(row) if row else None

    def list(
        self,
        *,
        status: str | None = None,
        run_id: str | None = None,
        name: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> builtins.list[ApprovalRow]:
        """Approvals, oldest first (the order a reviewer's queue should be worked in)."""
        clauses, params = [], []
        for column, value in (("status", status), ("run_id", run_id), ("name", name)):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        if status == "pending":
            # A run cancelled or failed while waiting leaves its approval undecidable: not pending.
            clauses.append(
                "EXISTS (SELECT 1 FROM runs WHERE runs.id = approvals.run_id "
                "AND runs.status NOT IN ('completed', 'failed', 'cancelled'))"
            )
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self.store._conn.execute(
            f"SELECT {_APPROVAL_COLUMNS} FROM approvals {where} ORDER BY created_at, run_id, seq "
            "LIMIT ? OFFSET ?",
            (*params, limit, offset),
        ).fetchall()
        return [_approval(r) for r in rows]

    def decide(
        self, run_id: str, seq: int, *, action: str, by: str, comment: str | None, signal: str
    ) -> DecideResult:
        """A person's decision. In one transaction: check the allow-list, make the conditional
        write, audit, and send the run the wake-up ``signal``. Whatever the outcome, the attempt
        is audited; only a win changes the approval."""

        def op(conn: sqlite3.Connection) -> DecideResult:
            now = self.store.now()
            row = _approval(
                conn.execute(
                    f"SELECT {_APPROVAL_COLUMNS} FROM approvals WHERE run_id = ? AND seq = ?", (run_id, seq)
                ).fetchone()
            )

            def audit(event: str, detail: str | None = None) -> None:
                conn.execute(
                    "INSERT INTO approval_audit (run_id, seq, name, at, who, event, action, comment, "
                    "default_fired, detail) VALUES (?,?,?,?,?,?,?,?,0,?)",
                    (run_id, seq, row.name, now, by, event, action, comment, detail),
                )

            if row.approvers is not None and by not in row.approvers:
                audit("refused", f"not in the approvers allow-list {row.approvers}")
                return DecideResult("refused", row)
            run_status = conn.execute("SELECT status FROM runs WHERE id = ?", (run_id,)).fetchone()
            status = run_status[0] if run_status else None
            if row.status == "pending" and status in (None, "completed", "failed", "cancelled"):
                audit("closed", f"the run is {status}")
                return DecideResult("run_finished", row, status)
            cursor = conn.execute(
                "UPDATE approvals SET status = 'decided', action = ?, decided_by = ?, comment = ?, "
                "decided_at = ?, timed_out = 0 WHERE run_id = ? AND seq = ? AND status = 'pending'",
                (action, by, comment, now, run_id, seq),
            )
            if cursor.rowcount != 1:
                audit("too_late", f"already decided: {row.action!r} by {row.decided_by or 'the default'}")
                return DecideResult("already_decided", row)
            audit("decided")
            payload = json.dumps({"action": action, "by": by, "comment": comment, "at": now})
            conn.execute(
                "INSERT INTO signals (run_id, name, payload, fmt, created_at) VALUES (?,?,?,?,?)",
                (run_id, signal, payload, FORMAT, now),
            )
            # Wake the run if it is waiting for this decision (same rule as Engine.signal).
            conn.execute(
                "UPDATE runs SET status = 'queued', ready_at = ?, updated_at = ? "
                f"WHERE id = ? AND status = 'waiting' AND EXISTS ({_SIGNAL_FOR_A_WAIT})",
                (now, now, run_id, run_id),
            )
            decided = conn.execute(
                f"SELECT {_APPROVAL_COLUMNS} FROM approvals WHERE run_id = ? AND seq = ?", (run_id, seq)
            ).fetchone()
            return DecideResult("decided", _approval(decided))

        return self.store._write(op)

    def settle(self, run_id: str, seq: int) -> ApprovalRow:
        """Apply the timed default unless someone decided first; return the winning decision."""

        def op(conn: sqlite3.Connection) -> ApprovalRow:
            now = self.store.now()
            cursor = conn.execute(
                "UPDATE approvals SET status = 'decided', action = default_action, decided_by = NULL, "
                "comment = NULL, decided_at = ?, timed_out = 1 "
                "WHERE run_id = ? AND seq = ? AND status = 'pending'",
                (now, run_id, seq),
            )
            row = _approval(
                conn.execute(
                    f"SELECT {_APPROVAL_COLUMNS} FROM approvals WHERE run_id = ? AND seq = ?", (run_id, seq)
                ).fetchone()
            )
            if cursor.rowcount == 1:
                conn.execute(
                    "INSERT INTO approval_audit (run_id, seq, name, at, who, event, action, comment, "
                    "default_fired, detail) VALUES (?,?,?,?,NULL,'default',?,NULL,1,?)",
                    (run_id, seq, row.name, now, row.action, "nobody decided before the deadline"),
                )
            return row

        return self.store._write(op)

    def audit(self, *, run_id: str | None = None, limit: int = 1000) -> builtins.list[AuditRow]:
        where, params = ("WHERE run_id = ?", (run_id,)) if run_id is not None else ("", ())
        rows = self.store._conn.execute(
            f"SELECT {_AUDIT_COLUMNS} FROM approval_audit {where} ORDER BY id LIMIT ?", (*params, limit)
        ).fetchall()
        return [_audit(r) for r in rows]
