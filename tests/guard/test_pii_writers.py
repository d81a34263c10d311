"""Redaction is a property of the workflow in the journal, not of the process that writes: a
plain client, the CLI, a second worker and an approval desk without the workflow's redactor
either apply the journal's redactor or are refused, and the model is sent exactly the
redacted request the journal shows."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import sys
from pathlib import Path
from typing import Any

import pytest

import bandmaster as bm

pytest.importorskip("presidio_analyzer", reason="needs the 'pii' extra: pip install 'bandmaster[pii]'")
# The server tests' redacting workflow, and the PHI they plant.
from server.wf_redacting import DAUGHTER, PATIENT, PHONE, SECRETS, intake, note


@bm.workflow(name="intake")
async def intake_without_redact(ticket: str) -> dict[str, Any]:
    """The same workflow as deployed by a worker whose copy lost its ``redact=``."""
    first = await note(ticket)
    review = await bm.wait_for("review", timeout=60)
    return {"note": first, "review": review}


@bm.workflow(name="hashed", redact=bm.RedactPII(mode="hash", key="journal-key"))
async def hashed(ticket: str) -> str:
    return str(await bm.wait_for("review", timeout=60))


@bm.workflow(name="reviewed", redact=bm.RedactPII())
async def reviewed(ticket: str) -> str:
    decision = await bm.approval("phi_review", {"ticket": ticket}, timeout=60, default="send")
    return f"{decision.action}: {decision.comment}"


@bm.workflow(name="unredacted_by_itself")
async def unredacted_by_itself(ticket: str) -> str:
    return await note(ticket)


def _disk(db: Path) -> bytes:
    return b"".join(p.read_bytes() for p in db.parent.glob(f"{db.name}*"))


def _assert_no_phi(db: Path) -> None:
    found = [s for s in SECRETS if s.encode() in _disk(db)]
    assert found == [], f"PHI reached the journal: {found}"


async def test_a_plain_client_starts_and_signals_with_the_journals_redactor(
    tmp_path: Path, until_status: Any
) -> None:
    db = tmp_path / "j.db"
    # The client does not import the workflow code: it has no redactor of its own.
    async with (
        bm.Engine(db, workflows=[intake], poll_interval=0.02) as worker,
        bm.Engine(db, worker=False) as client,
    ):
        handle = await client.start("intake", f"Pt {PATIENT}, call back at {PHONE}")
        await until_status(worker, handle.id, "waiting")
        await client.signal(handle.id, "review", {"note": f"spoke with {DAUGHTER}"})
        result = await worker.result(handle.id, timeout=30)
        _assert_no_phi(db)
    _assert_no_phi(db)
    assert result == {
        "note": "noted: Pt <PERSON>, call back at <PHONE_NUMBER>",
        "review": {"note": "spoke with <PERSON>"},
    }


async def test_a_client_that_cannot_rebuild_the_redactor_is_refused_and_writes_nothing(
    tmp_path: Path, until_status: Any
) -> None:
    db = tmp_path / "j.db"
    async with bm.Engine(db, workflows=[hashed], poll_interval=0.02) as worker:
        handle = await worker.start(hashed, f"Pt {PATIENT}")
        await until_status(worker, handle.id, "waiting")
        async with bm.Engine(db, worker=False) as client:
            # mode="hash" keeps its key out of the journal, so the client cannot redact.
            with pytest.raises(bm.RedactionError, match=r"holds a secret.*workflows=\[the_workflow\]"):
                await client.start("hashed", f"Pt {PATIENT}")
            with pytest.raises(bm.RedactionError, match="workflow 'hashed' redacts"):
                await client.signal(handle.id, "review", f"call {PHONE}")
            assert [run.id for run in await client.list()] == [handle.id]
        # The client holding the workflow object redacts with it.
        async with bm.Engine(db, workflows=[hashed], worker=False) as holder:
            await holder.signal(handle.id, "review", f"call {PHONE}")
        assert (await worker.result(handle.id, timeout=30)).startswith("call <PHONE_NUMBER:")
    _assert_no_phi(db)


async def test_a_worker_whose_copy_lost_redact_still_redacts(tmp_path: Path, until_status: Any) -> None:
    db = tmp_path / "j.db"
    async with bm.Engine(db, workflows=[intake]):
        pass  # a worker with the workflow as written records that it redacts
    async with bm.Engine(db, workflows=[intake_without_redact], poll_interval=0.02) as worker:
        handle = await worker.start(intake_without_redact, f"Pt {PATIENT}")
        await until_status(worker, handle.id, "waiting")
        await worker.signal(handle.id, "review", f"call {PHONE}")
        result = await worker.result(handle.id, timeout=30)
    assert result == {"note": "noted: Pt <PERSON>", "review": "call <PHONE_NUMBER>"}
    _assert_no_phi(db)


async def test_the_engine_wide_redactor_is_recorded_for_every_workflow(tmp_path: Path) -> None:
    db = tmp_path / "j.db"
    async with bm.Engine(
        db, workflows=[unredacted_by_itself], redact=bm.RedactPII(), poll_interval=0.02
    ) as worker:
        async with bm.Engine(db, worker=False) as client:
            handle = await client.start("unredacted_by_itself", f"Pt {PATIENT}")
        assert await worker.result(handle.id, timeout=30) == "noted: Pt <PERSON>"
    _assert_no_phi(db)


async def test_an_approval_comment_from_a_plain_client_is_redacted(tmp_path: Path, until_status: Any) -> None:
    db = tmp_path / "j.db"
    async with bm.Engine(db, workflows=[reviewed], poll_interval=0.02) as worker:
        handle = await worker.start(reviewed, f"Pt {PATIENT}")
        await until_status(worker, handle.id, "waiting")
        async with bm.Engine(db, worker=False) as desk:
            await desk.approvals.decide(handle.id, "hold", by="ines", comment=f"called {DAUGHTER} at {PHONE}")
        assert await worker.result(handle.id, timeout=30) == "hold: called <PERSON> at <PHONE_NUMBER>"
    _assert_no_phi(db)


async def test_the_cli_signal_command_redacts_with_the_journals_redactor(
    tmp_path: Path, until_status: Any
) -> None:
    db = tmp_path / "j.db"
    async with bm.Engine(db, workflows=[intake], poll_interval=0.02) as worker:
        handle = await worker.start(intake, "no phi here")
        await until_status(worker, handle.id, "waiting")
        payload = json.dumps({"note": f"{DAUGHTER} called from {PHONE}"})
        proc = await asyncio.create_subprocess_exec(
            *[
                sys.executable,
                "-m",
                "bandmaster.cli",
                "signal",
                handle.id,
                "review",
                payload,
                "--db",
                str(db),
            ],
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        _, stderr = await asyncio.wait_for(proc.communicate(), timeout=120)
        assert proc.returncode == 0, stderr.decode()
        result = await worker.result(handle.id, timeout=30)
    assert result["review"] == {"note": "<PERSON> called from <PHONE_NUMBER>"}
    _assert_no_phi(db)


SENT: list[str] = []


def _echo(text: str) -> str:
    SENT.append(text)
    return "ok"


@bm.workflow(name="composer", redact=bm.RedactPII())
async def composer(ticket_id: str) -> str:
    # Text the workflow composes itself, not from its (redacted) input.
    reply = await bm.call_model(bm.CallableModel(_echo, name="echo"), f"Chart of {PATIENT}, phone {PHONE}")
    return str(reply.output)


async def test_the_model_is_sent_exactly_the_journaled_request(tmp_path: Path) -> None:
    db = tmp_path / "j.db"
    SENT.clear()
    async with bm.Engine(db, workflows=[composer]) as engine:
        handle = await engine.start(composer, "T-1")
        assert await handle.result(timeout=30) == "ok"
        info = await engine.describe(handle.id)
    assert SENT == ["Chart of <PERSON>, phone <PHONE_NUMBER>"]
    with sqlite3.connect(db) as conn:
        (meta,) = conn.execute(
            "SELECT meta FROM steps WHERE run_id = ? AND kind = 'model'", (handle.id,)
        ).fetchone()
    assert json.loads(meta)["request"]["input"] == SENT[0]
    assert info.steps[0].meta["request"]["input"] == SENT[0]
    _assert_no_phi(db)
