"""The journal redaction hook: with ``redact=`` nothing unredacted reaches the SQLite file (or
its write-ahead log), the workflow sees the redacted values, and a replay sees the same."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import pytest
from pydantic import BaseModel, StringConstraints

import bandmaster as bm

pytest.importorskip("presidio_analyzer", reason="needs the 'pii' extra: pip install 'bandmaster[pii]'")

# PHI the tests write into the workflow; none of it may be found on disk.
PATIENT = "Margaret Okafor"
PHONE = "617-555-0142"
MRN = "00734519"
DOB = "04/11/1958"
DAUGHTER = "Elena Okafor"
REVIEWER_NOTE_NAME = "Theodore Vance"
SECRETS = (PATIENT, PHONE, MRN, DOB, DAUGHTER, REVIEWER_NOTE_NAME, "Okafor", "0142")


class Summary(BaseModel):
    text: str
    callback: str
    urgent: bool


SEEN: dict[str, object] = {}


@bm.step
async def summarise(ticket: str) -> Summary:
    # The step gets the redacted ticket and returns new PHI (as a model might): the callback
    # number comes from "the hospital system", not from the input.
    SEEN["step_input"] = ticket
    return Summary(text=f"Call back {DAUGHTER} about {ticket}", callback=f"tel {PHONE}", urgent=True)


@bm.workflow(name="phi_triage")
async def phi_triage(ticket: str) -> dict[str, object]:
    summary = await summarise(ticket)
    SEEN["summary"] = summary
    review = await bm.wait_for("review", timeout=30)
    SEEN["review"] = review
    return {"summary": summary.text, "review": review}


def _disk_bytes(db: Path) -> bytes:
    data = b""
    for suffix in ("", "-wal", "-shm"):
        path = Path(f"{db}{suffix}")
        if path.exists():
            data += path.read_bytes()
    return data


def _assert_no_phi(db: Path) -> None:
    raw = _disk_bytes(db)
    assert raw, "the journal files should exist"
    found = [s for s in SECRETS if s.encode() in raw]
    assert found == [], f"PHI reached the disk: {found}"


async def test_no_phi_reaches_the_sqlite_file_or_its_wal(tmp_path: Path, until_status) -> None:  # type: ignore[no-untyped-def]
    db = tmp_path / "phi.db"
    ticket = f"Pt {PATIENT}, MRN {MRN}, DOB {DOB}, asks for a callback at {PHONE}"
    async with bm.Engine(db, workflows=[phi_triage], redact=bm.RedactPII(), poll_interval=0.02) as engine:
        handle = await engine.start(phi_triage, ticket)
        await until_status(engine, handle.id, "waiting")
        await handle.signal("review", {"by": f"Dr. {REVIEWER_NOTE_NAME}", "decision": "send"})
        result = await handle.result(timeout=30)
        # Read while the engine is open: the WAL still holds the recent pages.
        _assert_no_phi(db)
        info = await engine.describe(handle.id)
    _assert_no_phi(db)

    # What the workflow saw is what was journaled: redacted.
    assert "<PERSON>" in str(SEEN["step_input"])
    assert PATIENT not in str(SEEN["step_input"])
    assert SEEN["summary"] == Summary(
        text=f"Call back <PERSON> about {SEEN['step_input']}", callback="tel <PHONE_NUMBER>", urgent=True
    )
    assert SEEN["review"] == {"by": "Dr. <PERSON>", "decision": "send"}
    assert result["review"] == {"by": "Dr. <PERSON>", "decision": "send"}
    assert info.input == [SEEN["step_input"]]
    assert "<MEDICAL_RECORD_NUMBER>" in info.input[0]
    assert "<DATE_TIME>" in info.input[0]


async def test_a_replay_sees_exactly_what_the_live_run_saw(tmp_path: Path, until_status) -> None:  # type: ignore[no-untyped-def]
    db = tmp_path / "replay.db"
    redactor = bm.RedactPII()
    async with bm.Engine(db, workflows=[phi_triage], redact=redactor, poll_interval=0.02) as engine:
        handle = await engine.start(phi_triage, f"{PATIENT} at {PHONE}")
        await until_status(engine, handle.id, "waiting")
    live = SEEN["summary"]
    SEEN.clear()
    # Another engine (a restarted worker) replays the run from the journal, then finishes it.
    async with bm.Engine(db, workflows=[phi_triage], redact=redactor, poll_interval=0.02) as engine:
        await engine.signal(handle.id, "review", "ok")
        await engine.result(handle.id, timeout=30)
    assert SEEN["summary"] == live
    assert "step_input" not in SEEN  # the step was not run again
    _assert_no_phi(db)


async def test_workflow_redactor_overrides_the_engine_default(tmp_path: Path) -> None:
    @bm.step
    async def echo(text: str) -> str:
        return text

    @bm.workflow(name="masked", redact=bm.RedactPII(mode="mask"))
    async def masked(text: str) -> str:
        return await echo(text)

    @bm.workflow(name="plain")
    async def plain(text: str) -> str:
        return await echo(text)

    async with bm.Engine(tmp_path / "j.db", workflows=[masked, plain], redact=bm.RedactPII()) as engine:
        assert await (await engine.start(masked, f"call {PHONE}")).result() == "call ************"
        assert await (await engine.start(plain, f"call {PHONE}")).result() == "call <PHONE_NUMBER>"


async def test_without_a_redactor_values_are_journaled_as_they_are(engine: bm.Engine, db_path: Path) -> None:
    @bm.step
    async def echo(text: str) -> str:
        return text

    @bm.workflow(name="unredacted")
    async def unredacted(text: str) -> str:
        return await echo(text)

    assert await (await engine.start(unredacted, f"call {PHONE}")).result() == f"call {PHONE}"
    assert PHONE.encode() in _disk_bytes(db_path)


async def test_error_messages_and_model_prompts_are_redacted(tmp_path: Path) -> None:
    db = tmp_path / "errors.db"

    @bm.step
    async def admit(name: str) -> str:
        raise ValueError(f"no bed for {name}, phone {PHONE}")

    def note(text: str) -> str:
        return f"noted: {text}"

    @bm.workflow(name="admission", redact=bm.RedactPII())
    async def admission(name: str) -> str:
        reply = await bm.call_model(bm.CallableModel(note, name="echo"), f"admit {name}")
        assert PATIENT not in str(reply.output)
        return await admit(name)

    async with bm.Engine(db, workflows=[admission]) as engine:
        handle = await engine.start(admission, PATIENT)
        with pytest.raises(bm.RunFailed) as failed:
            await handle.result(timeout=30)
        assert "no bed for <PERSON>, phone <PHONE_NUMBER>" in failed.value.message
        info = await engine.describe(handle.id)
        assert info.steps[0].meta["request"]["input"] == "admit <PERSON>"
        assert info.steps[0].output["output"] == "noted: admit <PERSON>"
    _assert_no_phi(db)


Phone = Annotated[str, StringConstraints(pattern=r"^\d{3}-\d{3}-\d{4}$")]


class Contact(BaseModel):
    phone: Phone


async def test_a_value_that_no_longer_validates_once_redacted_fails_the_step_cleanly(tmp_path: Path) -> None:
    db = tmp_path / "strict.db"

    @bm.step
    async def lookup() -> Contact:
        return Contact(phone=PHONE)

    @bm.workflow(name="strict", redact=bm.RedactPII())
    async def strict() -> str:
        try:
            await lookup()
        except bm.RedactionError as exc:
            return f"caught: {exc}"
        return "no error"

    async with bm.Engine(db, workflows=[strict]) as engine:
        handle = await engine.start(strict)
        outcome = await handle.result(timeout=30)
        info = await engine.describe(handle.id)
    assert outcome.startswith("caught: output of step 'lookup'")
    assert "once redacted" in outcome
    assert info.steps[0].status == "failed"
    assert info.steps[0].error is not None
    assert info.steps[0].error["type"] == "bandmaster.errors.RedactionError"
    _assert_no_phi(db)


def test_a_redactor_without_a_redact_method_is_refused() -> None:
    with pytest.raises(bm.UsageError, match="redact"):
        bm.workflow(name="bad", redact="yes please")(phi_triage.fn)  # type: ignore[call-overload]
    with pytest.raises(bm.UsageError, match="redact"):
        bm.Engine("x.db", redact=object())  # type: ignore[arg-type]


def test_redact_rejects_values_that_are_not_json() -> None:
    with pytest.raises(bm.RedactionError, match="JSON values"):
        bm.RedactPII().redact({"when": asyncio.get_event_loop_policy()})


@bm.workflow(name="phi_approval")
async def phi_approval(ticket: str) -> str:
    decision = await bm.approval(
        "phi_review", {"ticket": ticket, "note": f"caller {DAUGHTER}"}, timeout=0.3, default="send"
    )
    return decision.action


async def test_approval_payloads_are_redacted_before_the_approvals_table(tmp_path: Path) -> None:
    db = tmp_path / "approval.db"
    ticket = f"Pt {PATIENT}, MRN {MRN}, callback {PHONE}"
    async with bm.Engine(db, workflows=[phi_approval], redact=bm.RedactPII(), poll_interval=0.02) as engine:
        handle = await engine.start(phi_approval, ticket)
        assert await handle.result(timeout=30) == "send"
        (approval,) = await engine.approvals.list(status="decided")
        _assert_no_phi(db)
    _assert_no_phi(db)
    # The reviewer sees the redacted ticket, entities named.
    assert "<PERSON>" in approval.payload["note"]
    assert "<MEDICAL_RECORD_NUMBER>" in approval.payload["ticket"]


@bm.workflow(name="phi_held")
async def phi_held(ticket: str) -> str:
    decision = await bm.approval("phi_review", {"ticket": ticket}, timeout=60, default="send")
    return f"{decision.action}: {decision.comment}"


async def test_a_reviewers_comment_is_redacted_before_the_approvals_and_audit_tables(tmp_path: Path) -> None:
    db = tmp_path / "comment.db"
    async with bm.Engine(db, workflows=[phi_held], redact=bm.RedactPII(), poll_interval=0.02) as engine:
        handle = await engine.start(phi_held, "billing question")
        for _ in range(500):  # until the run waits on its approval
            if await engine.approvals.list():
                break
            await asyncio.sleep(0.02)
        decision = await engine.approvals.override(
            handle.id, by="compliance", comment=f"called {PATIENT} back at {PHONE}"
        )
        assert PATIENT not in (decision.comment or "")
        result = await handle.result(timeout=30)
        _assert_no_phi(db)
    _assert_no_phi(db)
    assert result == "override: called <PERSON> back at <PHONE_NUMBER>"
