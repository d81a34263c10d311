"""A workflow whose model streams slowly, for the token events of the SSE stream and
``bandmaster runs watch``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import bandmaster as bm
from bandmaster.models._base import ModelChunk

WORDS = ["Streams ", "arrive ", "word ", "by ", "word."]
PAUSE = 0.3  # longer than the publisher's batch interval: several token events


class SlowTalker:
    """A model that streams ``WORDS`` with a pause before each."""

    name = "slow-talker"

    async def request(self, req: bm.ModelRequest) -> bm.ModelResponse:
        text = "".join(WORDS)
        return bm.ModelResponse(output=text, text=text, model=self.name)

    async def stream(self, req: bm.ModelRequest) -> AsyncIterator[ModelChunk]:
        for word in WORDS:
            await asyncio.sleep(PAUSE)
            yield ModelChunk(word)
        yield ModelChunk(response=await self.request(req))


@bm.workflow
async def talk(text: str) -> str:
    stream = bm.stream_model(SlowTalker(), text)
    async for _ in stream:
        pass
    return stream.response.text
