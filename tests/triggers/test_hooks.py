"""Signed inbound webhooks on a real server process: verified by the standardwebhooks
package, replays and bad bodies refused with no run, retried deliveries starting one run;
bandmaster's own approval notifications signed in the same format; the schedules API."""

from __future__ import annotations

import base64
import json
import os
import sqlite3
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

httpx2 = pytest.importorskip("httpx2", reason="needs bandmaster[server]")
pytest.importorskip("standardwebhooks", reason="needs bandmaster[server]")
from standardwebhooks.webhooks import Webhook  # noqa: E402
from tests.server.conftest import Server, start_server, stop, wait_healthy  # noqa: E402

from bandmaster.server._auth import create_token  # noqa: E402
from bandmaster.store._sqlite import SQLiteStore  # noqa: E402

HERE = Path(__file__).parent
TICKETS_SECRET = "whsec_" + base64.b64encode(b"tickets-secret-0123456789abcdef").decode()
INBOX_SECRET = "whsec_" + base64.b64encode(b"inbox-secret-0123456789abcdefgh").decode()
ENV = {"BM_TEST_TICKETS_SECRET": TICKETS_SECRET, "BM_TEST_INBOX_SECRET": INBOX_SECRET}
HOOKS_YAML = """
hooks:
  tickets: {workflow: triage, secret_env: BM_TEST_TICKETS_SECRET, input: ticket, tolerance: 60}
  approvals-inbox: {workflow: inbox, secret_env: BM_TEST_INBOX_SECRET}
"""


@pytest.fixture(scope="module")
def hooked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("hooks")
    db = tmp / "journal.db"
    (tmp / "hooks.yaml").write_text(HOOKS_YAML)
    store = SQLiteStore(db)
    tokens = {
        name: create_token(store, name, scopes, rate_limit=1000.0).secret
        for name, scopes in {
            "reader": ["runs:read"],
            "writer": ["runs:read", "runs:write"],
            "alice": ["admin"],
        }.items()
    }
    store.close()
    saved = {k: os.environ.get(k) for k in ENV}
    os.environ.update(ENV)  # the server process reads its hook secrets from its environment
    try:
        proc, url, log = start_server(
            tmp, db, "--workers", "4", "--hooks", str(tmp / "hooks.yaml"), str(HERE / "wf_hooks.py")
        )
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    try:
        wait_healthy(proc, url, log)
        yield Server(url, db, log, tokens)
    finally:
        stop(proc)


def signed(
    body: bytes, msg_id: str, *, secret: str = TICKETS_SECRET, at: float | None = None
) -> dict[str, str]:
    stamp = datetime.fromtimestamp(int(at if at is not None else time.time()), UTC)
    return {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(stamp.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, stamp, body),
    }


def runs(server: Server, prefix: str) -> dict[str, tuple[str, str | None]]:
    with sqlite3.connect(server.db) as conn:
        rows = conn.execute("SELECT id, status, output FROM runs WHERE id LIKE ?", (prefix + "%",))
        return {r[0]: (r[1], r[2]) for r in rows}


def post(server: Server, name: str, body: bytes, headers: dict[str, str]) -> httpx2.Response:
    with server.client() as http:
        return http.post(f"/hooks/{name}", content=body, headers=headers)


def test_a_signed_delivery_starts_one_run_however_often_it_is_retried(hooked: Server) -> None:
    body = json.dumps(
        {"type": "ticket.created", "ticket": {"id": "T-7", "text": "card charged twice"}}
    ).encode()
    headers = signed(body, "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W")
    first = post(hooked, "tickets", body, headers)
    assert first.status_code == 202, first.text
    assert first.json() == {
        "run_id": "tickets:msg_2KWPBgLlAfxdpx2AI54pPJ85f4W",
        "workflow": "triage",
        "created": True,
    }
    again = post(hooked, "tickets", body, signed(body, "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"))
    assert again.status_code == 200
    assert again.json()["created"] is False
    run = hooked.wait_status("tickets:msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", {"completed"})
    assert run["output"] == "T-7: card charged twice"
    assert list(runs(hooked, "tickets:msg_2KWP")) == ["tickets:msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"]


