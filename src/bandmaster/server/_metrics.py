"""HTTP metrics of the server in prometheus_client's default registry (``/metrics`` serves
that registry, so the engine's metrics registered elsewhere appear beside these)."""

from __future__ import annotations

import time

from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Created once, at import: the module is imported once per process however many apps exist.
REQUESTS = Counter(
    "bandmaster_http_requests",
    "HTTP requests answered by bandmaster server",
    ["method", "route", "status"],
)
LATENCY = Histogram(
    "bandmaster_http_request_seconds",
    "Time to answer an HTTP request (headers sent)",
    ["method", "route"],
)


class HttpMetrics:
    """Count requests and time them by route template (not raw path: run ids would explode the
    label cardinality)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                route = getattr(scope.get("route"), "path", "unmatched")
                LATENCY.labels(scope["method"], route).observe(time.perf_counter() - started)
                REQUESTS.labels(scope["method"], route, str(status)).inc()
            await send(message)

        await self.app(scope, receive, recording_send)
