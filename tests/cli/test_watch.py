"""``bandmaster runs watch`` on a journal: tokens printed verbatim (Rich markup, emoji codes,
ANSI escapes are data), a restart line when a fallback answers again, the outcome, and the
exit code. The runs execute in-process first; the streams' chunks stay readable for a while
after they end, so watch replays them from the journal."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from typer.testing import CliRunner, Result

import bandmaster as bm
from bandmaster.cli import app
from bandmaster.models._base import ModelChunk

HOSTILE = ["[bold red]not markup[/] ", ":smile: ", "\x1b[31mred? ", "{0} %s"]


class Scripted:
    """Streams ``pieces``; fails after them when ``fail`` (the stream breaks part-way)."""

    def __init__(self, name: str, pieces: list[str], *, fail: bool = False) -> None:
        self.name = name
        self.pieces = pieces
        self.fail = fail

    async def request(self, req: bm.ModelRequest) -> bm.ModelResponse:
        raise AssertionError("stream_model streams")

    async def stream(self, req: bm.ModelRequest) -> AsyncIterator[ModelChunk]:
        for piece in self.pieces:
            yield ModelChunk(piece)
        if self.fail:
            raise bm.ProviderUnavailable(f"{self.name}: the connection broke")
        text = "".join(self.pieces)
        yield ModelChunk(response=bm.ModelResponse(output=text, text=text, model=self.name))


@bm.workflow
async def hostile() -> str:
    stream = bm.stream_model(Scripted("hostile", HOSTILE), "q")
    async for _ in stream:
        pass
    return stream.response.text


@bm.workflow
async def falls_back() -> str:
    broken = Scripted("broken", ["half an "], fail=True)
    stream = bm.stream_model(
        broken, "q", retry=bm.Retry(attempts=1), fallback=[Scripted("backup", ["whole."])]
    )
    async for _ in stream:
        pass
    return stream.response.text


@bm.workflow
async def refused() -> str:
    stream = bm.stream_model(
        Scripted("talky", ["tax evasion ", "tips"]), "q", guard=bm.BannedTopics(["tax evasion"])
    )
    async for _ in stream:
        pass
    return "unreachable"


async def run_all(db: Path) -> list[str]:
    ids = []
    async with bm.Engine(db, workflows=[hostile, falls_back, refused]) as engine:
        for wf in (hostile, falls_back, refused):
            handle = await engine.start(wf)
            with contextlib.suppress(bm.RunFailed):  # refused: its run fails
                await handle.result(timeout=30)
            ids.append(handle.id)
    return ids


def watch(db: Path, run_id: str) -> Result:
    return CliRunner().invoke(app, ["runs", "watch", run_id, "--db", str(db)], catch_exceptions=False)


def test_watch_prints_tokens_verbatim_restarts_and_outcomes(tmp_path: Path) -> None:
    db = tmp_path / "journal.db"
    hostile_id, fallback_id, refused_id = asyncio.run(run_all(db))

    shown = watch(db, hostile_id)
    assert shown.exit_code == 0, shown.output
    lines = shown.stdout.splitlines()
    assert "".join(HOSTILE) in lines, "tokens verbatim, on one line"
    assert lines[-1] == "output: " + "".join(HOSTILE)

    shown = watch(db, fallback_id)
    assert shown.exit_code == 0, shown.output
    lines = shown.stdout.splitlines()
    at = lines.index("half an ")
    assert lines[at + 1] == "  ↺ restart: a retry or fallback answers again"
    assert lines[at + 2] == "whole."

    shown = watch(db, refused_id)
    assert shown.exit_code == 1, "the run failed"
    lines = shown.stdout.splitlines()
    assert lines[0] == "step 1 talky (model) streaming"
    assert lines[1].startswith("step 1 talky (model) failed"), "the cut chunk was never shown"
    assert lines[-1].startswith("error: bandmaster.errors.GuardViolation: guard 'banned_topics'")
