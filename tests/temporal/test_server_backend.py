"""``bandmaster server --backend temporal``: real processes only. A Temporal dev server, a
``bandmaster worker --backend temporal`` process hosting wf_tserver.py, and a ``bandmaster
server`` process on 127.0.0.1 whose SQLite database holds only its tokens, sessions and audit;
driven over HTTP with tokens, and its dashboard in headless Chromium."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("temporalio", reason="the Temporal backend needs: pip install 'bandmaster[temporal]'")
import httpx2
import wf_tserver
from temporal_support import TemporalServer, free_port

from bandmaster.server._auth import create_token
from bandmaster.store._sqlite import SQLiteStore

pytestmark = [pytest.mark.timeout(180), pytest.mark.e2e]

WORKFLOWS = str(Path(wf_tserver.__file__).resolve())
TOKENS = {
    "alice": ["admin"],
    "reader": ["runs:read"],
    "writer": ["runs:read", "runs:write"],
    "mallory": ["runs:read", "approvals:decide"],
}
TICKET = {"id": "T-17", "text": "I was charged twice"}


@dataclass
class Served:
    url: str
    db: Path
    tokens: dict[str, str]

    def client(self, who: str) -> httpx2.Client:
        return httpx2.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {self.tokens[who]}"}, timeout=30.0
        )

    def wait_status(self, run_id: str, statuses: set[str], timeout: float = 30.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with self.client("reader") as http:
            while True:
                run: dict[str, Any] = http.get(f"/api/v1/runs/{run_id}").json()
                if run.get("status") in statuses:
                    return run
                assert time.monotonic() < deadline, f"run {run_id}: {run}"
                time.sleep(0.2)

    def start(self, workflow: str, value: Any, key: str | None = None) -> str:
        headers = {"Idempotency-Key": key} if key else {}
        with self.client("writer") as http:
            answer = http.post("/api/v1/runs", json={"workflow": workflow, "input": value}, headers=headers)
        assert answer.status_code == 201, answer.text
        return str(answer.json()["id"])


def _spawn(args: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        return subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env)


def _kill(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, temporal_server: TemporalServer) -> Iterator[Served]:
    tmp = tmp_path_factory.mktemp("tserver")
    queue = f"srv-{uuid.uuid4().hex[:8]}"
    db = tmp / "server.db"
    store = SQLiteStore(db)
    secrets = {name: create_token(store, name, scopes).secret for name, scopes in TOKENS.items()}
    store.close()
    # The worker reads the backend from the environment, the server from its options: both work.
    env = {
        **os.environ,
        "BANDMASTER_BACKEND": "temporal",
        "BANDMASTER_TEMPORAL_TARGET": temporal_server.target,
        "BANDMASTER_TEMPORAL_TASK_QUEUE": queue,
    }
    exe = [sys.executable, "-m", "bandmaster.cli"]
    worker = _spawn([*exe, "worker", WORKFLOWS], tmp / "worker.log", env)
    port = free_port()
    server_args = [*exe, "server", WORKFLOWS, "--db", str(db), "--port", str(port), "--backend", "temporal"]
    server_args += ["--target", temporal_server.target, "--task-queue", queue]
    plain_env = {k: v for k, v in os.environ.items() if not k.startswith("BANDMASTER_")}
    server = _spawn(server_args, tmp / "server.log", plain_env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, (tmp / "server.log").read_text()
            assert worker.poll() is None, (tmp / "worker.log").read_text()
            try:
                if httpx2.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx2.TransportError:
                pass
            assert time.monotonic() < deadline, (tmp / "server.log").read_text()
            time.sleep(0.2)
        yield Served(url, db, secrets)
    finally:
        _kill(server)
        _kill(worker)


def test_start_list_describe_and_stream_a_run(served: Served) -> None:
    key = f"T-{uuid.uuid4().hex[:6]}"
    with served.client("writer") as http:
        first = http.post(
            "/api/v1/runs", json={"workflow": "triage", "input": TICKET}, headers={"Idempotency-Key": key}
        )
        again = http.post(
            "/api/v1/runs", json={"workflow": "triage", "input": TICKET}, headers={"Idempotency-Key": key}
        )
        other = {"workflow": "triage", "input": {**TICKET, "text": "other"}}
        conflict = http.post("/api/v1/runs", json=other, headers={"Idempotency-Key": key})
    assert first.status_code == 201, first.text
    assert first.json() == {"id": key, "workflow": "triage", "status": "running", "created": True}
    assert first.headers["Location"] == f"/api/v1/runs/{key}"
    assert again.status_code == 200
    assert again.json()["created"] is False
    assert conflict.status_code == 409
    assert conflict.json()["error"]["code"] == "idempotency_conflict"

    run = served.wait_status(key, {"completed"})
    assert run["output"] == "T-17:billing"
    assert run["input"] == [TICKET]
    [step] = run["steps"]
    assert (step["name"], step["kind"], step["status"], step["output"]) == (
        "classify",
        "step",
        "completed",
        "billing",
    )

    second = served.start("triage", {"id": "T-18", "text": "hello"})
    served.wait_status(second, {"completed"})
    with served.client("reader") as http:
        listed = http.get("/api/v1/runs", params={"workflow": "triage", "status": "completed"}).json()
        page = http.get("/api/v1/runs", params={"workflow": "triage", "limit": 1}).json()
        rest = http.get("/api/v1/runs", params={"workflow": "triage", "limit": 1, "offset": 1}).json()
        events = http.get(f"/api/v1/runs/{key}/events").text
    assert {key, second} <= {r["id"] for r in listed["runs"]}
    assert [r["id"] for r in page["runs"]] == [second]  # newest first
    assert page["next_offset"] == 1
    assert key in [r["id"] for r in rest["runs"]]
    kinds = re.findall(r"^event: (\w+)$", events, re.MULTILINE)
    # A run that ended before the stream opened: its steps, then its outcome, then the end.
    assert kinds == ["step", "status", "end"]


def test_an_idempotency_key_works_for_a_redacting_workflow(served: Served) -> None:
    # The start event holds the input as the client redacted it; the repeat is compared alike.
    key = f"T-{uuid.uuid4().hex[:6]}"
    body = {"workflow": "intake", "input": {"id": "T-21", "text": "Mrs. Garcia was charged twice"}}
    with served.client("writer") as http:
        first = http.post("/api/v1/runs", json=body, headers={"Idempotency-Key": key})
        again = http.post("/api/v1/runs", json=body, headers={"Idempotency-Key": key})
        other = {"workflow": "intake", "input": {"id": "T-21", "text": "Mr. Ito was charged twice"}}
        conflict = http.post("/api/v1/runs", json=other, headers={"Idempotency-Key": key})
    assert first.status_code == 201, first.text
    assert (again.status_code, again.json()["created"]) == (200, False)
    assert conflict.status_code == 409
    run = served.wait_status(key, {"completed"})
    assert run["input"] == [{"id": "T-21", "text": "<PERSON> was charged twice"}]


def test_signal_a_waiting_run_and_cancel_another(served: Served) -> None:
    run_id = served.start("paused", "hello")
    served.wait_status(run_id, {"waiting"})
    with served.client("writer") as http:
        sent = http.post(f"/api/v1/runs/{run_id}/signals", json={"name": "reply", "payload": "world"})
    assert sent.status_code == 202, sent.text
    assert served.wait_status(run_id, {"completed"})["output"] == "hello:world"
    with served.client("writer") as http:
        late = http.post(f"/api/v1/runs/{run_id}/signals", json={"name": "reply", "payload": "again"})
    assert late.status_code == 409
    assert late.json()["error"]["code"] == "run_finished"

    sleeper = served.start("sleepy", None)
    served.wait_status(sleeper, {"waiting", "running"})
    with served.client("writer") as http:
        cancelled = http.post(f"/api/v1/runs/{sleeper}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    assert served.wait_status(sleeper, {"cancelled"})["status"] == "cancelled"


def test_approvals_are_listed_and_decided_by_allowed_principals_only(served: Served) -> None:
    run_id = served.start("reviewed", {"ticket": {"id": "T-19", "text": "charged twice"}})
    served.wait_status(run_id, {"waiting"})
    with served.client("reader") as http:
        pending = [a for a in http.get("/api/v1/approvals").json() if a["run_id"] == run_id]
    assert [(a["name"], a["payload"], a["approvers"]) for a in pending] == [
        ("phi_review", {"id": "T-19", "label": "billing"}, ["alice", "carol"])
    ]
    decision = {"action": "override", "comment": "Mrs. Garcia called"}
    with served.client("reader") as http:
        no_scope = http.post(f"/api/v1/approvals/{run_id}/decision", json=decision)
    with served.client("mallory") as http:
        not_listed = http.post(f"/api/v1/approvals/{run_id}/decision", json=decision)
    assert (no_scope.status_code, no_scope.json()["error"]["code"]) == (403, "missing_scope")
    assert (not_listed.status_code, not_listed.json()["error"]["code"]) == (403, "not_an_approver")
    with served.client("alice") as http:
        decided = http.post(f"/api/v1/approvals/{run_id}/decision", json=decision)
    assert decided.status_code == 200, decided.text
    assert decided.json()["by"] == "alice"
    assert decided.json()["comment"] == "<PERSON> called"  # redacted before it reached Temporal

    run = served.wait_status(run_id, {"completed"})
    assert run["output"] == {
        "action": "override",
        "by": "alice",
        "comment": "<PERSON> called",
        "timed_out": False,
    }
    with served.client("alice") as http:
        late = http.post(f"/api/v1/approvals/{run_id}/decision", json=decision)
        audit = http.get("/api/v1/audit").json()
        decided_list = http.get("/api/v1/approvals", params={"status": "decided"}).json()
    assert (late.status_code, late.json()["error"]["code"]) == (409, "already_decided")  # as embedded
    mine = [(a["principal"], a["action"]) for a in audit if a["target"] == run_id]
    assert ("alice", "approval.decide") in mine
    assert ("mallory", "approval.refused") in mine
    assert "Garcia" not in str(audit)
    assert any(a["run_id"] == run_id and a["decision"]["action"] == "override" for a in decided_list)


def test_stats_and_models_are_served_and_mistakes_get_the_embedded_errors(served: Served) -> None:
    with served.client("alice") as http:
        stats = http.get("/api/v1/stats")
        models = http.put("/api/v1/models/intent", json={"weights": {"a": 1.0}})
        aliases = http.get("/api/v1/models")
        waiting = http.get("/api/v1/runs", params={"status": "waiting"})
        missing = http.get("/api/v1/runs/no-such-run")
        unknown = http.post("/api/v1/runs", json={"workflow": "nope", "input": None})
        ready = httpx2.get(f"{served.url}/readyz")
    assert stats.status_code == 200, stats.text
    assert (stats.json()["scan_limit"], stats.json()["truncated"]) == (500, False)
    assert (models.status_code, models.json()["error"]["code"]) == (
        404,
        "unknown_model",
    )  # the worker has none
    assert (aliases.status_code, aliases.json()) == (200, [])
    assert (waiting.status_code, waiting.json()["error"]["code"]) == (422, "invalid_input")
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "run_not_found")
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (404, "workflow_not_found")
    assert ready.json()["status"] == "ready"
    # The server's database holds its own tables only: no run ever reached it.
    with sqlite3.connect(served.db) as conn:
        assert conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 0
        assert conn.execute("SELECT COUNT(*) FROM server_audit").fetchone()[0] > 0


CHROMIUM = "/usr/bin/chromium"


def test_dashboard_on_temporal_in_chromium(served: Served) -> None:
    playwright_api = pytest.importorskip("playwright.sync_api")
    assert Path(CHROMIUM).exists(), "Debian chromium is missing: run scripts/bootstrap.sh --dev"
    run_id = served.start("reviewed", {"ticket": {"id": "T-20", "text": "Mrs. Garcia was charged twice"}})
    served.wait_status(run_id, {"waiting"})
    expect = playwright_api.expect
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"], headless=True
        )
        try:
            page = browser.new_page(base_url=served.url)
            page.set_default_timeout(20_000)
            page.goto("/ui/approvals")
            page.get_by_label("API token").fill(served.tokens["alice"])
            page.get_by_role("button", name="Log in").click()
            expect(page).to_have_url(re.compile("/ui/approvals"))
            card = page.locator(f"section[id^='approval-{run_id}-']")
            expect(card).to_contain_text("alice, carol")
            expect(card).to_contain_text(re.compile(r"send\s+in \d+ (min|s)"))  # human units
            card.get_by_label("Comment").fill("checked by phone")
            card.get_by_role("button", name="Approve").click()

            expect(page).to_have_url(re.compile(f"/ui/runs/{run_id}$"))
            expect(page.locator("#run-status")).to_have_text("completed", timeout=30_000)
            expect(page.locator("#run-output")).to_contain_text("checked by phone")
            expect(page.locator("svg.gantt")).to_be_visible()

            page.goto("/ui/runs")
            expect(page.get_by_role("table")).to_contain_text(run_id)
            page.get_by_label("Run id starts with").fill(run_id[:8])  # no input search on Temporal
            page.get_by_role("button", name="Filter").click()
            expect(page.locator("#runs-rows")).to_contain_text(run_id)
            expect(page.get_by_role("main")).to_contain_text("does not index workflow inputs")
            stats = page.goto("/ui/stats")
            assert stats is not None
            assert stats.status == 200  # computed from the runs' histories
            expect(page.get_by_role("main")).to_contain_text("classify")  # the run's step
        finally:
            browser.close()


def _bandmaster(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bandmaster.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


def test_server_start_up_mistakes_exit_2_with_what_to_do(tmp_path: Path) -> None:
    db = str(tmp_path / "server.db")
    unreachable = _bandmaster(
        "server", WORKFLOWS, "--db", db, "--backend", "temporal", "--target", f"127.0.0.1:{free_port()}"
    )
    assert unreachable.returncode == 2
    assert "cannot reach the Temporal server" in unreachable.stderr
    with_workers = _bandmaster(
        "server", WORKFLOWS, "--db", db, "--workers", "2", env={"BANDMASTER_BACKEND": "temporal"}
    )
    assert with_workers.returncode == 2
    assert "bandmaster worker --backend temporal" in " ".join(with_workers.stderr.split())
    unknown = _bandmaster("server", "--db", db, "--backend", "temporl")
    assert unknown.returncode == 2
    assert "backend 'temporl' is unknown" in unknown.stderr


def test_create_app_refuses_a_temporal_setup_that_cannot_work(tmp_path: Path) -> None:
    import bandmaster as bm
    from bandmaster.server import create_app

    client = bm.TemporalEngine("127.0.0.1:1", workflows=[wf_tserver.triage], worker=False)
    with pytest.raises(bm.UsageError, match="pass the workflows to the temporal backend"):
        create_app(tmp_path / "s.db", workflows=[wf_tserver.triage], temporal=client)
    with pytest.raises(bm.UsageError, match="runs execute in its workers"):
        create_app(tmp_path / "s.db", workers=2, temporal=client)
    hosting = bm.TemporalEngine("127.0.0.1:1", workflows=[wf_tserver.triage])
    with pytest.raises(bm.UsageError, match=r"worker=False"):
        create_app(tmp_path / "s.db", temporal=hosting)


def test_a_lost_temporal_cluster_is_a_503_not_a_crash(tmp_path: Path) -> None:
    cluster = TemporalServer(tmp_path / "t.db", tmp_path / "t.log", free_port())
    cluster.start()
    db = tmp_path / "server.db"
    store = SQLiteStore(db)
    secret = create_token(store, "alice", ["admin"]).secret
    store.close()
    port = free_port()
    args = [sys.executable, "-m", "bandmaster.cli", "server", WORKFLOWS, "--db", str(db), "--port", str(port)]
    server = _spawn(
        [*args, "--backend", "temporal", "--target", cluster.target], tmp_path / "s.log", dict(os.environ)
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, (tmp_path / "s.log").read_text()
            try:
                if httpx2.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx2.TransportError:
                pass
            assert time.monotonic() < deadline
            time.sleep(0.2)
        cluster.stop()
        ready = httpx2.get(f"{url}/readyz", timeout=30)
        runs = httpx2.get(f"{url}/api/v1/runs", headers={"Authorization": f"Bearer {secret}"}, timeout=60)
        assert (ready.status_code, ready.json()["error"]["code"]) == (503, "backend_unavailable")
        assert (runs.status_code, runs.json()["error"]["code"]) == (503, "backend_unavailable")
        assert cluster.target in runs.json()["error"]["message"]
        assert httpx2.get(f"{url}/healthz", timeout=5).status_code == 200  # the process itself is fine
    finally:
        _kill(server)
        cluster.stop()
