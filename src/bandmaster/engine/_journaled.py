"""The two building blocks every journaled call is made of: ``journaled`` (replay lookup, then
execute and write the result before the workflow sees it) and ``run_attempts`` (timeout per
attempt, retry with backoff). ``@bm.step`` and ``bm.call_model`` are both made of them."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic_core import to_json

from bandmaster.engine._context import RunContext, current_clock
from bandmaster.engine._redaction import error_json, redact_json, redact_value
from bandmaster.engine._serde import Codec, rebuild_error
from bandmaster.engine.hooks import (
    AttemptFinished,
    AttemptStarted,
    HookSet,
    StepFinished,
    StepOutcome,
    StepStarted,
    emit,
)
from bandmaster.errors import RetriesExhausted, StepTimeout
from bandmaster.policies import Retry

T = TypeVar("T")


@dataclass(slots=True)
class OpRecord:
    """What the journal keeps about an operation besides its value: filled in as it runs."""

    attempts: int = 0
    errors: list[BaseException] = field(default_factory=list)
    # (when, delay) per failed attempt: the clock's time it failed and the wait before the next
    # one, so a timeline can place every attempt (nothing is recorded when the first succeeds).
    failed_at: list[tuple[float, float]] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)
    # Set only when the engine has hooks: what ``run_attempts`` reports each attempt against.
    hooks: HookSet | None = None
    step: StepStarted | None = None
    # The model request in ``meta`` was redacted before it was sent: journaled exactly as sent.
    request_redacted: bool = False

    def meta_json(self) -> str | None:
        meta = dict(self.meta)
        if self.errors:
            # Failed attempts stay visible even when a later attempt succeeded.
            meta["attempt_errors"] = [f"{type(e).__name__}: {e}" for e in self.errors]
        if self.failed_at:
            meta["attempt_failures"] = [[round(at, 6), round(delay, 6)] for at, delay in self.failed_at]
        # pydantic-core's encoder: ~10x faster than json.dumps, and it takes models as they are.
        return to_json(meta, serialize_unknown=True).decode() if meta else None


async def journaled(
    ctx: RunContext,
    seq: int,
    name: str,
    kind: str,
    codec: Codec,
    body: Callable[[OpRecord], Awaitable[Any]],
    *,
    request: object = None,
    redact: bool = True,
) -> Any:
    """Return the recorded outcome of operation ``seq``, or run ``body`` and record it.
    ``request`` is passed on to ``ctx.replayed`` (model calls pass their ``ModelRequest``).
    ``redact=False``: the output is the engine's own record (deadlines, decisions), not user
    data, and must keep its shape; the operation redacts any free text in it itself."""
    row = ctx.replayed(seq, name, kind, request)
    if row is not None:
        if row.status == "completed":
            return codec.load_recorded(
                row.output, run_id=ctx.run_id, seq=seq, what=f"output of {kind} {name!r}"
            )
        raise rebuild_error(json.loads(row.error or "{}"))
    record = OpRecord()
    clock = ctx.clock
    started = clock.time()
    hooks = ctx.hooks
    if hooks is not None and not hooks.steps:
        hooks = None
    if hooks is not None:
        record.hooks = hooks
        record.step = StepStarted(ctx.run_id, ctx.workflow, seq, name, kind, started, ctx.redactor)
        emit(hooks.step_started, record.step)
    # What the hooks hear at the end; stays "cancelled" when nothing was journaled.
    status: StepOutcome = "cancelled"
    error: BaseException | None = None
    output: str | None = None
    ctx.step_started()
    try:
        try:
            value = await body(record)
            what = lambda: f"output of {kind} {name!r} (run {ctx.run_id}, seq {seq})"  # noqa: E731
            value, output = codec.encode(value, what=what, limit=ctx.max_payload)
            if ctx.redactor is not None and redact:
                value, output = redact_value(ctx.redactor, codec, output, what=what)
        except asyncio.CancelledError as exc:
            raise ctx.cancelled(exc) from exc
        except Exception as exc:
            await ctx.commit(
                ctx.row(
                    seq,
                    name,
                    kind,
                    "failed",
                    started=started,
                    ended=clock.time(),
                    error=error_json(exc, ctx.redactor),
                    attempts=max(record.attempts, 1),
                    meta=_meta(ctx, record),
                )
            )
            status, error = "failed", exc
            raise
        await ctx.commit(
            ctx.row(
                seq,
                name,
                kind,
                "completed",
                started=started,
                ended=clock.time(),
                output=output,
                attempts=max(record.attempts, 1),
                meta=_meta(ctx, record),
            )
        )
        status = "completed"
        return value
    finally:
        ctx.step_finished()
        if hooks is not None and hooks.step_finished:
            assert record.step is not None
            finished = StepFinished(
                record.step,
                status,
                max(record.attempts, 1),
                clock.time() - started,
                error,
                record.meta,
                output if status == "completed" else None,
            )
            emit(hooks.step_finished, finished)


def _meta(ctx: RunContext, record: OpRecord) -> str | None:
    # Meta holds model requests (prompts) and attempt errors: redacted like the output.
    meta = record.meta_json()
    if ctx.redactor is None or meta is None:
        return meta
    if not record.request_redacted:
        return redact_json(ctx.redactor, meta)
    values = json.loads(meta)
    sent = values.pop("request", None)
    redacted = ctx.redactor.redact(values)
    return json.dumps({**redacted, "request": sent}, ensure_ascii=False, separators=(",", ":"))


async def run_attempts(
    call: Callable[[int], Awaitable[T]],
    *,
    retry: Retry,
    timeout: float | None,
    name: str,
    record: OpRecord,
) -> T:
    """Call ``call(attempt)`` until it succeeds or ``retry`` gives up. Raises the error itself
    when it was not retryable or there was one attempt, else ``RetriesExhausted``."""
    first_error = len(record.errors)
    waited = 0.0
    attempt = 0
    hooks = record.hooks
    while True:
        attempt += 1
        record.attempts += 1
        if hooks is not None and hooks.attempt_started and record.step is not None:  # inline: per step
            emit(hooks.attempt_started, AttemptStarted(record.step, attempt, name))
        try:
            if timeout is None:
                value = await call(attempt)
            else:
                try:
                    async with current_clock().timeout(timeout) as scope:
                        value = await call(attempt)
                except TimeoutError as exc:
                    if scope.expired():
                        raise StepTimeout(f"{name!r} attempt {attempt} timed out after {timeout}s") from exc
                    raise
        except Exception as exc:
            record.errors.append(exc)
            delay = retry.next_delay(attempt, exc, waited)
            record.failed_at.append((current_clock().time(), delay or 0.0))
            if hooks is not None and hooks.attempt_finished:
                _attempt_finished(record, attempt, name, exc, delay)
            if delay is None:
                errors = record.errors[first_error:]
                if len(errors) > 1 and retry.is_retryable(exc):
                    raise RetriesExhausted(name, errors) from exc
                raise
            waited += delay
            await current_clock().sleep(delay)
        except BaseException as exc:  # cancelled: the attempt still ends for the hooks
            if hooks is not None and hooks.attempt_finished:
                _attempt_finished(record, attempt, name, exc, None)
            raise
        else:
            if hooks is not None and hooks.attempt_finished and record.step is not None:
                emit(hooks.attempt_finished, AttemptFinished(record.step, attempt, name, None, None))
            return value


def _attempt_finished(
    record: OpRecord, attempt: int, target: str, error: BaseException | None, delay: float | None
) -> None:
    if record.step is not None and record.hooks is not None:
        event = AttemptFinished(record.step, attempt, target, error, delay)
        emit(record.hooks.attempt_finished, event)
