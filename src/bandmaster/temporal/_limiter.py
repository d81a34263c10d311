"""Models' rate and concurrency limits shared by every Temporal worker of a task queue: one
long-lived limiter workflow per task queue (id ``bandmaster.limits.<task queue>``) holds what
the embedded engine keeps in its journal's ``limit_rates``/``limit_slots`` tables, and workers
reach it with Updates (``LimiterLedger``, the ``LimitLedger`` of their model hub).

Why a workflow and not Temporal's own limits: ``max_task_queue_activities_per_second`` is a
server-enforced rate per task queue, but a model call's activity resolves its alias and
fallbacks inside it, so a queue per model would not know which model an activity will call;
it spaces activities, not requests (a retried attempt inside one activity is not counted);
and Temporal has no token limit, no shared concurrency limit and no way to slow every worker
down after a 429. A workflow gives all of it with the same GCRA arithmetic as the journal
(``bandmaster.policies.LimitState``).

Round trips stay few: a worker reserves a block of future permits per Update (at most
``BLOCK_SPAN`` seconds of the model's rate) and keeps its concurrency slots a moment after use
(``bandmaster.calls.wrappers.LimitGate``); giving slots back, renewing their lease and
reporting 429s are batched off the call's path. Slots are leased per worker with an expiry
renewed while held, so a SIGKILLed worker's slots come back. The workflow continues as new
when Temporal suggests it. Handlers are pure: times come from the requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from dataclasses import asdict
from typing import Any

from temporalio import workflow
from temporalio.client import Client
from temporalio.worker import Worker

from bandmaster.policies import Grant, LimitState, RateLimits
from bandmaster.temporal._singletons import ensure_running, until_history_is_long

LIMITER_WORKFLOW = "bandmaster.limits"
TAKE_UPDATE = "bandmaster.limits.take"
NOTE_UPDATE = "bandmaster.limits.note"
LEASE = 10.0
"""Seconds a worker's concurrency slots outlive its last renewal."""
POLL = 0.05
"""How often a worker waiting for a slot another worker holds asks again (an Update each)."""
CALL_TIMEOUT = 10.0


def limiter_id(task_queue: str) -> str:
    return f"bandmaster.limits.{task_queue}"


def limiter_queue(task_queue: str) -> str:
    """The limiter workflow's own task queue: on the runs' queue, each Update would wait
    behind every queued workflow task (hundreds, under the load the limiter is for)."""
    return f"{task_queue}.bandmaster-limits"


async def ensure_limiter(client: Client, task_queue: str) -> None:
    """Start the limiter workflow of ``task_queue`` unless it runs."""
    await ensure_running(client, LIMITER_WORKFLOW, limiter_id(task_queue), limiter_queue(task_queue))


def _limits(raw: dict[str, Any]) -> RateLimits:
    return RateLimits(rpm=raw.get("rpm"), tpm=raw.get("tpm"), concurrency=raw.get("concurrency"))


# Not sandboxed: pure arithmetic on its own state, no clock, no randomness, no I/O.
@workflow.defn(name=LIMITER_WORKFLOW, sandboxed=False)
class LimiterWorkflow:
    """GCRA clocks, AIMD factors and concurrency leases of every model of a task queue."""

    @workflow.init
    def __init__(self, state: dict[str, Any] | None) -> None:
        state = state or {}
        rates = state.get("rates", {})
        self.rates: dict[str, LimitState] = {m: LimitState(**row) for m, row in rates.items()}
        # model -> owner -> [slots, expires]
        self.slots: dict[str, dict[str, list[float]]] = state.get("slots", {})

    @workflow.run
    async def run(self, state: dict[str, Any] | None) -> None:
        await until_history_is_long()
        workflow.continue_as_new(
            {"rates": {m: asdict(s) for m, s in self.rates.items()}, "slots": self.slots}
        )

    @workflow.update(name=TAKE_UPDATE)
    def take(self, request: dict[str, Any]) -> dict[str, Any]:
        """Reserve permits and lease slots for one worker (``LimitLedger.take``'s arguments,
        with ``owner``, ``now`` and ``lease``); answers the ``Grant``'s fields."""
        model, now = str(request["model"]), float(request["now"])
        limits = _limits(request["limits"])
        state = self.rates.setdefault(model, LimitState())
        grant = state.reserve(
            limits, now, int(request["requests"]), int(request["tokens"]), int(request["correction"])
        )
        wanted = int(request["slots"])
        granted = 0
        if wanted:
            leases = self.slots.setdefault(model, {})
            for owner in [o for o, (_, expires) in leases.items() if expires < now]:
                del leases[owner]  # a worker that stopped renewing (killed): its slots come back
            used = sum(int(n) for n, _ in leases.values())
            granted = min(wanted, max(0, grant.cap - used))
            if granted:
                held = leases.get(request["owner"], [0, 0.0])
                leases[request["owner"]] = [int(held[0]) + granted, now + float(request["lease"])]
        return {**asdict(grant), "slots": granted}

    @workflow.update(name=NOTE_UPDATE)
    def note(self, request: dict[str, Any]) -> None:
        """A worker's batch: slots given back, its leases renewed, 429s seen."""
        now, owner = float(request["now"]), str(request["owner"])
        for model, count in request.get("give_back", {}).items():
            held = self.slots.get(model, {}).get(owner)
            if held is not None:
                held[0] = max(0, int(held[0]) - int(count))
                if not held[0]:
                    del self.slots[model][owner]
        if request.get("renew"):
            for leases in self.slots.values():
                if owner in leases:
                    leases[owner][1] = now + float(request["lease"])
        for event in request.get("rate_limited", []):
            self.rates.setdefault(str(event["model"]), LimitState()).slow_down(now, event["retry_after"])

    @workflow.query(name="bandmaster.limits.slots")
    def slots_in_use(self, model: str) -> int:
        return sum(int(n) for n, _ in self.slots.get(model, {}).values())


