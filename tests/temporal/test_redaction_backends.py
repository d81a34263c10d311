"""Journal redaction with the same test code on both backends, with real Presidio + spaCy and
the real scripted provider process: nothing unredacted reaches the embedded journal's file or
Temporal's history (every event and payload decoded), and ``describe`` shows the same
placeholders. On Temporal the token vault is refused with a reason."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("temporalio", reason="the Temporal backend needs: pip install 'bandmaster[temporal]'")
pytest.importorskip("presidio_analyzer", reason="needs the 'pii' extra: pip install 'bandmaster[pii]'")
import wf_redaction as wfs
from google.protobuf.message import Message
from temporal_support import EngineFactory, TemporalServer

import bandmaster as bm
from models.conftest import scripted_process, server  # noqa: F401  (fixtures, used by name)
from models.helpers import ScriptedServer

pytestmark = pytest.mark.timeout(180)


def registry(server: ScriptedServer) -> bm.Registry:  # noqa: F811
    entry = server.openai_entry(wfs.MODEL, price={"input": 1.0, "output": 2.0})  # a made-up model id
    return bm.Registry.from_dict({"models": {wfs.MODEL: entry}})


def _texts(message: Message, out: list[str]) -> None:
    """Every string and bytes value in a protobuf message, payload data decoded."""
    for descriptor, value in message.ListFields():
        if descriptor.message_type is not None and descriptor.message_type.GetOptions().map_entry:
            items: list[Any] = [x for pair in value.items() for x in pair]
        elif isinstance(value, Message | str | bytes) or not hasattr(value, "__iter__"):
            items = [value]
        else:
            items = list(value)  # a repeated field
        for item in items:
            if isinstance(item, Message):
                _texts(item, out)
            elif isinstance(item, bytes):
                out.append(item.decode(errors="replace"))
            else:
                out.append(str(item))


async def stored_text(engine: Any, run_id: str, journal: Path) -> str:
    """Everything the backend stored about the run: the whole Temporal history, or the
    embedded journal's files (with its write-ahead log)."""
    if isinstance(engine, bm.TemporalEngine):
        history = await engine.client.get_workflow_handle(run_id).fetch_history()
        out: list[str] = []
        for event in history.events:
            _texts(event, out)
        description = await engine.client.get_workflow_handle(run_id).describe()
        out.extend(str(v) for v in (await description.memo()).values())
        return "\n".join(out)
    return _journal_bytes(journal).decode(errors="replace")


def _journal_bytes(journal: Path) -> bytes:
    data = b""
    for suffix in ("", "-wal"):
        path = Path(f"{journal}{suffix}")
        if path.exists():
            data += path.read_bytes()
    return data


def assert_no_pii(text: str) -> None:
    assert text, "nothing stored?"
    found = [s for s in wfs.SECRETS if s in text]
    assert found == [], f"PII reached the journal: {found}"


async def test_no_pii_reaches_the_journal_and_describe_shows_placeholders(
    make_engine: EngineFactory,
    server: ScriptedServer,  # noqa: F811
    tmp_path: Path,
) -> None:
    answer = f"Dear {wfs.PATIENT}, we will call you at {wfs.PHONE} or write to {wfs.EMAIL}."
    server.script(wfs.MODEL, {"kind": "ok", "text": answer})
    engine = await make_engine([wfs.phi_intake], registry=registry(server))
    handle = await engine.start(wfs.phi_intake, wfs.TICKET)
    review = {"by": f"Dr. {wfs.REVIEWER}", "email": wfs.REVIEWER_EMAIL, "decision": "send"}
    await engine.signal(handle.id, "review", review)
    result = await handle.result(timeout=90)

    # What the workflow and its steps saw is the redacted value, on both backends.
    ticket = result["ticket"]
    assert wfs.SEEN["step_input"] == ticket
    for placeholder in ("<PERSON>", "<EMAIL_ADDRESS>", "<PHONE_NUMBER>"):
        assert placeholder in ticket
    assert result["summary"] == {
        "text": f"Call back <PERSON> about: {ticket}",
        "callback": "tel <PHONE_NUMBER>",
        "email": "<EMAIL_ADDRESS>",
    }
    assert result["reply"] == "Dear <PERSON>, we will call you at <PHONE_NUMBER> or write to <EMAIL_ADDRESS>."
    assert result["error"] == "no bed for <PERSON>, call <PHONE_NUMBER>"
    assert result["review"] == {"by": "Dr. <PERSON>", "email": "<EMAIL_ADDRESS>", "decision": "send"}
    assert result["family"] == "daughter <PERSON>"
    # The model got the redacted prompt.
    assert server.last_body(wfs.MODEL)["messages"][-1]["content"] == f"Draft a reply to: {ticket}"

    info = await engine.describe(handle.id)
    assert info.input == [ticket]
    assert info.output == result
    steps = {s.name: s for s in info.steps}
    assert steps["summarise"].output == result["summary"]
    assert steps[wfs.MODEL].output["output"] == result["reply"]
    assert steps[wfs.MODEL].meta["request"]["input"] == f"Draft a reply to: {ticket}"
    assert steps["admit"].status == "failed"
    assert steps["admit"].error is not None
    assert steps["admit"].error["message"] == "no bed for <PERSON>, call <PHONE_NUMBER>"
    assert "<PERSON>" in steps["admit"].error["traceback"]
    assert steps["review"].output == result["review"]

    assert_no_pii(await stored_text(engine, handle.id, tmp_path / "journal.db"))


