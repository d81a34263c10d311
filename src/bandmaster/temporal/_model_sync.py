"""A worker's side of the shared model registry state (temporal/model_registry.py).

Every ``POLL`` seconds the worker reads the registry workflow's state (its memo, which the
server answers without asking a worker) and applies
it to the model hub its activities call models through: alias overrides go into its registry
(so a switch reaches every worker within ``POLL`` plus a query's round trip), breaker states
are adopted by its breakers. Its breakers are ``SharedBreakerState``: each call's outcome is
also reported to the registry workflow (in batches, off the call's path), which counts the
failures of every worker together; the answer is adopted at once. A restarted worker reads the
state before its first model call (``ready``), so a switch survives worker restarts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError
from temporalio.client import Client

from bandmaster.calls.hub import ModelHub, hub_for
from bandmaster.models import AliasSpec, Registry
from bandmaster.policies import Breaker, BreakerState
from bandmaster.temporal._limiter import LimiterLedger
from bandmaster.temporal._model_registry import (
    REPORT_UPDATE,
    STATE_MEMO,
    empty_state,
    ensure_registry,
    registry_id,
)

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


@dataclass(slots=True)
class SharedBreakerState(BreakerState):
    """A breaker whose call outcomes are also reported to the registry workflow."""

    model: str = ""
    sync: ModelSync | None = field(default=None, repr=False, compare=False)

    def record_failure(self, policy: Breaker, now: float) -> bool:
        trial = self.status == "half_open"
        opened = BreakerState.record_failure(self, policy, now)
        if self.sync is not None:
            self.sync.report(self.model, "failure", now, policy, trial=trial)
        return opened

    def record_success(self, now: float) -> bool:
        trial = self.status == "half_open"
        # Only a success that changes something is news: most calls succeed.
        news = trial or self.status != "closed" or bool(self.recent_failures)
        closed = BreakerState.record_success(self, now)
        if self.sync is not None and (news or self.sync.has_failures(self.model)):
            self.sync.report(self.model, "success", now, None, trial=trial)
        return closed


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
        self._pending: list[dict[str, Any]] = []
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._warned: set[str] = set()
        self._made_by = self.hub.new_breaker
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
        self._made_by = self.hub.new_breaker
        self.hub.new_breaker = self._new_breaker
        for model, state in list(self.hub.breakers.items()):  # made before: share them from now on
            if not isinstance(state, SharedBreakerState):
                self.hub.breakers[model] = self._new_breaker(model, state)
        self._tasks = [
            asyncio.create_task(self._read_loop(), name="bandmaster-models-read"),
            asyncio.create_task(self._report_loop(), name="bandmaster-models-report"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if self.hub.new_breaker == self._new_breaker:
            self.hub.new_breaker = self._made_by
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

    def has_failures(self, model: str) -> bool:
        row = self.shared.get(model)
        return row is not None and (row.get("status") != "closed" or bool(row.get("failures")))

    def _new_breaker(self, model: str, old: BreakerState | None = None) -> BreakerState:
        old = old or BreakerState()
        return SharedBreakerState(
            status=old.status,
            recent_failures=old.recent_failures,
            opened_at=old.opened_at,
            changed_at=old.changed_at,
            trial_in_flight=old.trial_in_flight,
            model=model,
            sync=self,
        )

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
        self.shared.update(rows)
        for model, row in rows.items():
            self.hub.breaker(model).adopt(row["status"], row["opened_at"], row["changed_at"])

    # --- reporting -------------------------------------------------------------------------

    def report(self, model: str, outcome: str, at: float, policy: Breaker | None, *, trial: bool) -> None:
        """Queue one call's outcome for the registry workflow (from any thread)."""
        event: dict[str, Any] = {"model": model, "outcome": outcome, "at": at, "trial": trial}
        if policy is not None:
            event["policy"] = {"failures": policy.failures, "window": policy.window, "reset": policy.reset}
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            here = asyncio.get_running_loop()
        except RuntimeError:  # a model called from a sync step's thread
            here = None
        if here is loop:
            self._queue(event)
        else:
            loop.call_soon_threadsafe(self._queue, event)

    def _queue(self, event: dict[str, Any]) -> None:
        self._pending.append(event)
        self._wake.set()

    async def _report_loop(self) -> None:
        handle = self.client.get_workflow_handle(registry_id(self.task_queue))
        while True:
            await self._wake.wait()
            self._wake.clear()
            batch, self._pending = self._pending, []
            try:
                async with asyncio.timeout(CALL_TIMEOUT):
                    rows = await handle.execute_update(REPORT_UPDATE, {"events": batch}, result_type=dict)
                self.adopt_breakers(rows)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # lost: the breaker then counts this worker's failures only
                self._warn("report", "cannot report breaker events to the model registry: %s", exc)

    def _warn(self, kind: str, message: str, detail: object) -> None:
        if kind not in self._warned:
            self._warned.add(kind)
            log.warning(message, detail)