class LimiterLedger:
    """A worker's ``LimitLedger`` on its task queue's limiter workflow."""

    poll = POLL

    def __init__(self, client: Client, task_queue: str, *, lease: float = LEASE) -> None:
        self.client = client
        self.task_queue = task_queue
        self.lease = lease
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.handle = client.get_workflow_handle(limiter_id(task_queue))
        self.held: dict[str, int] = {}
        self._give_back: dict[str, int] = {}
        self._rate_limited: list[dict[str, Any]] = []
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._worker: Worker | None = None

    async def start(self) -> None:
        """Host the limiter workflow (every worker does: whichever is alive serves it) and
        start it unless it runs."""
        worker = self._worker = Worker(
            self.client, task_queue=limiter_queue(self.task_queue), workflows=[LimiterWorkflow]
        )
        self._tasks = [
            asyncio.create_task(worker.run(), name="bandmaster-limits-worker"),
            asyncio.create_task(self._note_loop(), name="bandmaster-limits-note"),
        ]
        await ensure_limiter(self.client, self.task_queue)

    async def stop(self) -> None:
        if self._worker is not None:
            with contextlib.suppress(Exception):
                await self._worker.shutdown()
            self._worker = None
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []

    async def take(
        self, model: str, limits: RateLimits, *, requests: int, tokens: int, slots: int, correction: int
    ) -> Grant:
        request = {
            "model": model,
            "limits": {"rpm": limits.rpm, "tpm": limits.tpm, "concurrency": limits.concurrency},
            "requests": requests,
            "tokens": tokens,
            "slots": slots,
            "correction": correction,
            "owner": self.owner,
            "now": time.time(),
            "lease": self.lease,
        }
        async with asyncio.timeout(CALL_TIMEOUT):
            answer = await self.handle.execute_update(TAKE_UPDATE, request, result_type=dict)
        grant = Grant(**answer)
        if grant.slots:
            self.held[model] = self.held.get(model, 0) + grant.slots
        return grant

    def give_back(self, model: str, slots: int) -> None:
        self.held[model] = max(0, self.held.get(model, 0) - slots)
        self._give_back[model] = self._give_back.get(model, 0) + slots
        self._wake.set()

    def rate_limited(self, model: str, retry_after: float | None) -> None:
        self._rate_limited.append({"model": model, "retry_after": retry_after})
        self._wake.set()

    async def _note_loop(self) -> None:
        """Send what piled up (slots back, 429s), and renew this worker's leases while it holds
        slots, in one Update per batch."""
        renew_every = self.lease / 3
        last_renewal = time.monotonic()
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(renew_every):
                    await self._wake.wait()
            self._wake.clear()
            renew = any(self.held.values()) and time.monotonic() - last_renewal >= renew_every / 2
            if not (self._give_back or self._rate_limited or renew):
                continue
            batch = {
                "owner": self.owner,
                "now": time.time(),
                "lease": self.lease,
                "give_back": self._give_back,
                "rate_limited": self._rate_limited,
                "renew": renew,
            }
            self._give_back, self._rate_limited = {}, []
            if renew:
                last_renewal = time.monotonic()
            try:
                async with asyncio.timeout(CALL_TIMEOUT):
                    await self.handle.execute_update(NOTE_UPDATE, batch)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # lost: slots come back when their lease expires
                logging.getLogger("bandmaster.temporal.limits").warning(
                    "cannot report to the limiter workflow: %s", exc
                )
