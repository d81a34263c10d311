"""What every route needs: the server's state, and the caller's principal checked for a scope
(token, rate limit, scope: 401, 429, 403 in that order)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from bandmaster.engine import Engine
from bandmaster.engine.backend import Backend
from bandmaster.server._auth import Principal, verify
from bandmaster.server._errors import ApiError
from bandmaster.server._limits import RateLimiter, retry_after
from bandmaster.server._settings import ServerSettings
from bandmaster.store import SQLiteStore, TokenStore

if TYPE_CHECKING:
    from bandmaster.triggers import InboundHook

TOKEN_HINT = (
    "create one with `bandmaster tokens create NAME --scope SCOPE` and send 'Authorization: Bearer bm_...'"
)


TOUCH_EVERY = 60.0  # seconds between writes of a token's last use (one write, not one per request)


@dataclass(slots=True)
class ServerState:
    engine: Engine  # the server's own database: tokens, sessions, audit (and the runs, embedded)
    backend: Backend  # where runs, approvals, models, stats and schedules go: `engine`, or another
    settings: ServerSettings
    limiter: RateLimiter
    touched: dict[str, float] = field(default_factory=dict)
    hooks: dict[str, InboundHook] = field(default_factory=dict)  # POST /hooks/{name} (--hooks)
    # Answers the dashboard may reuse for a while: name -> (when, value). See ``_ui.live_stats``.
    recent: dict[str, tuple[float, object]] = field(default_factory=dict)

    @property
    def store(self) -> SQLiteStore:
        return self.engine.store

    @property
    def private(self) -> tuple[str, ...]:
        """What no response may show (``errors.scrubbed``): the journal's path, as given and
        resolved (longest first, so the whole path goes before a tail of it)."""
        path = self.engine.path
        return tuple(sorted({str(path), str(path.resolve())}, key=len, reverse=True))


def state_of(request: Request) -> ServerState:
    state: ServerState = request.app.state.bandmaster
    return state


def token_rate(state: ServerState, principal: Principal) -> float:
    """This process's share of the token's requests/s: with N server processes behind one port
    each keeps its own bucket, so each gets 1/N and together they allow the whole rate."""
    return (principal.rate_limit or state.settings.rate_limit) / state.settings.processes


def admit(state: ServerState, principal: Principal, scope: str) -> None:
    """Rate limit, then scope; raises the matching ApiError. Records the token's last use."""
    now = time.time()
    if now - state.touched.get(principal.token_id, 0.0) > TOUCH_EVERY:
        state.touched[principal.token_id] = now
        TokenStore(state.store).touch(principal.token_id, now)
    wait = state.limiter.acquire(principal.token_id, token_rate(state, principal))
    if wait:
        raise ApiError(
            429,
            "rate_limited",
            f"token {principal.token_id} ({principal.name}) is over its rate limit; retry after "
            f"{retry_after(wait)} s, or ask an admin for a token with a higher --rate",
            headers={"Retry-After": retry_after(wait)},
        )
    if not principal.allows(scope):
        raise ApiError(
            403,
            "missing_scope",
            f"token of {principal.name!r} has scopes {', '.join(sorted(principal.scopes))} but this needs "
            f"{scope!r} (or admin); create a token with --scope {scope}",
        )


BEARER = HTTPBearer(
    auto_error=False,  # the checks below answer in the API's own error shape
    scheme_name="token",
    bearerFormat="bm_<id>_<secret>",
    description=f"An API token: {TOKEN_HINT}.",
)
"""The OpenAPI security scheme of every token-checked route (``/docs`` gets Authorize)."""


def require(scope: str) -> Callable[..., Awaitable[Principal]]:
    """A dependency: the bearer token's principal, admitted for ``scope``."""

    async def principal(
        request: Request, _scheme: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)]
    ) -> Principal:
        state = state_of(request)
        header = request.headers.get("authorization")
        if not header:
            raise ApiError(
                401,
                "missing_token",
                f"no API token given; {TOKEN_HINT}",
                headers={"WWW-Authenticate": "Bearer"},
            )
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise ApiError(
                401,
                "malformed_authorization",
                "the Authorization header must read 'Bearer bm_...'",
                headers={"WWW-Authenticate": "Bearer"},
            )
        found = verify(state.store, value.strip())
        if found is None:
            raise ApiError(
                401,
                "invalid_token",
                f"the token is unknown or revoked; {TOKEN_HINT}",
                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
        admit(state, found, scope)
        return found

    return principal
