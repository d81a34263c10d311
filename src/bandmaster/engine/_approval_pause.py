"""``bm.approval``: a durable pause for a human decision, with a timed default.

One approval is three journaled operations and a durable wait:

1. ``approval`` opens it: the deadline is fixed and a pending row is written to the
   ``approvals`` table (payload, allow-list, default);
2. ``notify`` per notifier (a ``bm.Webhook``...): sent with its retry policy; the delivery
   outcome (status code, attempts, errors) is journaled and a failure never fails the run;
3. ``bm.wait_for`` on the approval's own signal, until the deadline (the run is ``waiting``
   and leaves memory meanwhile);
4. ``decision`` settles it: one conditional write applies the default unless a person decided
   first, and the decision that won is journaled and returned.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict

from bandmaster.engine._context import RunContext, current_step_var, journaling
from bandmaster.engine._journaled import OpRecord, journaled, run_attempts
from bandmaster.engine._primitives import wait_for
from bandmaster.engine._redaction import redact_json
from bandmaster.engine._serde import ANY, codec_for
from bandmaster.engine.backend import current_backend
from bandmaster.errors import InvalidInput, UsageError
from bandmaster.policies import Retry
from bandmaster.store import ApprovalRow, ApprovalStore


class Decision(BaseModel):
    """The outcome of ``bm.approval``: who decided what, when, and whether the timed default
    fired (then ``by`` is ``None`` and ``action`` is the default)."""

    model_config = ConfigDict(frozen=True)

    action: str
    by: str | None = None
    comment: str | None = None
    at: datetime
    timed_out: bool = False

    @classmethod
    def from_row(cls, row: ApprovalRow) -> Decision:
        assert row.action is not None, "approval is still pending"
        assert row.decided_at is not None
        return cls(
            action=row.action,
            by=row.decided_by,
            comment=row.comment,
            at=datetime.fromtimestamp(row.decided_at, UTC),
            timed_out=row.timed_out,
        )


@dataclass(frozen=True, slots=True)
class ApprovalRequest:
    """What a notifier is told about a pending approval (one frozen value, so fields can be
    added later). ``idempotency_key`` is the notify operation's ``run_id:seq``: the same on
    every retry and re-execution, for receivers that de-duplicate."""

    run_id: str
    seq: int
    workflow: str
    name: str
    payload: Any
    approvers: tuple[str, ...] | None
    default: str | None
    deadline: datetime | None
    idempotency_key: str
    clock: Callable[[], float] = field(default=time.time, repr=False, compare=False)
    """The engine's clock (``Engine(clock=...)``), which the deadline is on."""

    def time_left(self) -> float | None:
        """Seconds until the default applies (``None``: no deadline)."""
        if self.deadline is None:
            return None
        return max(0.0, self.deadline.timestamp() - self.clock())


@runtime_checkable
class Notifier(Protocol):
    """Announces a pending approval. ``send`` makes one attempt and raises on failure (a
    ``bm.RetryableError`` to be retried under ``retry``); it returns what the journal should
    keep of a successful delivery, e.g. ``{"status_code": 200}``. ``target`` names the
    destination in the journal without secrets."""

    @property
    def target(self) -> str: ...

    @property
    def retry(self) -> Retry: ...

    @property
    def timeout(self) -> float | None: ...

    async def send(self, request: ApprovalRequest, attempt: int) -> dict[str, Any]: ...


class _Opened(BaseModel):
    deadline: float | None


_OPENED = codec_for(_Opened)
_DECISION = codec_for(Decision)
_DELIVERY = codec_for(dict[str, Any])


def signal_name(name: str, seq: int) -> str:
    """The internal signal that wakes the run when a person decides approval ``seq``."""
    return f"approval:{name}:{seq}"


