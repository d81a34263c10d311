"""``bm.approval(notify=[...])`` on the Temporal backend: each notifier is sent from a local
activity, with the same request, signing, retry policy and journaled outcome as on the
embedded engine (engine/approval.py ``_notify``).

Why a *local* activity: a notifier is an object holding secrets (a ``bm.Webhook``'s signing
secret, and its URL, which for Slack is a secret too). Activity inputs are written to the
history, so the notifier must not travel. A local activity runs in the worker process that runs
the workflow task, so the workflow leaves the notifier in a process-wide table under a key
(workflow id, run id, seq) and schedules only the key; the activity finds the very object the
workflow code made. Replay after a crash runs the workflow code again in the new worker, which
fills the table there before the local activity runs again (at least once; the
``Idempotency-Key`` header is the same every time). This module passes through the workflow
sandbox (as all of bandmaster), so the workflow and the activity see the same table.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from temporalio import activity, workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

from bandmaster.engine.backend_kit import ApprovalRequest, Notifier, OpRecord, deliver_notification
from bandmaster.temporal._redaction import activity_redactor

NOTIFY_ACTIVITY = "bandmaster.notify"

_notifiers: dict[str, Notifier] = {}
"""Notifiers of approvals being announced in this process, by ``NotifyCall.key``."""


@dataclass
class NotifyCall:
    """One notification, as the workflow schedules it: a key to the notifier, not the notifier."""

    key: str
    request: dict[str, Any] = field(default_factory=dict)  # ApprovalRequest's fields, JSON
    redact: bool = False  # the run has a redactor: the outcome's error texts are redacted


async def send_notifications(
    notify: Sequence[Notifier],
    row: dict[str, Any],
    next_seq: Callable[[], int],
    *,
    redacting: bool,
    timeout: float,
) -> None:
    """Send every notifier of the approval ``row`` (its payload already redacted), in parallel.
    A notifier that fails after its retries is recorded, never raised: a receiver that stays
    down must not keep the approval from its default."""
    info = workflow.info()
    keys: list[str] = []
    sends = []
    for notifier in notify:
        seq = next_seq()  # numbered in list order when called, as on the embedded engine
        key = f"{info.workflow_id}/{info.run_id}/{seq}"
        _notifiers[key] = notifier
        keys.append(key)
        request = {
            "run_id": info.workflow_id,
            "seq": row["seq"],
            "workflow": info.workflow_type,
            "name": row["name"],
            "payload": row["payload"],
            "approvers": row["approvers"],
            "default": row["default"],
            "deadline": row["deadline"],
            "idempotency_key": f"{info.workflow_id}:{seq}",
        }
        sends.append(_send(seq, row["name"], NotifyCall(key, request, redacting), timeout))
    try:
        await asyncio.gather(*sends)
    finally:
        for key in keys:
            _notifiers.pop(key, None)


async def _send(seq: int, name: str, call: NotifyCall, timeout: float) -> None:
    # A failure is recorded in the history (and describe); the approval goes on to its wait.
    with contextlib.suppress(ActivityError):
        await workflow.execute_local_activity(
            NOTIFY_ACTIVITY,
            call,
            activity_id=f"{seq}|notify|notify:{name}",  # the embedded journal's row, in describe()
            start_to_close_timeout=timedelta(seconds=timeout),
            retry_policy=RetryPolicy(maximum_attempts=1),  # the notifier's own retry runs inside
        )


@activity.defn(name=NOTIFY_ACTIVITY)
async def notify_activity(call: NotifyCall) -> dict[str, Any]:
    """Deliver one notification with the notifier's retry policy; answer the outcome the
    embedded journal keeps (``{"delivered", "attempts", ...}``) with its meta."""
    notifier = _notifiers.get(call.key)
    if notifier is None:  # only if this ran outside the workflow's worker process
        raise ApplicationError(
            f"notifier {call.key} is not in this worker process; notifications run as local "
            "activities, in the worker that runs the workflow",
            type="UsageError",
            non_retryable=True,
        )
    redactor = activity_redactor(call.redact)
    fields = dict(call.request)
    deadline = fields.pop("deadline")
    approvers = fields.pop("approvers")
    request = ApprovalRequest(
        **fields,
        approvers=tuple(approvers) if approvers is not None else None,
        deadline=datetime.fromtimestamp(deadline, UTC) if deadline is not None else None,
    )
    record = OpRecord()
    result = await deliver_notification(notifier, request, record)
    text = record.meta_json()
    meta: dict[str, Any] = json.loads(text) if text else {}
    if redactor is not None:  # a receiver's error body may echo the payload
        result, meta = redactor.redact(result), redactor.redact(meta)
    # The shape of a model call's result, so describe() shows the outcome and its meta.
    return {"response": result, "meta": meta, "attempts": max(record.attempts, 1)}
