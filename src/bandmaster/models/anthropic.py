"""Anthropic messages through the official ``anthropic`` SDK (its retries off)."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

from bandmaster.errors import MalformedResponse, ProviderUnavailable
from bandmaster.models._base import ModelChunk, ModelRequest, ModelResponse, Usage
from bandmaster.models._json_output import parse_json_output
from bandmaster.models._pricing import PriceTable, usage_cost
from bandmaster.models._sdk import PerLoopClient, mapped_errors, resolve_api_key, trace_headers

try:
    import anthropic as sdk
except ImportError as exc:  # pragma: no cover - exercised without the extra
    raise ImportError(
        "the Anthropic provider needs the anthropic SDK: pip install 'bandmaster[anthropic]'"
    ) from exc

DEFAULT_MAX_TOKENS = 1024


class AnthropicModel:
    def __init__(
        self,
        model: str,
        *,
        name: str | None = None,
        base_url: str | None = None,
        api_key: str | None = None,
        api_key_env: str = "ANTHROPIC_API_KEY",
        timeout: float = 60.0,
        prices: PriceTable | None = None,
    ) -> None:
        key = resolve_api_key(api_key, api_key_env, base_url=base_url, name=name or model)
        self.model = model
        self.name = name or model
        # gen_ai.provider.name on traces: the well-known name, or the host of another endpoint.
        self.provider = "anthropic" if base_url is None else urlsplit(base_url).hostname or base_url
        self.api_key_env = api_key_env
        self.prices = prices or PriceTable()
        self._client = PerLoopClient(
            lambda: sdk.AsyncAnthropic(api_key=key, base_url=base_url, max_retries=0, timeout=timeout)
        )

    def _arguments(self, req: ModelRequest) -> dict[str, Any]:
        messages = [m.model_dump() for m in req.messages() if m.role != "system"]
        system = "\n".join(m.content for m in req.messages() if m.role == "system")
        if req.json_schema is not None:
            system = (system + "\n" if system else "") + (
                "Answer with JSON only, matching this JSON Schema: " + json.dumps(req.json_schema)
            )
        elif req.response_format == "json":  # the Messages API has no JSON mode: ask in words
            system = (system + "\n" if system else "") + "Answer with JSON only."
        args: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "max_tokens": req.max_tokens or DEFAULT_MAX_TOKENS,
        }
        if system:
            args["system"] = system
        if req.temperature is not None:
            # Newer SDKs dropped the keyword; the Messages API still takes the field.
            args["extra_body"] = {"temperature": req.temperature}
        if req.stop:
            args["stop_sequences"] = req.stop
        args.update(req.params)
        return args

    def client(self) -> Any:
        return self._client.get()

    async def aclose(self) -> None:
        """Close this loop's connections (the engine does it on close)."""
        await self._client.aclose()

    async def request(self, req: ModelRequest) -> ModelResponse:
        started = time.perf_counter()
        with mapped_errors(sdk, provider=self.name, api_key_env=self.api_key_env):
            message = await self.client().messages.create(
                **self._arguments(req), extra_headers=trace_headers()
            )
        latency = time.perf_counter() - started
        blocks = getattr(message, "content", None)
        if not isinstance(blocks, list):
            raise MalformedResponse(f"{self.name}: response has no content")
        text = "".join(getattr(b, "text", "") for b in blocks if getattr(b, "type", "") == "text")
        usage = Usage(input_tokens=message.usage.input_tokens, output_tokens=message.usage.output_tokens)
        return self._response(req, text, usage, message.model, message.id, message.stop_reason, latency)

    async def stream(self, req: ModelRequest) -> AsyncIterator[ModelChunk]:
        """The answer's text deltas as the Messages API streams them (``stream=True``); the
        input tokens come in ``message_start``, the output tokens in ``message_delta``."""
        started = time.perf_counter()
        parts: list[str] = []
        model, message_id, stop_reason = "", "", None
        input_tokens = output_tokens = 0
        ended = False
        with mapped_errors(sdk, provider=self.name, api_key_env=self.api_key_env):
            events = await self.client().messages.create(
                **self._arguments(req), stream=True, extra_headers=trace_headers()
            )
            async with events:  # closes the connection when the consumer stops early
                async for event in events:
                    kind = event.type
                    if kind == "content_block_delta":
                        text = getattr(event.delta, "text", None)
                        if text:
                            parts.append(text)
                            yield ModelChunk(text)
                    elif kind == "message_start":
                        model, message_id = event.message.model, event.message.id
                        input_tokens = event.message.usage.input_tokens or 0
                    elif kind == "message_delta":
                        stop_reason = event.delta.stop_reason
                        output_tokens = event.usage.output_tokens or 0
                    elif kind == "message_stop":
                        ended = True
        if not ended:  # cut before the end: a transient failure
            raise ProviderUnavailable(f"{self.name}: the stream ended before message_stop")
        usage = Usage(input_tokens=input_tokens, output_tokens=output_tokens)
        latency = time.perf_counter() - started
        response = self._response(req, "".join(parts), usage, model, message_id, stop_reason, latency)
        yield ModelChunk(response=response)

    def _response(
        self,
        req: ModelRequest,
        text: str,
        usage: Usage,
        model: str | None,
        message_id: str,
        stop_reason: str | None,
        latency: float,
    ) -> ModelResponse:
        wants_json = req.json_schema is not None or req.response_format == "json"
        output: Any = parse_json_output(text, model=self.name) if wants_json else text
        served = model or self.model
        return ModelResponse(
            output=output,
            text=text,
            usage=usage,
            **usage_cost(self.prices, served, usage, "anthropic"),
            model=served,
            latency=latency,
            finish_reason=stop_reason,
            raw={"id": message_id},
        )
