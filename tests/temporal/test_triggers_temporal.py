"""Triggers on the Temporal backend: bm.schedule as a Temporal Schedule (one workflow per
tick, pause/resume/list through TemporalSchedules), and the queue consumer starting runs
through TemporalEngine.start with the message id as the workflow id."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

pytest.importorskip("temporalio", reason="the Temporal backend needs: pip install 'bandmaster[temporal]'")
import aio_pika
from temporal_support import TemporalServer
from tests.triggers.rabbit import rabbit_missing, start_rabbit

import bandmaster as bm
from bandmaster.temporal._schedules import TemporalSchedules, temporal_cron
from bandmaster.triggers._amqp import Consumer

pytestmark = pytest.mark.timeout(120)


@bm.workflow
async def beat() -> str:
    return "beat"


@bm.workflow
async def triage_t(ticket: dict[str, str]) -> str:
    return ticket["text"]


def test_a_six_field_cron_becomes_temporals_seconds_first_form() -> None:
    assert temporal_cron("* * * * * */2") == "*/2 * * * * * *"
    assert temporal_cron("0 2 * * *") == "0 2 * * *"


async def ids_of(engine: bm.TemporalEngine, name: str) -> list[str]:
    return sorted(r.id for r in await engine.list(workflow="beat", limit=500) if r.id.startswith(name + "-"))


async def wait_for_ids(engine: bm.TemporalEngine, name: str, count: int) -> list[str]:
    for _ in range(600):
        found = await ids_of(engine, name)
        if len(found) >= count:
            return found
        await asyncio.sleep(0.05)
    raise AssertionError(f"fewer than {count} runs of schedule {name}: {found}")


async def test_a_schedule_is_a_temporal_schedule_that_two_workers_declare_once(
    temporal_server: TemporalServer,
) -> None:
    name = f"every-second-{uuid.uuid4().hex[:6]}"
    schedule = bm.Schedule(name, "* * * * * *", "beat", catchup="skip")
    queue = f"sched-{uuid.uuid4().hex[:8]}"
    one = bm.TemporalEngine(temporal_server.target, task_queue=queue, workflows=[beat], schedules=[schedule])
    two = bm.TemporalEngine(temporal_server.target, task_queue=queue, workflows=[beat], schedules=[schedule])
    async with one, two:  # the second worker updates the schedule the first created
        desk = TemporalSchedules(one)
        try:
            ids = await wait_for_ids(one, name, 3)
            # Temporal names each tick's workflow {schedule}-{tick}: one per tick, whoever hosts it.
            ticks = [datetime.fromisoformat(i.removeprefix(name + "-")) for i in ids]
            assert len(set(ticks)) == len(ticks)
            listed = {s.name: s for s in await desk.list()}
            assert listed[name].workflow == "beat"
            assert listed[name].cron == "* * * * * *"
            paused = await desk.pause(name, by="ops")
            assert paused.paused
            assert paused.changed_by == "ops"
            assert paused.next_tick is None
            paused_at = datetime.now(UTC)
            await asyncio.sleep(2.5)
            later = [datetime.fromisoformat(i.removeprefix(name + "-")) for i in await ids_of(one, name)]
            assert all(t <= paused_at for t in later), "a tick started while paused"
            resumed = await desk.resume(name, by="ops")
            assert not resumed.paused
            assert resumed.next_tick is not None
            with pytest.raises(bm.ScheduleNotFound):
                await desk.pause("no-such-schedule")
        finally:
            await one.client.get_schedule_handle(name).delete()


async def test_the_consumer_starts_runs_on_temporal_once_per_message(
    temporal_server: TemporalServer, tmp_path: Path
) -> None:
    missing = rabbit_missing()
    if missing is not None:
        pytest.skip(missing)
    rabbit = start_rabbit(tmp_path / "rabbit")
    prefix = uuid.uuid4().hex[:8]
    try:
        connection = await aio_pika.connect(rabbit.url)
        async with connection:
            channel = await connection.channel()
            await channel.declare_queue("tickets", durable=True)
            for i in [*range(10), 3]:  # message 3 delivered twice
                body = json.dumps({"id": f"T-{i}", "text": f"ticket {i}"}).encode()
                await channel.default_exchange.publish(
                    aio_pika.Message(body, message_id=f"{prefix}-{i}"), routing_key="tickets"
                )
        queue = f"consume-{prefix}"
        async with bm.TemporalEngine(
            temporal_server.target, task_queue=queue, workflows=[triage_t]
        ) as engine:
            consumer = Consumer(engine, rabbit.url, "tickets", "triage_t", prefetch=5)
            task = asyncio.create_task(consumer.run())
            try:
                for _ in range(600):
                    if consumer.started == 11:
                        break
                    await asyncio.sleep(0.05)
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
            assert consumer.started == 11
            assert rabbit.queue_depth("tickets") == 0
            runs = [r for r in await engine.list(workflow="triage_t", limit=100) if r.id.startswith(prefix)]
            assert sorted(r.id for r in runs) == sorted(f"{prefix}-{i}" for i in range(10))
            assert await engine.result(f"{prefix}-3") == "ticket 3"
    finally:
        rabbit.stop()


def test_webhooks_and_the_schedules_api_on_a_temporal_backed_server(
    temporal_server: TemporalServer, tmp_path: Path
) -> None:
    """Real processes: a Temporal worker hosting wf_hooks.py (it declares the nightly-report
    Temporal Schedule) and `bandmaster server --backend temporal --hooks`."""
    import base64
    import os
    import subprocess
    import sys
    import time

    import httpx2
    from standardwebhooks.webhooks import Webhook
    from tests.server.conftest import free_port, stop, wait_healthy

    from bandmaster.server._auth import create_token
    from bandmaster.store._sqlite import SQLiteStore

    secret = "whsec_" + base64.b64encode(b"temporal-hook-secret-0123456789").decode()
    (tmp_path / "hooks.yaml").write_text(
        "hooks:\n  tickets: {workflow: triage, secret_env: BM_T_HOOK_SECRET, input: ticket}\n"
    )
    db = tmp_path / "server.db"
    store = SQLiteStore(db)
    token = create_token(store, "ops", ["runs:read", "runs:write"]).secret
    store.close()
    queue = f"hooks-{uuid.uuid4().hex[:8]}"
    module = str(Path(__file__).resolve().parents[1] / "triggers" / "wf_hooks.py")
    where = ["--backend", "temporal", "--target", temporal_server.target, "--task-queue", queue]
    env = {**os.environ, "BM_T_HOOK_SECRET": secret}
    port = free_port()
    with open(tmp_path / "worker.log", "wb") as wlog, open(tmp_path / "server.log", "wb") as slog:
        exe = [sys.executable, "-m", "bandmaster.cli"]
        worker = subprocess.Popen(
            [*exe, "worker", module, *where], stdout=wlog, stderr=subprocess.STDOUT, env=env
        )
        serve = [*exe, "server", module, "--db", str(db), "--port", str(port)]
        serve += ["--hooks", str(tmp_path / "hooks.yaml"), *where]
        server = subprocess.Popen(serve, stdout=slog, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(server, url, tmp_path / "server.log")
        body = json.dumps({"ticket": {"id": "T-5", "text": "refund please"}}).encode()
        msg_id = f"msg_{uuid.uuid4().hex}"
        answers = []
        for _ in range(2):  # the sender retries the same delivery
            stamp = datetime.now(UTC).replace(microsecond=0)
            headers = {
                "content-type": "application/json",
                "webhook-id": msg_id,
                "webhook-timestamp": str(int(stamp.timestamp())),
                "webhook-signature": Webhook(secret).sign(msg_id, stamp, body),
            }
            answers.append(httpx2.post(f"{url}/hooks/tickets", content=body, headers=headers, timeout=30))
        assert [a.status_code for a in answers] == [202, 200], [a.text for a in answers]
        run_id = f"tickets:{msg_id}"
        auth = {"Authorization": f"Bearer {token}"}
        with httpx2.Client(base_url=url, headers=auth, timeout=30) as http:
            deadline = time.monotonic() + 60
            while (run := http.get(f"/api/v1/runs/{run_id}").json()).get("status") != "completed":
                assert time.monotonic() < deadline, run
                time.sleep(0.2)
            assert run["output"] == "T-5: refund please"
            while not (listed := http.get("/api/v1/schedules").json()):  # the worker declares it at start
                assert time.monotonic() < deadline, listed
                time.sleep(0.2)
            assert [(s["name"], s["workflow"]) for s in listed] == [("nightly-report", "nightly")]
            assert http.post("/api/v1/schedules/nightly-report/pause").json()["paused"] is True
            assert http.post("/api/v1/schedules/nightly-report/resume").json()["paused"] is False
    finally:
        stop(server)
        stop(worker)

    async def delete() -> None:
        async with bm.TemporalEngine(temporal_server.target, worker=False) as client:
            await client.client.get_schedule_handle("nightly-report").delete()

    asyncio.run(delete())
