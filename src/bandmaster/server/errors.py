"""One error shape for the whole API: ``{"error": {"code", "message"}}`` with the right status.

bandmaster's exception tree is mapped here, in one table, so every endpoint answers the same
way for the same mistake; a message always says what is wrong and how to fix it.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

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
    (bm_errors.AlreadyDecided, 409, "already_decided"),
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


def error_body(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(error_body(code, message), status_code=status, headers=headers)


def from_bandmaster(exc: BaseException) -> ApiError | None:
    for cls, status, code in _MAPPING:
        if isinstance(exc, cls):
            return ApiError(status, code, str(exc))
    return None


def install(app: FastAPI) -> None:
    """Register the handlers that turn every failure into the one error shape."""

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.message, exc.headers)

    @app.exception_handler(bm_errors.BandmasterError)
    async def bandmaster_error(request: Request, exc: bm_errors.BandmasterError) -> JSONResponse:
        mapped = from_bandmaster(exc)
        if mapped is None:
            log.exception("unmapped bandmaster error", exc_info=exc)
            return error_response(500, "internal_error", f"{type(exc).__name__}: {exc}")
        return error_response(mapped.status, mapped.code, mapped.message)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in exc.errors()[:5]
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
