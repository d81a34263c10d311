"""``bm.approval(notify=[bm.Webhook(...)])`` with the same test code on both backends, against a
real receiver process on 127.0.0.1 that verifies each signature with the shipped
``verify_signature``: signed once per attempt, retried on 503, redacted payload, the outcome in
``describe``, and a receiver that stays down never blocks the approval. On Temporal the
webhook's secret and URL never enter the history."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("temporalio", reason="the Temporal backend needs: pip install 'bandmaster[temporal]'")
pytest.importorskip("presidio_analyzer", reason="needs the 'pii' extra: pip install 'bandmaster[pii]'")
import wf_redaction as wfs
from temporal_support import EngineFactory
from test_redaction_backends import assert_no_pii, stored_text

import bandmaster as bm
from approvals.conftest import Receiver, dead_url, start_receiver  # noqa: F401  (a fixture)

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(autouse=True)
def _reset_hook() -> Iterator[None]:
    yield
    wfs.HOOK.update(url=None, retry=None)


async def notified(engine: Any, run_id: str) -> bm.StepInfo:
    """The run's notify step, once it has finished (the approval is then pending)."""
    for _ in range(400):
        info = await engine.describe(run_id)
        done = [s for s in info.steps if s.kind == "notify" and s.status != "running"]
        if done and [a for a in await engine.approvals.list() if a.run_id == run_id]:
            return done[0]
        await asyncio.sleep(0.05)
    raise AssertionError(f"no notification and pending approval for {run_id}")


def notify_step(info: bm.RunInfo) -> bm.StepInfo:
    [step] = [s for s in info.steps if s.kind == "notify"]
    return step


@pytest.fixture
def signed_receiver(tmp_path: Path) -> Iterator[Receiver]:
    started = start_receiver(tmp_path, secret=wfs.SIGNING_SECRET)
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture
def flaky_signed_receiver(tmp_path: Path) -> Iterator[Receiver]:
    started = start_receiver(tmp_path, fail_first=2, secret=wfs.SIGNING_SECRET)
    try:
        yield started
    finally:
        started.stop()


async def test_the_webhook_is_signed_redacted_and_journaled(
    make_engine: EngineFactory, signed_receiver: Receiver, tmp_path: Path
) -> None:
    wfs.HOOK["url"] = signed_receiver.url
    engine = await make_engine([wfs.announced])
    handle = await engine.start(wfs.announced, wfs.TICKET)
    notify = await notified(engine, handle.id)
    [request] = signed_receiver.requests()
    assert request["verified"], request["error"]
    headers = {k.lower(): v for k, v in request["headers"].items()}
    assert headers["idempotency-key"] == f"{handle.id}:{notify.seq}"
    body = json.loads(request["body"])
    payload = body["bandmaster"]["payload"]
    assert payload["note"] == "call <PERSON> at <PHONE_NUMBER>"
    assert "<EMAIL_ADDRESS>" in payload["ticket"]
    assert body["bandmaster"]["approvers"] == ["compliance"]
    assert "Approval needed: phi_review" in body["text"]
    assert_no_pii(request["body"])

    assert (notify.name, notify.status) == ("notify:phi_review", "completed")
    assert notify.output == {"delivered": True, "attempts": 1, "status_code": 200}
    port = signed_receiver.url.rsplit(":", 1)[1].split("/")[0]
    assert notify.meta["target"] == f"http://<IP_ADDRESS>:{port}"  # meta is redacted too (an IP)
    assert notify.meta["delivered"] is True

    await engine.approvals.approve(handle.id, by="compliance")
    assert await handle.result(timeout=60) == {"action": "approve", "by": "compliance", "timed_out": False}
    stored = await stored_text(engine, handle.id, tmp_path / "journal.db")
    assert_no_pii(stored)
    assert wfs.SIGNING_SECRET not in stored
    assert "/hooks/approvals" not in stored  # only scheme and host of the URL


async def test_a_restarting_receiver_is_retried_with_a_fresh_signature(
    make_engine: EngineFactory, flaky_signed_receiver: Receiver
) -> None:
    wfs.HOOK["url"] = flaky_signed_receiver.url
    engine = await make_engine([wfs.announced])
    handle = await engine.start(wfs.announced, wfs.TICKET)
    notify = await notified(engine, handle.id)
    requests = flaky_signed_receiver.requests()
    assert [r["answered"] for r in requests] == [503, 503, 200]
    assert all(r["verified"] for r in requests)
    attempts = [{k.lower(): v for k, v in r["headers"].items()}["x-bandmaster-attempt"] for r in requests]
    assert attempts == ["1", "2", "3"]
    keys = {{k.lower(): v for k, v in r["headers"].items()}["idempotency-key"] for r in requests}
    assert len(keys) == 1  # the same key on every retry

    assert notify.output == {"delivered": True, "attempts": 3, "status_code": 200}
    assert len(notify.meta["attempt_errors"]) == 2
    await engine.approvals.override(handle.id, by="compliance")
    assert (await handle.result(timeout=60))["action"] == "override"


async def test_a_receiver_that_stays_down_never_blocks_the_default(
    make_engine: EngineFactory,
    dead_url: str,  # noqa: F811
) -> None:
    wfs.HOOK.update(url=dead_url, retry=bm.Retry(attempts=2, initial=0.05))
    engine = await make_engine([wfs.announced])
    handle = await engine.start(wfs.announced, wfs.TICKET, 1.0)
    assert await handle.result(timeout=60) == {"action": "send", "by": None, "timed_out": True}
    notify = notify_step(await engine.describe(handle.id))
    assert notify.status == "completed"
    assert notify.output["delivered"] is False
    assert notify.output["attempts"] == 2
    assert notify.output["error"].startswith("RetriesExhausted")
