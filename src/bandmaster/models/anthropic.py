"""Anthropic messages through the official ``anthropic`` SDK (its retries off)."""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import urlsplit

from bandmaster.errors import MalformedResponse
from bandmaster.models._json_output import parse_json_output
from bandmaster.models._sdk import PerLoopClient, mapped_errors, resolve_api_key, trace_headers
from bandmaster.models.base import ModelRequest, ModelResponse, Usage
from bandmaster.models.pricing import PriceTable

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
        wants_json = req.json_schema is not None or req.response_format == "json"
        output: Any = parse_json_output(text, model=self.name) if wants_json else text
        usage = Usage(input_tokens=message.usage.input_tokens, output_tokens=message.usage.output_tokens)
        served = message.model or self.model
        return ModelResponse(
            output=output,
            text=text,
            usage=usage,
            cost=self.prices.cost(served, usage),
            model=served,
            latency=latency,
            finish_reason=message.stop_reason,
            raw={"id": message.id},
        )
