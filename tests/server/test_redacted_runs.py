"""The server and a workflow with ``redact=``: an Idempotency-Key works (the stored input is
redacted, so the repeat is recognised by a keyed digest of the raw body), and a server that
does not host the workflow still redacts what it writes for its runs, from the journal."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from bandmaster.server._auth import create_token
from bandmaster.store._sqlite import SQLiteStore

from .conftest import HERE, Server, start_server, stop, wait_healthy

pytest.importorskip("presidio_analyzer", reason="needs the 'pii' extra: pip install 'bandmaster[pii]'")
from .wf_redacting import DAUGHTER, PATIENT, PHONE, SECRETS


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Server]]:
    """One server hosting the redacting workflow, and one on the same journal hosting none."""
    tmp = tmp_path_factory.mktemp("redacting")
    db = tmp / "journal.db"
    store = SQLiteStore(db)
    secret = create_token(store, "writer", ["runs:read", "runs:write"], rate_limit=1000.0).secret
    store.close()
    hosting, url, log = start_server(tmp, db, "--workers", "5", str(HERE / "wf_redacting.py"))
    try:
        wait_healthy(hosting, url, log)
        bare, bare_url, bare_log = start_server(tmp, db)
        try:
            wait_healthy(bare, bare_url, bare_log)
            tokens = {"writer": secret, "alice": secret}  # wait_status reads as alice
            yield Server(url, db, log, tokens), Server(bare_url, db, bare_log, tokens)
        finally:
            stop(bare)
    finally:
        stop(hosting)


def _journal_bytes(db: Path) -> bytes:
    return b"".join(p.read_bytes() for p in db.parent.glob(f"{db.name}*"))


def test_an_idempotency_key_works_for_a_redacting_workflow(servers: tuple[Server, Server]) -> None:
    server, _ = servers
    key = f"ticket-{uuid.uuid4().hex}"
    body = {"workflow": "intake", "input": f"Pt {PATIENT}, call back at {PHONE}"}
    with server.client("writer", **{"Idempotency-Key": key}) as http:
        first = http.post("/api/v1/runs", json=body)
        again = http.post("/api/v1/runs", json=body)
        other = http.post("/api/v1/runs", json={**body, "input": f"Pt {DAUGHTER}"})
    assert first.status_code == 201, first.text
    assert (again.status_code, again.json()["id"], again.json()["created"]) == (200, key, False)
    assert other.status_code == 409
    assert other.json()["error"]["code"] == "idempotency_conflict"
    run = server.wait_status(key, {"waiting"})
    assert run["input"] == ["Pt <PERSON>, call back at <PHONE_NUMBER>"]
    assert [s for s in SECRETS if s.encode() in _journal_bytes(server.db)] == []


def test_a_server_without_the_workflow_redacts_its_signal_from_the_journal(
    servers: tuple[Server, Server],
) -> None:
    hosting, bare = servers
    with hosting.client("writer") as http:
        run_id = http.post("/api/v1/runs", json={"workflow": "intake", "input": "no phi"}).json()["id"]
    hosting.wait_status(run_id, {"waiting"})
    with bare.client("writer") as http:
        sent = http.post(
            f"/api/v1/runs/{run_id}/signals", json={"name": "review", "payload": f"{DAUGHTER} at {PHONE}"}
        )
    assert sent.status_code == 202, sent.text
    run = hosting.wait_status(run_id, {"completed"})
    assert run["output"] == {"note": "noted: no phi", "review": "<PERSON> at <PHONE_NUMBER>"}
    assert [s for s in SECRETS if s.encode() in _journal_bytes(hosting.db)] == []
