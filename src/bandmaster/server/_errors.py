"""One error shape for the whole API: ``{"error": {"code", "message"}}`` with the right status.

bandmaster's exception tree is mapped here, in one table, so every endpoint answers the same
way for the same mistake; a message always says what is wrong and how to fix it.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bandmaster import errors as bm_errors

log = logging.getLogger("bandmaster.server")


class ApiError(Exception):
    """An error answered as JSON: ``status``, a stable ``code`` and a helpful ``message``."""

    def __init__(
        self, status: int, code: str, message: str, *, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers


# Most specific first: the first class an exception is an instance of wins.
_MAPPING: list[tuple[type[BaseException], int, str]] = [
    (bm_errors.RunNotFound, 404, "run_not_found"),
    (bm_errors.ApprovalNotFound, 404, "approval_not_found"),
    (bm_errors.WorkflowNotFound, 404, "workflow_not_found"),
    (bm_errors.UnknownModel, 404, "unknown_model"),
    (bm_errors.TokenNotFound, 404, "token_not_found"),
    (bm_errors.ScheduleNotFound, 404, "schedule_not_found"),
    (bm_errors.InvalidSignature, 401, "invalid_signature"),
    (bm_errors.NoModelRegistry, 404, "no_registry"),
    (bm_errors.AlreadyDecided, 409, "already_decided"),
    (bm_errors.IdempotencyConflict, 409, "idempotency_conflict"),
    (bm_errors.NotSupported, 501, "not_supported"),
    (bm_errors.NotAuthorized, 403, "not_an_approver"),
    (bm_errors.PayloadTooLarge, 413, "payload_too_large"),
    (bm_errors.RegistryError, 422, "invalid_model_change"),
    (bm_errors.InvalidInput, 422, "invalid_input"),
    (bm_errors.UsageError, 400, "bad_request"),
    (bm_errors.StoreError, 503, "journal_unavailable"),
    (bm_errors.BackendUnavailable, 503, "backend_unavailable"),
]

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    422: "invalid_input",
    429: "rate_limited",
    431: "headers_too_large",
    503: "unavailable",
}


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorBody(BaseModel):
    """Every error answer of the API, whatever its status."""

    error: ErrorDetail


_MEANINGS = {
    400: "Bad request",
    401: "No valid API token (or, on /hooks, no valid webhook signature)",
    403: "The token lacks the scope, or its principal may not decide",
    404: "No such run, approval, workflow, alias or schedule",
    409: "Conflict with the run's state or an earlier request",
    413: "Request body too large",
    422: "The request does not match the schema, or a value is invalid",
    429: "The token is over its rate limit (see Retry-After)",
    431: "Request headers too large",
    500: "Unexpected failure (a bug; the message has a log reference)",
    501: "Not available on this backend",
    503: "The journal or the backend is unavailable",
}
EVERY_REQUEST = (413, 422, 431, 500)
"""Statuses any route may answer: size limits, a malformed request, a bug."""
AUTHENTICATED = (*EVERY_REQUEST, 401, 403, 429, 503)
"""Statuses any route behind a token may answer as well."""


def documented(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for these error statuses, in the one error shape."""
    return {status: {"model": ErrorBody, "description": _MEANINGS[status]} for status in sorted(statuses)}


MAX_MESSAGE = 2000
"""Characters of an error message: messages quote the client's values, which may be a megabyte."""


def error_body(code: str, message: str) -> dict[str, Any]:
    if len(message) > MAX_MESSAGE:
        message = message[: MAX_MESSAGE - 1] + "\u2026"
    return {"error": {"code": code, "message": message}}


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(error_body(code, message), status_code=status, headers=headers)


async def send_error(send: Send, status: int, code: str, message: str) -> None:
    """Answer in the one error shape from ASGI middleware (below the exception handlers)."""
    body = json.dumps(error_body(code, message)).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


