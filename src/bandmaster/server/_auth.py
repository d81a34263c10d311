"""Access control: API tokens with scopes, browser sessions and CSRF tokens.

A token reads ``bm_<id>_<secret>``: the id finds the row, the 32-byte random secret is checked
against its stored sha256 in constant time. Only the hash is stored, so a copy of the journal
gives nobody a working token. ``admin`` implies every other scope.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass, field

from bandmaster.errors import InvalidInput, TokenNotFound
from bandmaster.store import SessionRow, SQLiteStore, TokenRow, TokenStore

SCOPES = ("runs:read", "runs:write", "approvals:decide", "models:admin", "admin")
PREFIX = "bm_"


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the token's name is the principal audited for every decision and change."""

    token_id: str
    name: str
    scopes: frozenset[str]
    rate_limit: float | None = None
    via_session: bool = False

    def allows(self, scope: str) -> bool:
        return "admin" in self.scopes or scope in self.scopes


@dataclass(slots=True)
class IssuedToken:
    """A freshly created token. ``secret`` is shown once and never stored."""

    id: str
    name: str
    scopes: list[str]
    secret: str = field(repr=False)


def check_scopes(scopes: list[str]) -> list[str]:
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown or not scopes:
        raise InvalidInput(
            f"unknown scope(s) {', '.join(map(repr, unknown)) or '(none given)'}: give one or more of "
            f"{', '.join(SCOPES)} (admin implies all)"
        )
    return sorted(set(scopes))


def create_token(
    store: SQLiteStore,
    name: str,
    scopes: list[str],
    *,
    rate_limit: float | None = None,
    by: str | None = None,
) -> IssuedToken:
    """Create a token for principal ``name``; the returned secret is the only copy. ``by``
    (who creates it) goes to the audit."""
    if not name.strip() or len(name) > 100:
        raise InvalidInput(f"token name {name!r}: give the principal's name (1-100 characters), e.g. alice")
    if rate_limit is not None and rate_limit <= 0:
        raise InvalidInput(f"rate limit {rate_limit}: give requests per second above 0, or none")
    checked = check_scopes(scopes)
    token_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    TokenStore(store).insert_token(
        TokenRow(
            id=token_id,
            name=name,
            secret_hash=digest(secret),
            scopes=checked,
            rate_limit=rate_limit,
            created_at=time.time(),
            revoked_at=None,
            last_used_at=None,
        )
    )
    TokenStore(store).audit(by, "token.create", token_id, {"name": name, "scopes": checked})
    return IssuedToken(token_id, name, checked, f"{PREFIX}{token_id}_{secret}")


def revoke_token(store: SQLiteStore, token_id_or_name: str, *, by: str | None = None) -> list[str]:
    """Revoke a token by id, or every live token of a principal by name; returns the ids."""
    tokens = TokenStore(store)
    row = tokens.get_token(token_id_or_name)
    rows = [row] if row is not None else tokens.find_by_name(token_id_or_name)
    live = [r.id for r in rows if r.revoked_at is None]
    if not live:
        raise TokenNotFound(
            f"no live token with id or name {token_id_or_name!r}; `bandmaster tokens list` shows them"
        )
    for token_id in live:
        tokens.revoke(token_id)
        tokens.audit(by, "token.revoke", token_id, None)
    return live


def verify(store: SQLiteStore, presented: str) -> Principal | None:
    """The principal of a presented token, or None when it is malformed, unknown or revoked."""
    if not presented.startswith(PREFIX):
        return None
    token_id, sep, secret = presented[len(PREFIX) :].partition("_")
    if not sep or not secret:
        return None
    row = TokenStore(store).get_token(token_id)
    # Compare even for unknown ids, so timing does not tell which ids exist.
    expected = row.secret_hash if row is not None else digest("")
    if not hmac.compare_digest(expected, digest(secret)) or row is None or row.revoked_at is not None:
        return None
    return Principal(row.id, row.name, frozenset(row.scopes), row.rate_limit)


# --- browser sessions -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Session:
    principal: Principal
    csrf: str


def open_session(store: SQLiteStore, principal: Principal, ttl: float) -> tuple[str, str]:
    """A new session for a logged-in token: (cookie value, CSRF token)."""
    cookie = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    now = time.time()
    TokenStore(store).insert_session(SessionRow(digest(cookie), principal.token_id, csrf, now, now + ttl))
    return cookie, csrf


def session_of(store: SQLiteStore, cookie: str) -> Session | None:
    """The live session of a cookie; None when unknown, expired, or its token was revoked."""
    tokens = TokenStore(store)
    row = tokens.get_session(digest(cookie))
    if row is None:
        return None
    token = tokens.get_token(row.token_id)
    if token is None or token.revoked_at is not None:
        return None
    principal = Principal(token.id, token.name, frozenset(token.scopes), token.rate_limit, via_session=True)
    return Session(principal, row.csrf)


def close_session(store: SQLiteStore, cookie: str) -> None:
    TokenStore(store).delete_session(digest(cookie))


def csrf_matches(expected: str, presented: str | None) -> bool:
    return presented is not None and hmac.compare_digest(expected.encode(), presented.encode())
