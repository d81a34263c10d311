"""Hostile requests to ``bandmaster server --backend temporal`` (real dev server, real server
process): what Temporal itself refuses (an over-long workflow id, a control character in a
visibility query) is the client's 4xx in the API's error shape, not a 503 blaming the cluster;
the connection stays open; the refusals shared with the embedded backend hold here too."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

pytest.importorskip("temporalio", reason="the Temporal backend needs: pip install 'bandmaster[temporal]'")
import httpx2
import schemathesis
import wf_tserver
from hypothesis import HealthCheck, Phase, settings
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)
from temporal_support import TemporalServer, free_port
from tests.server.fuzz_auth import authenticated, with_token

from bandmaster.server._app import create_app
from bandmaster.server._auth import create_token
from bandmaster.store._sqlite import SQLiteStore

pytestmark = [pytest.mark.timeout(180), pytest.mark.e2e]

LONG_ID = "x" * 5000  # over Temporal's 1,000-character workflow id limit
ATTACKS = [
    ("GET", f"/api/v1/runs/{LONG_ID}", None, 404, "run_not_found"),
    ("GET", f"/api/v1/runs/{LONG_ID}/events", None, 404, "run_not_found"),
    ("POST", f"/api/v1/runs/{LONG_ID}/cancel", None, 404, "run_not_found"),
    ("POST", f"/api/v1/runs/{LONG_ID}/signals", '{"name": "go"}', 404, "run_not_found"),
    ("POST", f"/api/v1/approvals/{LONG_ID}/decision", '{"action": "approve"}', 404, "approval_not_found"),
    ("GET", "/api/v1/runs/%ED%A0%80", None, 404, "run_not_found"),
    ("GET", "/api/v1/runs/%00", None, 404, "run_not_found"),
    ("GET", "/api/v1/runs?workflow=%00", None, 200, ""),
    ("GET", "/api/v1/runs?workflow=" + quote("a'b\\c\n"), None, 200, ""),
    ("GET", "/api/v1/runs?workflow=" + "w" * 5000, None, 200, ""),
    ("GET", "/api/v1/runs?offset=99999999999999999999", None, 422, "invalid_input"),
    ("GET", "/api/v1/approvals?name=%00", None, 200, ""),
    ("POST", "/api/v1/runs", '{"workflow": "triage", "input": NaN}', 422, "invalid_input"),
    (
        "POST",
        "/api/v1/runs",
        '{"workflow": "triage", "input": {"id": "1", "text": "\\ud800"}}',
        422,
        "invalid_input",
    ),
    ("PUT", "/api/v1/models/x", '{"weights": {"a": NaN}}', 422, "invalid_input"),
]


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory, temporal_server: TemporalServer
) -> Iterator[tuple[str, str]]:
    """A server on the Temporal backend, and a worker executing its runs: (url, admin token)."""
    tmp = tmp_path_factory.mktemp("tattacks")
    db = tmp / "server.db"
    store = SQLiteStore(db)
    secret = create_token(store, "alice", ["admin"], rate_limit=1e6).secret
    store.close()
    port = free_port()
    module = str(Path(wf_tserver.__file__).resolve())
    backend = ["--backend", "temporal", "--target", temporal_server.target]
    backend += ["--task-queue", f"attacks-{uuid.uuid4().hex[:8]}"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("BANDMASTER_")}
    exe = [sys.executable, "-m", "bandmaster.cli"]
    procs: list[subprocess.Popen[bytes]] = []
    for name, args in (
        ("worker", [*exe, "worker", *backend, module]),
        ("server", [*exe, "server", module, "--db", str(db), "--port", str(port), *backend]),
    ):
        with open(tmp / f"{name}.log", "wb") as out:
            procs.append(
                subprocess.Popen(
                    args, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env
                )
            )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert all(p.poll() is None for p in procs), (tmp / "server.log").read_text()
            try:
                if httpx2.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx2.TransportError:
                pass
            assert time.monotonic() < deadline, (tmp / "server.log").read_text()
            time.sleep(0.2)
        yield url, secret
    finally:
        for proc in reversed(procs):
            _stop(proc)


@pytest.mark.parametrize(("method", "path", "body", "status", "code"), ATTACKS, ids=lambda v: str(v)[:40])
def test_a_bad_request_is_the_clients_4xx_on_temporal_too(
    served: tuple[str, str], method: str, path: str, body: str | None, status: int, code: str
) -> None:
    url, secret = served
    conn = http.client.HTTPConnection("127.0.0.1", int(url.rsplit(":", 1)[1]), timeout=60)
    headers = {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"}
    try:
        conn.request(method, path, body=body.encode() if body else None, headers=headers)
        response = conn.getresponse()
        raw = response.read()
        assert response.status == status, raw[:300]
        assert response.getheader("content-type") == "application/json"
        if code:
            error = json.loads(raw)["error"]
            assert error["code"] == code
            assert len(error["message"]) < 1000
        socket_before = conn.sock
        conn.request("GET", "/api/v1/runs?limit=1", headers=headers)
        again = conn.getresponse()
        again.read()
        assert again.status == 200
        assert conn.sock is socket_before
    finally:
        conn.close()


def test_a_failed_run_shows_no_traceback_on_temporal(served: tuple[str, str]) -> None:
    url, secret = served
    with httpx2.Client(base_url=url, headers={"Authorization": f"Bearer {secret}"}, timeout=30) as http:
        started = http.post("/api/v1/runs", json={"workflow": "broken", "input": "this"})
        assert started.status_code == 201, started.text
        run_id = started.json()["id"]
        deadline = time.monotonic() + 60
        while (run := http.get(f"/api/v1/runs/{run_id}").json())["status"] != "failed":
            assert time.monotonic() < deadline, run
            time.sleep(0.2)
        listed = http.get("/api/v1/runs", params={"workflow": "broken"}).json()["runs"]
    assert run["error"]["message"] == "cannot handle this"
    assert "traceback" not in run["error"]
    assert all("traceback" not in (r["error"] or {}) for r in listed)


def test_readyz_names_no_address_on_temporal(served: tuple[str, str]) -> None:
    ready = httpx2.get(f"{served[0]}/readyz", timeout=30)
    assert ready.json() == {"status": "ready", "schema": ready.json()["schema"], "backend": "temporal"}


SCHEMA = create_app(Path(__file__).parent / "never-opened.db").openapi()
schema = authenticated(schemathesis.openapi.from_dict(SCHEMA))


def no_5xx_but_not_supported(
    ctx: object, response: schemathesis.Response, case: schemathesis.Case[Any]
) -> None:
    """5xx are failures, except the documented 501 ``not_supported`` of stats and models."""
    if response.status_code >= 500:
        code = json.loads(response.content)["error"]["code"] if response.content else ""
        assert (response.status_code, code) == (501, "not_supported"), response.content[:300]


@schema.parametrize()
@settings(
    max_examples=int(os.environ.get("BM_FUZZ_EXAMPLES", "15")),
    deadline=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
def test_every_endpoint_on_temporal_answers_in_its_documented_shape(
    case: schemathesis.Case[Any], served: tuple[str, str]
) -> None:
    url, secret = served
    with_token(case, secret)
    case.call_and_validate(
        base_url=url,
        checks=[
            no_5xx_but_not_supported,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
            negative_data_rejection,
        ],
        timeout=60,
    )
