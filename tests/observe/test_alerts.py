"""Alerts reach a real webhook receiver process, signed: a breaker that opens when a scripted
model goes down under load (from a real ``bandmaster worker``), and closes when it is back;
a fallback rate over its threshold; runs that no worker takes; an approval near its deadline.
Each transition is sent once, however many calls see it."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("httpx2", reason="needs bandmaster[approvals]: pip install 'bandmaster[approvals]'")

from tests.approvals.conftest import SECRET, Receiver, start_receiver
from tests.models.helpers import bandmaster_exe, subprocess_env

import bandmaster as bm
from bandmaster.approvals._webhook import Webhook
from bandmaster.engine.hooks import StepFinished, StepStarted
from bandmaster.observe._alerts import Alerts

from .conftest import HERE
from .test_prometheus import process, wait_for
from .test_tracing import _registry

DASHBOARD = "http://dashboard.test"


@pytest.fixture
def alert_receiver(tmp_path: Path) -> Iterator[Receiver]:
    started = start_receiver(tmp_path)
    try:
        yield started
    finally:
        started.stop()


def alerts(receiver: Receiver) -> list[dict[str, Any]]:
    """The alerts the receiver got, each with whether its signature held."""
    found = []
    for request in receiver.requests():
        body = json.loads(request["body"])
        found.append({**body["bandmaster"], "verified": request["verified"], "text": body["text"]})
    return found


@pytest.mark.e2e
async def test_a_breaker_alert_reaches_the_receiver_when_a_model_goes_down(
    tmp_path: Path, alert_receiver: Receiver
) -> None:
    db, log, down = tmp_path / "journal.db", tmp_path / "worker.log", tmp_path / "weather-down"
    env = subprocess_env(BANDMASTER_ALERT_SECRET=SECRET, WEATHER_DOWN_FLAG=str(down))
    args = [bandmaster_exe(), "worker", str(HERE / "wf_alerting.py"), "--db", str(db), "--poll", "0.05"]
    args += ["--alert-webhook", alert_receiver.url, "--dashboard-url", DASHBOARD, "--log-json"]
    with process(args, log, env=env, cwd=tmp_path) as worker:
        wait_for("the worker", lambda: "serving" in log.read_text(), 30, log)
        async with bm.Engine(db, worker=False, poll_interval=0.05) as client:

            async def load(n: int) -> list[str]:
                handles: list[bm.RunHandle[Any]] = [
                    await client.start("forecast", f"city {i}") for i in range(n)
                ]
                return [await h.result(timeout=30) for h in handles]

            assert set(await load(20)) == {"sunny"}
            down.touch()  # the weather model goes down under load
            assert set(await load(30)) == {"cloudy"}
            opened = wait_for(
                "the breaker alert",
                lambda: [a for a in alerts(alert_receiver) if a["alert"] == "breaker_open"],
                30,
                log,
            )
            down.unlink()  # back up: after the reset, a trial call closes the breaker

            async def closed() -> list[dict[str, Any]]:
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline:
                    await load(3)
                    found = [a for a in alerts(alert_receiver) if a["status"] == "resolved"]
                    if found:
                        return found
                    await asyncio.sleep(0.2)
                raise AssertionError(
                    f"no resolved alert: {alerts(alert_receiver)}\n{log.read_text()[-2000:]}"
                )

            resolved = await closed()
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0, log.read_text()

    [alert] = opened  # one alert for the transition, not one per call that found it open
    assert alert["verified"] is True
    assert (alert["status"], alert["subject"]) == ("firing", "weather")
    assert alert["link"] == f"{DASHBOARD}/ui/models?model=weather"
    assert "circuit breaker of model weather opened" in alert["text"]
    assert [(a["alert"], a["subject"], a["verified"]) for a in resolved] == [
        ("breaker_open", "weather", True)
    ]
    breaker_alerts = [a["status"] for a in alerts(alert_receiver) if a["alert"] == "breaker_open"]
    assert breaker_alerts == ["firing", "resolved"]
    # The worker logged the alert too, as a JSON line (--log-json).
    logged = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    assert {
        "level": "warning",
        "logger": "bandmaster.alerts",
        "message": "alert breaker_open firing: circuit breaker of model weather opened",
    }.items() <= next(r for r in logged if r["logger"] == "bandmaster.alerts").items()


async def test_fallback_rate_alert_fires_once(db_path: Path, alert_receiver: Receiver) -> None:
    @bm.workflow
    async def routed(text: str) -> str:
        response = await bm.call_model("intent", text, fallback=["backup"], retry=bm.Retry(attempts=1))
        return str(response.output)

    hook = Alerts(Webhook(alert_receiver.url, secret=SECRET), fallback_rate=0.5, min_calls=3)
    async with bm.Engine(db_path, workflows=[routed], registry=_registry(), hooks=[hook]) as engine:
        for _ in range(6):  # the primary is down: every call falls back
            await (await engine.start(routed, "text")).result(timeout=20)
    # Closing the engine flushed the outbox.
    [alert] = alerts(alert_receiver)
    assert (alert["alert"], alert["status"], alert["subject"]) == ("fallback_rate", "firing", "routed/intent")
    assert alert["verified"] is True
    assert "100% of 3 model calls" in alert["summary"]


async def test_runs_no_worker_takes_and_approvals_near_their_deadline(
    db_path: Path, alert_receiver: Receiver
) -> None:
    @bm.workflow
    async def reviewed(text: str) -> str:
        decision = await bm.approval("release", {"text": text}, timeout=600, default="approve")
        return decision.action

    @bm.workflow
    async def orphan(text: str) -> str:
        return text

    async with bm.Engine(db_path, workflows=[reviewed]) as engine:
        handle = await engine.start(reviewed, "v2")
        for _ in range(400):  # the run reaches its approval and waits
            if await engine.approvals.list(run_id=handle.id):
                break
            await asyncio.sleep(0.05)
    orphan_v1 = bm.workflow(name="triage", version="1")(orphan.fn)
    async with bm.Engine(db_path, workflows=[orphan, orphan_v1], worker=False) as client:
        await client.start(orphan, "nobody serves me")
        await client.start(orphan_v1, "nor my version")

    later = time.time() + 120  # two minutes on: the orphan waited, the approval nears its deadline
    hook = Alerts(
        Webhook(alert_receiver.url, secret=SECRET),
        dashboard_url=DASHBOARD,
        queue_wait=60,
        approval_warning=600,
        clock=lambda: later,
    )
    hook.check_journal(db_path)
    hook.check_journal(db_path)  # the same state again: nothing new to send
    hook.close()
    got = {(a["alert"], a["subject"]): a for a in alerts(alert_receiver)}
    assert len(alerts(alert_receiver)) == 3, alerts(alert_receiver)
    assert got["runs_waiting", "orphan"]["link"] == f"{DASHBOARD}/ui/runs?workflow=orphan&status=queued"
    versioned = got["runs_waiting", "triage@1"]  # a version with no worker is its own subject
    assert versioned["link"] == f"{DASHBOARD}/ui/runs?workflow=triage&status=queued"
    assert versioned["summary"].startswith("1 runs of triage@1 ready for over 60 s")
    assert got["approval_deadline", f"{handle.id}/release"]["link"] == f"{DASHBOARD}/ui/runs/{handle.id}"
    assert all(a["verified"] for a in got.values())


def model_step_finished(fell_back: bool) -> StepFinished:
    step = StepStarted("r1", "routed", 3, "intent", "model", 0.0)
    meta = {
        "model": "m",
        "served_by": "backup" if fell_back else "intent",
        "fallback": "backup" if fell_back else None,
    }
    return StepFinished(step, "completed", 1, 0.1, None, meta, '"ok"')


def test_fallback_rate_resolves_once_the_window_moves_past_the_fallbacks(alert_receiver: Receiver) -> None:
    now = [1000.0]
    hook = Alerts(
        Webhook(alert_receiver.url, secret=SECRET),
        fallback_rate=0.5,
        window=300,
        min_calls=3,
        clock=lambda: now[0],
    )
    for _ in range(5):  # all five fell back: one firing alert
        hook.step_finished(model_step_finished(True))
        now[0] += 1
    now[0] += 400  # the window has moved past them
    for _ in range(3):  # the primary answers again
        hook.step_finished(model_step_finished(False))
    hook.close()
    assert [(a["alert"], a["status"]) for a in alerts(alert_receiver)] == [
        ("fallback_rate", "firing"),
        ("fallback_rate", "resolved"),
    ]
    assert "0% of 3 model calls" in alerts(alert_receiver)[1]["summary"]