@pytest.mark.parametrize(
    ("case", "status", "code"),
    [
        ("wrong secret", 401, "invalid_signature"),
        ("tampered body", 401, "invalid_signature"),
        ("replayed after the window", 401, "invalid_signature"),
        ("no signature", 401, "invalid_signature"),
        ("not json", 422, "invalid_input"),
        ("no ticket key", 422, "invalid_input"),
        ("ticket fails validation", 422, "invalid_input"),
        ("webhook id is no run id", 422, "invalid_input"),
    ],
)
def test_a_refused_delivery_says_why_and_starts_nothing(
    hooked: Server, case: str, status: int, code: str
) -> None:
    msg_id = "msg_" + case.replace(" ", "_")
    body = json.dumps({"ticket": {"id": "T-8", "text": "hello"}}).encode()
    headers = signed(body, msg_id)
    if case == "wrong secret":
        headers = signed(body, msg_id, secret=INBOX_SECRET)
    elif case == "tampered body":
        body = body.replace(b"hello", b"HELLO")
    elif case == "replayed after the window":
        headers = signed(body, msg_id, at=time.time() - 120)  # validly signed, 120 s old; tolerance 60
    elif case == "no signature":
        del headers["webhook-signature"]
    elif case == "not json":
        body = b"{not json"
        headers = signed(body, msg_id)
    elif case == "no ticket key":
        body = json.dumps({"text": "hello"}).encode()
        headers = signed(body, msg_id)
    elif case == "ticket fails validation":
        body = json.dumps({"ticket": {"id": "T-8", "text": ""}}).encode()
        headers = signed(body, msg_id)
    elif case == "webhook id is no run id":
        msg_id = "msg/../../etc"
        headers = signed(body, msg_id)
    answer = post(hooked, "tickets", body, headers)
    assert answer.status_code == status, answer.text
    assert answer.json()["error"]["code"] == code
    assert runs(hooked, f"tickets:{msg_id}") == {}


def test_an_unknown_hook_is_a_404_naming_the_configured_ones(hooked: Server) -> None:
    answer = post(hooked, "nope", b"{}", signed(b"{}", "msg_1"))
    assert answer.status_code == 404
    assert answer.json()["error"]["code"] == "unknown_hook"
    assert "approvals-inbox, tickets" in answer.json()["error"]["message"]


def test_approval_notifications_signed_as_standard_webhooks_start_a_run_by_hook(hooked: Server) -> None:
    """bandmaster's own Slack-compatible notification, signed in the Standard Webhooks format,
    is accepted by the standardwebhooks verifier behind /hooks/approvals-inbox."""
    with hooked.client("writer") as http:
        started = http.post(
            "/api/v1/runs",
            json={
                "workflow": "notified",
                "input": {"url": f"{hooked.url}/hooks/approvals-inbox", "secret": INBOX_SECRET},
            },
        )
    assert started.status_code == 201, started.text
    run_id = started.json()["id"]
    hooked.wait_status(run_id, {"waiting"})
    deadline = time.monotonic() + 15
    while not (found := runs(hooked, f"approvals-inbox:{run_id}:")):
        assert time.monotonic() < deadline, "the notification started no run"
        time.sleep(0.05)
    [(inbox_id, _)] = found.items()
    assert hooked.wait_status(inbox_id, {"completed"})["output"] == "review"


def test_standard_headers_verify_with_the_packages_own_verifier() -> None:
    from bandmaster.approvals._signing import standard_headers

    body = b'{"text": "Approval needed"}'
    headers = standard_headers(INBOX_SECRET, "run-1:4", body)
    assert Webhook(INBOX_SECRET).verify(body, headers) == {"text": "Approval needed"}
    assert headers["webhook-id"] == "run-1:4"


def test_schedules_api_lists_pauses_and_resumes_with_scopes(hooked: Server) -> None:
    with hooked.client("reader") as http:
        listed: list[dict[str, Any]] = http.get("/api/v1/schedules").json()
        assert [(s["name"], s["workflow"], s["paused"]) for s in listed] == [
            ("nightly-report", "nightly", False)
        ]
        refused = http.post("/api/v1/schedules/nightly-report/pause")
        assert refused.status_code == 403
    with hooked.client("writer") as http:
        paused = http.post("/api/v1/schedules/nightly-report/pause").json()
        assert paused["paused"] is True
        assert paused["next_tick"] is None
        assert paused["changed_by"] == "writer"
        resumed = http.post("/api/v1/schedules/nightly-report/resume").json()
        assert resumed["paused"] is False
        assert resumed["next_tick"].endswith("03:00:00Z")
        missing = http.get("/api/v1/schedules/nope")
        assert missing.status_code == 404
        assert missing.json()["error"]["code"] == "schedule_not_found"


def test_the_dashboard_lists_pauses_and_resumes_schedules(hooked: Server) -> None:
    """In Debian's headless Chromium: the Schedules page, its pause and resume buttons."""
    from playwright.sync_api import expect, sync_playwright
    from tests.server.test_browser import ARGS, CHROMIUM, login

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = browser.new_page(base_url=hooked.url)
            page.set_default_timeout(15_000)
            login(page, hooked.tokens["writer"], "/ui/schedules")
            row = page.locator("#schedule-nightly-report")
            expect(row).to_contain_text("nightly")
            expect(row).to_contain_text("0 3 * * *")
            expect(row).to_contain_text("active")
            page.get_by_role("button", name="Pause nightly-report").click()
            expect(row).to_contain_text("paused (writer)")
            page.get_by_role("button", name="Resume nightly-report").click()
            expect(row).to_contain_text("active")
        finally:
            browser.close()
    with hooked.client("alice") as http:
        actions = [(a["action"], a["target"]) for a in http.get("/api/v1/audit").json()[:2]]
    assert actions == [("schedule.resume", "nightly-report"), ("schedule.pause", "nightly-report")]
