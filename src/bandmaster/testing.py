"""Test doubles for code that uses bandmaster, and its pytest plugin.

* ``ScriptedModel``: a model that answers from a script and records every request.
* ``FakeClock``: a manual clock for the pure policies (``bm.Breaker`` states, retry delays).
* ``temp_engine()``: an open ``bm.Engine`` on a temporary journal, removed afterwards.

Installed with bandmaster, the pytest plugin (entry point ``pytest11``) adds the fixtures
``bm_engine``, ``scripted_model``, ``fake_clock`` and ``replay_runs``.

Limit: the engine reads the wall clock itself (journal timestamps, ``bm.sleep`` deadlines,
``bm.wait_for`` timeouts), so ``FakeClock`` does not speed up durable timers; keep timers in
tests short, or test the decision logic through the policies, which take the time as an
argument.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from bandmaster.engine.runtime import Engine
from bandmaster.engine.workflow import Workflow
from bandmaster.errors import UsageError
from bandmaster.models.base import ModelRequest, ModelResponse
from bandmaster.models.providers import to_response
from bandmaster.models.registry import Registry

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
    """A clock that only moves when told: ``clock.advance(30)``. Call it (or ``now()``) where
    a policy takes the time, e.g. ``state.allow(breaker, clock())``."""

    def __init__(self, start: float = 1_000_000.0) -> None:
        self._now = start

    def now(self) -> float:
        return self._now

    __call__ = now

    def advance(self, seconds: float) -> float:
        if seconds < 0:
            raise UsageError(f"FakeClock.advance({seconds}): time does not go backwards")
        self._now += seconds
        return self._now


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
    model)``."""
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
