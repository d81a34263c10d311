"""Journaled operations besides steps: durable timers, signal waits, and the deterministic
sources of time and randomness that workflow code must use instead of the stdlib's."""

from __future__ import annotations

import asyncio
import json
import random as _random
import uuid as _uuid
from datetime import UTC, datetime
from typing import Any, TypeVar, overload

from pydantic import BaseModel, ValidationError

from bandmaster.engine._context import RunContext, current_clock, current_step_var, journaling
from bandmaster.engine._redaction import error_json
from bandmaster.engine._serde import ANY, codec_for, rebuild_error
from bandmaster.engine.backend import current_backend
from bandmaster.errors import InvalidInput, UsageError, WaitTimeout

T = TypeVar("T")


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


def _record_value(ctx: RunContext, seq: int, kind: str, output: str) -> None:
    now = ctx.clock.time()
    ctx.commit_nowait(ctx.row(seq, kind, kind, "completed", started=now, ended=now, output=output))


def now() -> datetime:
    """The current UTC time; inside a workflow, recorded once and replayed."""
    backend = current_backend.get()
    if backend is not None:
        return backend.now()
    ctx = journaling()
    if ctx is None:
        return datetime.fromtimestamp(current_clock().time(), UTC)
    seq = ctx.next_seq()
    row = ctx.replayed(seq, "now", "now")
    if row is not None:
        return datetime.fromtimestamp(float(row.output or 0), UTC)
    stamp = ctx.clock.time()
    _record_value(ctx, seq, "now", repr(stamp))
    return datetime.fromtimestamp(stamp, UTC)


def uuid() -> _uuid.UUID:
    """A random UUID4; inside a workflow, recorded once and replayed."""
    backend = current_backend.get()
    if backend is not None:
        return backend.uuid()
    ctx = journaling()
    if ctx is None:
        return _uuid.uuid4()
    seq = ctx.next_seq()
    row = ctx.replayed(seq, "uuid", "uuid")
    if row is not None:
        return _uuid.UUID(json.loads(row.output or '""'))
    value = _uuid.uuid4()
    _record_value(ctx, seq, "uuid", f'"{value}"')
    return value


def random() -> float:
    """A float in [0, 1); inside a workflow, recorded once and replayed."""
    backend = current_backend.get()
    if backend is not None:
        return backend.random()
    ctx = journaling()
    if ctx is None:
        return _random.random()
    seq = ctx.next_seq()
    row = ctx.replayed(seq, "random", "random")
    if row is not None:
        return float(row.output or 0)
    value = _random.random()
    _record_value(ctx, seq, "random", repr(value))
    return value


async def sleep(seconds: float) -> None:
    """A durable timer. Its deadline is journaled at the first call; a run sleeping longer than
    the engine's ``max_inline_sleep`` is evicted from memory and resumed when the timer fires,
    by whichever worker is up then."""
    backend = current_backend.get()
    if backend is not None:
        return await backend.sleep(seconds)
    ctx = journaling()
    if ctx is None:
        await current_clock().sleep(seconds)
        return
    clock = ctx.clock
    seq = ctx.next_seq()
    row = ctx.replayed(seq, "sleep", "sleep")
    started = clock.time()
    if row is None:
        wake_at = started + seconds
        meta = json.dumps({"wake_at": wake_at})
        ctx.commit_nowait(ctx.row(seq, "sleep", "sleep", "waiting", started=started, meta=meta))
    elif row.status == "completed":
        return
    else:
        started = row.started_at
        meta = row.meta or "{}"
        wake_at = json.loads(meta)["wake_at"]
    remaining = wake_at - clock.time()
    if remaining > ctx.max_inline_sleep:
        await ctx.suspend(ready_at=wake_at)
    if remaining > 0:
        try:
            await clock.sleep(remaining)
        except asyncio.CancelledError as exc:
            raise ctx.cancelled(exc) from exc
    await ctx.commit(
        ctx.row(seq, "sleep", "sleep", "completed", started=started, ended=clock.time(), meta=meta)
    )


@overload
async def wait_for(name: str, *, timeout: float | None = None, type: type[T]) -> T: ...


@overload
async def wait_for(name: str, *, timeout: float | None = None, default: T) -> T: ...


@overload
async def wait_for(name: str, *, timeout: float | None = None) -> Any: ...


