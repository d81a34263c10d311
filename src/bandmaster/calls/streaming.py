"""``bm.stream_model``: a model call whose answer reaches the caller as it is generated.

It is ``bm.call_model`` with the same policies (fallback chain, breakers, cache, retries,
guards) and one journal row, written once when the stream ends, with usage and cost. Only the
way each attempt asks its model differs: through the provider's streaming API
(``Model.stream``; a model without it answers in one chunk), relaying each chunk to the
caller, to ``Guard.check_partial`` and, for observers, to the journal's ``stream_chunks``
side channel (``bandmaster.store._streams``).

What the caller sees:

* live, the chunks as the provider sends them; when an attempt fails part-way and a retry or a
  fallback answers again, a chunk with ``restart=True`` first (drop the text shown so far);
* on replay (the row is journaled), the recorded text as one chunk;
* a crash mid-stream leaves no row: on resume the call is made again, streamed again.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from bandmaster.calls import call_model, prepare_call, redact_request
from bandmaster.calls._stack import RESPONSE_CODEC, invoke_model
from bandmaster.calls.hub import hub_for
from bandmaster.engine import OpRecord, RunContext, journaled, journaling
from bandmaster.engine.backend import current_backend
from bandmaster.errors import GuardViolation, UsageError
from bandmaster.guard import Guard, GuardLog, check_guards, revive
from bandmaster.models import Message, Model, ModelRequest, ModelResponse, Registry, stream_chunks
from bandmaster.policies import Breaker, Retry
from bandmaster.store import ChunkPublisher

__all__ = ["ModelStream", "StreamChunk", "stream_model"]


@dataclass(frozen=True, slots=True)
class StreamChunk:
    """A piece of a streamed answer. ``restart=True`` (with no text): the answer shown so far
    is void, a retry or a fallback model answers again from the start."""

    text: str
    restart: bool = False


_RESTART = StreamChunk("", restart=True)


class _Relay:
    """Between the provider's stream and the caller: each chunk is judged by the partial
    guards, queued for the caller and handed to the observers' publisher."""

    __slots__ = ("log", "partial", "publisher", "queue", "shown")

    def __init__(self, guards: Sequence[Guard]) -> None:
        self.queue: asyncio.Queue[StreamChunk | None] = asyncio.Queue()
        self.log = GuardLog()
        # Only guards that judge prefixes (a method of their own) are called per chunk.
        self.partial = [g for g in guards if type(g).check_partial is not Guard.check_partial]
        self.publisher: ChunkPublisher | None = None
        self.shown: list[str] = []  # the text the caller has seen since the last restart

    def emit(self, chunk: StreamChunk) -> None:
        self.queue.put_nowait(chunk)
        if chunk.restart:
            self.shown.clear()
            if self.publisher is not None:
                self.publisher.restart()
        else:
            self.shown.append(chunk.text)
            if self.publisher is not None:
                self.publisher.add(chunk.text)

    async def ask(self, model: Model, request: ModelRequest) -> ModelResponse:
        """One attempt: stream ``model``'s answer to the caller, return the whole response."""
        if self.shown:
            self.emit(_RESTART)
        text = ""
        response: ModelResponse | None = None
        chunks = stream_chunks(model, request)
        try:
            async for chunk in chunks:
                if chunk.response is not None:
                    response = chunk.response
                    continue
                if self.partial:
                    new_from, text = len(text), text + chunk.text
                    self.judge(model, text, new_from)
                self.emit(StreamChunk(chunk.text))
                # Let the caller take the chunk now: when the next events are already buffered
                # the provider's stream would otherwise be read to its end first.
                await asyncio.sleep(0)
        finally:  # a cut or a failure stops the provider's stream now (no tokens paid for)
            close = getattr(chunks, "aclose", None)
            if close is not None:
                await close()
        if response is None:
            raise UsageError(f"model {model.name!r}: its stream() ended without the final response chunk")
        return response

    def judge(self, model: Model, text: str, new_from: int) -> None:
        """The partial guards on the answer so far; a violation cuts the stream."""
        for guard in self.partial:
            try:
                guard.check_partial(text, new_from)
            except GuardViolation as exc:
                exc.model = model.name
                self.log.violation(exc)
                raise

    def settle(self, response: ModelResponse) -> list[StreamChunk]:
        """What the caller must still see so its text equals the answer: nothing after a live
        stream; the recorded text after a replay or a cache hit."""
        if "".join(self.shown) == response.text:
            return []
        return [_RESTART, StreamChunk(response.text)] if self.shown else [StreamChunk(response.text)]