def unexpected(exc: BaseException, scope: Scope) -> str:
    """Log an unexpected failure with a reference, and return the message a client may see:
    the reference only (exception text and tracebacks can hold server paths and data)."""
    reference = uuid.uuid4().hex[:12]
    log.error(
        "unexpected error answering %s %s (reference %s)",
        scope.get("method"),
        getattr(scope.get("route"), "path", "an unmatched path"),
        reference,
        exc_info=exc,
    )
    return (
        f"the server failed unexpectedly (reference {reference} in the server log); this is a bug: "
        "report it with the reference"
    )


class LastResort:
    """Answer any exception that no handler mapped as a JSON 500, and keep the connection.

    Starlette's own last handler answers plain text and re-raises; uvicorn then closes the
    keep-alive connection, so the client's next request on it fails too. Added as the
    outermost middleware, this one answers and returns normally. ``diagnose`` says why the
    backend cannot serve, if so: the failure is then a 503 ``backend_unavailable`` saying that
    (a lost cluster), not a 500 bug report.
    """

    def __init__(self, app: ASGIApp, diagnose: Callable[[], Awaitable[str | None]] | None = None) -> None:
        self.app = app
        self.diagnose = diagnose

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            if started:  # mid-response: nothing valid can follow, the connection must close
                raise
            try:
                problem = await self.diagnose() if self.diagnose is not None else None
            except Exception:  # a health check that fails itself says nothing more
                problem = None
            if problem is not None:
                log.warning("backend unavailable: %s (%s: %s)", problem, type(exc).__name__, exc)
                await send_error(
                    send, 503, "backend_unavailable", f"{problem}; check that it runs, then retry"
                )
                return
            await send_error(send, 500, "internal_error", unexpected(exc, scope))


HIDDEN = "<hidden>"
ECHO = 80  # characters of a client's value quoted back in a message


def shorter(value: str) -> str:
    """``value`` quoted for a message, cut to ``ECHO`` characters (a client may send 60 kB)."""
    return repr(value) if len(value) <= ECHO else f"{value[:ECHO]!r}..."


def scrubbed(request: Request, message: str) -> str:
    """``message`` without the journal's path (``ServerState.private``): the engine's errors
    name it for a local user, a remote client must not see it."""
    state = getattr(request.app.state, "bandmaster", None)
    for detail in getattr(state, "private", ()):
        message = message.replace(detail, HIDDEN)
    return message


def from_bandmaster(exc: BaseException) -> ApiError | None:
    for cls, status, code in _MAPPING:
        if isinstance(exc, cls):
            return ApiError(status, code, str(exc))
    return None


def install(app: FastAPI) -> None:
    """Register the handlers that turn every failure into the one error shape."""

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.code, scrubbed(request, exc.message), exc.headers)

    @app.exception_handler(bm_errors.BandmasterError)
    async def bandmaster_error(request: Request, exc: bm_errors.BandmasterError) -> JSONResponse:
        mapped = from_bandmaster(exc)
        if mapped is None:
            return error_response(500, "internal_error", unexpected(exc, request.scope))
        if isinstance(exc, bm_errors.RunNotFound):
            run_id = request.path_params.get("run_id")
            if run_id is not None:  # the engine's message names the journal or the cluster
                mapped.message = f"no run {shorter(run_id)}; GET /api/v1/runs lists the runs"
        return error_response(mapped.status, mapped.code, scrubbed(request, mapped.message))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}"
            + (f" ({e['ctx']['error']})" if isinstance(e.get("ctx", {}).get("error"), str) else "")
            for e in exc.errors()[:5]
        )
        return error_response(
            422, "invalid_input", f"the request does not match the API schema ({problems}); see /docs"
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "error")
        message = str(exc.detail)
        if exc.status_code == 404 and message == "Not Found":
            message = f"no endpoint {request.url.path}; the API lives under /api/v1 (see /docs)"
        if exc.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path}; see /docs"
        return error_response(exc.status_code, code, message, getattr(exc, "headers", None))
