"""Running guards around one model call: input checks once, then ask, validate, re-ask.

``bm.call_model(..., guard=[...])`` uses these inside its journaled step:

* ``check_input`` runs every guard's ``check_input`` in order before any model is called; a
  violation fails the call at once, or (``on_violation="fallback"``) skips the primary model
  so the fallback chain answers;
* ``ask`` sends the request to one model and runs every guard's ``check_output`` in order on
  the answer; on ``Reask`` (or an answer the provider could not parse as the JSON it was asked
  for) it appends the answer and the error to the conversation and asks again, at most
  ``max(guard.reask)`` times, then raises ``bm.OutputValidationFailed``.

Every attempt (model, attempt number, the re-ask conversation, raw answer, error) and every
violation lands in ``GuardLog``, which the call writes to its journal row's ``meta["guard"]``,
so ``bandmaster runs show RUN --json`` shows them and a replay returns the journaled result
without asking again.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bandmaster.errors import GuardViolation, MalformedResponse, OutputValidationFailed, UsageError
from bandmaster.guard._base import Guard, Reask
from bandmaster.models import Message, ModelRequest, ModelResponse

__all__ = ["GuardLog", "ask", "check_guards", "check_input", "reask_request", "revive"]

REASK_PROMPT = (
    "Your previous answer was not valid: {error}\n"
    "Answer again with only the corrected JSON, and nothing else."
)
MAX_JOURNALED_TEXT = 4000
"""Characters of a raw answer kept per attempt in the journal; a longer one is cut (marked)."""


@dataclass(slots=True)
class GuardLog:
    """What the guards saw during one call, for the journal."""

    attempts: list[dict[str, Any]] = field(default_factory=list)
    violations: list[dict[str, Any]] = field(default_factory=list)

    def violation(self, exc: GuardViolation) -> None:
        entry: dict[str, Any] = {
            "rule": exc.rule,
            "direction": exc.direction,
            "action": "fallback" if exc.fallback else "raise",
            "detail": exc.detail,
        }
        if exc.model:
            entry["model"] = exc.model
        if exc.span is not None:
            entry["span"] = {"start": exc.start, "end": exc.end, "text": _cut(exc.span_text or "")}
        self.violations.append(entry)

    def as_meta(self) -> dict[str, Any]:
        meta: dict[str, Any] = {"attempts": self.attempts}
        if self.violations:
            meta["violations"] = self.violations
        return meta


def check_guards(guard: Guard | Sequence[Guard] | None) -> tuple[Guard, ...]:
    """The guard argument of ``call_model`` as a tuple, each checked to be a ``Guard``."""
    if guard is None:
        return ()
    guards = (guard,) if isinstance(guard, Guard) else tuple(guard)
    for item in guards:
        if not isinstance(item, Guard):
            raise UsageError(
                f"guard=[...] takes bm.Guard objects (bm.JsonSchema, bm.BannedTopics, bm.MaxTokens, "
                f"bm.RequiredFields, bm.ModelSettings or a subclass of bm.Guard), not {item!r}"
            )
    return guards


async def check_input(
    guards: Sequence[Guard], request: ModelRequest, log: GuardLog
) -> tuple[ModelRequest, GuardViolation | None]:
    """``(request to send, the violation that routes to the fallbacks or None)``; a violation
    of a rule with ``on_violation="raise"`` is raised."""
    routed: GuardViolation | None = None
    for guard in guards:
        try:
            request = await guard.check_input(request)
        except GuardViolation as exc:
            log.violation(exc)
            if not exc.fallback:
                raise
            routed = routed or exc
    return request, routed


async def ask(
    guards: Sequence[Guard],
    request: ModelRequest,
    send: Callable[[ModelRequest], Awaitable[ModelResponse]],
    *,
    model: str,
    log: GuardLog,
) -> ModelResponse:
    """Ask ``model`` (through ``send``, which applies the retry policy) until an answer passes
    every guard's ``check_output`` or the re-asks run out."""
    budget = max((guard.reask for guard in guards), default=0)
    conversation = request
    error, raw = "", None
    for attempt in range(1, budget + 2):
        entry: dict[str, Any] = {"model": model, "attempt": attempt}
        if attempt > 1:  # the first request is the step's meta["request"]
            entry["request"] = conversation
        log.attempts.append(entry)
        try:
            response = await send(conversation)
        except MalformedResponse as exc:
            raw, error = exc.text, str(exc)
            if budget == 0:
                entry.update(text=_cut(raw), error=error)
                raise
        except Exception as exc:  # the model failed (after its retries): no answer to judge
            entry.update(text=None, error=f"{type(exc).__name__}: {exc}")
            raise
        else:
            raw = response.text
            try:
                for guard in guards:
                    response = await guard.check_output(response, conversation)
            except Reask as exc:
                error = str(exc)
            except GuardViolation as exc:
                exc.model = model
                entry.update(text=_cut(raw), error=str(exc))
                log.violation(exc)
                raise
            else:
                entry.update(text=_cut(raw), error=None)
                return response
        entry.update(text=_cut(raw) if raw is not None else None, error=error)
        conversation = reask_request(conversation, raw, error)
    raise OutputValidationFailed(model, budget + 1, error, text=raw)


def reask_request(request: ModelRequest, answer: str | None, error: str) -> ModelRequest:
    """``request`` followed by the model's invalid ``answer`` and a user turn naming the error."""
    messages = [m for m in request.messages() if m.role != "system"]
    if answer:
        messages.append(Message(role="assistant", content=answer))
    messages.append(Message(role="user", content=REASK_PROMPT.format(error=error)))
    return request.model_copy(update={"input": messages})


def revive(guards: Sequence[Guard], response: ModelResponse) -> ModelResponse:
    for guard in guards:
        response = guard.revive(response)
    return response


def _cut(text: str | None) -> str | None:
    if text is None or len(text) <= MAX_JOURNALED_TEXT:
        return text
    return text[:MAX_JOURNALED_TEXT] + f"... [{len(text) - MAX_JOURNALED_TEXT} more characters]"