async def approval(
    name: str,
    payload: Any = None,
    *,
    timeout: float | None = None,
    default: str | None = None,
    notify: Sequence[Notifier] = (),
    approvers: Sequence[str] | None = None,
) -> Decision:
    """Pause the workflow until a person decides, or until ``timeout`` seconds pass and
    ``default`` applies. Returns the ``bm.Decision``.

    ``payload`` (JSON or pydantic) is shown to deciders and notifiers. ``notify`` lists
    notifiers such as ``bm.Webhook``; a notifier that fails after its retries is recorded and
    skipped. ``approvers`` is the allow-list of who may decide (default: anyone). While the
    approval is pending the run is ``waiting`` and holds no memory. The default and a person's
    decision race through one conditional write: exactly one of them applies.
    """
    if current_step_var.get() is not None:
        raise UsageError("bm.approval() cannot be called inside a step; call it in the workflow")
    backend = current_backend.get()
    if backend is not None:  # another backend (Temporal) runs this workflow
        _check(name, timeout, default, notify, approvers)
        decision: Decision = await backend.approval(
            name, payload, timeout=timeout, default=default, notify=notify, approvers=approvers
        )
        return decision
    ctx = journaling()
    if ctx is None:
        raise UsageError("bm.approval() pauses a run: call it inside a @bm.workflow")
    _check(name, timeout, default, notify, approvers)
    # Encoded before a seq is taken: an unjournalable payload fails here, writing nothing.
    encoded = ANY.dump(payload, what=f"payload of approval {name!r}", limit=ctx.max_payload)
    if ctx.redactor is not None:  # the approvals table is on disk, and notifications leave the process
        encoded = redact_json(ctx.redactor, encoded) or encoded
    allowed = tuple(approvers) if approvers is not None else None
    seq = ctx.next_seq()
    table = ApprovalStore(ctx.store)

    async def open_approval(record: OpRecord) -> _Opened:
        deadline = ctx.clock.time() + timeout if timeout is not None else None
        table.open(
            run_id=ctx.run_id,
            seq=seq,
            name=name,
            workflow=ctx.workflow,
            payload=encoded,
            approvers=allowed,
            default_action=default,
            deadline=deadline,
        )
        record.meta.update(default=default, approvers=list(allowed) if allowed is not None else None)
        return _Opened(deadline=deadline)

    opened: _Opened = await journaled(ctx, seq, name, "approval", _OPENED, open_approval, redact=False)
    deadline = opened.deadline
    if notify:
        jsonable = ANY.load(encoded)
        # Numbered in list order when called, as asyncio.gather of steps is.
        sends = [
            _notify(ctx, ctx.next_seq(), seq, name, n, jsonable, allowed, default, deadline) for n in notify
        ]
        await asyncio.gather(*sends)
    remaining = max(0.0, deadline - ctx.clock.time()) if deadline is not None else None
    await wait_for(signal_name(name, seq), timeout=remaining, default=None)

    async def settle(record: OpRecord) -> Decision:
        row = table.settle(ctx.run_id, seq)
        decision = Decision.from_row(row)
        if ctx.redactor is not None and decision.comment:  # a person's free text; the rest is ours
            decision = decision.model_copy(update={"comment": ctx.redactor.redact(decision.comment)})
        record.meta.update(action=decision.action, by=decision.by, timed_out=decision.timed_out)
        return decision

    decided: Decision = await journaled(
        ctx, ctx.next_seq(), name, "decision", _DECISION, settle, redact=False
    )
    return decided


async def _notify(
    ctx: RunContext,
    seq: int,
    approval_seq: int,
    name: str,
    notifier: Notifier,
    payload: Any,
    approvers: tuple[str, ...] | None,
    default: str | None,
    deadline: float | None,
) -> dict[str, Any]:
    """One notifier, journaled (at-least-once). Its failure is recorded, never raised: a
    receiver that stays down must not keep the approval from its default."""
    request = ApprovalRequest(
        run_id=ctx.run_id,
        seq=approval_seq,
        workflow=ctx.workflow,
        name=name,
        payload=payload,
        approvers=approvers,
        default=default,
        deadline=datetime.fromtimestamp(deadline, UTC) if deadline is not None else None,
        idempotency_key=f"{ctx.run_id}:{seq}",
        clock=ctx.clock.time,
    )

    async def deliver(record: OpRecord) -> dict[str, Any]:
        return await deliver_notification(notifier, request, record)

    result: dict[str, Any] = await journaled(
        ctx, seq, f"notify:{name}", "notify", _DELIVERY, deliver, redact=False
    )
    return result


async def deliver_notification(
    notifier: Notifier, request: ApprovalRequest, record: OpRecord
) -> dict[str, Any]:
    """Send ``request`` with the notifier's retry policy and answer the outcome to journal
    (``{"delivered", "attempts", ...}``); a failure is the outcome, never raised."""
    record.meta["target"] = notifier.target
    try:
        outcome = await run_attempts(
            lambda attempt: notifier.send(request, attempt),
            retry=notifier.retry,
            timeout=notifier.timeout,
            name=f"notify {notifier.target}",
            record=record,
        )
    except Exception as exc:
        record.meta["delivered"] = False
        return {"delivered": False, "attempts": record.attempts, "error": f"{type(exc).__name__}: {exc}"}
    record.meta["delivered"] = True
    return {"delivered": True, "attempts": record.attempts, **outcome}


def _check(
    name: str,
    timeout: float | None,
    default: str | None,
    notify: Sequence[Notifier],
    approvers: Sequence[str] | None,
) -> None:
    if not isinstance(name, str) or not name.strip():
        raise InvalidInput(f"bm.approval(name={name!r}): give a non-empty name, e.g. 'phi_review'")
    bad_number = isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout < 0
    if timeout is not None and bad_number:
        raise InvalidInput(f"bm.approval({name!r}, timeout={timeout!r}): seconds, a number >= 0, or None")
    if timeout is not None and default is None:
        raise InvalidInput(
            f"bm.approval({name!r}, timeout={timeout}): say what applies when nobody decides in time, "
            f"e.g. default='approve'"
        )
    if default is not None and (not isinstance(default, str) or not default.strip()):
        raise InvalidInput(f"bm.approval({name!r}, default={default!r}): the default is an action name")
    if isinstance(approvers, str) or (
        approvers is not None and not all(isinstance(a, str) and a for a in approvers)
    ):
        raise InvalidInput(
            f"bm.approval({name!r}, approvers={approvers!r}): give a list of decider names, e.g. ['alice']"
        )
    for notifier in notify:
        if not isinstance(notifier, Notifier):
            raise InvalidInput(
                f"bm.approval({name!r}, notify=[...]): {notifier!r} is not a notifier; use bm.Webhook(url, "
                f"secret=...) or an object with target, retry, timeout and async send(request, attempt)"
            )
