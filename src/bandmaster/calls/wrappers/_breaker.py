"""``BreakerGate``: a circuit breaker in front of a model."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

from bandmaster.calls.wrappers._base import Wrapper
from bandmaster.errors import CircuitOpen, GuardViolation, InvalidRequest, OutputValidationFailed
from bandmaster.models import Model, ModelRequest, ModelResponse
from bandmaster.policies import Breaker, BreakerState


class BreakerStates(Protocol):
    """Where breaker states live, by model name: ``bm.ModelHub`` shares them with every worker
    on its journal; ``LocalBreakers`` keeps them in this process."""

    def breaker(self, model: str) -> BreakerState: ...

    def share_breaker(self, model: str) -> None: ...


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

    def share_breaker(self, model: str) -> None:
        pass


# A request the provider rejects as invalid, or an answer a guard refuses, says nothing about
# the model's availability: they neither open the breaker nor count against it.
_NOT_OUTAGES = (InvalidRequest, GuardViolation, OutputValidationFailed)


class BreakerGate(Wrapper):
    """Asks ``inner`` only while its breaker (``breaker`` policy, state kept in ``states`` by
    the model's name) allows it; else raises ``CircuitOpen``, which a ``FallbackChain`` falls
    back on. Each answer or outage is recorded in the state, and a transition is shared.
    ``seen``, when given, receives the state after each call or skip, by model name (what a
    step's journal meta shows as ``breakers``)."""

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
        self.states = LocalBreakers() if states is None else states
        self.seen = seen
        self.clock = clock

    async def request(self, req: ModelRequest) -> ModelResponse:
        label, states = self.name, self.states
        state = states.breaker(label)
        if not state.allow(self.breaker, self.clock()):
            if self.seen is not None:
                self.seen[label] = state.status
            raise CircuitOpen(f"{label}: circuit open since {state.opened_at}; skipping to the fallback")
        try:
            response = await self.inner.request(req)
        except Exception as exc:
            if isinstance(exc, _NOT_OUTAGES):
                state.trial_in_flight = False
            else:
                if state.record_failure(self.breaker, self.clock()):
                    states.share_breaker(label)
                if self.seen is not None:
                    self.seen[label] = state.status
            raise
        except BaseException:
            state.trial_in_flight = False  # a cancelled half-open trial must not block the model
            raise
        if state.record_success(self.clock()):
            states.share_breaker(label)
        if self.seen is not None:
            self.seen[label] = state.status
        return response
