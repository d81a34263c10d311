"""``BreakerGate``: a circuit breaker in front of a model."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal, Protocol

from bandmaster.calls.wrappers._base import Wrapper
from bandmaster.errors import CircuitOpen, GuardViolation, InvalidRequest, OutputValidationFailed
from bandmaster.models import Model, ModelRequest, ModelResponse
from bandmaster.policies import Admission, Breaker, BreakerState, BreakerStatus

Clock = Callable[[], float]
Outcome = Literal["failure", "success", "void"]
"""How a call ended for its breaker: an outage, an answer, or nothing said about availability."""


class BreakerStates(Protocol):
    """Where breaker states live, by model name, and who counts: ``LocalBreakers`` in this
    process; the embedded engine in its journal (every worker on it counts into the same row);
    Temporal in the registry workflow of the task queue. ``admit`` says whether a call may start
    (and whether it is the half-open trial); ``settle`` records how it ended and answers the
    state after it; ``status`` is the last state known here (what ``models list`` shows).
    ``clock`` is read when the step is recorded (inside the journal's transaction: an open is
    stamped with the time it became visible to every worker)."""

    async def admit(self, model: str, policy: Breaker, clock: Clock) -> tuple[Admission, BreakerState]: ...

    async def settle(
        self, model: str, policy: Breaker, clock: Clock, outcome: Outcome, *, trial: bool
    ) -> BreakerStatus: ...

    def status(self, model: str) -> BreakerStatus: ...


class LocalBreakers:
    """Breaker states of this process only."""

    __slots__ = ("breakers",)

    def __init__(self) -> None:
        self.breakers: dict[str, BreakerState] = {}

    def breaker(self, model: str) -> BreakerState:
        state = self.breakers.get(model)
        if state is None:
            state = self.breakers[model] = BreakerState()
        return state

    async def admit(self, model: str, policy: Breaker, clock: Clock) -> tuple[Admission, BreakerState]:
        state = self.breaker(model)
        return state.admit(policy, clock()), state

    async def settle(
        self, model: str, policy: Breaker, clock: Clock, outcome: Outcome, *, trial: bool
    ) -> BreakerStatus:
        return settle_here(self.breaker(model), policy, clock(), outcome, trial=trial)

    def status(self, model: str) -> BreakerStatus:
        return self.breaker(model).status


def settle_here(
    state: BreakerState, policy: Breaker, now: float, outcome: Outcome, *, trial: bool
) -> BreakerStatus:
    """Apply a call's outcome to ``state`` (wherever it is kept) and answer its status."""
    if outcome == "failure":
        state.fail(policy, now, trial=trial)
    elif outcome == "success":
        state.succeed(now, trial=trial)
    else:
        state.release(trial=trial)
    return state.status


# A request the provider rejects as invalid, or an answer a guard refuses, says nothing about
# the model's availability: they neither open the breaker nor count against it.
_NOT_OUTAGES = (InvalidRequest, GuardViolation, OutputValidationFailed)


class BreakerGate(Wrapper):
    """Asks ``inner`` only while its breaker (``breaker`` policy, state kept in ``states`` by
    the model's name) admits the call; else raises ``CircuitOpen``, which a ``FallbackChain``
    falls back on. Each answer or outage is recorded where the state is kept. ``seen``, when
    given, receives the state after each call or skip, by model name (what a step's journal
    meta shows as ``breakers``)."""

    __slots__ = ("breaker", "clock", "seen", "states")

    def __init__(
        self,
        inner: Model,
        breaker: Breaker,
        *,
        states: BreakerStates | None = None,
        seen: dict[str, str] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.inner, self.name = inner, inner.name
        self.breaker = breaker
        self.states: BreakerStates = LocalBreakers() if states is None else states
        self.seen = seen
        self.clock = clock

    async def request(self, req: ModelRequest) -> ModelResponse:
        label, states, policy, clock = self.name, self.states, self.breaker, self.clock
        admission, state = await states.admit(label, policy, clock)
        if admission == "refused":
            if self.seen is not None:
                self.seen[label] = state.status
            raise CircuitOpen(f"{label}: circuit open since {state.opened_at}; skipping to the fallback")
        trial = admission == "trial"
        try:
            response = await self.inner.request(req)
        except Exception as exc:
            outcome: Outcome = "void" if isinstance(exc, _NOT_OUTAGES) else "failure"
            status = await states.settle(label, policy, clock, outcome, trial=trial)
            if self.seen is not None and outcome == "failure":
                self.seen[label] = status
            raise
        except BaseException:
            if trial:  # a cancelled half-open trial must not block the model
                await states.settle(label, policy, clock, "void", trial=True)
            raise
        status = await states.settle(label, policy, clock, "success", trial=trial)
        if self.seen is not None:
            self.seen[label] = status
        return response
