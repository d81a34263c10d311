"""The durable runtime: workflows, steps, journaled operations, the embedded engine."""

from typing import TYPE_CHECKING

from bandmaster._lazy import lazy_loader
from bandmaster.engine._clock import Clock, SystemClock
from bandmaster.engine._context import StepContext, current_step
from bandmaster.engine._patches import deprecate_patch, patched
from bandmaster.engine._primitives import now, random, sleep, uuid, wait_for
from bandmaster.engine._redaction import Redactor
from bandmaster.engine._runtime import Engine, RunHandle, RunInfo, StepInfo, run
from bandmaster.engine._step import Step, step
from bandmaster.engine._workflow import Workflow, workflow
from bandmaster.engine.hooks import Hooks

__all__ = [
    "ANY",
    "DEFAULT_MAX_PAYLOAD",
    "Approval",
    "ApprovalRequest",
    "Approvals",
    "AuditEntry",
    "CatchUp",
    "Clock",
    "Decision",
    "Engine",
    "Hooks",
    "Notifier",
    "OpRecord",
    "Redactor",
    "RunContext",
    "RunHandle",
    "RunInfo",
    "RunTerms",
    "Schedule",
    "ScheduleDesk",
    "ScheduleInfo",
    "Step",
    "StepContext",
    "StepInfo",
    "Suspend",
    "SystemClock",
    "Workflow",
    "approval",
    "check_run_id",
    "check_schedules",
    "codec_for",
    "current_clock",
    "current_run",
    "current_step",
    "current_terms",
    "deprecate_patch",
    "journaled",
    "journaling",
    "load_schedules",
    "new_owner_id",
    "next_tick",
    "now",
    "patched",
    "random",
    "redact_json",
    "run",
    "run_attempts",
    "schedule",
    "schedules_of",
    "sleep",
    "step",
    "terms_scope",
    "uuid",
    "wait_for",
    "workflow",
]

# Names other rooms use, loaded on first use.
_LAZY = {
    "ANY": "bandmaster.engine._serde",
    "Approval": "bandmaster.engine._approval_desk",
    "ApprovalRequest": "bandmaster.engine._approval_pause",
    "Approvals": "bandmaster.engine._approval_desk",
    "AuditEntry": "bandmaster.engine._approval_desk",
    "CatchUp": "bandmaster.engine._schedule",
    "DEFAULT_MAX_PAYLOAD": "bandmaster.engine._serde",
    "Decision": "bandmaster.engine._approval_pause",
    "Notifier": "bandmaster.engine._approval_pause",
    "OpRecord": "bandmaster.engine._journaled",
    "RunContext": "bandmaster.engine._context",
    "RunTerms": "bandmaster.engine._terms",
    "current_terms": "bandmaster.engine._terms",
    "terms_scope": "bandmaster.engine._terms",
    "Schedule": "bandmaster.engine._schedule",
    "ScheduleDesk": "bandmaster.engine._schedule_desk",
    "ScheduleInfo": "bandmaster.engine._schedule_desk",
    "Suspend": "bandmaster.engine._context",
    "approval": "bandmaster.engine._approval_pause",
    "check_run_id": "bandmaster.engine._run_id",
    "check_schedules": "bandmaster.engine._schedule",
    "codec_for": "bandmaster.engine._serde",
    "current_clock": "bandmaster.engine._context",
    "current_run": "bandmaster.engine._context",
    "journaled": "bandmaster.engine._journaled",
    "journaling": "bandmaster.engine._context",
    "load_schedules": "bandmaster.engine._schedule",
    "new_owner_id": "bandmaster.engine._worker",
    "next_tick": "bandmaster.engine._schedule",
    "redact_json": "bandmaster.engine._redaction",
    "run_attempts": "bandmaster.engine._journaled",
    "schedule": "bandmaster.engine._schedule",
    "schedules_of": "bandmaster.engine._schedule",
}

if TYPE_CHECKING:
    from bandmaster.engine._approval_desk import Approval, Approvals, AuditEntry
    from bandmaster.engine._approval_pause import ApprovalRequest, Decision, Notifier, approval
    from bandmaster.engine._context import RunContext, Suspend, current_clock, current_run, journaling
    from bandmaster.engine._journaled import OpRecord, journaled, run_attempts
    from bandmaster.engine._redaction import redact_json
    from bandmaster.engine._run_id import check_run_id
    from bandmaster.engine._schedule import (
        CatchUp,
        Schedule,
        check_schedules,
        load_schedules,
        next_tick,
        schedule,
        schedules_of,
    )
    from bandmaster.engine._schedule_desk import ScheduleDesk, ScheduleInfo
    from bandmaster.engine._serde import ANY, DEFAULT_MAX_PAYLOAD, codec_for
    from bandmaster.engine._terms import RunTerms, current_terms, terms_scope
    from bandmaster.engine._worker import new_owner_id
else:
    __getattr__, __dir__ = lazy_loader(__name__, _LAZY)
