"""The one interface every guard implements, and the signal a guard gives to re-ask.

A guard sits around a model call. ``check_input`` sees the request before it is sent and may
change it (settings, a response format) or reject it; ``check_output`` sees each answer and may
parse it (``output`` becomes a pydantic instance), reject it, or ask for another answer by
raising ``Reask``; ``check_partial`` may cut a streamed answer short. A guard overrides the
methods it needs; the defaults pass everything through.
Guards compose in list order: ``guard=[bm.BannedTopics(...), bm.JsonSchema(Contract)]``.
"""

from __future__ import annotations

from typing import Any, Literal

from bandmaster.errors import GuardViolation, UsageError
from bandmaster.models import ModelRequest, ModelResponse

__all__ = ["Direction", "Guard", "OnViolation", "Reask"]

Direction = Literal["input", "output"]
OnViolation = Literal["raise", "fallback"]


class Reask(Exception):
    """Raised by ``Guard.check_output``: this answer is invalid, ask the model again.

    The message is shown to the model (appended to the conversation), so say what is wrong
    in terms the model can fix. The call re-asks up to the largest ``reask`` of its guards,
    then fails with ``bm.OutputValidationFailed`` (or moves on to its fallback models).
    """


class Guard:
    """Base class of guards. ``name`` names the rule in errors and in the journal;
    ``reask`` is how many times an invalid answer may be re-asked (0: never);
    ``on_violation`` is ``"raise"`` (a ``bm.GuardViolation`` fails the call) or
    ``"fallback"`` (the call goes on to its fallback models)."""

    name: str = "guard"
    reask: int = 0
    on_violation: OnViolation = "raise"

    async def check_input(self, request: ModelRequest) -> ModelRequest:
        """Return the request to send (the same one, or a changed copy); raise
        ``self.violation(...)`` to refuse it."""
        return request

    async def check_output(self, response: ModelResponse, request: ModelRequest) -> ModelResponse:
        """Return the response the caller gets (the same one, or with a parsed ``output``);
        raise ``Reask`` or ``self.violation(...)`` to refuse it. ``request`` is the request
        that produced it (re-asks included)."""
        return response

    def check_partial(self, text: str, new_from: int) -> None:
        """Judge a streamed answer before it is complete (``bm.stream_model``): ``text`` is the
        answer so far, ``new_from`` where the latest chunk starts in it. Raise
        ``self.violation("output", ...)`` to cut the stream short; the answer is then refused as
        if ``check_output`` had refused it. Called once per chunk, so it must be cheap and
        synchronous; the default judges nothing (``check_output`` still sees the whole text)."""

    def revive(self, response: ModelResponse) -> ModelResponse:
        """Restore what the journal cannot keep (a replayed response's ``output`` comes back as
        JSON; ``JsonSchema`` turns it into its pydantic model again). Must be idempotent."""
        return response

    def to_config(self) -> dict[str, Any] | None:
        """The keyword arguments that rebuild this guard in a worker process, as
        ``type(self)(**config)``: JSON values, pydantic model classes and module-level functions.
        ``None`` (the default): it cannot be rebuilt, so it cannot guard a model call that runs
        elsewhere (the Temporal backend); override it in your guard to allow that."""
        return None

    def violation(
        self, direction: Direction, detail: str, *, start: int | None = None, text: str | None = None
    ) -> GuardViolation:
        """The error for a rule hit; ``start`` and ``text`` locate the offending span."""
        return GuardViolation(
            self.name,
            direction,
            detail,
            start=start,
            end=None if start is None or text is None else start + len(text),
            span_text=text,
            fallback=self.on_violation == "fallback",
        )

    def __repr__(self) -> str:
        return f"<guard {self.name}>"


def check_on_violation(value: str) -> OnViolation:
    if value not in ("raise", "fallback"):
        raise UsageError(f"on_violation must be 'raise' or 'fallback', not {value!r}")
    return value  # type: ignore[return-value]


def check_direction(value: str, allowed: tuple[str, ...] = ("input", "output", "both")) -> str:
    if value not in allowed:
        raise UsageError(f"direction must be one of {', '.join(map(repr, allowed))}, not {value!r}")
    return value
