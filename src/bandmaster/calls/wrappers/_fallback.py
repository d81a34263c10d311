"""``FallbackChain``: ask models in order until one answers."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from bandmaster.calls.wrappers._base import innermost
from bandmaster.errors import BudgetExceeded, FallbacksExhausted, GuardViolation, UsageError
from bandmaster.models import Model, ModelRequest, ModelResponse


def falls_back(error: Exception) -> bool:
    """Every failure moves on to the next model, except a guard violation that asked to be
    raised (``on_violation="raise"``): that answer is refused whoever gives it; and a budget
    exceeded: the money is the limit, not the model."""
    if isinstance(error, BudgetExceeded):
        return False
    return not (isinstance(error, GuardViolation) and not error.fallback)


def note_served(notes: dict[str, Any], model: Model, position: int) -> None:
    """What a step's journal meta keeps about the model of a chain that answered."""
    notes["served_by"] = model.name
    notes["fallback"] = model.name if position else None
    if provider := getattr(innermost(model), "provider", None):  # OpenAIModel, AnthropicModel
        notes["provider"] = provider


class FallbackChain:
    """A ``Model`` that asks ``models`` in turn, each after the previous one failed with an
    error ``falls_back`` accepts. One failure is raised as it is; several as
    ``FallbacksExhausted`` (each model's error by name). ``notes``, when given (a step's
    journal meta), receives ``served_by``, ``fallback`` (the model that answered, when not the
    first) and the answering provider.

    ``models`` is read in order, one at a time, so a sequence that builds each model on access
    builds a fallback only when it is needed."""

    __slots__ = ("falls_back", "models", "name", "notes")

    def __init__(
        self,
        models: Sequence[Model],
        *,
        name: str | None = None,
        notes: dict[str, Any] | None = None,
        falls_back: Callable[[Exception], bool] = falls_back,
    ) -> None:
        if not len(models):
            raise UsageError("FallbackChain([]): give at least one model to ask")
        self.models = models
        self.name = models[0].name if name is None else name
        self.notes = notes
        self.falls_back = falls_back

    async def request(self, req: ModelRequest) -> ModelResponse:
        errors: dict[str, BaseException] = {}
        for position, model in enumerate(self.models):
            label = model.name
            try:
                response = await model.request(req)
            except Exception as exc:
                errors[label] = exc
                if not self.falls_back(exc):
                    raise
                continue
            if self.notes is not None:
                note_served(self.notes, model, position)
            return response
        if len(errors) == 1:
            raise next(iter(errors.values()))
        raise FallbacksExhausted(self.name, errors)

    def __repr__(self) -> str:
        return f"FallbackChain({list(self.models)!r})"
