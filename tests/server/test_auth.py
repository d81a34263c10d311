"""Tokens, scopes and sessions on a real journal, without a server."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest

from bandmaster.errors import InvalidInput, TokenNotFound
from bandmaster.server._auth import (
    check_scopes,
    close_session,
    create_token,
    csrf_matches,
    open_session,
    revoke_token,
    session_of,
    verify,
)
from bandmaster.server._limits import RateLimiter
from bandmaster.store._sqlite import SQLiteStore


@pytest.fixture
def store(tmp_path: Path) -> SQLiteStore:
    return SQLiteStore(tmp_path / "j.db")


def test_only_a_hash_of_the_secret_is_stored(store: SQLiteStore) -> None:
    issued = create_token(store, "alice", ["runs:read", "runs:read", "models:admin"])
    assert issued.scopes == ["models:admin", "runs:read"]
    secret = issued.secret.split("_", 2)[2]
    with sqlite3.connect(store.path) as conn:
        dump = "\n".join(conn.iterdump())
    assert secret not in dump
    assert hashlib.sha256(secret.encode()).hexdigest() in dump


def test_verify_accepts_only_the_exact_live_token(store: SQLiteStore) -> None:
    issued = create_token(store, "alice", ["runs:write"])
    principal = verify(store, issued.secret)
    assert principal is not None
    assert principal.name == "alice"
    assert principal.allows("runs:write")
    assert not principal.allows("runs:read")
    assert verify(store, issued.secret + "x") is None
    assert verify(store, issued.secret.replace("bm_", "xx_")) is None
    assert verify(store, f"bm_{issued.id}") is None
    assert verify(store, "bm_unknown_secret") is None
    revoke_token(store, issued.id)
    assert verify(store, issued.secret) is None


def test_admin_implies_every_scope(store: SQLiteStore) -> None:
    principal = verify(store, create_token(store, "root", ["admin"]).secret)
    assert principal is not None
    assert all(principal.allows(s) for s in ("runs:read", "runs:write", "approvals:decide", "models:admin"))


def test_bad_token_requests_say_how_to_fix_them(store: SQLiteStore) -> None:
    with pytest.raises(InvalidInput, match="runs:read"):
        check_scopes(["runs:delete"])
    with pytest.raises(InvalidInput, match=r"none given"):
        check_scopes([])
    with pytest.raises(InvalidInput, match="principal"):
        create_token(store, "  ", ["admin"])
    with pytest.raises(InvalidInput, match="per second"):
        create_token(store, "bob", ["admin"], rate_limit=0)
    with pytest.raises(TokenNotFound, match="tokens list"):
        revoke_token(store, "nobody")


def test_sessions_end_with_their_token(store: SQLiteStore) -> None:
    issued = create_token(store, "alice", ["runs:read"])
    principal = verify(store, issued.secret)
    assert principal is not None
    cookie, csrf = open_session(store, principal, ttl=60)
    session = session_of(store, cookie)
    assert session is not None
    assert session.principal.name == "alice"
    assert csrf_matches(session.csrf, csrf)
    assert not csrf_matches(session.csrf, None)
    assert not csrf_matches(session.csrf, csrf[:-1])
    assert session_of(store, cookie + "x") is None
    revoke_token(store, "alice")
    assert session_of(store, cookie) is None
    other = verify(store, create_token(store, "bob", ["runs:read"]).secret)
    assert other is not None
    cookie, _ = open_session(store, other, ttl=60)
    close_session(store, cookie)
    assert session_of(store, cookie) is None
    expired, _ = open_session(store, other, ttl=-1)
    assert session_of(store, expired) is None


def test_token_bucket_allows_a_burst_then_refuses() -> None:
    limiter = RateLimiter(burst_seconds=2.0)
    assert [limiter.acquire("t", rate=2.0) for _ in range(4)] == [0.0] * 4
    wait = limiter.acquire("t", rate=2.0)
    assert 0.0 < wait <= 0.5
    assert limiter.acquire("other", rate=2.0) == 0.0  # buckets are per token
