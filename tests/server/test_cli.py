"""``bandmaster tokens`` and the start-up checks of ``bandmaster server``."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx2

from .conftest import start_server, stop, wait_healthy

HERE = Path(__file__).parent


def bandmaster(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bandmaster.cli", *args], capture_output=True, text=True, timeout=60, cwd=cwd
    )


def test_tokens_create_list_revoke(tmp_path: Path) -> None:
    db = str(tmp_path / "j.db")
    created = bandmaster(
        "tokens",
        "create",
        "ops",
        "--scope",
        "runs:read,approvals:decide",
        "--db",
        db,
        "--by",
        "root",
        "--json",
    )
    assert created.returncode == 0, created.stderr
    token = json.loads(created.stdout)
    assert token["scopes"] == ["approvals:decide", "runs:read"]
    assert token["token"].startswith(f"bm_{token['id']}_")
    with sqlite3.connect(db) as conn:
        stored = conn.execute("SELECT secret_hash FROM api_tokens").fetchone()[0]
        audit = conn.execute("SELECT action, target, principal FROM server_audit").fetchall()
    assert token["token"].split("_", 2)[2] not in stored  # only the hash is kept
    assert ("token.create", token["id"], "root") in audit

    listed = bandmaster("tokens", "list", "--db", db, "--json")
    assert [t["name"] for t in json.loads(listed.stdout)] == ["ops"]
    assert token["token"] not in listed.stdout

    bad = bandmaster("tokens", "create", "x", "--scope", "runs:delete", "--db", db)
    assert bad.returncode == 2
    assert "runs:delete" in bad.stderr
    assert "runs:read" in bad.stderr  # says which scopes exist

    assert bandmaster("tokens", "revoke", "ops", "--db", db).returncode == 0
    assert json.loads(bandmaster("tokens", "list", "--db", db, "--json").stdout)[0]["revoked_at"] is not None
    again = bandmaster("tokens", "revoke", token["id"], "--db", db)
    assert again.returncode == 2
    assert "no live token" in again.stderr


def test_server_refuses_a_public_interface_without_tokens(tmp_path: Path) -> None:
    result = bandmaster("server", "--db", str(tmp_path / "j.db"), "--host", "0.0.0.0", "--port", "0")
    assert result.returncode == 2
    assert "refusing to listen on 0.0.0.0" in result.stderr
    assert "bandmaster tokens create" in result.stderr


def test_server_without_a_registry_or_workflows(tmp_path: Path) -> None:
    db = tmp_path / "j.db"
    created = bandmaster("tokens", "create", "ops", "--scope", "admin", "--db", str(db), "--json")
    token = json.loads(created.stdout)["token"]
    proc, url, log = start_server(tmp_path, db)
    try:
        wait_healthy(proc, url, log)
        headers = {"Authorization": f"Bearer {token}"}
        models = httpx2.get(f"{url}/api/v1/models", headers=headers)
        assert models.status_code == 404
        assert models.json()["error"]["code"] == "no_registry"
        start = httpx2.post(f"{url}/api/v1/runs", headers=headers, json={"workflow": "calc", "input": 1})
        assert start.status_code == 404
        assert "known: none" in start.json()["error"]["message"]
        assert httpx2.get(f"{url}/readyz").status_code == 200
        for suffix in ("", "-wal", "-shm"):  # the journal disappears under the running server
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        gone = httpx2.get(f"{url}/readyz")
        assert gone.status_code == 503
        assert gone.json()["error"]["code"] == "journal_unavailable"
        assert httpx2.get(f"{url}/healthz").status_code == 200  # alive, but not ready
    finally:
        stop(proc)


def test_several_server_processes_share_one_journal(tmp_path: Path) -> None:
    db = tmp_path / "j.db"
    created = bandmaster("tokens", "create", "ops", "--scope", "admin", "--db", str(db), "--json")
    token = json.loads(created.stdout)["token"]
    proc, url, log = start_server(
        tmp_path, db, "--processes", "2", "--workers", "10", str(HERE / "wf_server.py")
    )
    try:
        wait_healthy(proc, url, log)
        with httpx2.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=15) as http:
            ids = []
            for n in range(20):  # new connections, so both processes answer some
                with httpx2.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as fresh:
                    started = fresh.post("/api/v1/runs", json={"workflow": "calc", "input": n})
                assert started.status_code == 201, started.text
                ids.append(started.json()["id"])
            for run_id in ids:
                deadline = time.monotonic() + 15
                while (run := http.get(f"/api/v1/runs/{run_id}").json())["status"] != "completed":
                    assert time.monotonic() < deadline, run
                    time.sleep(0.05)
            outputs = sorted(http.get(f"/api/v1/runs/{run_id}").json()["output"] for run_id in ids)
        assert outputs == [2 * n for n in range(20)]
    finally:
        stop(proc)