class ModelStream:
    """What ``bm.stream_model`` returns: iterate it (once) with ``async for`` for the
    ``StreamChunk``s; afterwards ``response`` is the final ``ModelResponse``."""

    def __init__(
        self,
        relay: _Relay,
        call: Callable[[], Awaitable[ModelResponse]],
        guards: Sequence[Guard],
        ctx: RunContext | None = None,
    ) -> None:
        self._relay = relay
        self._call: Callable[[], Awaitable[ModelResponse]] | None = call
        self._guards = guards
        self._ctx = ctx
        self._response: ModelResponse | None = None
        self._iterator: AsyncGenerator[StreamChunk, None] | None = None

    @property
    def response(self) -> ModelResponse:
        if self._response is None:
            raise UsageError("stream.response is known once the stream has been iterated to its end")
        return self._response

    def __aiter__(self) -> AsyncGenerator[StreamChunk, None]:
        if self._call is None:
            raise UsageError("a bm.stream_model() stream can be iterated once; call stream_model again")
        call, self._call = self._call, None
        self._iterator = self._chunks(call)
        return self._iterator

    async def aclose(self) -> None:
        """Stop the call now if it is still streaming (``contextlib.aclosing(stream)``)."""
        if self._iterator is not None:
            await self._iterator.aclose()

    async def _chunks(
        self, call: Callable[[], Awaitable[ModelResponse]]
    ) -> AsyncGenerator[StreamChunk, None]:
        relay = self._relay
        queue = relay.queue
        task = asyncio.ensure_future(call())
        task.add_done_callback(lambda _: queue.put_nowait(None))
        try:
            while (chunk := await queue.get()) is not None:
                yield chunk
            response = task.result()
        except asyncio.CancelledError as exc:  # the run is cancelled: bm.Cancelled, as call_model
            raise (self._ctx.cancelled(exc) if self._ctx is not None else exc) from exc
        finally:
            if not task.done():  # the caller stopped early or was cancelled: stop the call
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        for chunk in relay.settle(response):
            yield chunk
        self._response = revive(self._guards, response)


def stream_model(
    target: str | Model,
    input: str | list[Message] | list[dict[str, str]] | dict[str, Any] | ModelRequest,
    *,
    key: str | None = None,
    registry: Registry | None = None,
    system: str | None = None,
    temperature: float | None = None,
    max_tokens: int | None = None,
    json_schema: dict[str, Any] | None = None,
    stop: list[str] | None = None,
    timeout: float | None = None,
    retry: Retry | None = None,
    fallback: list[str | Model] | None = None,
    breaker: Breaker | None = None,
    cache_ttl: float | None = None,
    guard: Guard | Sequence[Guard] | None = None,
) -> ModelStream:
    """``bm.call_model`` whose answer streams: ``async for chunk in bm.stream_model(...)``.

    Not awaited: the call takes its place in the journal when it is made (like
    ``call_model``) and runs while it is iterated. Arguments are ``call_model``'s; ``timeout``
    bounds each attempt's whole stream. Guards' ``check_output`` run on the final text; a
    guard with ``check_partial`` (``bm.BannedTopics``) may cut the stream short.
    """
    guards = check_guards(guard)
    relay = _Relay(guards)
    if current_backend.get() is not None:  # another engine: its activity answers in one piece
        call = lambda: call_model(  # noqa: E731
            target,
            input,
            key=key,
            registry=registry,
            system=system,
            temperature=temperature,
            max_tokens=max_tokens,
            json_schema=json_schema,
            stop=stop,
            timeout=timeout,
            retry=retry,
            fallback=fallback,
            breaker=breaker,
            cache_ttl=cache_ttl,
            guard=guards or None,
        )
        return ModelStream(relay, call, guards)
    ctx = journaling()
    registry, request, policy = prepare_call(
        registry, target, input, system=system, temperature=temperature, max_tokens=max_tokens,
        json_schema=json_schema, stop=stop, timeout=timeout, retry=retry, fallback=fallback,
        breaker=breaker, cache_ttl=cache_ttl,
    )  # fmt: skip

    def invoke(record: OpRecord, redactor: Any = None) -> Awaitable[ModelResponse]:
        hub = hub_for(registry, ctx.store if ctx is not None else None)
        return invoke_model(
            hub, target, request, key, policy, record, guards, redactor, ask_model=relay.ask, log=relay.log
        )

    if ctx is None:
        return ModelStream(relay, lambda: invoke(OpRecord()), guards)
    seq = ctx.next_seq()  # now, not when iterated: gathered calls keep their order
    if ctx.redactor is not None:  # the model is sent what the journal keeps (as call_model)
        request = redact_request(ctx.redactor, request)
    name = target if isinstance(target, str) else target.name

    async def body(record: OpRecord) -> ModelResponse:
        # A redacting workflow's chunks are not published: a secret split across two chunks
        # would pass a redactor that sees one chunk at a time. Its observers see the step.
        if ctx.redactor is None:
            relay.publisher = ChunkPublisher(ctx.store, ctx.run_id, seq, name)
        try:
            return await invoke(record, ctx.redactor)
        finally:
            if relay.publisher is not None:
                relay.publisher.close()
                relay.publisher = None

    return ModelStream(
        relay, lambda: journaled(ctx, seq, name, "model", RESPONSE_CODEC, body, request=request), guards, ctx
    )
