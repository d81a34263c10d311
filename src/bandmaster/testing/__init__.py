"""Test doubles for code that uses bandmaster, and its pytest plugin.

* ``ScriptedModel``: a model that answers from a script and records every request.
* ``FakeClock``: a manual clock for the pure policies (``bm.Breaker`` states, retry delays)
  and for the engine (``bm.Engine(clock=FakeClock())``: timers, deadlines, leases).
* ``temp_engine()``: an open ``bm.Engine`` on a temporary journal, removed afterwards.

Installed with bandmaster, the pytest plugin (entry point ``pytest11``) adds the fixtures
``bm_engine``, ``scripted_model``, ``fake_clock`` and ``replay_runs``.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import os
import tempfile
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bandmaster.engine import Engine, Workflow
from bandmaster.errors import UsageError
from bandmaster.models import ModelRequest, ModelResponse, Registry
from bandmaster.models.builtin import to_response

Answer = Any  # what CallableModel accepts: str, (output, confidence), dict, ModelResponse; or an exception
Script = Mapping[str, Answer] | Iterable[Answer] | Callable[[ModelRequest], Answer]

__all__ = ["FakeClock", "ScriptedModel", "temp_engine"]


class ScriptedModel:
    """A model that answers from a script, for tests. The script is one of:

    * a mapping from request text to answer (``{"charged twice": ("billing", 0.95)}``); texts
      not in it get ``default`` (or fail with ``UsageError`` naming the text);
    * a list of answers, consumed one per request, then ``default``;
    * a function of the ``ModelRequest`` returning an answer.

    An answer is anything ``bm.CallableModel`` accepts (a string, ``(output, confidence)``, a
    dict of ``ModelResponse`` fields, a ``ModelResponse``), or an exception instance, which is
    raised (script ``bm.RateLimited(...)`` to test retries). ``cost`` is charged per call
    unless the answer carries its own. Every request is kept in ``requests``.
    """

    def __init__(
        self,
        script: Script | None = None,
        *,
        name: str = "scripted",
        default: Answer = None,
        cost: float = 0.0,
    ) -> None:
        self.name = name
        self.default = default
        self.cost = cost
        self.requests: list[ModelRequest] = []
        self._mapping: Mapping[str, Answer] | None = None
        self._function: Callable[[ModelRequest], Answer] | None = None
        self._queue: list[Answer] = []
        if isinstance(script, Mapping):
            self._mapping = script
        elif callable(script):
            self._function = script
        elif script is not None:
            self._queue = list(script)

    @property
    def calls(self) -> int:
        return len(self.requests)

    @property
    def texts(self) -> list[str]:
        """The text of each request, in order."""
        return [request.text() for request in self.requests]

    async def request(self, req: ModelRequest) -> ModelResponse:
        self.requests.append(req)
        answer = self._answer(req)
        if isinstance(answer, BaseException):
            raise answer
        response = to_response(answer, model=self.name, latency=0.0)
        if self.cost and not response.cost:
            response = response.model_copy(update={"cost": self.cost})
        return response

    def _answer(self, req: ModelRequest) -> Answer:
        if self._function is not None:
            return self._function(req)
        if self._mapping is not None:
            text = req.text()
            if text in self._mapping:
                return self._mapping[text]
        elif self._queue:
            return self._queue.pop(0)
        if self.default is None:
            raise UsageError(
                f"ScriptedModel {self.name!r} has no answer for request {req.text()[:80]!r}; "
                f"add it to the script or pass default="
            )
        return self.default

    def __repr__(self) -> str:
        return f"<ScriptedModel {self.name} calls={self.calls}>"


class FakeClock:
    """A clock that moves only when told, for the pure policies and for the engine.

    For a policy, call it where the policy takes the time: ``state.admit(breaker, clock())``,
    then ``clock.advance(30)``. For the engine, pass it as ``bm.Engine(clock=clock)`` (or
    ``temp_engine(clock=clock)``): every journal stamp, durable timer (``bm.sleep``),
    ``bm.wait_for`` timeout, approval deadline, lease, heartbeat, retry delay and step timeout
    then runs on it, and ``await clock.elapse(300)`` lets 300 seconds pass in milliseconds:
    it stops at each timer due on the way, in order, and lets the tasks it woke run until
    nothing is left to do (``settle()``) before it moves on. Time never passes otherwise, so
    after ``await clock.elapse(299)`` a run whose timer is at 300 s is still waiting, however
    slow the machine.

    ``advance(s)`` jumps in one go (every timer due by then fires at once, and the woken tasks
    run at the next await); with an engine, use ``elapse``. Polling loops (a worker claiming
    runs) also poll on their real-time interval, so work that needs no time to pass (a run
    queued or signalled by another engine) is found as usual.
    """

    def __init__(self, start: float = 1_000_000.0) -> None:
        self._now = start
        self._timers: list[tuple[float, int, _Timer]] = []  # a heap, by due time
        self._order = itertools.count()  # timers due at the same time fire in the order set
        self._pollers: set[asyncio.Future[None]] = set()  # resolved when the clock moves
        self._stops: set[float] = set()  # times of due_at() stops, set once each

    # --- reading it ---------------------------------------------------------------------

    def now(self) -> float:
        return self._now

    __call__ = now
    time = now
    monotonic = now

    def __repr__(self) -> str:
        return f"<FakeClock {self._now} timers={len(self._timers)}>"

    # --- moving it ----------------------------------------------------------------------

    def advance(self, seconds: float) -> float:
        """Jump ``seconds`` ahead at once; every timer due by then fires. Returns the time."""
        self._check(seconds, "advance")
        self._move_to(self._now + seconds)
        return self._now

    async def elapse(self, seconds: float) -> float:
        """Let ``seconds`` pass: move to each timer due on the way, in order, letting the tasks
        it wakes run until they wait again, then to the end. Returns the time."""
        self._check(seconds, "elapse")
        end = self._now + seconds
        await self.settle()  # what was just started sets its timers first
        while (due := self._next_due()) is not None and due <= end:
            self._move_to(max(due, self._now))
            await self.settle()
        self._move_to(end)
        await self.settle()
        return self._now

    async def settle(self) -> None:
        """Let every task that can run, run, until all wait (on this clock, a signal, I/O).

        The engine's journal writes are made on the event loop itself, so this covers them;
        work in threads or on the network (a webhook) is not waited for."""
        loop = asyncio.get_running_loop()
        # asyncio's queue of callbacks ready to run: empty when every task waits. Event loops
        # without one (uvloop) get a fixed number of turns instead.
        ready = getattr(loop, "_ready", None)
        quiet = 0
        for _ in range(_SETTLE_TURNS):
            await asyncio.sleep(0)
            if ready is None:
                quiet += 1
            else:
                quiet = quiet + 1 if not ready else 0
            if quiet >= _QUIET_TURNS:
                return
        raise UsageError(
            f"FakeClock.settle(): tasks were still runnable after {_SETTLE_TURNS} event-loop turns; "
            f"a task that loops without awaiting a timer or an event keeps the engine from settling"
        )

    def _check(self, seconds: float, what: str) -> None:
        if seconds < 0:
            raise UsageError(f"FakeClock.{what}({seconds}): time does not go backwards")

    def _next_due(self) -> float | None:
        while self._timers and self._timers[0][2].cancelled:
            heapq.heappop(self._timers)
        return self._timers[0][0] if self._timers else None

    def _move_to(self, when: float) -> None:
        self._now = when
        while self._timers and self._timers[0][0] <= when:
            due, _, timer = heapq.heappop(self._timers)
            if timer.callback is None:
                self._stops.discard(due)
            elif not timer.cancelled:
                timer.callback()
        for moved in self._pollers:
            if not moved.done():
                moved.set_result(None)

    def _call_at(self, when: float, callback: Callable[[], object] | None) -> _Timer:
        timer = _Timer(callback)
        heapq.heappush(self._timers, (when, next(self._order), timer))
        return timer

    # --- the engine's side (bandmaster.engine.Clock) -------------------------------------

    async def sleep(self, seconds: float) -> None:
        """Wait until the clock has moved ``seconds`` on."""
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        woken: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def wake() -> None:
            if not woken.done():
                woken.set_result(None)

        timer = self._call_at(self._now + seconds, wake)
        try:
            await woken
        finally:
            timer.cancelled = True

    def timeout(self, seconds: float | None) -> AbstractAsyncContextManager[asyncio.Timeout]:
        return self._timeout(seconds)

    @asynccontextmanager
    async def _timeout(self, seconds: float | None) -> AsyncIterator[asyncio.Timeout]:
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(None) as scope:
            if seconds is None:
                yield scope
                return

            def expire() -> None:
                scope.reschedule(loop.time())  # now, on asyncio's clock: the body is cancelled

            if seconds <= 0:
                expire()
            timer = self._call_at(self._now + seconds, expire)
            try:
                yield scope
            finally:
                timer.cancelled = True

    async def poll(self, wake: asyncio.Event, interval: float) -> None:
        """Return when ``wake`` is set, when this clock moves, or after ``interval`` real
        seconds (polling finds work that needs no time to pass, as with the real clock)."""
        if wake.is_set():
            return
        moved: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        woken = asyncio.ensure_future(wake.wait())
        self._pollers.add(moved)
        try:
            await asyncio.wait((moved, woken), timeout=interval, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._pollers.discard(moved)
            woken.cancel()

    def due_at(self, when: float) -> None:
        """Something is due at ``when``: ``elapse`` stops there (and wakes the polling loops)."""
        if when > self._now and when not in self._stops:
            self._stops.add(when)
            self._call_at(when, None)


@dataclass(slots=True)
class _Timer:
    callback: Callable[[], object] | None  # None: only a stop for ``elapse``
    cancelled: bool = False


_SETTLE_TURNS = 100_000
_QUIET_TURNS = 3
"""Consecutive turns with nothing else ready before ``settle`` returns: one more than strictly
needed, for callbacks asyncio moves to the ready queue from its timers and selector."""


@asynccontextmanager
async def temp_engine(
    workflows: Iterable[Workflow[..., Any]] = (),
    *,
    registry: object | None = None,
    db: str | os.PathLike[str] | None = None,
    **options: Any,
) -> AsyncIterator[Engine]:
    """An open engine with a worker, on a temporary journal (or on ``db`` when given, which
    is kept), polling fast for tests; closed and removed on exit. Without ``registry`` it gets
    an empty ``bm.Registry``: add models while it runs with ``engine.registry.register(name,
    model)``. Options go to ``bm.Engine``: ``clock=FakeClock()`` puts its timers on a fake clock
    (with a long ``lease``, e.g. 60, each ``elapse`` has fewer heartbeats to stop at)."""
    options = {"poll_interval": 0.02, "lease": 2.0, **options}
    registry = registry if registry is not None else Registry()
    with tempfile.TemporaryDirectory(prefix="bandmaster-test-") as tmp:
        path = Path(db) if db is not None else Path(tmp) / "journal.db"
        engine = Engine(path, workflows=workflows, registry=registry, **options)
        await engine.open()
        try:
            yield engine
        finally:
            await engine.close(grace=1.0)
