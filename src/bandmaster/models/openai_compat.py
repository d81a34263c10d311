"""OpenAI-compatible chat completions through the official ``openai`` SDK: OpenAI itself, and
through ``base_url`` vLLM, Ollama, llama.cpp server, LM Studio and other compatible servers.

The SDK's own retries are off (``max_retries=0``): bandmaster's step policy owns retries.
"""

from __future__ import annotations

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
    import openai
except ImportError as exc:  # pragma: no cover - exercised without the extra
    raise ImportError("the OpenAI provider needs the openai SDK: pip install 'bandmaster[openai]'") from exc


class OpenAIModel:
    def __init__(
        self,
        model: str,
        *,
        name: str | None = None,
        base_url: str | None = None,
        api_key: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        timeout: float = 60.0,
        prices: PriceTable | None = None,
    ) -> None:
        key = resolve_api_key(api_key, api_key_env, base_url=base_url, name=name or model)
        self.model = model
        self.name = name or model
        # gen_ai.provider.name on traces: the well-known name, or the host of another endpoint.
        self.provider = "openai" if base_url is None else urlsplit(base_url).hostname or base_url
        self.api_key_env = api_key_env
        self.prices = prices or PriceTable()
        self._client = PerLoopClient(
            lambda: openai.AsyncOpenAI(api_key=key, base_url=base_url, max_retries=0, timeout=timeout)
        )

    def _arguments(self, req: ModelRequest) -> dict[str, Any]:
        args: dict[str, Any] = {
            "model": self.model,
            "messages": [m.model_dump() for m in req.messages()],
        }
        if req.temperature is not None:
            args["temperature"] = req.temperature
        if req.max_tokens is not None:
            args["max_tokens"] = req.max_tokens
        if req.stop:
            args["stop"] = req.stop
        if req.json_schema is not None:
            args["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "output", "schema": req.json_schema},
            }
        elif req.response_format is not None:
            args["response_format"] = {"type": "json_object" if req.response_format == "json" else "text"}
        args.update(req.params)
        return args

    def client(self) -> Any:
        return self._client.get()

    async def aclose(self) -> None:
        """Close this loop's connections (the engine does it on close)."""
        await self._client.aclose()

    async def request(self, req: ModelRequest) -> ModelResponse:
        started = time.perf_counter()
        with mapped_errors(openai, provider=self.name, api_key_env=self.api_key_env):
            completion = await self.client().chat.completions.create(
                **self._arguments(req), extra_headers=trace_headers()
            )
        latency = time.perf_counter() - started
        if not getattr(completion, "choices", None):
            raise MalformedResponse(f"{self.name}: response has no choices")
        choice = completion.choices[0]
        text = choice.message.content or ""
        return self._response(req, text, completion, latency, choice.finish_reason, choice.logprobs)

    async def stream(self, req: ModelRequest) -> AsyncIterator[ModelChunk]:
        """The answer as the server sends it (``stream=True``), then the response with the
        usage the server reports in its last event (``stream_options.include_usage``)."""
        started = time.perf_counter()
        parts: list[str] = []
        last: Any = None
        finish_reason: str | None = None
        with mapped_errors(openai, provider=self.name, api_key_env=self.api_key_env):
            events = await self.client().chat.completions.create(
                **self._arguments(req),
                stream=True,
                stream_options={"include_usage": True},
                extra_headers=trace_headers(),
            )
            async with events:  # closes the connection when the consumer stops early
                async for event in events:
                    last = event
                    if not event.choices:
                        continue  # the usage event
                    choice = event.choices[0]
                    finish_reason = choice.finish_reason or finish_reason
                    text = choice.delta.content if choice.delta else None
                    if text:
                        parts.append(text)
                        yield ModelChunk(text)
        if last is None or finish_reason is None:  # cut before the end: a transient failure
            raise ProviderUnavailable(f"{self.name}: the stream ended before its finish_reason")
        latency = time.perf_counter() - started
        yield ModelChunk(response=self._response(req, "".join(parts), last, latency, finish_reason))

    def _response(
        self,
        req: ModelRequest,
        text: str,
        completion: Any,
        latency: float,
        finish_reason: str | None,
        logprobs: Any = None,
    ) -> ModelResponse:
        wants_json = req.json_schema is not None or req.response_format == "json"
        output: Any = parse_json_output(text, model=self.name) if wants_json else text
        usage = Usage(
            input_tokens=completion.usage.prompt_tokens if completion.usage else 0,
            output_tokens=completion.usage.completion_tokens if completion.usage else 0,
        )
        served = completion.model or self.model
        raw: dict[str, Any] = {"id": completion.id}
        tokens = getattr(logprobs, "content", None)
        if tokens:  # asked with params={"logprobs": True}: confidence signals read them
            raw["logprobs"] = [{"token": t.token, "logprob": t.logprob} for t in tokens]
        return ModelResponse(
            output=output,
            text=text,
            usage=usage,
            **usage_cost(self.prices, served, usage, "openai"),
            model=served,
            latency=latency,
            finish_reason=finish_reason,
            raw=raw,
        )
