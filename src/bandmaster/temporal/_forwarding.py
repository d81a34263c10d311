"""Sending starts and signals to Temporal, directly or from the outbox, and the task that
forwards the outbox (oldest first) whenever the frontend answers.

A start is sent with ``USE_EXISTING``/``REJECT_DUPLICATE`` on the run id, and a signal with a
request id of its own that Temporal deduplicates, so an entry sent twice (the client died
between sending it and deleting it) changes nothing the second time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.workflowservice.v1 import SignalWorkflowExecutionRequest
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from bandmaster.temporal._outbox import Outbox, OutboxEntry
from bandmaster.temporal._terms import TERMS_MEMO, task_priority, terms_from_data
from bandmaster.temporal._versions import memo_version, version_queue

log = logging.getLogger("bandmaster.temporal.outbox")

SEND_TIMEOUT = 5.0
"""Seconds one send may take before the frontend counts as unreachable (the SDK's own retries
of an unavailable server would otherwise hold a start for ten seconds or more)."""
BACKOFF = (0.2, 5.0)
"""The forwarder's wait between attempts while the frontend is unreachable: first, most."""
_UNREACHABLE = {RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED}


def unreachable(exc: BaseException) -> bool:
    """The frontend did not answer (as opposed to answering no)."""
    if isinstance(exc, RPCError):
        return exc.status in _UNREACHABLE
    # The SDK's core reports a failed connection as a RuntimeError; our own bound, TimeoutError.
    return isinstance(exc, TimeoutError | RuntimeError | ConnectionError)


async def send_start(
    client: Client, task_queue: str, workflow: str, payload: Any, run_id: str, memo: dict[str, Any] | None
) -> None:
    """Start run ``run_id``; an existing run of that id (running or finished) is left as it is.
    Its task priority and fairness key come from the terms in its memo, and its task queue from
    the version there (``temporal/_versions.py``)."""
    terms = terms_from_data((memo or {}).get(TERMS_MEMO))
    with contextlib.suppress(WorkflowAlreadyStartedError):  # finished run of this id: that is it
        async with asyncio.timeout(SEND_TIMEOUT):
            await client.start_workflow(
                workflow,
                payload,
                id=run_id,
                task_queue=version_queue(task_queue, workflow, memo_version(memo)),
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                memo=memo or None,
                priority=task_priority(terms),
            )


async def send_signal(client: Client, run_id: str, name: str, payload: Any, request_id: str) -> None:
    """Signal run ``run_id``; the same ``request_id`` twice is delivered once."""
    request = SignalWorkflowExecutionRequest(
        namespace=client.namespace,
        workflow_execution=WorkflowExecution(workflow_id=run_id),
        signal_name=name,
        identity=client.identity,
        request_id=request_id,
    )
    request.input.payloads.extend(await client.data_converter.encode([payload]))
    async with asyncio.timeout(SEND_TIMEOUT):
        await client.workflow_service.signal_workflow_execution(
            request, retry=True, timeout=timedelta(seconds=SEND_TIMEOUT)
        )


class Forwarder:
    """Forwards the outbox while the engine is open. ``down`` is True from the first send that
    found the frontend unreachable until one gets through: meanwhile every start and signal
    goes to the outbox, behind the entries already there."""

    def __init__(self, outbox: Outbox, connect: Callable[[], Awaitable[Client]], task_queue: str) -> None:
        self.outbox = outbox
        self.connect = connect
        self.task_queue = task_queue
        self.down = False
        self._wake = asyncio.Event()
        self._empty = asyncio.Event()  # set while nothing waits to be forwarded
        self._task: asyncio.Task[None] | None = None

    def queueing(self) -> bool:
        """Whether starts and signals go to the outbox now: the frontend is unreachable, or
        entries are still waiting there (nothing overtakes them)."""
        return self.down or self.outbox.has_pending()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="bandmaster-outbox")

    def wake(self) -> None:
        """An entry was put: forward it as soon as the frontend answers."""
        self._empty.clear()
        self._wake.set()

    async def drain(self, timeout: float) -> int:
        """Wait up to ``timeout`` seconds for the outbox to be forwarded; the entries left."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._empty.wait()
        counts = self.outbox.counts()
        return counts["pending_start"] + counts["pending_signal"]

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        delay = BACKOFF[0]
        while True:
            entry = self.outbox.oldest()
            if entry is None:
                self._empty.set()
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(1.0):
                        await self._wake.wait()
                continue
            try:
                await self._send(await self.connect(), entry)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                reason = f"{type(exc).__name__}: {exc}"
                if not unreachable(exc):
                    log.warning("outbox: Temporal refused %s of run %s: %s", entry.kind, entry.run_id, reason)
                    self.outbox.refused(entry, reason)
                    continue
                self.down = True
                self.outbox.try_later(entry, reason)
                await asyncio.sleep(delay)
                delay = min(delay * 2, BACKOFF[1])
                continue
            self.outbox.sent(entry)
            self.down, delay = False, BACKOFF[0]

    async def _send(self, client: Client, entry: OutboxEntry) -> None:
        if entry.kind == "start":
            await send_start(client, self.task_queue, entry.name, entry.payload, entry.run_id, entry.memo)
        else:
            await send_signal(client, entry.run_id, entry.name, entry.payload, entry.request_id)
