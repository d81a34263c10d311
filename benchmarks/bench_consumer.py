"""Runs started per second from a real RabbitMQ broker (``bandmaster consume``'s Consumer).

    .venv/bin/python benchmarks/bench_consumer.py [--messages 5000] [--prefetch 100]

Starts ``rabbitmq-server`` (the Debian package, installed by ``scripts/bootstrap.sh --dev``)
on free ports, publishes ``--messages`` persistent JSON messages, and drains the queue twice,
in one process and one run so the ratio compares like with like:

1. baseline: plain aio-pika, ``consume`` + ``json.loads`` + ``ack`` per message, no bandmaster;
2. bandmaster: ``bandmaster.triggers._amqp.Consumer`` into a ``bm.Engine(worker=False)`` on a
   fresh SQLite journal: decode, validate the input, insert the run (group commit), then ack.

Each phase's clock runs from the first delivery to the last acknowledgement (publishing is
not timed). Afterwards the journal must hold one run per message. Measurements, not tests:
exits 0 whatever the numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repo root, for tests.triggers

import aio_pika
from aio_pika.abc import AbstractIncomingMessage
from tests.triggers.rabbit import Rabbit, rabbit_missing, start_rabbit

import bandmaster as bm
from bandmaster.triggers import Consumer


@bm.workflow
async def triage(ticket: dict[str, str]) -> str:
    return ticket["text"]


async def publish(rabbit: Rabbit, queue: str, count: int) -> None:
    connection = await aio_pika.connect(rabbit.url)
    async with connection:
        channel = await connection.channel()
        await channel.declare_queue(queue, durable=True)
        for i in range(count):
            body = json.dumps({"id": f"T-{i}", "text": f"ticket {i}: my card was charged twice"}).encode()
            await channel.default_exchange.publish(
                aio_pika.Message(
                    body, message_id=f"{queue}-{i}", delivery_mode=aio_pika.DeliveryMode.PERSISTENT
                ),
                routing_key=queue,
            )


async def baseline(rabbit: Rabbit, queue: str, count: int, prefetch: int) -> float:
    done = asyncio.Event()
    seen = 0
    first: list[float] = []

    async def handle(message: AbstractIncomingMessage) -> None:
        nonlocal seen
        if not first:
            first.append(time.perf_counter())
        json.loads(message.body)
        await message.ack()
        seen += 1
        if seen == count:
            done.set()

    connection = await aio_pika.connect(rabbit.url)
    async with connection:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=prefetch)
        source = await channel.declare_queue(queue, durable=True)
        await source.consume(handle)
        await done.wait()
    return count / (time.perf_counter() - first[0])


class TimedConsumer(Consumer):
    """The consumer, noting when the first run started and when the last message was handled."""

    expected: int = 0
    first: float = 0.0

    async def handle(self, message: AbstractIncomingMessage) -> None:
        await super().handle(message)
        if not self.first:
            self.first = time.perf_counter()
        if self.started + self.dead == self.expected:
            self.finished.set()

    @property
    def finished(self) -> asyncio.Event:
        if not hasattr(self, "_finished"):
            self._finished = asyncio.Event()
        return self._finished


async def with_bandmaster(rabbit: Rabbit, queue: str, count: int, prefetch: int, db: Path) -> float:
    async with bm.Engine(db, workflows=[triage], worker=False) as engine:
        consumer = TimedConsumer(engine, rabbit.url, queue, "triage", prefetch=prefetch)
        consumer.expected = count
        finished = consumer.finished
        task = asyncio.create_task(consumer.run())
        await finished.wait()
        elapsed = time.perf_counter() - consumer.first  # from the first run started, so count - 1 below
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    with sqlite3.connect(db) as conn:
        stored = conn.execute("SELECT count(*) FROM runs").fetchone()[0]
    assert stored == count, f"{stored} runs for {count} messages"
    return (count - 1) / elapsed


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--prefetch", type=int, default=100)
    args = parser.parse_args()
    missing = rabbit_missing()
    if missing is not None:
        print(f"skipped: {missing}")
        return
    with tempfile.TemporaryDirectory(prefix="bench-consumer-") as tmp:
        rabbit = start_rabbit(Path(tmp) / "rabbit")
        try:
            await publish(rabbit, "plain", args.messages)
            plain = await baseline(rabbit, "plain", args.messages, args.prefetch)
            await publish(rabbit, "runs", args.messages)
            runs = await with_bandmaster(rabbit, "runs", args.messages, args.prefetch, Path(tmp) / "j.db")
        finally:
            rabbit.stop()
    print(f"messages: {args.messages}, prefetch {args.prefetch}")
    print(f"baseline (aio-pika consume + ack): {plain:,.0f} msgs/s")
    print(
        f"bandmaster consume (run started, then ack): {runs:,.0f} runs/s ({runs / plain:.2f}x the baseline)"
    )
    print(
        json.dumps(
            {"baseline_msgs_per_s": round(plain), "runs_per_s": round(runs), "ratio": round(runs / plain, 3)}
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