async def wait_for(
    name: str, *, timeout: float | None = None, default: Any = MISSING, type: Any = None
) -> Any:
    """Wait durably for the signal ``name`` and return its payload.

    The payload is validated into ``type`` (or into the type of a pydantic ``default``). With
    ``timeout``, the wait ends after that many seconds with ``default``, or raises
    ``WaitTimeout`` when there is none. A signal sent before the wait is reached is kept and
    delivered. While waiting, the run holds no memory in any worker.
    """
    if current_step_var.get() is not None:
        raise UsageError("bm.wait_for() cannot be called inside a step; wait in the workflow, between steps")
    ctx = journaling()
    if type is None and isinstance(default, BaseModel):
        type = default.__class__
    codec = codec_for(type) if type is not None else ANY
    backend = current_backend.get()
    if backend is not None:
        return await backend.wait_for(name, timeout, default, codec)
    if ctx is None:
        raise UsageError("bm.wait_for() waits for a signal to a run: call it inside a @bm.workflow")
    seq = ctx.next_seq()
    row = ctx.replayed(seq, name, "wait")
    if row is not None and row.status == "completed":
        return codec.load_recorded(row.output, run_id=ctx.run_id, seq=seq, what=f"payload of signal {name!r}")
    if row is not None and row.status == "failed":
        raise rebuild_error(json.loads(row.error or "{}"))
    now = ctx.clock.time()
    started = row.started_at if row is not None else now
    deadline: float | None
    if row is not None:
        deadline = json.loads(row.meta or "{}").get("deadline")
    else:
        deadline = now + timeout if timeout is not None else None
    meta = json.dumps({"signal": name, "deadline": deadline})

    signal = _next_unclaimed_signal(ctx, name)
    if signal is not None:
        signal_id, payload = signal
        ctx.claimed_signals.add(signal_id)
        try:
            value = codec.load(payload)
        except ValidationError as exc:
            # Consume the bad signal and fail the wait, so replay fails the same way.
            invalid = InvalidInput(f"run {ctx.run_id}: payload of signal {name!r} is invalid: {exc}")
            await _fail_wait(ctx, seq, name, started, meta, invalid, consume_signal=signal_id)
            raise invalid from None
        await ctx.commit(
            ctx.row(
                seq,
                name,
                "wait",
                "completed",
                started=started,
                ended=ctx.clock.time(),
                output=payload,
                meta=meta,
            ),
            consume_signal=signal_id,
        )
        return value
    if deadline is not None and now >= deadline:
        if default is MISSING:
            error = WaitTimeout(f"run {ctx.run_id}: no signal {name!r} within {timeout}s and no default")
            await _fail_wait(ctx, seq, name, started, meta, error)
            raise error
        output = codec.dump(default, what=f"default of wait {name!r}", limit=ctx.max_payload)
        timed_out = json.dumps({"signal": name, "deadline": deadline, "timed_out": True})
        await ctx.commit(
            ctx.row(seq, name, "wait", "completed", started=started, ended=now, output=output, meta=timed_out)
        )
        return default
    if row is None:
        ctx.commit_nowait(ctx.row(seq, name, "wait", "waiting", started=started, meta=meta))
    await ctx.suspend(ready_at=deadline)


async def _fail_wait(
    ctx: RunContext,
    seq: int,
    name: str,
    started: float,
    meta: str,
    error: BaseException,
    *,
    consume_signal: int | None = None,
) -> None:
    """Journal a wait that ended in ``error``, so a replay raises the same error there."""
    await ctx.commit(
        ctx.row(
            seq,
            name,
            "wait",
            "failed",
            started=started,
            ended=ctx.clock.time(),
            error=error_json(error, ctx.redactor),
            meta=meta,
        ),
        consume_signal=consume_signal,
    )


def _next_unclaimed_signal(ctx: RunContext, name: str) -> tuple[int, str | None] | None:
    # Two waits on the same name in one execution (asyncio.gather) must not take one signal.
    signal = ctx.store.next_signal(ctx.run_id, name)
    if signal is None or signal[0] not in ctx.claimed_signals:
        return signal
    for candidate in ctx.store.pending_signals(ctx.run_id, name):
        if candidate[0] not in ctx.claimed_signals:
            return candidate
    return None
