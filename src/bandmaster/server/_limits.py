"""Request size limits (an ASGI middleware) and per-token rate limits (token buckets)."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bandmaster.server._errors import send_error

MAX_OFFSET = 1_000_000_000
"""The largest page offset of a list: far beyond any journal, and well inside SQLite's integers."""


class SizeLimits:
    """Refuse oversized requests before any handler runs: 431 for headers, 413 for bodies.

    The body is read here up to the limit (bodies of this API are small JSON or forms) and
    handed on whole, so a chunked upload without Content-Length is bounded too. Not FastAPI's
    own ``max_body_size``: it answers plain text on some paths, and every refusal here must
    carry the API's JSON error shape; nor does it bound headers.
    """

    def __init__(self, app: ASGIApp, *, max_body: int, max_headers: int) -> None:
        self.app, self.max_body, self.max_headers = app, max_body, max_headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        header_bytes = sum(len(k) + len(v) + 4 for k, v in scope["headers"])
        if header_bytes > self.max_headers:
            await send_error(
                send,
                431,
                "headers_too_large",
                f"request headers are {header_bytes:,} bytes, over the {self.max_headers:,}-byte limit; "
                f"send fewer or shorter headers (large data belongs in the body)",
            )
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body:
            await send_error(send, 413, "payload_too_large", self._too_large(int(declared)))
            return
        if scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                await send_error(send, 413, "payload_too_large", self._too_large(size))
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    def _too_large(self, size: int) -> str:
        return (
            f"request body is {size:,} bytes, over the {self.max_body:,}-byte limit; keep large documents "
            f"outside and pass a reference (or start the server with a larger --max-body)"
        )


@dataclass(slots=True)
class _Bucket:
    tokens: float
    stamp: float


class RateLimiter:
    """One token bucket per API token: ``rate`` requests/s on average, bursts of
    ``rate * burst_seconds`` (at least one request)."""

    def __init__(self, burst_seconds: float = 2.0) -> None:
        self.burst_seconds = burst_seconds
        self._buckets: dict[str, _Bucket] = {}

    def acquire(self, key: str, rate: float) -> float:
        """Take one request from ``key``'s bucket: 0.0 when allowed, else seconds to wait."""
        capacity = max(1.0, rate * self.burst_seconds)
        now = time.monotonic()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(capacity, now)
        bucket.tokens = min(capacity, bucket.tokens + (now - bucket.stamp) * rate)
        bucket.stamp = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / rate


def retry_after(seconds: float) -> str:
    return str(max(1, math.ceil(seconds)))
