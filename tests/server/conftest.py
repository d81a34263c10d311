"""A real ``bandmaster server`` process on 127.0.0.1 (free port, temporary journal, the test
workflows of wf_server.py and their models) shared by the server tests, killed at the end."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

# Every test here needs the server extra, and httpx2 (extra approvals) as the client.
pytest.importorskip("bandmaster.server", reason="needs bandmaster[server]", exc_type=ImportError)
pytest.importorskip("httpx2", reason="needs bandmaster[approvals] (httpx2, the test client)")

import httpx2

from bandmaster.server._auth import create_token, revoke_token
from bandmaster.store._sqlite import SQLiteStore

HERE = Path(__file__).parent
START_TIMEOUT = 30.0

# name -> (scopes, rate limit per second or None for the server default)
TOKENS: dict[str, tuple[list[str], float | None]] = {
    "alice": (["admin"], 1000.0),
    "reader": (["runs:read"], 1000.0),
    "writer": (["runs:read", "runs:write"], 1000.0),
    "mallory": (["runs:read", "approvals:decide"], 1000.0),
    "slowpoke": (["runs:read"], 0.1),  # a bucket of one request, refilled every 10 s
    "revoked": (["admin"], None),
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    url: str
    db: Path
    log: Path
    tokens: dict[str, str] = field(default_factory=dict)

    def client(self, who: str | None = None, **headers: str) -> httpx2.Client:
        if who is not None:
            headers["Authorization"] = f"Bearer {self.tokens[who]}"
        return httpx2.Client(base_url=self.url, headers=headers, timeout=15.0)

    def wait_status(self, run_id: str, statuses: set[str], timeout: float = 15.0) -> dict[str, object]:
        deadline = time.monotonic() + timeout
        with self.client("alice") as http:
            while True:
                run = http.get(f"/api/v1/runs/{run_id}").json()
                if run["status"] in statuses:
                    return run  # type: ignore[no-any-return]
                assert time.monotonic() < deadline, f"run {run_id} still {run['status']}"
                time.sleep(0.05)


def start_server(tmp: Path, db: Path, *args: str) -> tuple[subprocess.Popen[bytes], str, Path]:
    port = free_port()
    log = tmp / f"server-{port}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bandmaster.cli", "server", "--db", str(db), "--port", str(port), *args],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=tmp,
        )
    return proc, f"http://127.0.0.1:{port}", log


def wait_healthy(proc: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        assert proc.poll() is None, f"server exited: {log.read_text()}"
        try:
            if httpx2.get(f"{url}/healthz", timeout=1.0).status_code == 200:
                return
        except httpx2.TransportError:
            pass
        assert time.monotonic() < deadline, f"server does not answer: {log.read_text()}"
        time.sleep(0.1)


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("server")
    db = tmp / "journal.db"
    store = SQLiteStore(db)
    secrets = {
        name: create_token(store, name, scopes, rate_limit=rate).secret
        for name, (scopes, rate) in TOKENS.items()
    }
    revoke_token(store, "revoked")
    store.close()
    proc, url, log = start_server(
        tmp, db, "--workers", "50", "--models", str(HERE / "models.yaml"), str(HERE / "wf_server.py")
    )
    try:
        wait_healthy(proc, url, log)
        yield Server(url, db, log, secrets)
    finally:
        stop(proc)
