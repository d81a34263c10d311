"""``bm.TokenVault``: the mapping behind reversible PII tokens (``RedactPII(mode="token")``).

A token such as ``<PERSON_1f3a9c2e07bd>`` is a keyed HMAC of the entity type and the original
text, so the same value always gets the same token (analytics can still count a patient) while
the token says nothing about the value. The original is stored only encrypted (Fernet:
AES-128-CBC + HMAC-SHA256) in the journal's SQLite file, table ``pii_tokens``; ``reveal`` decrypts
for a reviewer on the vault's allow-list who presents their credential, and audits every attempt.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import sqlite3
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from bandmaster.guard.pii._engine import require_pii_extra

require_pii_extra()

from cryptography.fernet import Fernet, InvalidToken  # noqa: E402

from bandmaster.errors import RevealDenied, StoreError, UsageError  # noqa: E402
from bandmaster.store import SQLiteStore, resolve_db_path  # noqa: E402

TOKEN_PATTERN = re.compile(r"<(?P<entity>[A-Z][A-Z_]*)_(?P<digest>[0-9a-f]{12})>")


@dataclass(frozen=True, slots=True)
class RevealRecord:
    """One audited reveal attempt."""

    reviewer: str
    allowed: bool
    tokens: int
    reason: str | None
    at: float


class TokenVault:
    """Encrypted store of token → original text, in the journal file ``db``.

    ``key`` is a Fernet key (``TokenVault.generate_key()``); keep it out of the code and the
    journal (an environment variable or a secrets manager). ``reviewers`` maps each reviewer
    allowed to reveal to their credential.
    """

    def __init__(
        self,
        db: str | os.PathLike[str] | None = None,
        *,
        key: str | bytes,
        reviewers: Mapping[str, str] | None = None,
    ) -> None:
        raw_key = key.encode() if isinstance(key, str) else key
        try:
            self._fernet = Fernet(raw_key)
        except (ValueError, TypeError) as exc:
            raise UsageError(
                f"TokenVault(key=...) is not a Fernet key ({exc}); create one with "
                f"bm.TokenVault.generate_key() and keep it in a secret store"
            ) from None
        # Tokens are keyed by a key derived from the vault key: stable per vault, unguessable.
        self._token_key = hashlib.sha256(b"bandmaster-pii-token:" + raw_key).digest()
        self._reviewers = dict(reviewers or {})
        self.path: Path = resolve_db_path(db)
        self._conn: sqlite3.Connection | None = None
        self._stored: set[str] = set()

    @staticmethod
    def generate_key() -> str:
        """A new random vault key (url-safe base64 text)."""
        return Fernet.generate_key().decode()

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            SQLiteStore(self.path).close()  # applies the journal migrations, pii tables included
            try:
                self._conn = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
            except sqlite3.Error as exc:
                raise StoreError(f"cannot open the token vault in {self.path}: {exc}") from exc
            self._conn.execute("PRAGMA busy_timeout=10000")
        return self._conn

    def token(self, entity: str, original: str) -> str:
        """The token for ``original``; its encrypted mapping is committed before it is returned,
        so a journal row never names a token the vault cannot reveal."""
        digest = hmac.new(self._token_key, f"{entity}\x00{original}".encode(), hashlib.sha256).hexdigest()
        token = f"<{entity}_{digest[:12]}>"
        if token not in self._stored:
            ciphertext = self._fernet.encrypt(original.encode())
            try:
                self._db().execute(
                    "INSERT OR IGNORE INTO pii_tokens (token, entity, ciphertext, created_at) "
                    "VALUES (?,?,?,?)",
                    (token, entity, ciphertext, time.time()),
                )
            except sqlite3.Error as exc:
                raise StoreError(f"token vault write to {self.path} failed: {exc}") from exc
            self._stored.add(token)
        return token

    def reveal(self, text: str, *, reviewer: str, credential: str, reason: str | None = None) -> str:
        """``text`` with every token of this vault replaced by its original.

        Raises ``RevealDenied`` unless ``reviewer`` is on the allow-list and ``credential`` is
        theirs. Allowed and denied attempts are both recorded in ``pii_reveals``.
        """
        expected = self._reviewers.get(reviewer)
        allowed = expected is not None and hmac.compare_digest(expected.encode(), credential.encode())
        if not allowed:
            self._audit(reviewer, False, 0, reason)
            raise RevealDenied(
                f"reviewer {reviewer!r} may not reveal PII from {self.path}: not on the vault's "
                f"allow-list or wrong credential (allow-list: TokenVault(reviewers={{name: credential}}))"
            )
        tokens = sorted({m.group(0) for m in TOKEN_PATTERN.finditer(text)})
        originals: dict[str, str] = {}
        if tokens:
            marks = ",".join("?" * len(tokens))
            rows = (
                self._db()
                .execute(f"SELECT token, ciphertext FROM pii_tokens WHERE token IN ({marks})", tokens)
                .fetchall()
            )
            for token, ciphertext in rows:
                try:
                    originals[token] = self._fernet.decrypt(ciphertext).decode()
                except InvalidToken:
                    continue  # written under another vault key: leave the token in place
        self._audit(reviewer, True, len(originals), reason)
        return TOKEN_PATTERN.sub(lambda m: originals.get(m.group(0), m.group(0)), text)

    def reveals(self, limit: int = 100) -> list[RevealRecord]:
        """The audit trail, newest first."""
        rows = (
            self._db()
            .execute(
                "SELECT reviewer, allowed, tokens, reason, at FROM pii_reveals ORDER BY id DESC LIMIT ?",
                (limit,),
            )
            .fetchall()
        )
        return [RevealRecord(r[0], bool(r[1]), r[2], r[3], r[4]) for r in rows]

    def _audit(self, reviewer: str, allowed: bool, tokens: int, reason: str | None) -> None:
        self._db().execute(
            "INSERT INTO pii_reveals (reviewer, allowed, tokens, reason, at) VALUES (?,?,?,?,?)",
            (reviewer, int(allowed), tokens, reason, time.time()),
        )

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __repr__(self) -> str:
        return f"<bm.TokenVault {self.path}>"
