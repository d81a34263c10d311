"""``bandmaster consume`` against a real rabbitmq-server: one run per message, redeliveries
and a SIGKILLed consumer starting no second run and losing none, poison messages dead-lettered
with their reason."""

from __future__ import annotations

import json
import signal
import sqlite3
from pathlib import Path

import pytest
from tests.e2e.harness import WorkerProc, Workers, cli, wait_until

from .rabbit import Rabbit

aio_pika = pytest.importorskip("aio_pika", reason="needs bandmaster[amqp]")

WF_HOOKS = Path(__file__).with_name("wf_hooks.py")


def run_ids(db: Path) -> list[str]:
    if not db.exists():
        return []
    with sqlite3.connect(db, timeout=10) as conn:
        return [r[0] for r in conn.execute("SELECT id FROM runs WHERE workflow = 'triage'")]


async def publish(rabbit: Rabbit, queue: str, messages: list[tuple[str | None, bytes]]) -> None:
    connection = await aio_pika.connect(rabbit.url)
    async with connection:
        channel = await connection.channel()
        await channel.declare_queue(queue, durable=True)
        for message_id, body in messages:
            await channel.default_exchange.publish(
                aio_pika.Message(body, message_id=message_id, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                routing_key=queue,
            )


def ticket(i: int) -> bytes:
    return json.dumps({"id": f"T-{i}", "text": f"ticket number {i}"}).encode()


def start_consumer(workers: Workers, rabbit: Rabbit, queue: str, *extra: str) -> WorkerProc:
    proc = workers.spawn(
        "consume",
        rabbit.url,
        str(WF_HOOKS),
        "--queue",
        queue,
        "--workflow",
        "triage",
        "--db",
        str(workers.db),
        *extra,
    )
    return proc


async def wait_consuming(proc: WorkerProc) -> None:
    await wait_until(
        lambda: "consuming" in proc.output(), timeout=30, what="the consumer to start", watch=(proc,)
    )


@pytest.fixture
def workers(tmp_path: Path) -> Workers:
    return Workers(tmp_path, tmp_path / "journal.db", tmp_path / "effects.log")


async def test_each_message_starts_one_run_and_poison_goes_to_the_dead_letter_queue(
    rabbit: Rabbit, workers: Workers
) -> None:
    queue = "tickets-basic"
    good = [(f"m-{i}", ticket(i)) for i in range(20)]
    redelivered = [("m-3", ticket(3))]  # the same message again: no second run
    poison = [
        ("bad-json", b"{not json"),
        ("bad-input", json.dumps({"id": "T-x", "text": ""}).encode()),
        ("bad/id", ticket(99)),
    ]
    await publish(rabbit, queue, good + redelivered + poison)
    try:
        consumer = start_consumer(workers, rabbit, queue)
        await wait_consuming(consumer)
        await wait_until(
            lambda: rabbit.queue_depth(queue) == 0 and rabbit.queue_depth(f"{queue}.dead") == 3,
            timeout=30,
            what="the queue to drain",
            watch=(consumer,),
            interval=0.3,
        )
        consumer.send(signal.SIGTERM)
        consumer.proc.wait(timeout=30)
        assert "21 messages started runs, 3 dead-lettered" in consumer.output()
    finally:
        workers.cleanup()
    assert sorted(run_ids(workers.db)) == sorted(m for m, _ in good)
    connection = await aio_pika.connect(rabbit.url)
    async with connection:
        channel = await connection.channel()
        dead = await channel.declare_queue(f"{queue}.dead", durable=True)
        reasons = {}
        for _ in range(3):
            message = await dead.get(timeout=5)
            assert message is not None
            reasons[message.message_id] = str(message.headers["x-bandmaster-reason"])
            await message.ack()
    assert "not JSON" in reasons["bad-json"]
    assert "cannot start a run of workflow 'triage'" in reasons["bad-input"]
    assert "text" in reasons["bad-input"]  # the field that failed validation
    assert "run id 'bad/id'" in reasons["bad/id"]


async def test_a_sigkilled_consumer_loses_no_message_and_starts_no_run_twice(
    rabbit: Rabbit, workers: Workers
) -> None:
    queue, count = "tickets-crash", 400
    await publish(rabbit, queue, [(f"c-{i}", ticket(i)) for i in range(count)])
    try:
        first = start_consumer(workers, rabbit, queue, "--prefetch", "20")
        await wait_consuming(first)
        await wait_until(lambda: len(run_ids(workers.db)) >= 50, timeout=60, what="50 runs", watch=(first,))
        first.kill()  # SIGKILL mid-stream: up to 20 messages in flight, unacknowledged
        killed_at = len(run_ids(workers.db))
        assert killed_at < count, "the consumer finished before it was killed; publish more"
        second = start_consumer(workers, rabbit, queue, "--prefetch", "20")
        await wait_consuming(second)
        await wait_until(
            lambda: len(run_ids(workers.db)) >= count and rabbit.queue_depth(queue) == 0,
            timeout=120,
            what=f"{count} runs",
            watch=(second,),
            interval=0.3,
        )
    finally:
        workers.cleanup()
    ids = run_ids(workers.db)
    assert len(ids) == count
    assert sorted(ids) == sorted(f"c-{i}" for i in range(count))
    assert rabbit.queue_depth(f"{queue}.dead") == 0


def test_consume_says_what_is_wrong_before_touching_a_message(tmp_path: Path) -> None:
    unknown = cli(
        "consume",
        "amqp://guest:guest@127.0.0.1:1/",
        WF_HOOKS,
        "--queue",
        "q",
        "--workflow",
        "nope",
        cwd=tmp_path,
    )
    assert unknown.returncode == 2
    assert "no workflow 'nope' to consume into (known: inbox, nightly, notified, triage)" in unknown.stderr
    unreachable = cli(
        "consume",
        "amqp://guest:secret-pw@127.0.0.1:1/",
        WF_HOOKS,
        "--queue",
        "q",
        "--workflow",
        "triage",
        cwd=tmp_path,
    )
    assert unreachable.returncode == 1
    assert "error: cannot reach the broker" in unreachable.stderr
    assert "secret-pw" not in unreachable.stderr
