"""Hostile and odd requests against a real server process: every refusal is a 4xx in the API's
error shape, the keep-alive connection survives it, and no answer names the journal's path or
carries a traceback unless the server was started with --show-internals."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx2
import pytest

from bandmaster.server._auth import create_token
from bandmaster.store._sqlite import SQLiteStore

from .conftest import HERE, Server, free_port, start_server, stop, wait_healthy

DEEP = "[" * 100_000 + "]" * 100_000

# (method, path, body, status, code): one case of each class the issue names, and siblings.
ATTACKS = [
    ("GET", "/api/v1/runs?offset=99999999999999999999", None, 422, "invalid_input"),
    ("GET", "/api/v1/runs?offset=-1", None, 422, "invalid_input"),
    ("GET", "/api/v1/runs?limit=-5", None, 422, "invalid_input"),
    ("GET", "/api/v1/runs?limit=99999999999999999999", None, 422, "invalid_input"),
    ("GET", "/api/v1/stats?since=99999999999d", None, 422, "invalid_input"),
    ("GET", "/api/v1/stats?since=99999999999999999999999999999999999999s", None, 422, "invalid_input"),
    ("GET", "/api/v1/stats?since=-1e300", None, 422, "invalid_input"),
    ("GET", "/api/v1/stats?since=1e400", None, 422, "invalid_input"),
    ("GET", "/api/v1/stats?since=" + "9x" * 20_000, None, 422, "invalid_input"),
    ("GET", "/api/v1/audit?limit=99999999999999999999", None, 422, "invalid_input"),
    ("GET", "/api/v1/runs/%ED%A0%80", None, 404, "run_not_found"),
    ("GET", "/api/v1/runs/%00", None, 404, "run_not_found"),
    ("GET", "/api/v1/runs/" + "x" * 20_000, None, 404, "run_not_found"),
    ("POST", "/api/v1/runs", '{"workflow": "calc", "input": NaN}', 422, "invalid_input"),
    ("POST", "/api/v1/runs", '{"workflow": "calc", "input": -Infinity}', 422, "invalid_input"),
    ("POST", "/api/v1/runs", '{"workflow": "calc", "input": 1e400}', 422, "invalid_input"),
    ("POST", "/api/v1/runs", '{"workflow": "calc", "input": ' + "9" * 5000 + "}", 422, "invalid_input"),
    ("POST", "/api/v1/runs", DEEP, 422, "invalid_input"),
    ("POST", "/api/v1/runs", '{"workflow": "waiter", "input": "\\ud800"}', 422, "invalid_input"),
    ("POST", "/api/v1/runs", b'{"workflow": "\xff"}', 422, "invalid_input"),
    ("POST", "/api/v1/runs/x/signals", '{"name": "go", "payload": ' + DEEP + "}", 422, "invalid_input"),
    ("PUT", "/api/v1/models/intent", '{"weights": {"production": NaN, "canary": 0}}', 422, "invalid_input"),
    ("PUT", "/api/v1/models/intent", '{"weights": {"production": 1e999}}', 422, "invalid_input"),
    ("PUT", "/api/v1/models/%ED%A0%80", '{"versions": {"p": "intent-small"}}', 422, "invalid_model_change"),
    ("PUT", "/api/v1/models/new", '{"versions": {"\\udfff": "intent-small"}}', 422, "invalid_input"),
    (
        "POST",
        "/api/v1/runs",
        '{"workflow": "calc", "input": "' + "x" * 1_100_000 + '"}',
        413,
        "payload_too_large",
    ),
    ("POST", "/api/v1/runs", '{"workflow": "' + "w" * 900_000 + '"}', 404, "workflow_not_found"),
]


def _connection(url: str) -> http.client.HTTPConnection:
    parts = urlsplit(url)
    return http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=30)


def _send(
    conn: http.client.HTTPConnection, method: str, path: str, body: str | bytes | None, token: str
) -> tuple[int, str, bytes]:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    conn.request(method, path, body=body.encode() if isinstance(body, str) else body, headers=headers)
    response = conn.getresponse()
    return response.status, response.getheader("content-type") or "", response.read()


@pytest.mark.parametrize(("method", "path", "body", "status", "code"), ATTACKS, ids=lambda v: str(v)[:40])
def test_a_bad_request_is_a_4xx_and_the_connection_stays_open(
    server: Server, method: str, path: str, body: str | None, status: int, code: str
) -> None:
    conn = _connection(server.url)
    try:
        got, content_type, raw = _send(conn, method, path, body, server.tokens["alice"])
        assert (got, content_type) == (status, "application/json"), raw[:300]
        error = json.loads(raw)["error"]
        assert error["code"] == code
        assert len(error["message"]) <= 2000  # a 20 kB id or a 900 kB name is not echoed back whole
        assert str(server.db.parent) not in error["message"]
        socket_before = conn.sock
        again, _, _ = _send(conn, "GET", "/api/v1/runs?limit=1", None, server.tokens["alice"])
        assert again == 200
        assert conn.sock is socket_before  # the same keep-alive connection answered
    finally:
        conn.close()


def test_an_unexpected_error_is_a_json_500_that_keeps_the_connection(tmp_path: Path) -> None:
    db = tmp_path / "journal.db"
    SQLiteStore(db).close()
    port = free_port()
    log = tmp_path / "boom.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--factory",
                "tests.server.boom_app:create",
                "--port",
                str(port),
            ],
            env={**os.environ, "BM_BOOM_DB": str(db)},
            cwd=HERE.parents[1],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(proc, url, log)
        conn = _connection(url)
        status, content_type, raw = _send(conn, "GET", "/boom", None, "none")
        assert (status, content_type) == (500, "application/json")
        error = json.loads(raw)["error"]
        assert error["code"] == "internal_error"
        assert "reference" in error["message"]
        assert str(db) not in error["message"]  # the exception's text stays in the log
        socket_before = conn.sock
        assert _send(conn, "GET", "/healthz", None, "none")[0] == 200
        assert conn.sock is socket_before
        conn.close()
        reference = error["message"].split("reference ")[1].split(" ")[0]
        deadline = time.monotonic() + 10
        while reference not in log.read_text():  # the log has the reference and the traceback
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        assert "RuntimeError: a bug near" in log.read_text()
    finally:
        stop(proc)


def test_the_runs_page_takes_any_offset(server: Server) -> None:
    with server.client() as http:
        login = http.get("/login")
        csrf = login.text.split('name="csrf_token" value="')[1].split('"')[0]
        form = {"csrf_token": csrf, "token": server.tokens["reader"], "next": "/ui/runs"}
        logged_in = http.post("/login", data=form, headers={"Cookie": f"bm_login_csrf={csrf}"})
        session = logged_in.headers["set-cookie"].split(";")[0]  # Secure: httpx keeps it off http
        page = http.get("/ui/runs", params={"offset": "99999999999999999999"}, headers={"Cookie": session})
    assert page.status_code == 200, page.text[:300]


def test_no_answer_names_the_journal_path(server: Server) -> None:
    path = str(server.db)
    with server.client() as anonymous:
        ready = anonymous.get("/readyz")
    assert ready.json()["status"] == "ready"
    assert path not in ready.text
    with server.client("reader") as http:
        missing = http.get("/api/v1/runs/no-such-run")
        stats = http.get("/api/v1/stats")
        events = http.get("/api/v1/runs/no-such-run/events")
    assert missing.json()["error"] == {
        "code": "run_not_found",
        "message": "no run 'no-such-run'; GET /api/v1/runs lists the runs",
    }
    assert path not in events.text
    assert stats.status_code == 200
    assert path not in stats.text


def _start(server: Server, workflow: str, value: object) -> str:
    with server.client("writer") as http:
        response = http.post("/api/v1/runs", json={"workflow": workflow, "input": value})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def _end_event(server: Server, run_id: str) -> dict[str, object]:
    with server.client("reader") as http, http.stream("GET", f"/api/v1/runs/{run_id}/events") as stream:
        lines = [line for line in stream.iter_lines() if line.startswith("data: ")]
    return json.loads(lines[-1].removeprefix("data: "))  # type: ignore[no-any-return]


def test_a_failed_run_shows_its_error_without_traceback_by_default(server: Server) -> None:
    run_id = _start(server, "broken", "this")
    run = server.wait_status(run_id, {"failed"})
    error = run["error"]
    assert isinstance(error, dict)
    assert error["message"] == "cannot handle this"
    assert error["type"] == "builtins.ValueError"
    assert "traceback" not in error
    assert "traceback" not in json.dumps(_end_event(server, run_id))
    with server.client("reader") as http:
        listed = http.get("/api/v1/runs", params={"workflow": "broken"}).json()["runs"]
    assert all("traceback" not in (r["error"] or {}) for r in listed)
    running = _start(server, "slow", 40)  # six seconds of steps
    assert server.wait_status(running, {"running"})["lease_owner"] is None  # no host or pid shown
    with server.client("alice") as http:
        http.post(f"/api/v1/runs/{running}/cancel")
    store = SQLiteStore(server.db)  # the journal keeps it, for whoever runs the server
    try:
        row = store.get_run(run_id)
    finally:
        store.close()
    assert row is not None
    assert "wf_server.py" in json.loads(row.error or "{}")["traceback"]


@pytest.fixture(scope="module")
def internals_shown(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("internals")
    db = tmp / "journal.db"
    store = SQLiteStore(db)
    secret = create_token(store, "ops", ["admin"]).secret
    store.close()
    proc, url, log = start_server(tmp, db, "--workers", "2", "--show-internals", str(HERE / "wf_server.py"))
    try:
        wait_healthy(proc, url, log)
        yield Server(url, db, log, {"alice": secret, "writer": secret, "reader": secret})
    finally:
        stop(proc)


def test_show_internals_gives_tracebacks_and_lease_owners(internals_shown: Server) -> None:
    run_id = _start(internals_shown, "broken", "that")
    run = internals_shown.wait_status(run_id, {"failed"})
    error = run["error"]
    assert isinstance(error, dict)
    assert "wf_server.py" in error["traceback"]
    assert "wf_server.py" in _end_event(internals_shown, run_id)["error"]["traceback"]  # type: ignore[index]
    running = _start(internals_shown, "slow", 40)  # six seconds of steps
    assert internals_shown.wait_status(running, {"running"})["lease_owner"]  # host/pid/...
    with internals_shown.client("alice") as http:
        http.post(f"/api/v1/runs/{running}/cancel")
    with httpx2.Client(base_url=internals_shown.url) as anonymous:
        assert str(internals_shown.db) not in anonymous.get("/readyz").text  # never unauthenticated
