"""A served backend for the HTTP and CLI conformance tests: real processes only. Embedded: a
``bandmaster server --workers`` process that executes the runs of its journal. Temporal: a
``bandmaster worker --backend temporal`` process and a ``bandmaster server --backend
temporal`` process, whose SQLite database holds only tokens, sessions and audit."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import wf_conformance

from bandmaster.server._auth import create_token
from bandmaster.store._sqlite import SQLiteStore
from bandmaster.temporal._devserver import free_port

WORKFLOWS = str(Path(wf_conformance.__file__).resolve())
MODELS = str(Path(wf_conformance.__file__).with_name("models.yaml"))
HOOK_SECRET = "whsec_" + base64.b64encode(b"conformance-secret-0123456789abc").decode()
TOKENS = {
    "alice": ["admin"],
    "reader": ["runs:read"],
    "writer": ["runs:read", "runs:write"],
    "mallory": ["runs:read", "approvals:decide"],
}


@dataclass
class Stack:
    name: str  # embedded or temporal
    url: str
    db: Path
    tokens: dict[str, str]
    env: dict[str, str]  # what points the CLI at this backend
    missing: dict[str, str]  # its capabilities.missing: what it answers 501 / exit 2 for, and why
    logs: list[Path] = field(default_factory=list)

    def client(self, who: str) -> httpx2.Client:
        return httpx2.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {self.tokens[who]}"}, timeout=30.0
        )

    def start(self, workflow: str, value: Any, key: str | None = None) -> str:
        headers = {"Idempotency-Key": key} if key else {}
        with self.client("writer") as http:
            answer = http.post("/api/v1/runs", json={"workflow": workflow, "input": value}, headers=headers)
        assert answer.status_code == 201, answer.text
        return str(answer.json()["id"])

    def run(self, run_id: str) -> dict[str, Any]:
        with self.client("reader") as http:
            found: dict[str, Any] = http.get(f"/api/v1/runs/{run_id}").json()
        return found

    def wait(self, run_id: str, *statuses: str, timeout: float = 30.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            run = self.run(run_id)
            if run.get("status") in statuses:
                return run
            assert time.monotonic() < deadline, f"run {run_id}: {run}"
            time.sleep(0.1)

    def wait_approval(self, run_id: str, timeout: float = 30.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with self.client("reader") as http:
            while True:
                found = [a for a in http.get("/api/v1/approvals").json() if a["run_id"] == run_id]
                if found:
                    return dict(found[0])
                assert time.monotonic() < deadline, f"run {run_id} never asked for its approval"
                time.sleep(0.1)

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        found = subprocess.run(
            [sys.executable, "-m", "bandmaster.cli", *args],
            capture_output=True,
            text=True,
            timeout=90,
            env={**self.env, "COLUMNS": "250", "NO_COLOR": "1"},
        )
        found.stderr = " ".join(found.stderr.split())  # rich wraps long lines
        return found


def _missing(name: str) -> dict[str, str]:
    if name == "temporal":
        from bandmaster import TemporalEngine

        return dict(TemporalEngine.capabilities.missing)
    return {}


def _spawn(args: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        return subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


@contextmanager
def served(name: str, tmp: Path, target: str | None) -> Iterator[Stack]:
    """The stack of backend ``name`` (``target``: the Temporal dev server's address)."""
    db = tmp / ("server.db" if name == "temporal" else "journal.db")
    store = SQLiteStore(db)
    secrets = {who: create_token(store, who, scopes).secret for who, scopes in TOKENS.items()}
    store.close()
    hooks = tmp / "hooks.yaml"
    hooks.write_text(
        json.dumps({"hooks": {"echoes": {"workflow": "echo", "secret_env": "CONF_HOOK_SECRET"}}})
    )
    base = {k: v for k, v in os.environ.items() if not k.startswith("BANDMASTER_")}
    base["CONF_HOOK_SECRET"] = HOOK_SECRET
    exe = [sys.executable, "-m", "bandmaster.cli"]
    port = free_port()
    server_args = [*exe, "server", WORKFLOWS, "--db", str(db), "--port", str(port), "--hooks", str(hooks)]
    server_args += ["--models", MODELS]
    procs: list[subprocess.Popen[bytes]] = []
    logs = [tmp / "server.log"]
    if name == "temporal":
        assert target is not None
        queue = f"conf-{os.getpid()}-{port}"
        env = {
            **base,
            "BANDMASTER_BACKEND": "temporal",
            "BANDMASTER_TEMPORAL_TARGET": target,
            "BANDMASTER_TEMPORAL_TASK_QUEUE": queue,
        }
        logs.append(tmp / "worker.log")
        procs.append(_spawn([*exe, "worker", WORKFLOWS, "--models", MODELS], logs[1], env))
        server_args += ["--backend", "temporal", "--target", target, "--task-queue", queue]
    else:
        env = {**base, "BANDMASTER_DB": str(db)}
        server_args += ["--workers", "8"]
    procs.append(_spawn(server_args, logs[0], base))
    url = f"http://127.0.0.1:{port}"
    stack = Stack(name, url, db, secrets, env, _missing(name), logs)
    try:
        deadline = time.monotonic() + 90
        while True:
            for proc, log in zip(procs[::-1], logs, strict=True):
                assert proc.poll() is None, log.read_text()
            try:
                if httpx2.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx2.TransportError:
                pass
            assert time.monotonic() < deadline, logs[0].read_text()
            time.sleep(0.2)
        yield stack
    finally:
        for proc in procs[::-1]:
            _stop(proc)
