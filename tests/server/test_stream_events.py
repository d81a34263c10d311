"""Token events of a model stream on the SSE endpoint of a real server process, and
``bandmaster runs watch`` following the same kind of run from the journal."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bandmaster.server._auth import create_token
from bandmaster.store._sqlite import SQLiteStore

from .conftest import Server, start_server, stop, wait_healthy
from .wf_stream_server import WORDS

HERE = Path(__file__).parent


@pytest.fixture(scope="module")
def stream_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("stream-server")
    db = tmp / "journal.db"
    store = SQLiteStore(db)
    secret = create_token(store, "alice", ["admin"], rate_limit=1000.0).secret
    store.close()
    proc, url, log = start_server(tmp, db, "--workers", "2", str(HERE / "wf_stream_server.py"))
    try:
        wait_healthy(proc, url, log)
        yield Server(url, db, log, {"alice": secret})
    finally:
        stop(proc)


def start_talk(server: Server) -> str:
    with server.client("alice") as http:
        response = http.post("/api/v1/runs", json={"workflow": "talk", "input": "hi"})
    assert response.status_code in (200, 201), response.text
    return str(response.json()["id"])


def test_sse_carries_the_token_chunks_of_the_active_stream(stream_server: Server) -> None:
    run_id = start_talk(stream_server)
    events: list[tuple[str, dict[str, object]]] = []
    with stream_server.client("alice") as http, http.stream("GET", f"/api/v1/runs/{run_id}/events") as sse:
        assert sse.status_code == 200
        kind = ""
        for line in sse.iter_lines():
            if line.startswith("event: "):
                kind = line.removeprefix("event: ")
            elif line.startswith("data: "):
                events.append((kind, json.loads(line.removeprefix("data: "))))
    kinds = [k for k, _ in events]
    tokens = [e for k, e in events if k == "token"]
    assert "".join(str(t["text"]) for t in tokens) == "".join(WORDS)
    assert len(tokens) >= 2, "tokens arrive in several events while the model streams"
    assert all(t["seq"] == 1 and t["restart"] is False for t in tokens)
    steps = [e for k, e in events if k == "step"]
    assert [s["status"] for s in steps] == ["running", "completed"]
    assert steps[0] == {"seq": 1, "name": "slow-talker", "kind": "model", "status": "running"}
    # The stream's start comes before its tokens, and its tokens before its journaled end.
    assert kinds.index("step") < kinds.index("token")
    last_token = len(kinds) - 1 - kinds[::-1].index("token")
    assert last_token < next(
        i for i, (k, e) in enumerate(events) if k == "step" and e["status"] == "completed"
    )
    assert events[-1][0] == "end"
    assert events[-1][1]["output"] == "".join(WORDS)


def test_runs_watch_prints_steps_and_tokens_as_they_arrive(stream_server: Server) -> None:
    run_id = start_talk(stream_server)
    watched = subprocess.run(
        [sys.executable, "-m", "bandmaster.cli", "runs", "watch", run_id, "--db", str(stream_server.db)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "200", "NO_COLOR": "1"},
    )
    assert watched.returncode == 0, watched.stderr
    lines = watched.stdout.splitlines()
    # the run's status line: first while it runs, or just before its output when watch started
    # after it ended (a busy machine can take that long to start the CLI)
    assert any(line.startswith(f"run {run_id} ") for line in lines), lines
    assert "step 1 slow-talker (model) streaming" in lines
    assert "".join(WORDS) in lines, "the tokens, verbatim, on one line"
    assert any(line.startswith("step 1 slow-talker (model) completed") for line in lines)
    assert lines[-1] == f"output: {''.join(WORDS)}"
