"""``@bm.step``: a journaled unit of work with a timeout and a retry policy."""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, Generic, ParamSpec, Protocol, TypeVar, cast, get_type_hints, overload

from bandmaster.engine._context import RunContext, StepContext, current_step_var, direct_call, journaling
from bandmaster.engine._journaled import OpRecord, journaled, run_attempts
from bandmaster.engine._serde import Codec, codec_for
from bandmaster.engine.backend import current_backend
from bandmaster.policies import NO_RETRY, Retry

P = ParamSpec("P")
R = TypeVar("R")


class Step(Generic[P, R]):
    """A step function. Inside a running workflow a call is journaled: it takes the next
    sequence number at call time, runs with its policy, and its result is written before the
    workflow sees it; on replay the recorded result comes back instead. Anywhere else (tests,
    inside another step) it is the plain function.

    ``R`` is the result, whether the function is async or not: from a workflow a step call is
    always awaited (a sync step runs in a thread), so checkers see ``Awaitable[R]``. Called
    outside a workflow (a test, another step), a sync step returns its plain value.
    """

    def __init__(
        self,
        fn: Callable[P, Awaitable[R]] | Callable[P, R],
        *,
        name: str | None = None,
        timeout: float | None = None,
        retry: Retry | None = None,
        local: bool = False,
    ) -> None:
        if timeout is not None and timeout <= 0:
            raise ValueError(f"step {fn.__name__!r}: timeout must be positive, got {timeout}")
        self.fn = fn
        self.name = name or fn.__name__
        self.timeout = timeout
        self.retry = retry or NO_RETRY
        self.local = local  # a hint for backends with a cheaper in-worker path (Temporal local activities)
        self.is_async = inspect.iscoroutinefunction(fn)
        self._codec: Codec | None = None
        functools.update_wrapper(self, fn)

    @property
    def codec(self) -> Codec:
        # Resolved on first use: forward references may only exist once the module is loaded.
        if self._codec is None:
            hints = get_type_hints(self.fn)
            self._codec = codec_for(hints.get("return", Any))
        return self._codec

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> Awaitable[R]:
        backend = current_backend.get()
        if backend is not None:
            return backend.step(self, args, kwargs)
        ctx = journaling()
        if ctx is not None:
            return self._journaled(ctx, ctx.next_seq(), args, kwargs)
        if direct_call.get() and current_step_var.get() is None and not self.is_async:
            sync_fn = cast("Callable[P, R]", self.fn)
            return asyncio.to_thread(sync_fn, *args, **kwargs)  # keep `await sync_step()` valid
        # Outside a workflow: the plain function, so a sync step gives its value (see the class doc).
        return cast("Awaitable[R]", self.fn(*args, **kwargs))

    def __repr__(self) -> str:
        return f"<bm.step {self.name}>"

    async def _journaled(
        self, ctx: RunContext, seq: int, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        async def body(record: OpRecord) -> Any:
            return await run_attempts(
                lambda attempt: self._attempt(ctx, seq, attempt, args, kwargs),
                retry=self.retry,
                timeout=self.timeout,
                name=self.name,
                record=record,
            )

        return await journaled(ctx, seq, self.name, "step", self.codec, body)

    async def _attempt(
        self, ctx: RunContext, seq: int, attempt: int, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        token = current_step_var.set(StepContext(ctx.run_id, seq, self.name, attempt))
        try:
            if self.is_async:
                return await self.fn(*args, **kwargs)  # type: ignore[misc]
            # to_thread copies the context, so the thread sees current_step() too.
            return await asyncio.to_thread(self.fn, *args, **kwargs)
        finally:
            current_step_var.reset(token)


class StepDecorator(Protocol):
    """What ``@bm.step(timeout=..., retry=...)`` returns: it makes a step of a function."""

    @overload
    def __call__(self, fn: Callable[P, Awaitable[R]], /) -> Step[P, R]: ...
    @overload
    def __call__(self, fn: Callable[P, R], /) -> Step[P, R]: ...


# An async function's step gives its awaited result; a sync function's step gives its return value.
@overload
def step(fn: Callable[P, Awaitable[R]], /) -> Step[P, R]: ...


@overload
def step(fn: Callable[P, R], /) -> Step[P, R]: ...


@overload
def step(
    *, name: str | None = None, timeout: float | None = None, retry: Retry | None = None, local: bool = False
) -> StepDecorator: ...


def step(
    fn: Callable[P, Any] | None = None,
    /,
    *,
    name: str | None = None,
    timeout: float | None = None,
    retry: Retry | None = None,
    local: bool = False,
) -> Step[P, Any] | StepDecorator:
    """Make a function a journaled step: ``@bm.step`` or ``@bm.step(timeout=2, retry=...)``.

    ``timeout`` is per attempt, in seconds. Without ``retry`` a step runs once. Sync functions
    run in a thread; a timed-out sync attempt is abandoned, not killed, so keep them short.
    ``local=True`` marks a short step that the Temporal backend runs as a local activity.
    """

    def decorate(f: Callable[P, Any]) -> Step[P, Any]:
        return Step(f, name=name, timeout=timeout, retry=retry, local=local)

    return decorate(fn) if fn is not None else cast(StepDecorator, decorate)
