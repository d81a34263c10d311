"""Journal redaction on the Temporal backend, where the workflow's history is the journal.

The same semantics as the embedded engine (engine/redaction.py): with ``@bm.workflow(redact=...)``
or ``TemporalEngine(redact=...)`` no value reaches Temporal unredacted, and workflow code sees
the redacted value, so a replay sees exactly what the live run saw. Where each value is
rewritten:

- the run input and signal payloads: in the client, before they are sent (engine.py);
- step and model outputs, their meta (model requests, guard logs, attempt errors) and their
  error texts: inside the activity, before it returns or fails (activities.py);
- the run's output, its error and approval payloads: in a local activity that runs the
  redactor (``REDACT_ACTIVITY``), since Presidio cannot run inside the workflow sandbox (it is
  neither deterministic nor sandbox-safe) and the history must only ever hold its result.

The redactor is an object, so it does not travel: each process finds it where it hosts the
workflow (the workflow's own ``redact=``, else the engine's). An activity that was told to
redact but whose worker does not host the workflow fails rather than return raw values.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

from temporalio import activity, workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError

from bandmaster.engine.backend_kit import Redactor, redact_error_record, redactor_for
from bandmaster.temporal._hosting import hosted

REDACT_ACTIVITY = "bandmaster.redact"
REDACT_TIMEOUT = timedelta(seconds=60)  # the first call in a process loads Presidio (1-2 s)

Kind = Literal["output", "error", "payload"]


@dataclass
class RedactCall:
    """A value the workflow needs redacted: ``error`` values are journal error records."""

    kind: Kind
    value: Any = None


def activity_redactor(required: bool) -> Redactor | None:
    """The redactor of the workflow this activity belongs to, when the workflow said it has one."""
    if not required:
        return None
    info = activity.info()
    options = hosted(info.task_queue)
    wf = options.workflows.get(info.workflow_type or "") if options is not None else None
    redactor = redactor_for(wf, options.redact if options is not None else None)
    if redactor is None:
        # Fail closed: returning the raw value would put it in the history.
        raise ApplicationError(
            f"workflow {info.workflow_type!r} redacts its values, but this worker (task queue "
            f"{info.task_queue!r}) does not host it with its redactor; every worker of a task queue "
            "must host the same workflows (and the same TemporalEngine(redact=...))",
            type="UsageError",
            non_retryable=True,
        )
    return redactor


@activity.defn(name=REDACT_ACTIVITY)
async def redact_activity(call: RedactCall) -> Any:
    """Run the workflow's redactor on one value (as a local activity, in the workflow's worker)."""
    redactor = activity_redactor(True)
    assert redactor is not None
    if call.kind == "error" and isinstance(call.value, dict):
        return redact_error_record(redactor, call.value)
    return redactor.redact(call.value)


async def redacted(kind: Kind, value: Any) -> Any:
    """``value`` rewritten by the run's redactor; called from workflow code."""
    return await workflow.execute_local_activity(
        REDACT_ACTIVITY,
        RedactCall(kind, value),
        activity_id=f"redact|{kind}",  # no seq: describe() leaves it out of the timeline
        start_to_close_timeout=REDACT_TIMEOUT,
        retry_policy=RetryPolicy(maximum_attempts=3),
    )
