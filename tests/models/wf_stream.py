"""Workflows that stream a model's answer, for the streaming tests (in-process and in
``bandmaster worker`` processes)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import bandmaster as bm
from bandmaster.models._base import ModelChunk


async def collect(stream: bm.ModelStream) -> list[str]:
    """The chunks as the caller saw them; a restart is written ``<restart>``."""
    return ["<restart>" if chunk.restart else chunk.text async for chunk in stream]


@bm.workflow
async def chat(target: str, text: str, fallback: list[Any] | None = None) -> dict[str, Any]:
    stream = bm.stream_model(target, text, fallback=fallback)
    chunks = await collect(stream)
    return {"chunks": chunks, "text": stream.response.text, "model": stream.response.model}


@bm.workflow
async def chat_then_wait(target: str, text: str) -> dict[str, Any]:
    """Streams, then waits for a signal: the run resumes by replaying the stream."""
    stream = bm.stream_model(target, text)
    chunks = await collect(stream)
    await bm.wait_for("go")
    return {"chunks": chunks, "text": stream.response.text}


@bm.workflow
async def chat_guarded(target: str, text: str, fallback: list[Any] | None = None) -> dict[str, Any]:
    chunks: list[str] = []
    stream = bm.stream_model(
        target,
        text,
        fallback=fallback,
        guard=bm.BannedTopics(["tax evasion"], on_violation="fallback" if fallback else "raise"),
    )
    try:
        async for chunk in stream:
            chunks.append("<restart>" if chunk.restart else chunk.text)
    except bm.GuardViolation as exc:
        return {"chunks": chunks, "cut": exc.detail}
    return {"chunks": chunks, "text": stream.response.text}


class CardRedactor:
    def redact(self, value: Any) -> Any:
        return value.replace("4111", "<card>") if isinstance(value, str) else value


@bm.workflow(redact=CardRedactor())
async def chat_redacted(target: str, text: str) -> dict[str, Any]:
    stream = bm.stream_model(target, text + " and 4111 again")  # text not from the input
    return {"chunks": await collect(stream)}


CLOSED: list[str] = []


class Endless:
    """Streams one chunk, then nothing for a long time; notes when its stream is closed."""

    name = "endless"

    async def request(self, req: bm.ModelRequest) -> bm.ModelResponse:
        raise AssertionError("stream_model streams")

    async def stream(self, req: bm.ModelRequest) -> AsyncIterator[ModelChunk]:
        try:
            yield ModelChunk("first")
            await asyncio.sleep(60)
        finally:
            CLOSED.append("closed")


@bm.workflow
async def first_chunk_only() -> list[str]:
    """Stops reading after the first chunk, closing the stream: the call stops there."""
    CLOSED.clear()
    seen = []
    async with contextlib.aclosing(bm.stream_model(Endless(), "q")) as stream:
        async for chunk in stream:
            seen.append(chunk.text)
            break
    return seen + CLOSED