async def test_the_engine_redactor_covers_workflows_without_their_own_and_failed_runs(
    make_engine: EngineFactory, tmp_path: Path
) -> None:
    engine = await make_engine([wfs.plain_echo], redact=bm.RedactPII())
    done = await engine.start(wfs.plain_echo, f"hello {wfs.PATIENT}")
    assert await done.result(timeout=60) == "echo hello <PERSON>"

    failing = await engine.start(wfs.plain_echo, f"fail {wfs.EMAIL}")
    with pytest.raises(bm.RunFailed) as failed:
        await failing.result(timeout=60)
    assert "could not reach <PERSON> at <PHONE_NUMBER>" in failed.value.message
    info = await engine.describe(failing.id)
    assert info.error is not None
    assert info.error["message"] == "could not reach <PERSON> at <PHONE_NUMBER>"
    assert info.input == ["fail <EMAIL_ADDRESS>"]

    journal = tmp_path / "journal.db"
    assert_no_pii(await stored_text(engine, done.id, journal))
    assert_no_pii(await stored_text(engine, failing.id, journal))


async def test_without_a_redactor_values_reach_temporal_as_they_are(temporal_server: TemporalServer) -> None:
    # The control: the history scan above would see PII if it were there.
    async with bm.TemporalEngine(
        temporal_server.target, task_queue="tredact-plain", workflows=[wfs.plain_echo]
    ) as engine:
        handle = await engine.start(wfs.plain_echo, f"hello {wfs.PATIENT}")
        assert await handle.result(timeout=60) == f"echo hello {wfs.PATIENT}"
        assert wfs.PATIENT in await stored_text(engine, handle.id, Path("unused"))


def test_the_token_vault_is_refused_on_temporal_with_the_reason(tmp_path: Path) -> None:
    vault = bm.TokenVault(tmp_path / "vault.db", key=bm.TokenVault.generate_key())
    tokens = bm.RedactPII(mode="token", vault=vault)
    with pytest.raises(bm.UsageError, match=r"token vault is a SQLite file on one machine.*mode='hash'"):
        bm.TemporalEngine("127.0.0.1:1", redact=tokens)

    @bm.workflow(name="vaulted", redact=tokens)
    async def vaulted(text: str) -> str:
        return text

    with pytest.raises(bm.UsageError, match=r"workflow 'vaulted' \(redact=...\): RedactPII\(mode='token'"):
        bm.TemporalEngine("127.0.0.1:1", workflows=[vaulted])
    # Hash mode is the portable choice, and is accepted.
    bm.TemporalEngine("127.0.0.1:1", redact=bm.RedactPII(mode="hash", key="k" * 32))


async def test_a_value_invalid_once_redacted_fails_its_step(make_engine: EngineFactory) -> None:
    engine = await make_engine([wfs.strict_contact])
    handle = await engine.start(wfs.strict_contact)
    outcome = await handle.result(timeout=60)
    assert outcome.startswith("caught: output of step 'lookup'")
    assert "once redacted" in outcome
    [step] = (await engine.describe(handle.id)).steps
    assert step.status == "failed"
    assert step.error is not None
    assert step.error["type"] == "bandmaster.errors.RedactionError"


async def test_an_activity_told_to_redact_fails_on_a_worker_without_the_redactor() -> None:
    # Fail closed: returning the raw value would write it to the history.
    from temporalio.exceptions import ApplicationError
    from temporalio.testing import ActivityEnvironment

    from bandmaster.temporal._redaction import RedactCall, redact_activity

    with pytest.raises(ApplicationError, match="does not host it with its redactor"):
        await ActivityEnvironment().run(redact_activity, RedactCall("output", wfs.PATIENT))


async def test_a_client_without_the_workflow_redacts_its_signal_as_the_run_recorded(
    make_engine: EngineFactory, tmp_path: Path
) -> None:
    worker = await make_engine([wfs.held_for_note, wfs.held_for_note_hashed])
    # A client that does not import the workflows: no redactor of its own.
    client: Any = (
        bm.TemporalEngine(worker.target, task_queue=worker.task_queue, worker=False)
        if isinstance(worker, bm.TemporalEngine)
        else bm.Engine(worker.path, worker=False)
    )
    async with client:
        handle = await worker.start(wfs.held_for_note, "no pii here")
        await client.signal(handle.id, "note", f"{wfs.PATIENT} called from {wfs.PHONE}")
        assert await handle.result(timeout=60) == {
            "ticket": "no pii here",
            "note": "<PERSON> called from <PHONE_NUMBER>",
        }
        assert_no_pii(await stored_text(worker, handle.id, tmp_path / "journal.db"))

        # A hash key stays out of the journal and the history: the client cannot redact, and says so.
        hashed = await worker.start(wfs.held_for_note_hashed, "no pii here")
        with pytest.raises(bm.RedactionError, match="holds a secret"):
            await client.signal(hashed.id, "note", f"call {wfs.PATIENT}")
        await worker.signal(hashed.id, "note", "done")
        assert await hashed.result(timeout=60) == "done"
        assert_no_pii(await stored_text(worker, hashed.id, tmp_path / "journal.db"))
