"""The engine's public surface for backend authors: everything a second backend
(``bandmaster.temporal``) may use of the engine, and nothing more. A backend imports from here,
from ``bandmaster.engine``, ``bandmaster.engine.backend`` (the interface it implements) and
``bandmaster.engine.stats_report`` (what ``stats()`` returns) only; the engine's private
modules are its own and may change (tests/temporal/test_backend_surface.py holds
``bandmaster.temporal`` to this).

What is here, by the job it does for a backend:

- **Running workflow code elsewhere**: implement ``OperationBackend`` and call
  ``use_backend(ops)`` in the task that runs the workflow function; every journaled operation
  it calls (``@bm.step``, ``bm.call_model``, ``bm.sleep``, ``bm.wait_for``, ``bm.approval``,
  ``bm.now/uuid/random``) is then handed to ``ops``. ``MISSING`` is the ``default`` a
  ``bm.wait_for`` without one passes.
- **Running step code**: ``step_scope(...)`` sets what ``bm.current_step()`` returns while a
  step's function runs in a worker; ``OpRecord`` is filled in by a model call or a notification
  run outside a journal (``call_model_recorded``, ``deliver_notification``).
- **Values**: ``Codec``/``codec_for``/``ANY`` check and convert values to JSON as the journal
  does; ``error_record``/``rebuild_error`` turn errors into records and back.
- **Redaction**: ``redactor_for`` picks a run's redactor; ``redact_value``/``redact_error_record``
  redact what is stored; ``redactor_spec``/``redactor_from_spec`` record a redactor as data.
- **Versions**: ``HostedWorkflows`` keeps the workflows a worker hosts by name and version,
  with each name's default; ``describe_key`` names one for people (``triage@2``).
- **Runs and approvals, as users see them**: ``RunHandle``, ``RunInfo``, ``StepInfo``,
  ``check_run_id``; ``Approval``, ``AuditEntry``, ``Decision``, ``Notifier``,
  ``ApprovalRequest``, ``check_list_status``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from bandmaster.engine._approval_desk import Approval, AuditEntry, check_list_status
from bandmaster.engine._approval_pause import ApprovalRequest, Decision, Notifier, deliver_notification
from bandmaster.engine._context import StepContext, current_step_var
from bandmaster.engine._journaled import OpRecord
from bandmaster.engine._primitives import MISSING
from bandmaster.engine._redaction import (
    Redactor,
    redact_error_record,
    redact_value,
    redactor_from_spec,
    redactor_spec,
)
from bandmaster.engine._run_id import check_run_id
from bandmaster.engine._runtime import RunHandle, RunInfo, StepInfo
from bandmaster.engine._serde import ANY, Codec, codec_for, error_record, rebuild_error
from bandmaster.engine._step import Step
from bandmaster.engine._versions import HostedWorkflows, describe_key
from bandmaster.engine._workflow import Workflow, redactor_for
from bandmaster.engine.backend import OperationBackend, current_backend


def use_backend(ops: OperationBackend) -> None:
    """Hand the journaled operations of the current task (and the tasks it starts) to ``ops``.

    Call it at the top of the task that runs one workflow function; it holds until that task
    ends. It is not undone: a workflow's task dies with its run, and undoing from another
    context (an evicted workflow closed elsewhere) would fail."""
    current_backend.set(ops)


@contextmanager
def step_scope(run_id: str, seq: int, name: str, attempt: int) -> Iterator[StepContext]:
    """Run a step's code with ``bm.current_step()`` answering this step (and journaled
    operations called inside it counting as part of the step, as on the embedded engine)."""
    context = StepContext(run_id, seq, name, attempt)
    token = current_step_var.set(context)
    try:
        yield context
    finally:
        current_step_var.reset(token)


__all__ = [
    "ANY",
    "MISSING",
    "Approval",
    "ApprovalRequest",
    "AuditEntry",
    "Codec",
    "Decision",
    "HostedWorkflows",
    "Notifier",
    "OpRecord",
    "OperationBackend",
    "Redactor",
    "RunHandle",
    "RunInfo",
    "Step",
    "StepContext",
    "StepInfo",
    "Workflow",
    "check_list_status",
    "check_run_id",
    "codec_for",
    "deliver_notification",
    "describe_key",
    "error_record",
    "rebuild_error",
    "redact_error_record",
    "redact_value",
    "redactor_for",
    "redactor_from_spec",
    "redactor_spec",
    "step_scope",
    "use_backend",
]
