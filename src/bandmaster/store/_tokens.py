"""Access-control rows in the journal: API tokens (only a hash of each secret), browser
sessions, and the append-only audit of administrative changes made through the server.

Pure storage: hashing, scopes and constant-time checks live in ``bandmaster.server._auth``.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from typing import Any

from bandmaster.store._sqlite import SQLiteStore

_TOKEN_COLUMNS = "id, name, secret_hash, scopes, rate_limit, created_at, revoked_at, last_used_at"


@dataclass(slots=True)
class TokenRow:
    id: str
    name: str
    secret_hash: str
    scopes: list[str]
    rate_limit: float | None
    created_at: float
    revoked_at: float | None
    last_used_at: float | None


@dataclass(slots=True)
class SessionRow:
    id_hash: str
    token_id: str
    csrf: str
    created_at: float
    expires_at: float


@dataclass(slots=True)
class AdminAuditRow:
    id: int
    at: float
    principal: str | None
    action: str
    target: str | None
    detail: dict[str, Any] | None


def _token(values: tuple[Any, ...]) -> TokenRow:
    row = TokenRow(*values)
    row.scopes = json.loads(values[3])
    return row


class TokenStore:
    """Tokens, sessions and the admin audit of one journal."""

    def __init__(self, store: SQLiteStore) -> None:
        self.store = store

    # --- tokens -------------------------------------------------------------------------

    def insert_token(self, row: TokenRow) -> None:
        self.store._write(
            lambda conn: conn.execute(
                f"INSERT INTO api_tokens ({_TOKEN_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    row.id,
                    row.name,
                    row.secret_hash,
                    json.dumps(row.scopes),
                    row.rate_limit,
                    row.created_at,
                    row.revoked_at,
                    row.last_used_at,
                ),
            )
        )

    def get_token(self, token_id: str) -> TokenRow | None:
        found = self.store._conn.execute(
            f"SELECT {_TOKEN_COLUMNS} FROM api_tokens WHERE id = ?", (token_id,)
        ).fetchone()
        return _token(found) if found else None

    def list_tokens(self) -> list[TokenRow]:
        rows = self.store._conn.execute(
            f"SELECT {_TOKEN_COLUMNS} FROM api_tokens ORDER BY created_at"
        ).fetchall()
        return [_token(r) for r in rows]

    def find_by_name(self, name: str) -> list[TokenRow]:
        rows = self.store._conn.execute(
            f"SELECT {_TOKEN_COLUMNS} FROM api_tokens WHERE name = ? ORDER BY created_at", (name,)
        ).fetchall()
        return [_token(r) for r in rows]

    def revoke(self, token_id: str) -> bool:
        """Revoke a live token and end its sessions; false when none was live."""

        def op(conn: sqlite3.Connection) -> bool:
            changed = conn.execute(
                "UPDATE api_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                (time.time(), token_id),
            ).rowcount
            conn.execute("DELETE FROM web_sessions WHERE token_id = ?", (token_id,))
            return bool(changed)

        return self.store._write(op)

    def touch(self, token_id: str, at: float) -> None:
        self.store._write(
            lambda conn: conn.execute("UPDATE api_tokens SET last_used_at = ? WHERE id = ?", (at, token_id))
        )

    def any_live_token(self) -> bool:
        found = self.store._conn.execute(
            "SELECT 1 FROM api_tokens WHERE revoked_at IS NULL LIMIT 1"
        ).fetchone()
        return found is not None

    # --- browser sessions ---------------------------------------------------------------

    def insert_session(self, row: SessionRow) -> None:
        def op(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM web_sessions WHERE expires_at < ?", (time.time(),))
            conn.execute(
                "INSERT INTO web_sessions (id_hash, token_id, csrf, created_at, expires_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (row.id_hash, row.token_id, row.csrf, row.created_at, row.expires_at),
            )

        self.store._write(op)

    def get_session(self, id_hash: str) -> SessionRow | None:
        found = self.store._conn.execute(
            "SELECT id_hash, token_id, csrf, created_at, expires_at FROM web_sessions "
            "WHERE id_hash = ? AND expires_at > ?",
            (id_hash, time.time()),
        ).fetchone()
        return SessionRow(*found) if found else None

    def delete_session(self, id_hash: str) -> None:
        self.store._write(lambda conn: conn.execute("DELETE FROM web_sessions WHERE id_hash = ?", (id_hash,)))

    # --- admin audit --------------------------------------------------------------------

    def audit(
        self, principal: str | None, action: str, target: str | None, detail: dict[str, Any] | None = None
    ) -> None:
        self.store._write(
            lambda conn: conn.execute(
                "INSERT INTO server_audit (at, principal, action, target, detail) VALUES (?, ?, ?, ?, ?)",
                (time.time(), principal, action, target, json.dumps(detail) if detail is not None else None),
            )
        )

    def audit_log(self, limit: int = 200) -> list[AdminAuditRow]:
        rows = self.store._conn.execute(
            "SELECT id, at, principal, action, target, detail FROM server_audit ORDER BY id DESC LIMIT ?",
            (limit,),
        ).fetchall()
        return [AdminAuditRow(r[0], r[1], r[2], r[3], r[4], json.loads(r[5]) if r[5] else None) for r in rows]
