"""What every model answers: ``ModelRequest`` in, ``ModelResponse`` out, through one method."""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field


class Message(BaseModel):
    model_config = ConfigDict(frozen=True)

    role: Literal["system", "user", "assistant", "tool"]
    content: str


class ModelRequest(BaseModel):
    """A plain, inspectable request: what was sent is what the journal shows.

    ``input`` is text, a list of chat messages, or a structured dict (for classifiers and
    tools). ``json_schema`` asks for JSON output matching the schema (providers that support
    structured output get it as their response format). ``response_format="json"`` asks for
    JSON mode without a schema (OpenAI-compatible ``{"type": "json_object"}``; Anthropic, which
    has no JSON mode, gets the instruction in its system prompt).
    """

    model_config = ConfigDict(frozen=True)

    input: str | list[Message] | dict[str, Any]
    system: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    json_schema: dict[str, Any] | None = None
    stop: list[str] | None = None
    response_format: Literal["text", "json"] | None = None
    params: dict[str, Any] = Field(default_factory=dict)

    def messages(self) -> list[Message]:
        """The conversation as chat messages, system prompt first."""
        head = [Message(role="system", content=self.system)] if self.system else []
        if isinstance(self.input, str):
            return [*head, Message(role="user", content=self.input)]
        if isinstance(self.input, list):
            return [*head, *self.input]
        return [*head, Message(role="user", content=json.dumps(self.input, sort_keys=True))]

    def text(self) -> str:
        """The request as one string (what a classifier or a recorded table is keyed by)."""
        if isinstance(self.input, str):
            return self.input
        if isinstance(self.input, list):
            return "\n".join(m.content for m in self.input if m.role != "system")
        return json.dumps(self.input, sort_keys=True)

    def fingerprint(self) -> str:
        """A stable hash of everything that affects the answer (the response cache key)."""
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()


class Usage(BaseModel):
    input_tokens: int = 0
    output_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


class ModelResponse(BaseModel):
    """A model's answer. ``output`` is the parsed result (text, a label, a JSON object);
    ``text`` the raw text; ``confidence`` in [0, 1] where the model or a calibrator gives one;
    ``cost`` in USD (``cost_known`` False: the model's price is unknown, and ``cost`` is 0 only
    because nothing could be counted); ``model`` the concrete version that answered."""

    output: Any = None
    text: str = ""
    confidence: float | None = Field(default=None, ge=0.0, le=1.0)
    usage: Usage = Field(default_factory=Usage)
    cost: float = 0.0
    cost_known: bool = True
    model: str = ""
    latency: float = 0.0
    finish_reason: str | None = None
    raw: dict[str, Any] | None = None


@runtime_checkable
class Model(Protocol):
    """Anything that answers a request. ``name`` is the concrete model id: it keys prices,
    circuit breakers and the journal's record of who answered."""

    name: str

    async def request(self, req: ModelRequest) -> ModelResponse: ...


@dataclass(frozen=True, slots=True)
class ModelChunk:
    """A piece of a streamed answer: ``text`` as the provider sent it. The last chunk of a
    stream carries the whole ``response`` (text, usage, model, finish reason) and no text.
    A plain slotted dataclass, not a pydantic model: one is made per token."""

    text: str = ""
    response: ModelResponse | None = None


@runtime_checkable
class StreamingModel(Model, Protocol):
    """A model that can also send its answer as it is generated (optional: ``stream_chunks``
    falls back to ``request`` for a model without it)."""

    def stream(self, req: ModelRequest) -> AsyncIterator[ModelChunk]: ...


def stream_chunks(model: Model, req: ModelRequest) -> AsyncIterator[ModelChunk]:
    """``model``'s answer as chunks ending with the response: its own ``stream``, or for a
    model that cannot stream its whole answer as one chunk."""
    stream = getattr(model, "stream", None)
    return stream(req) if stream is not None else _one_chunk(model, req)


async def _one_chunk(model: Model, req: ModelRequest) -> AsyncIterator[ModelChunk]:
    response = await model.request(req)
    if response.text:
        yield ModelChunk(response.text)
    yield ModelChunk(response=response)
