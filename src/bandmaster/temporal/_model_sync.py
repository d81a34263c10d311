"""A worker's side of the shared model registry state (temporal/model_registry.py).

Every ``POLL`` seconds the worker reads the registry workflow's state (its memo, which the
server answers without asking a worker) and applies it to the model hub its activities call
models through: alias overrides go into its registry (so a switch reaches every worker within
``POLL`` plus a query's round trip), breaker rows into its view of the breakers. A restarted
worker reads the state before its first model call (``ready``), so a switch survives worker
restarts.

``ModelSync`` is also where the hub's breakers are kept (``BreakerStates``): the registry
workflow counts every worker's failures. A failure, a success after failures and a trial's
outcome are reported with an update whose answer is the new state (the worker that records the
N-th failure learns "open" at once). Admission asks the workflow (an update: exact) whenever the
view shows the breaker not closed or failures in the window; a clean view admits at once, so
a healthy model costs no round trip. The residual window: a worker whose view is clean, because
the first failures of another worker are younger than its last read (at most ``POLL`` plus a
round trip), may start a call after the breaker opened.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from pydantic import ValidationError
from temporalio.client import Client

from bandmaster.calls.hub import ModelHub, hub_for
from bandmaster.calls.wrappers import BreakerStates, Clock, Outcome
from bandmaster.models import AliasSpec, Registry
from bandmaster.policies import Admission, Breaker, BreakerState, BreakerStatus
from bandmaster.temporal._limiter import LimiterLedger
from bandmaster.temporal._model_registry import (
    ADMIT_UPDATE,
    REPORT_UPDATE,
    STATE_MEMO,
    breaker_state,
    empty_state,
    ensure_registry,
    registry_id,
)

T = TypeVar("T")

log = logging.getLogger("bandmaster.temporal.models")

POLL = 0.25
"""Seconds between two reads of the registry workflow's state by a worker."""
READY_TIMEOUT = 5.0
"""How long a model call waits for the worker's first read of the state before it goes ahead."""
CALL_TIMEOUT = 10.0
"""Seconds a query or a report may take before it is tried again (next poll, next batch)."""


def serving(registry: object | None) -> Registry:
    """The registry a worker serves: the one it was given, else ``$BANDMASTER_MODELS`` or
    ``./models.yaml`` (``call_model``'s default)."""
    if isinstance(registry, Registry):
        return registry
    from bandmaster.calls import default_registry  # the model layer, only in worker processes

    return default_registry()


