"""Engine hooks: how tracing, metrics and other observers see runs, steps and attempts.

A hook subclasses ``Hooks`` and overrides the methods it needs. Each method takes one event
object (read-only: the per-step ones are not frozen, for speed), so fields can be added without
breaking hooks. Hooks are called synchronously on the
event loop, in registration order (keep them fast: hand slow work such as exporting to a
thread, as OpenTelemetry's batch processor does), at these points:

    engine_opened / engine_closed   the engine opened or closed its journal
    run_created   a client started a run (may return headers carried on the run, e.g. a trace)
    run_started   a worker begins executing a run (first execution or a resume by replay)
    step_started  a journaled operation runs live (replayed ones do not run, so emit nothing)
    attempt_started / attempt_finished   each try of a step or model call
    step_finished its result or error was journaled
    run_finished  the execution ended: completed, failed, cancelled, suspended or released

A hook that raises is logged and ignored: observing must never fail a run. With no hooks the
engine skips all of this (one ``is None`` test per point) and builds no events.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from bandmaster.errors import UsageError

if TYPE_CHECKING:
    from bandmaster.engine._redaction import Redactor

log = logging.getLogger("bandmaster.hooks")

StepOutcome = Literal["completed", "failed", "cancelled"]
"""``cancelled``: the operation was interrupted (run cancelled, worker stopped, lease lost)
before its outcome was journaled; a later execution runs it again."""

RunOutcome = Literal["completed", "failed", "cancelled", "suspended", "released"]
"""``suspended``: waiting on a signal or timer, resumed later by replay; ``released``: the worker
stopped or lost its lease, another execution continues the run."""


@dataclass(frozen=True, slots=True)
class EngineOpened:
    journal: Path
    owner: str


@dataclass(frozen=True, slots=True)
class EngineClosed:
    journal: Path
    owner: str


@dataclass(frozen=True, slots=True)
class RunCreated:
    run_id: str
    workflow: str


@dataclass(frozen=True, slots=True)
class RunStarted:
    run_id: str
    workflow: str
    version: str | None
    resumed: bool
    """True when the journal already holds operations of this run (a replay)."""
    headers: Mapping[str, str]
    """What ``run_created`` hooks returned when the run was started, e.g. a W3C traceparent."""


@dataclass(frozen=True, slots=True)
class RunFinished:
    run_id: str
    workflow: str
    outcome: RunOutcome
    error: BaseException | None
    duration: float
    """Seconds of this execution (not since the run was created)."""
    redactor: Redactor | None = None
    """The run's journal redactor: hooks that export error text pass it through this first."""


# The four per-step events are built for every step when a hook listens, so they are plain
# slotted dataclasses: a frozen one sets each field through object.__setattr__, which made
# building them cost about 4 µs per step (benchmarks/bench_observe.py). Hooks must not change
# them (every hook gets the same object); the run and engine events stay frozen.
@dataclass(slots=True)
class StepStarted:
    run_id: str
    workflow: str
    seq: int
    name: str
    kind: str
    """``step``, ``model`` (``bm.call_model``), ``route``, ...: the journal's step kind."""
    started: float
    redactor: Redactor | None = None
    """The run's journal redactor: hooks that export error text pass it through this first."""


@dataclass(slots=True)  # read-only by convention, see StepStarted
class AttemptStarted:
    step: StepStarted
    attempt: int
    target: str
    """What this attempt calls: the step name, or for a model call the model tried (the
    primary or a fallback)."""


@dataclass(slots=True)  # read-only by convention, see StepStarted
class AttemptFinished:
    step: StepStarted
    attempt: int
    target: str
    error: BaseException | None
    retry_delay: float | None
    """Seconds until the next attempt when this one failed and will be retried, else None."""


@dataclass(slots=True)  # read-only by convention, see StepStarted
class StepFinished:
    step: StepStarted
    status: StepOutcome
    attempts: int
    duration: float
    error: BaseException | None
    meta: Mapping[str, Any]
    """The step's journal meta. For ``model`` steps (see ``bm.call_model``): alias, version,
    model, served_by, fallback, tokens, cost, confidence, finish_reason, cache_hit, breakers."""
    output: str | None
    """The output exactly as journaled (JSON text), or None on failure."""


class Hooks:
    """Base class of engine hooks: every method is a no-op, override the ones you need."""

    def engine_opened(self, event: EngineOpened) -> None:
        """The engine opened its journal (once per engine)."""

    def engine_closed(self, event: EngineClosed) -> None:
        """The engine closed: flush what is buffered."""

    def run_created(self, event: RunCreated) -> Mapping[str, str] | None:
        """Headers to store with the run; every execution gets them in ``RunStarted``."""
        return None

    def run_started(self, event: RunStarted) -> None: ...

    def run_finished(self, event: RunFinished) -> None: ...

    def step_started(self, event: StepStarted) -> None: ...

    def attempt_started(self, event: AttemptStarted) -> None: ...

    def attempt_finished(self, event: AttemptFinished) -> None: ...

    def step_finished(self, event: StepFinished) -> None: ...


_EVENTS = (
    "engine_opened",
    "engine_closed",
    "run_started",
    "run_finished",
    "step_started",
    "attempt_started",
    "attempt_finished",
    "step_finished",
)

Callbacks = tuple[Callable[[Any], object], ...]


class HookSet:
    """The engine's hooks, resolved once: per event, the bound methods that hooks actually
    override, so the hot path neither builds events nobody reads nor calls no-ops."""

    __slots__ = ("hooks", "runs", "steps", *_EVENTS)

    engine_opened: Callbacks
    engine_closed: Callbacks
    run_started: Callbacks
    run_finished: Callbacks
    step_started: Callbacks
    attempt_started: Callbacks
    attempt_finished: Callbacks
    step_finished: Callbacks

    def __init__(self, hooks: Sequence[Hooks]) -> None:
        for hook in hooks:
            if not isinstance(hook, Hooks):
                raise UsageError(
                    f"{hook!r} is not an engine hook; subclass bandmaster.engine.hooks.Hooks "
                    "(e.g. bandmaster.observe._tracing.Tracing or bandmaster.observe._metrics.Metrics)"
                )
        self.hooks = tuple(hooks)
        for event in _EVENTS:
            base = getattr(Hooks, event)
            callbacks = tuple(getattr(h, event) for h in self.hooks if getattr(type(h), event) is not base)
            setattr(self, event, callbacks)
        # Whether any hook observes runs / steps at all (else those points build no events).
        self.runs = bool(self.run_started or self.run_finished)
        self.steps = bool(
            self.step_started or self.attempt_started or self.attempt_finished or self.step_finished
        )

    def run_created(self, event: RunCreated) -> dict[str, str]:
        """The headers every hook wants stored with the run."""
        headers: dict[str, str] = {}
        for hook in self.hooks:
            try:
                headers.update(hook.run_created(event) or {})
            except Exception:
                log.exception("hook %r failed in run_created", hook)
        return headers


def hook_set(hooks: Sequence[Hooks] | None) -> HookSet | None:
    """None when there are no hooks: the engine then skips every hook point with one test."""
    return HookSet(hooks) if hooks else None


def emit(callbacks: Callbacks, event: Any) -> None:
    """Call each callback with ``event``; a failing hook is logged, never propagated."""
    for callback in callbacks:
        try:
            callback(event)
        except Exception:
            log.exception("hook %s failed", getattr(callback, "__qualname__", callback))
