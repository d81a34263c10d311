"""``bm.stream_model`` against a scripted server speaking the OpenAI and Anthropic streaming
wire formats, through the real SDKs: chunks as sent, one journal row with usage and cost,
replay of the recorded text, a fallback after a stream cut part-way, a banned-topic cut, and
the chunks published for observers."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import bandmaster as bm
from bandmaster.models._base import ModelChunk

from .helpers import ScriptedServer
from .wf_stream import chat, chat_guarded, chat_redacted, chat_then_wait, first_chunk_only

PRIMARY = "gpt-4o-mini"
BACKUP = "claude-haiku-4-5"
PIECES = ["The ", "answer ", "comes ", "in ", "pieces."]


def registry(
    server: ScriptedServer, *, anthropic: bool = False, attempts: int = 1, failures: int = 5
) -> bm.Registry:
    primary = server.anthropic_entry(PRIMARY) if anthropic else server.openai_entry(PRIMARY)
    return bm.Registry.from_dict(
        {
            "models": {"primary": primary, "backup": server.anthropic_entry(BACKUP)},
            "aliases": {
                "chat": {
                    "versions": {"production": "primary"},
                    "policy": {
                        "retry": {"attempts": attempts, "initial": 0.01},
                        "breaker": {"failures": failures, "reset": 60},
                    },
                }
            },
            "prices": {PRIMARY: {"input": 1.0, "output": 2.0}},
        }
    )


async def run(db_path: Path, reg: bm.Registry, workflow: Any, *args: Any) -> tuple[Any, bm.RunInfo]:
    engine = bm.Engine(db_path, workflows=[workflow], registry=reg, poll_interval=0.02, lease=2.0)
    await engine.open()
    try:
        handle = await engine.start(workflow, *args)
        return await handle.result(timeout=30), await handle.describe()
    finally:
        await engine.close(grace=1.0)


def model_steps(info: bm.RunInfo) -> list[bm.StepInfo]:
    return [s for s in info.steps if s.kind == "model"]


@pytest.mark.parametrize("anthropic", [False, True], ids=["openai", "anthropic"])
async def test_chunks_arrive_as_sent_and_the_journal_records_one_response(
    server: ScriptedServer, db_path: Path, anthropic: bool
) -> None:
    server.script(PRIMARY, {"kind": "ok", "chunks": PIECES, "usage": [1000, 2000]})
    result, info = await run(db_path, registry(server, anthropic=anthropic), chat, "chat", "hello")
    assert result["chunks"] == PIECES, "one chunk per provider event, in order"
    assert result["text"] == "".join(PIECES)
    [step] = model_steps(info)
    assert step.status == "completed"
    assert step.meta["tokens"] == {"input": 1000, "output": 2000}
    assert step.meta["cost"] == pytest.approx(1000 * 1.0 / 1e6 + 2000 * 2.0 / 1e6)
    assert step.meta["model"] == PRIMARY
    assert step.output["text"] == "".join(PIECES)
    assert server.stats()["last"][PRIMARY]["stream"] is True, "the SDK's streaming API was used"


async def test_replay_yields_the_recorded_text_without_calling_again(
    server: ScriptedServer, db_path: Path
) -> None:
    server.script(PRIMARY, {"kind": "ok", "chunks": PIECES})
    engine = bm.Engine(db_path, workflows=[chat_then_wait], registry=registry(server), poll_interval=0.02)
    await engine.open()
    try:
        handle = await engine.start(chat_then_wait, "chat", "hello")
        for _ in range(1500):  # until suspended at the wait: its memory dropped
            if (await handle.describe()).status == "waiting":
                break
            await asyncio.sleep(0.02)
        await engine.signal(handle.id, "go")
        result = await handle.result(timeout=30)
    finally:
        await engine.close(grace=1.0)
    # The run suspended at the wait and resumed by replaying: the stream came from the journal.
    assert result == {"chunks": ["".join(PIECES)], "text": "".join(PIECES)}
    assert server.count(PRIMARY) == 1


@pytest.mark.parametrize("anthropic", [False, True], ids=["openai", "anthropic"])
async def test_a_stream_cut_part_way_falls_back_after_a_restart(
    server: ScriptedServer, db_path: Path, anthropic: bool
) -> None:
    server.script(PRIMARY, {"kind": "ok", "chunks": PIECES, "cut_after": 2})
    server.script(BACKUP, {"kind": "ok", "chunks": ["Backup ", "answer."]})
    reg = registry(server, anthropic=anthropic, failures=1)
    result, info = await run(db_path, reg, chat, "chat", "hello", ["backup"])
    assert result["chunks"] == ["The ", "answer ", "<restart>", "Backup ", "answer."]
    assert result["text"] == "Backup answer."
    assert result["model"] == BACKUP
    [step] = model_steps(info)
    assert step.meta["fallback"] == "backup"
    [error] = step.meta["attempt_errors"]
    assert error.startswith("ProviderUnavailable: "), error
    assert step.meta["breakers"]["primary"] == "open", "the breaker counted the failure part-way"


async def test_a_cut_stream_is_retried_on_the_same_model(server: ScriptedServer, db_path: Path) -> None:
    server.script(PRIMARY, {"kind": "ok", "chunks": PIECES, "cut_after": 3}, {"kind": "ok", "chunks": PIECES})
    result, info = await run(db_path, registry(server, attempts=2), chat, "chat", "hello")
    assert result["chunks"] == [*PIECES[:3], "<restart>", *PIECES]
    [step] = model_steps(info)
    assert step.attempts == 2
    assert step.meta["tokens"] == {"input": 11, "output": 7}


async def test_a_banned_topic_cuts_the_stream_short(server: ScriptedServer, db_path: Path) -> None:
    pieces = ["Here is ", "how tax ", "evasion ", "works: ", "first ", "you ", "hide"]
    server.script(PRIMARY, {"kind": "ok", "chunks": pieces})
    result, info = await run(db_path, registry(server), chat_guarded, "chat", "hello")
    # "tax evasion" is decided once the character after it is known (the chunk "evasion ")
    # and that chunk is withheld: the caller never sees the rest of the answer.
    assert result["chunks"] == ["Here is ", "how tax "]
    assert "tax evasion" in result["cut"]
    [step] = model_steps(info)
    assert step.status == "failed"
    assert step.meta["guard"]["violations"][0]["rule"] == "banned_topics"


async def test_a_banned_topic_with_fallback_restarts_on_the_fallback(
    server: ScriptedServer, db_path: Path
) -> None:
    server.script(PRIMARY, {"kind": "ok", "chunks": ["Try tax ", "evasion", " now"]})
    server.script(BACKUP, {"kind": "ok", "chunks": ["I cannot ", "help."]})
    result, _ = await run(db_path, registry(server), chat_guarded, "chat", "hello", ["backup"])
    # "evasion" ends the first chunks seen: whether "tax evasion" is a match is decided by the
    # next character, so that chunk was shown; the restart tells the caller to drop it.
    assert result == {
        "chunks": ["Try tax ", "evasion", "<restart>", "I cannot ", "help."],
        "text": "I cannot help.",
    }


async def test_a_model_without_stream_answers_in_one_chunk(db_path: Path) -> None:
    model = bm.CallableModel(lambda req: f"whole answer to {req.text()}", name="plain")
    reg = bm.Registry.from_dict(
        {"aliases": {"plain": {"versions": {"production": "plain"}}}}, models={"plain": model}
    )
    result, info = await run(db_path, reg, chat, "plain", "q")
    assert result["chunks"] == ["whole answer to q"]
    assert model_steps(info)[0].status == "completed"


async def test_chunks_are_published_for_observers_but_not_for_redacting_workflows(
    server: ScriptedServer, db_path: Path
) -> None:
    server.script(PRIMARY, default={"kind": "ok", "chunks": PIECES})
    _, info = await run(db_path, registry(server), chat, "chat", "hello")
    with sqlite3.connect(db_path) as conn:
        rows = conn.execute(
            "SELECT run_id, seq, text, restart FROM stream_chunks WHERE text != ''"
        ).fetchall()
    assert {r[0] for r in rows} == {info.id}
    assert "".join(r[2] for r in rows) == "".join(PIECES)
    _, redacted = await run(db_path, registry(server), chat_redacted, "chat", "card 4111")
    with sqlite3.connect(db_path) as conn:
        count = conn.execute("SELECT count(*) FROM stream_chunks WHERE run_id = ?", (redacted.id,)).fetchone()
    assert count == (0,), "a redacting workflow publishes no raw chunks"
    sent = server.last_body(PRIMARY)["messages"][-1]["content"]
    assert sent == "card <card> and <card> again", "the model is sent the redacted request"


class Eager:
    """Streams chunks that are all ready at once (as when a fast server's events are buffered)."""

    name = "eager"

    def __init__(self, log: list[str]) -> None:
        self.log = log

    async def request(self, req: bm.ModelRequest) -> bm.ModelResponse:
        raise AssertionError("stream_model streams")

    async def stream(self, req: bm.ModelRequest) -> AsyncIterator[ModelChunk]:
        for piece in ("a", "b", "c"):
            self.log.append(f"sent {piece}")
            yield ModelChunk(piece)
        yield ModelChunk(response=bm.ModelResponse(output="abc", text="abc", model=self.name))


async def test_each_chunk_reaches_the_caller_before_the_next_is_read() -> None:
    log: list[str] = []
    async for chunk in bm.stream_model(Eager(log), "q"):
        log.append(f"got {chunk.text}")
    assert log == ["sent a", "got a", "sent b", "got b", "sent c", "got c"]


async def test_a_stream_is_iterated_once_and_its_response_known_at_the_end() -> None:
    stream = bm.stream_model(Eager([]), "q")
    with pytest.raises(bm.UsageError, match="iterated to its end"):
        _ = stream.response
    assert [chunk.text async for chunk in stream] == ["a", "b", "c"]
    assert stream.response.text == "abc"
    with pytest.raises(bm.UsageError, match="iterated once"):
        stream.__aiter__()


class Talky:
    """Streams an answer that mentions a banned topic, and notes when its stream is closed."""

    name = "talky"

    def __init__(self, log: list[str]) -> None:
        self.log = log

    async def request(self, req: bm.ModelRequest) -> bm.ModelResponse:
        raise AssertionError("stream_model streams")

    async def stream(self, req: bm.ModelRequest) -> AsyncIterator[ModelChunk]:
        try:
            for piece in ("about tax ", "evasion ", "and ", "more"):
                self.log.append(f"sent {piece}")
                yield ModelChunk(piece)
        finally:
            self.log.append("closed")


async def test_a_cut_closes_the_provider_stream_before_the_caller_hears_of_it() -> None:
    log: list[str] = []
    stream = bm.stream_model(
        Talky(log), "q", guard=bm.BannedTopics(["tax evasion"]), retry=bm.Retry(attempts=1)
    )

    async def consume() -> None:
        async for chunk in stream:
            log.append(f"got {chunk.text}")

    with pytest.raises(bm.GuardViolation, match="tax evasion"):
        await consume()
    assert log == ["sent about tax ", "got about tax ", "sent evasion ", "closed"]


async def test_a_cached_answer_streams_as_one_chunk(server: ScriptedServer, db_path: Path) -> None:
    server.script(PRIMARY, {"kind": "ok", "chunks": PIECES})
    reg = bm.Registry.from_dict(
        {
            "models": {"primary": server.openai_entry(PRIMARY)},
            "aliases": {"chat": {"versions": {"production": "primary"}, "policy": {"cache": {"ttl": 600}}}},
        }
    )
    first, _ = await run(db_path, reg, chat, "chat", "hello")
    second, info = await run(db_path, reg, chat, "chat", "hello")
    assert first["chunks"] == PIECES
    assert second["chunks"] == ["".join(PIECES)], "the cache answered: the whole text at once"
    assert model_steps(info)[0].meta["cache_hit"] is True
    assert server.count(PRIMARY) == 1


async def test_closing_a_stream_early_stops_the_call_and_journals_nothing(db_path: Path) -> None:
    result, info = await run(db_path, bm.Registry(), first_chunk_only)
    assert result == ["first", "closed"], "the model's stream was closed when the caller closed"
    assert model_steps(info) == [], "a call stopped before its end leaves no row: a replay calls again"
