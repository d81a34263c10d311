"""HMAC signatures of webhook requests, for senders and receivers.

``X-Bandmaster-Signature: v1=<hex HMAC-SHA256(secret, "v1:{timestamp}:{body}")>`` with the
Unix time in ``X-Bandmaster-Timestamp``. The timestamp is signed too, so a captured request
cannot be replayed outside the receiver's tolerance window.

``standard_headers`` signs in the Standard Webhooks format instead (``webhook-id``,
``webhook-timestamp``, ``webhook-signature: v1,<base64>``), which off-the-shelf verifiers
accept; the ``standardwebhooks`` package computes it.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping
from datetime import UTC, datetime

from bandmaster.errors import InvalidInput, InvalidSignature

TIMESTAMP_HEADER = "X-Bandmaster-Timestamp"
SIGNATURE_HEADER = "X-Bandmaster-Signature"
VERSION = "v1"


def _bytes(value: str | bytes) -> bytes:
    return value.encode() if isinstance(value, str) else value


def sign(secret: str | bytes, timestamp: int, body: str | bytes) -> str:
    """The signature header value for ``body`` sent at ``timestamp``: ``v1=<hex>``."""
    message = f"{VERSION}:{timestamp}:".encode() + _bytes(body)
    return f"{VERSION}=" + hmac.new(_bytes(secret), message, hashlib.sha256).hexdigest()


def signed_headers(secret: str | bytes, body: str | bytes, *, now: float | None = None) -> dict[str, str]:
    """The two headers that authenticate ``body``."""
    timestamp = int(now if now is not None else time.time())
    return {TIMESTAMP_HEADER: str(timestamp), SIGNATURE_HEADER: sign(secret, timestamp, body)}


def standard_headers(
    secret: str, message_id: str, body: str | bytes, *, now: float | None = None
) -> dict[str, str]:
    """The Standard Webhooks headers that authenticate ``body``; ``secret`` is a ``whsec_``
    secret, ``message_id`` the same on every retry of one message (receivers dedupe on it)."""
    from standardwebhooks.webhooks import Webhook

    stamp = datetime.fromtimestamp(int(now if now is not None else time.time()), UTC)
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(stamp.timestamp())),
        "webhook-signature": Webhook(secret).sign(message_id, stamp, _bytes(body)),
    }


def check_standard_secret(secret: str) -> None:
    """``InvalidInput`` unless ``secret`` is a Standard Webhooks secret (``whsec_`` + base64)."""
    from standardwebhooks.webhooks import Webhook

    try:
        Webhook(secret)
    except Exception as exc:  # binascii.Error, EmptyWebhookSecretError: the package's own types
        raise InvalidInput(
            "a Standard Webhooks secret is whsec_ followed by base64 (e.g. 'whsec_' + "
            f"base64 of 32 random bytes): {exc}"
        ) from None


def _header(headers: Mapping[str, str], name: str) -> str | None:
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return None


def verify_signature(
    secret: str | bytes,
    headers: Mapping[str, str],
    body: str | bytes,
    *,
    tolerance: float = 300,
    now: float | None = None,
) -> None:
    """Check a webhook request from bandmaster; raise ``bm.InvalidSignature`` saying why not.

    ``headers`` is any mapping (looked up case-insensitively), ``body`` the raw request body as
    received (verify before parsing). The comparison is constant-time, and requests whose
    timestamp is more than ``tolerance`` seconds from ``now`` are refused (replay window).
    """
    stamp = _header(headers, TIMESTAMP_HEADER)
    given = _header(headers, SIGNATURE_HEADER)
    if stamp is None or given is None:
        raise InvalidSignature(f"missing {TIMESTAMP_HEADER} or {SIGNATURE_HEADER} header")
    try:
        timestamp = int(stamp)
    except ValueError:
        raise InvalidSignature(f"{TIMESTAMP_HEADER} is not a Unix time: {stamp[:40]!r}") from None
    current = now if now is not None else time.time()
    if abs(current - timestamp) > tolerance:
        raise InvalidSignature(
            f"timestamp {timestamp} is {abs(current - timestamp):.0f}s from now, outside the "
            f"{tolerance:.0f}s window (replayed request, or a clock off)"
        )
    expected = sign(secret, timestamp, body)
    # Compare every candidate (a header may carry several, e.g. during secret rotation).
    candidates = [part.strip() for part in given.split(",")]
    if not any(hmac.compare_digest(expected.encode(), c.encode()) for c in candidates):
        raise InvalidSignature("signature does not match the body and secret")
