"""OpenAI-compatible chat completions through the official ``openai`` SDK: OpenAI itself, and
through ``base_url`` vLLM, Ollama, llama.cpp server, LM Studio and other compatible servers.

The SDK's own retries are off (``max_retries=0``): bandmaster's step policy owns retries.
"""

from __future__ import annotations

import asyncio
import os
import time
import weakref
from typing import Any

from bandmaster.errors import MalformedResponse, ProviderUnavailable, StepTimeout, UsageError
from bandmaster.models._json_output import parse_json_output
from bandmaster.models.base import ModelRequest, ModelResponse, Usage
from bandmaster.models.http_errors import error_for_status
from bandmaster.models.pricing import PriceTable

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
        key = api_key or os.environ.get(api_key_env)
        if key is None and base_url is None:
            raise UsageError(
                f"model {name or model!r}: no API key; set ${api_key_env} "
                f"(or pass base_url for a local server)"
            )
        self.model = model
        self.name = name or model
        self.api_key_env = api_key_env
        self.prices = prices or PriceTable()
        self._client_args: dict[str, Any] = dict(
            api_key=key or "not-needed", base_url=base_url, max_retries=0, timeout=timeout
        )
        # One client per event loop: an SDK client's connection pool belongs to the loop that
        # opened it, and bm.run() or tests may use several loops in one process.
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = weakref.WeakKeyDictionary()

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
        args.update(req.params)
        return args

    def client(self) -> Any:
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            client = self._clients[loop] = openai.AsyncOpenAI(**self._client_args)
        return client

    async def aclose(self) -> None:
        """Close this loop's connections (the engine does it on close)."""
        client = self._clients.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.close()

    async def request(self, req: ModelRequest) -> ModelResponse:
        started = time.perf_counter()
        try:
            completion = await self.client().chat.completions.create(**self._arguments(req))
        except openai.APITimeoutError as exc:
            raise StepTimeout(f"{self.name}: request timed out") from exc
        except openai.APIConnectionError as exc:
            raise ProviderUnavailable(f"{self.name}: cannot connect: {exc}") from exc
        except openai.APIStatusError as exc:
            raise error_for_status(
                exc.status_code,
                _message(exc),
                provider=self.name,
                retry_after=exc.response.headers.get("retry-after"),
                api_key_env=self.api_key_env,
            ) from exc
        except (ValueError, openai.APIResponseValidationError) as exc:
            raise MalformedResponse(f"{self.name}: unparseable response: {exc}") from exc
        latency = time.perf_counter() - started
        if not getattr(completion, "choices", None):
            raise MalformedResponse(f"{self.name}: response has no choices")
        choice = completion.choices[0]
        text = choice.message.content or ""
        output: Any = parse_json_output(text, model=self.name) if req.json_schema is not None else text
        usage = Usage(
            input_tokens=completion.usage.prompt_tokens if completion.usage else 0,
            output_tokens=completion.usage.completion_tokens if completion.usage else 0,
        )
        served = completion.model or self.model
        return ModelResponse(
            output=output,
            text=text,
            usage=usage,
            cost=self.prices.cost(served, usage),
            model=served,
            latency=latency,
            finish_reason=choice.finish_reason,
            raw={"id": completion.id},
        )


def _message(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict) and "message" in error:
            return str(error["message"])
    return str(getattr(exc, "message", exc))