class ModelSync:
    """Keeps one worker's registry and breakers in step with the registry workflow of its
    task queue, from ``start()`` to ``stop()``."""

    def __init__(self, client: Client, task_queue: str, registry: Registry, *, poll: float = POLL) -> None:
        self.client = client
        self.task_queue = task_queue
        self.registry = registry
        self.hub: ModelHub = hub_for(registry, None)  # the hub call_model_recorded uses
        self.poll = poll
        self.rev = -1  # the revision of the overrides applied
        self.shared: dict[str, dict[str, Any]] = {}  # model -> its breaker row in the workflow
        self._synced = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._warned: set[str] = set()
        self._before: BreakerStates = self.hub.breakers
        self.limiter: LimiterLedger | None = None

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        await ensure_registry(self.client, self.task_queue)
        if any(spec.limits is not None for spec in self.registry.config.models.values()):
            # Models' limits are shared through the task queue's limiter workflow (only when
            # some model has limits: no workflow, no cost otherwise).
            self.limiter = LimiterLedger(self.client, self.task_queue)
            await self.limiter.start()
            self.hub.ledger = self.limiter
            self.hub.gates.clear()
        self._before = self.hub.breakers
        self.hub.breakers = self
        self._tasks = [
            asyncio.create_task(self._read_loop(), name="bandmaster-models-read"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if self.hub.breakers is self:
            self.hub.breakers = self._before
        if self.limiter is not None:
            await self.limiter.stop()
            if self.hub.ledger is self.limiter:
                self.hub.ledger = None
                self.hub.gates.clear()
            self.limiter = None

    async def ready(self, timeout: float = READY_TIMEOUT) -> None:
        """Wait (at most ``timeout``) until the state has been read once since ``start``."""
        if self._synced.is_set() or not self._tasks:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._synced.wait()
                return
        self._warn("ready", "model call goes ahead before the registry state was read: %s", "timeout")

    # --- reading ---------------------------------------------------------------------------

    async def read_now(self) -> None:
        """Read and apply the state at once (this process's own switch: no poll to wait for)."""
        handle = self.client.get_workflow_handle(registry_id(self.task_queue))
        async with asyncio.timeout(CALL_TIMEOUT):
            memo = await (await handle.describe()).memo()
        self.adopt(memo.get(STATE_MEMO) or empty_state())
        self._synced.set()

    async def _read_loop(self) -> None:
        while True:
            try:
                await self.read_now()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the next read tries again; say so once
                self._warn("read", "cannot read the model registry state (retrying): %s", exc)
                with contextlib.suppress(Exception):
                    await ensure_registry(self.client, self.task_queue)  # ended (terminated)?
            await asyncio.sleep(self.poll)

    def adopt(self, state: dict[str, Any]) -> None:
        """Apply a read of the registry workflow's state to this worker's registry and hub."""
        if state["rev"] != self.rev:
            for alias, spec in state["overrides"].items():
                try:
                    self.registry.apply_alias(alias, AliasSpec.model_validate(spec))
                except ValidationError as exc:
                    log.error("ignoring invalid shared override of alias %r: %s", alias, exc)
            self.rev = state["rev"]
        self.adopt_breakers(state["breakers"])

    def adopt_breakers(self, rows: dict[str, dict[str, Any]]) -> None:
        """Take the rows newer than those known here (a memo read may be older than an update's
        answer)."""
        shared = self.shared
        for model, row in rows.items():
            known = shared.get(model)
            if known is None or int(row.get("rev", 0)) >= int(known.get("rev", 0)):
                shared[model] = row

    # --- breakers (the hub's BreakerStates) ----------------------------------------------------

    def view(self, model: str) -> BreakerState:
        return breaker_state(self.shared.get(model))

    async def admit(self, model: str, policy: Breaker, clock: Clock) -> tuple[Admission, BreakerState]:
        state, now = self.view(model), clock()
        if state.status == "closed" and not any(t > now - policy.window for t in state.recent_failures):
            return "go", state  # no failure seen: the synced state will do (no round trip)
        if state.status == "open" and state.opened_at is not None and now - state.opened_at < policy.reset:
            return "refused", state
        request = {"model": model, "at": now, "policy": _policy(policy)}
        try:
            answer = await self._update(ADMIT_UPDATE, request)
        except Exception as exc:
            # The registry cannot answer (say, the worker that had its workflow cached was
            # killed: Temporal moves it to another worker after the sticky timeout, 10 s). A
            # closed breaker lets the call go; a trial is only ever claimed in the workflow, so
            # that no two workers send one: until it answers, the breaker stays open here.
            self._warn("admit", "cannot ask the model registry to admit a call: %s", exc)
            return ("go" if state.status == "closed" else "refused"), state
        row = answer.get("row")
        if row is not None:
            self.adopt_breakers({model: row})
        return answer["admission"], breaker_state(row)

    async def settle(
        self, model: str, policy: Breaker, clock: Clock, outcome: Outcome, *, trial: bool
    ) -> BreakerStatus:
        state, now = self.view(model), clock()
        if outcome == "success" and not trial and not state.has_news():
            return "closed"  # the common case: nothing to count
        if outcome == "void" and not trial:
            return state.status
        event = {"model": model, "outcome": outcome, "at": now, "trial": trial, "policy": _policy(policy)}
        try:
            rows = await self._update(REPORT_UPDATE, {"events": [event]})
        except Exception as exc:  # lost: this worker's view stays as it was
            self._warn("report", "cannot report a model call's outcome to the model registry: %s", exc)
            return state.status
        self.adopt_breakers(rows)
        return self.view(model).status

    def status(self, model: str) -> BreakerStatus:
        return self.view(model).status

    async def _update(self, name: str, request: dict[str, Any]) -> dict[str, Any]:
        """Run an update of the registry workflow on the client's event loop (a model may be
        called from a sync step's thread, which runs a loop of its own)."""
        handle = self.client.get_workflow_handle(registry_id(self.task_queue))

        async def update() -> dict[str, Any]:
            async with asyncio.timeout(CALL_TIMEOUT):
                answer: dict[str, Any] = await handle.execute_update(name, request, result_type=dict)
                return answer

        return await _on_loop(self._loop, update)

    def _warn(self, kind: str, message: str, detail: object) -> None:
        if kind not in self._warned:
            self._warned.add(kind)
            log.warning(message, detail)


def _policy(policy: Breaker) -> dict[str, float]:
    return {"failures": policy.failures, "window": policy.window, "reset": policy.reset}


async def _on_loop(loop: asyncio.AbstractEventLoop | None, make: Callable[[], Awaitable[T]]) -> T:
    async def run() -> T:
        return await make()

    try:
        here = asyncio.get_running_loop()
    except RuntimeError:  # pragma: no cover - always called from a coroutine
        here = None
    if loop is None or here is loop or loop.is_closed():
        return await run()
    return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(run(), loop))
