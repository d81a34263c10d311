"""What the official provider SDKs (openai, anthropic) have in common: one client per event
loop, and the same exception classes, mapped once onto bandmaster's error tree."""

from __future__ import annotations

import asyncio
import functools
import os
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any, Generic, TypeVar

import httpx

from bandmaster.errors import MalformedResponse, ProviderUnavailable, StepTimeout, UsageError
from bandmaster.models._http_errors import error_for_status

C = TypeVar("C")


def resolve_api_key(api_key: str | None, api_key_env: str, *, base_url: str | None, name: str) -> str:
    """The explicit key, else the environment's; a local server (``base_url``) needs none."""
    key = api_key or os.environ.get(api_key_env)
    if key is None and base_url is None:
        raise UsageError(
            f"model {name!r}: no API key; set ${api_key_env} (or pass base_url for a local server)"
        )
    return key or "not-needed"


class PerLoopClient(Generic[C]):
    """An SDK client's connection pool belongs to the event loop that opened it, and
    ``bm.run()`` or tests may use several loops in one process: keep one client per loop."""

    def __init__(self, factory: Callable[[], C]) -> None:
        self._factory = factory
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, C] = weakref.WeakKeyDictionary()

    def get(self) -> C:
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            client = self._clients[loop] = self._factory()
        return client

    async def aclose(self) -> None:
        client = self._clients.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.close()  # type: ignore[attr-defined]


@functools.cache
def _otel_inject() -> Callable[..., None] | None:
    try:
        from opentelemetry.propagate import inject
    except ImportError:  # the otel extra is not installed: nothing to propagate
        return None
    return inject


def trace_headers() -> dict[str, str] | None:
    """The current OpenTelemetry trace context as W3C headers (``traceparent``, ...) for a
    provider request, so the provider's side of the call joins the workflow's trace. None when
    OpenTelemetry is not installed or no span is active (bandmaster's tracing hook makes the
    model-call span current during each attempt)."""
    inject = _otel_inject()
    if inject is None:
        return None
    carrier: dict[str, str] = {}
    inject(carrier)
    return carrier or None


@contextmanager
def mapped_errors(sdk: ModuleType, *, provider: str, api_key_env: str) -> Iterator[None]:
    """Timeouts → StepTimeout, connection errors → ProviderUnavailable, HTTP statuses through
    ``error_for_status``, unparseable bodies → MalformedResponse."""
    try:
        yield
    except sdk.APITimeoutError as exc:  # a subclass of APIConnectionError: first
        raise StepTimeout(f"{provider}: request timed out") from exc
    except sdk.APIConnectionError as exc:
        raise ProviderUnavailable(f"{provider}: cannot connect: {exc}") from exc
    except sdk.APIStatusError as exc:
        raise error_for_status(
            exc.status_code,
            _message(exc),
            provider=provider,
            retry_after=exc.response.headers.get("retry-after"),
            api_key_env=api_key_env,
        ) from exc
    except (ValueError, sdk.APIResponseValidationError) as exc:
        raise MalformedResponse(f"{provider}: unparseable response: {exc}") from exc
    except httpx.TransportError as exc:  # a stream cut part-way: the SDKs do not wrap it
        raise ProviderUnavailable(f"{provider}: the connection broke: {exc!r}") from exc


def _message(exc: Any) -> str:
    """The provider's own error message, without the SDK's 'Error code: 429 - {...}' wrapper."""
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict) and "message" in error:
            return str(error["message"])
    return str(getattr(exc, "message", exc))
