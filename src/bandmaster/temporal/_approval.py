"""``bm.approval`` on the Temporal backend: a durable pause for a human decision, with a timed
default, inside the generic Temporal workflow.

Each approval is a memo entry ``bm.approval.<seq>`` of the workflow execution, written when it
opens (pending) and again when it is settled (decided). Temporal's visibility carries memos, so
a desk lists pending approvals with one visibility query, without asking any worker. A person
decides through the workflow's ``bandmaster.decide`` update: its validator refuses a decider
outside the allow-list and an approval already settled (nothing reaches the history then); its
handler settles the approval and answers the decision. The timed default settles it in the
workflow when the deadline passes first. Temporal runs one workflow's code one task at a time
and the handler checks again, so exactly one of the two wins.

With a redactor, the payload is redacted (in a local activity) before the memo is written.
Notifiers (``notify=``) are sent from local activities once the approval is open (notify.py),
then the wait runs to the deadline fixed when it opened.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ApplicationError

from bandmaster.engine.backend_kit import ANY, Decision, Notifier
from bandmaster.temporal._notify import send_notifications
from bandmaster.temporal._redaction import redacted

APPROVAL_PREFIX = "bm.approval."
"""Memo key prefix of approvals: ``bm.approval.<seq>`` holds one approval's state."""
TIMELINE_PREFIX = "bm.wait."
"""The describe timeline's memo prefix (``workflow.MEMO_PREFIX``; kept here to avoid a cycle)."""
DECIDE_UPDATE = "bandmaster.decide"
"""The update a desk sends: ``{"action", "by", "comment", "name"}``; answers the decision."""

# ApplicationError types a desk turns back into bandmaster errors.
NOT_FOUND = "ApprovalNotFound"
NOT_AUTHORIZED = "NotAuthorized"
ALREADY_DECIDED = "AlreadyDecided"
AMBIGUOUS = "AmbiguousApproval"


class ApprovalBook:
    """The approvals of one workflow execution, pending and decided, by seq."""

    def __init__(self) -> None:
        self.rows: dict[int, dict[str, Any]] = {}

    def _target(self, request: dict[str, Any]) -> dict[str, Any]:
        """The approval a decision is for (the pending one of its name), else an error."""
        name = request.get("name")
        rows = [r for r in self.rows.values() if name is None or r["name"] == name]
        if not rows:
            what = f"named {name!r} " if name is not None else ""
            raise ApplicationError(
                f"run {workflow.info().workflow_id!r} has no approval {what}open yet; "
                "GET /api/v1/approvals (or engine.approvals.list()) shows pending ones",
                type=NOT_FOUND,
                non_retryable=True,
            )
        pending = [r for r in rows if r["status"] == "pending"]
        if len({r["name"] for r in pending}) > 1:
            names = ", ".join(sorted({r["name"] for r in pending}))
            raise ApplicationError(
                f"run {workflow.info().workflow_id} has {len(pending)} pending approvals ({names}); "
                "pass name=...",
                type=AMBIGUOUS,
                non_retryable=True,
            )
        return pending[0] if pending else max(rows, key=lambda r: r["seq"])

    def check(self, request: dict[str, Any]) -> None:
        """The update's validator: refuse without writing anything. The order is the embedded
        desk's: a decider outside the allow-list first, then an approval already decided."""
        row = self._target(request)
        approvers = row["approvers"]
        if approvers is not None and request.get("by") not in approvers:
            raise ApplicationError(
                f"{request.get('by')!r} is not among the approvers of {row['name']!r}",
                approvers,
                type=NOT_AUTHORIZED,
                non_retryable=True,
            )
        if row["status"] != "pending":
            raise ApplicationError(
                f"approval {row['name']!r} was already decided",
                row["decision"],
                type=ALREADY_DECIDED,
                non_retryable=True,
            )

    def decide(self, request: dict[str, Any]) -> dict[str, Any]:
        """The update's handler: settle the approval with a person's decision."""
        self.check(request)  # again: the default may have settled it since validation
        row = self._target(request)
        decision = Decision(
            action=str(request["action"]),
            by=str(request["by"]),
            comment=request.get("comment"),
            at=workflow.now(),
        )
        settle(row, decision)
        return decision.model_dump(mode="json")


def settle(row: dict[str, Any], decision: Decision) -> None:
    row["status"] = "decided"
    row["decision"] = decision.model_dump(mode="json")
    _publish(row)


def _publish(row: dict[str, Any]) -> None:
    """Write the approval's memo (for desks) and its describe-timeline row."""
    decided = row["decision"]
    timeline: dict[str, Any] = {
        "seq": row["seq"],
        "name": row["name"],
        "kind": "approval",
        "status": "waiting" if decided is None else "completed",
        "started": row["created"],
        "ended": None if decided is None else workflow.time(),
        "meta": {"default": row["default"], "approvers": row["approvers"], "deadline": row["deadline"]},
    }
    if decided is not None:
        timeline["output"] = decided
        timeline["meta"].update(action=decided["action"], by=decided["by"], timed_out=decided["timed_out"])
    workflow.upsert_memo({f"{APPROVAL_PREFIX}{row['seq']}": row, f"{TIMELINE_PREFIX}{row['seq']}": timeline})


async def wait_for_approval(
    book: ApprovalBook,
    seq: int,
    name: str,
    payload: Any,
    *,
    timeout: float | None,
    default: str | None,
    notify: Sequence[object],
    approvers: Sequence[str] | None,
    next_seq: Callable[[], int],
    redacting: bool = False,
    notify_timeout: float = 300.0,
) -> Decision:
    """``bm.approval`` in a Temporal workflow (arguments already checked by ``bm.approval``).
    ``next_seq`` numbers the notifications; ``redacting``: the run has a redactor."""
    info = workflow.info()
    opened = workflow.time()
    shown = ANY.to_jsonable(payload)
    if redacting and shown is not None:  # the memo is history, and notifications leave the process
        shown = await redacted("payload", shown)
    row: dict[str, Any] = {
        "run_id": info.workflow_id,
        "seq": seq,
        "name": name,
        "workflow": info.workflow_type,
        "payload": shown,
        "approvers": list(approvers) if approvers is not None else None,
        "default": default,
        "created": opened,
        "deadline": opened + timeout if timeout is not None else None,
        "status": "pending",
        "decision": None,
        # Desks that cannot see the workflow's redactor read this: a comment for a run that
        # redacts must be redacted before it is sent (the update's arguments are history).
        "redacts": redacting,
    }
    book.rows[seq] = row
    _publish(row)
    notifiers = [n for n in notify if isinstance(n, Notifier)]  # bm.approval checked them all
    if notifiers:
        await send_notifications(notifiers, row, next_seq, redacting=redacting, timeout=notify_timeout)
    decided: Callable[[], bool] = lambda: row["status"] == "decided"  # noqa: E731
    # The deadline was fixed when the approval opened: notifying does not extend it.
    remaining = row["deadline"] - workflow.time() if row["deadline"] is not None else None
    try:
        if remaining is not None and remaining <= 0:
            raise TimeoutError
        await workflow.wait_condition(decided, timeout=remaining, timeout_summary=f"{seq}|approval|{name}")
    except TimeoutError:
        if not decided():  # nobody decided in time: the default applies
            assert default is not None  # bm.approval refuses a timeout without a default
            settle(row, Decision(action=default, at=workflow.now(), timed_out=True))
    return Decision.model_validate(row["decision"])
