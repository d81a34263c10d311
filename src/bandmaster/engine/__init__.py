"""The durable runtime: workflows, steps, journaled operations, the embedded engine."""

from bandmaster.engine.clock import Clock, SystemClock
from bandmaster.engine.context import StepContext, current_step
from bandmaster.engine.hooks import Hooks
from bandmaster.engine.operations import now, random, sleep, uuid, wait_for
from bandmaster.engine.redaction import Redactor
from bandmaster.engine.runtime import Engine, RunHandle, RunInfo, StepInfo, run
from bandmaster.engine.step import Step, step
from bandmaster.engine.workflow import Workflow, workflow

__all__ = [
    "Clock",
    "Engine",
    "Hooks",
    "Redactor",
    "RunHandle",
    "RunInfo",
    "Step",
    "StepContext",
    "StepInfo",
    "SystemClock",
    "Workflow",
    "current_step",
    "now",
    "random",
    "run",
    "sleep",
    "step",
    "uuid",
    "wait_for",
    "workflow",
]
