"""``bandmaster consume``: start a run for every message of a RabbitMQ queue (aio-pika).

A message is acknowledged only once its run is in the journal (``start`` returns after the
commit), and the message id is the run id, so a message redelivered after a crash (the
broker requeues what was not acknowledged) finds its run and starts no second one. A message
without a ``message_id`` gets the SHA-256 of its body: a redelivery has the same body.
The channel's prefetch bounds the messages in flight: backpressure on the broker, not memory.
Poison messages (not JSON, an input the workflow refuses, an id that is no run id) go to the
dead-letter queue with the reason in the ``x-bandmaster-reason`` header, then are acknowledged.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from bandmaster.engine import Workflow, check_run_id
from bandmaster.errors import BandmasterError, InvalidInput, UsageError, WorkflowNotFound

try:
    import aio_pika
    from aio_pika.abc import AbstractIncomingMessage
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError("bandmaster consume needs aio-pika: pip install 'bandmaster[amqp]'") from exc

log = logging.getLogger("bandmaster.consume")
REASON_HEADER = "x-bandmaster-reason"
RETRY_DELAY = 1.0  # seconds before a message whose start failed (journal down) is requeued


class Starter(Protocol):
    """What the consumer needs of an engine: ``bm.Engine`` and ``bm.TemporalEngine`` both."""

    @property
    def workflows(self) -> Mapping[str, Workflow[..., Any]]: ...

    async def start(
        self, workflow: Workflow[..., Any], /, *args: Any, run_id: str | None = None, **kwargs: Any
    ) -> Any: ...


class Poison(Exception):
    """A message that can never start a run; its text is the reason."""


@dataclass
class Consumer:
    """Consume ``queue`` at ``url`` into runs of ``workflow``; ``dead_letter`` defaults to
    ``{queue}.dead``. Both queues are declared durable."""

    engine: Starter
    url: str
    queue: str
    workflow: str
    prefetch: int = 100
    dead_letter: str | None = None
    started: int = 0
    dead: int = 0
    _channel: Any = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.prefetch < 1:
            raise UsageError(f"prefetch {self.prefetch}: at least 1 message in flight")
        if self.workflow not in self.engine.workflows:
            raise WorkflowNotFound(
                f"no workflow {self.workflow!r} to consume into (known: "
                f"{', '.join(sorted(self.engine.workflows)) or 'none'}); pass the module that defines it"
            )
        self.dead_letter = self.dead_letter or f"{self.queue}.dead"

    async def run(self, ready: asyncio.Event | None = None) -> None:
        """Consume until cancelled."""
        connection = await aio_pika.connect_robust(self.url)
        async with connection:
            channel = await connection.channel(publisher_confirms=True)
            await channel.set_qos(prefetch_count=self.prefetch)
            queue = await channel.declare_queue(self.queue, durable=True)
            await channel.declare_queue(self.dead_letter, durable=True)
            self._channel = channel
            await queue.consume(self.handle)
            if ready is not None:
                ready.set()
            await asyncio.Future()  # until cancelled

    async def handle(self, message: AbstractIncomingMessage) -> None:
        try:
            run_id, args, kwargs = self.decode(message)
            await self.engine.start(self.engine.workflows[self.workflow], *args, run_id=run_id, **kwargs)
        except Poison as reason:
            await self._bury(message, str(reason))
            return
        except InvalidInput as exc:  # the input fails validation, or the id is another workflow's run
            await self._bury(message, f"the message cannot start a run of workflow {self.workflow!r}: {exc}")
            return
        except (BandmasterError, OSError) as exc:  # the journal or the cluster is down: later
            log.warning("message %s: could not start its run (%s); requeued", message.message_id, exc)
            await asyncio.sleep(RETRY_DELAY)
            await message.nack(requeue=True)
            return
        await message.ack()  # only now: the run is durably started
        self.started += 1

    def decode(self, message: AbstractIncomingMessage) -> tuple[str, tuple[Any, ...], dict[str, Any]]:
        run_id = message.message_id or "amqp-" + hashlib.sha256(message.body).hexdigest()[:40]
        try:
            check_run_id(run_id)
        except InvalidInput as exc:
            raise Poison(str(exc)) from None
        try:
            value = json.loads(message.body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise Poison(f"the body is not JSON: {exc}") from None
        try:  # the input is validated once, by start
            args, kwargs = self.engine.workflows[self.workflow].input_from_json(value)
        except InvalidInput as exc:
            raise Poison(f"the message cannot start a run of workflow {self.workflow!r}: {exc}") from None
        return run_id, args, kwargs

    async def _bury(self, message: AbstractIncomingMessage, reason: str) -> None:
        """Publish to the dead-letter queue (confirmed by the broker), then acknowledge."""
        headers = dict(message.headers or {})
        headers[REASON_HEADER] = reason[:1000]
        await self._channel.default_exchange.publish(
            aio_pika.Message(
                message.body,
                headers=headers,
                message_id=message.message_id,
                content_type=message.content_type,
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            ),
            routing_key=self.dead_letter or "",
        )
        await message.ack()
        self.dead += 1
        log.warning("message %s dead-lettered: %s", message.message_id, reason)
