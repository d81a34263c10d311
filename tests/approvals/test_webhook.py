"""bm.Webhook against a real receiver process on 127.0.0.1 that verifies each request with
the shipped ``verify_signature``; retries, a receiver that stays down, and the signature
checks themselves."""

from __future__ import annotations

import json
import time

import pytest
from tests.approvals.conftest import SECRET, Receiver
from tests.conftest import StatusWaiter
from tests.extras import needs

import bandmaster as bm
from bandmaster.approvals import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign, verify_signature

webhook = needs("approvals", "httpx2")

FAST = bm.Retry(attempts=3, initial=0.05, multiplier=2.0, max_delay=0.2)


@bm.workflow
async def wf_notified(url: str, timeout: float, secret: str = SECRET) -> bm.Decision:
    hook = bm.Webhook(url, secret=secret, timeout=2.0, retry=FAST)
    return await bm.approval(
        "phi_review", {"ticket": "T-9", "redacted": "Patient <PERSON> asks"}, timeout=timeout,
        default="approve", notify=[hook], approvers=["alice"],
    )  # fmt: skip


@webhook
async def test_receiver_verifies_the_signed_slack_message(
    engine: bm.Engine, receiver: Receiver, until_status: StatusWaiter
) -> None:
    handle = await engine.start(wf_notified, receiver.url, 30.0)
    await until_status(engine, handle.id, "waiting")
    [request] = receiver.requests()
    assert request["verified"], request["error"]
    body = json.loads(request["body"])
    assert "phi_review" in body["text"]
    assert handle.id in body["text"]
    assert body["blocks"][0]["type"] == "header"
    assert any(f"bandmaster approvals approve {handle.id}" in json.dumps(b) for b in body["blocks"])
    assert body["bandmaster"]["payload"] == {"ticket": "T-9", "redacted": "Patient <PERSON> asks"}
    assert body["bandmaster"]["approvers"] == ["alice"]
    notify = next(s for s in (await handle.describe()).steps if s.kind == "notify")
    assert request["headers"]["Idempotency-Key"] == f"{handle.id}:{notify.seq}"
    assert notify.output == {"delivered": True, "attempts": 1, "status_code": 200}
    assert notify.meta["target"] == receiver.url.rsplit("/hooks", 1)[0]  # host only, no path

    await engine.approvals.approve(handle.id, by="alice")
    assert (await handle.result(timeout=15)).by == "alice"


@webhook
async def test_a_receiver_that_recovers_gets_the_same_idempotency_key(
    engine: bm.Engine, flaky_receiver: Receiver, until_status: StatusWaiter
) -> None:
    handle = await engine.start(wf_notified, flaky_receiver.url, 30.0)
    await until_status(engine, handle.id, "waiting")
    requests = flaky_receiver.requests()
    assert [r["answered"] for r in requests] == [503, 503, 200]
    assert all(r["verified"] for r in requests)
    assert len({r["headers"]["Idempotency-Key"] for r in requests}) == 1
    assert [r["headers"]["X-Bandmaster-Attempt"] for r in requests] == ["1", "2", "3"]
    notify = next(s for s in (await handle.describe()).steps if s.kind == "notify")
    assert notify.output["attempts"] == 3
    assert notify.output["delivered"] is True
    assert len(notify.meta["attempt_errors"]) == 2
    assert "(503)" in notify.meta["attempt_errors"][0]
    await handle.cancel()


@webhook
async def test_receiver_down_retries_are_recorded_and_the_default_still_applies(
    engine: bm.Engine, dead_url: str
) -> None:
    started = time.monotonic()
    handle = await engine.start(wf_notified, dead_url, 0.5)
    decision = await handle.result(timeout=15)
    assert (decision.action, decision.timed_out) == ("approve", True)
    assert time.monotonic() - started < 10
    notify = next(s for s in (await handle.describe()).steps if s.kind == "notify")
    assert notify.status == "completed"  # a failed delivery never fails the run
    assert notify.output["delivered"] is False
    assert notify.output["attempts"] == 3
    assert "ProviderUnavailable" in notify.output["error"]
    assert len(notify.meta["attempt_errors"]) == 3


@webhook
async def test_a_wrong_secret_is_refused_by_the_receiver_and_not_retried(
    engine: bm.Engine, receiver: Receiver, until_status: StatusWaiter
) -> None:
    handle = await engine.start(wf_notified, receiver.url, 30.0, "another-secret-of-enough-length")
    await until_status(engine, handle.id, "waiting")
    [request] = receiver.requests()
    assert (request["verified"], request["answered"]) == (False, 401)
    notify = next(s for s in (await handle.describe()).steps if s.kind == "notify")
    assert notify.output["delivered"] is False
    assert "AuthenticationFailed" in notify.output["error"]
    await handle.cancel()


def test_verify_signature_accepts_a_valid_request_and_says_why_others_fail() -> None:
    body = b'{"text": "hello"}'
    now = 1_800_000_000
    headers = {TIMESTAMP_HEADER.lower(): str(now), SIGNATURE_HEADER: sign(SECRET, now, body)}
    verify_signature(SECRET, headers, body, now=now + 10)
    verify_signature(SECRET, headers, body.decode(), now=now - 10)
    with pytest.raises(bm.InvalidSignature, match="does not match"):
        verify_signature(SECRET, headers, b'{"text": "hellO"}', now=now)
    with pytest.raises(bm.InvalidSignature, match="does not match"):
        verify_signature("not-the-secret-at-all", headers, body, now=now)
    with pytest.raises(bm.InvalidSignature, match="outside the 300s window"):
        verify_signature(SECRET, headers, body, now=now + 301)
    with pytest.raises(bm.InvalidSignature, match="missing"):
        verify_signature(SECRET, {TIMESTAMP_HEADER: str(now)}, body, now=now)
    with pytest.raises(bm.InvalidSignature, match="not a Unix time"):
        verify_signature(SECRET, {**headers, TIMESTAMP_HEADER.lower(): "yesterday"}, body, now=now)
    # Signed timestamp: moving the header to a fresh time breaks the signature.
    moved = {TIMESTAMP_HEADER: str(now + 1000), SIGNATURE_HEADER: headers[SIGNATURE_HEADER]}
    with pytest.raises(bm.InvalidSignature, match="does not match"):
        verify_signature(SECRET, moved, body, now=now + 1000)


def test_signature_format_is_hmac_sha256_of_version_timestamp_body() -> None:
    import hashlib
    import hmac

    expected = hmac.new(SECRET.encode(), b"v1:1700000000:{}", hashlib.sha256).hexdigest()
    assert sign(SECRET, 1_700_000_000, "{}") == f"v1={expected}"


@webhook
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"url": "ftp://host/x", "secret": SECRET}, "give an http:// or https:// URL"),
        ({"url": "http://127.0.0.1/x", "secret": "short"}, "at least 16 characters"),
        ({"url": "http://127.0.0.1/x", "secret": SECRET, "timeout": 0}, "seconds per attempt"),
    ],
)
def test_webhook_rejects_bad_configuration(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(bm.InvalidInput, match=message):
        bm.Webhook(**kwargs)  # type: ignore[arg-type]


@webhook
def test_the_secret_is_not_in_the_repr() -> None:
    assert SECRET not in repr(bm.Webhook("https://hooks.example.org/T0/B0/xyz", secret=SECRET))
