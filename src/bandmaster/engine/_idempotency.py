"""What a keyed start (``run_id=``, the server's ``Idempotency-Key``) asked for, kept so a
repeat can be told apart from another request without keeping the request.

The journal may hold the run's input redacted, so comparing a new request with it compares
unlike with unlike (every repeat of a redacting workflow's start would look different). The
start writes, beside the run, an HMAC-SHA256 of the workflow name and the raw encoded input,
keyed by a random secret of the journal: the raw input never touches the disk, and the same
request gives the same digest in every process sharing the journal.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from bandmaster.store import SQLiteStore

_SECRET_KEY = "idempotency_secret"


def request_digest(store: SQLiteStore, workflow: str, payload: str) -> str:
    """The digest of starting ``workflow`` with the encoded (unredacted) input ``payload``."""
    secret = bytes.fromhex(store.kv_setdefault(_SECRET_KEY, secrets.token_hex(32)))
    return hmac.new(secret, f"{workflow}\x00{payload}".encode(), hashlib.sha256).hexdigest()


def same_request(store: SQLiteStore, run_id: str, workflow: str, payload: str) -> bool:
    """Whether run ``run_id`` was started by this same request (workflow and raw input)."""
    row = store.get_run(run_id)
    if row is None or row.workflow != workflow:
        return False
    digest = store.request_digest(run_id)
    if digest is None:  # started before digests were kept, or without a key
        return row.input == payload
    return hmac.compare_digest(digest, request_digest(store, workflow, payload))
