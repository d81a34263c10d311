"""``bm.Webhook``: announce a pending approval with a signed, Slack-compatible POST.

Sent from a journaled ``notify`` operation (at-least-once; the ``Idempotency-Key`` header is
the same on every retry and re-execution), retried with backoff under a ``bm.Retry`` policy;
the outcome is journaled and a receiver that stays down never blocks the approval.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

from bandmaster.approvals._signing import check_standard_secret, signed_headers, standard_headers
from bandmaster.engine import ApprovalRequest
from bandmaster.errors import InvalidInput, ProviderUnavailable, StepTimeout
from bandmaster.models import error_for_status
from bandmaster.policies import Retry

try:
    import httpx2 as httpx  # the HTTP client the model SDKs already use (pydantic's httpx)
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError("bm.Webhook needs an HTTP client: pip install 'bandmaster[approvals]'") from exc

DEFAULT_RETRY = Retry(attempts=4, initial=0.5, multiplier=2.0, max_delay=5.0, total=15.0)
"""Four tries within about 15 s of backoff: long enough to ride out a receiver's restart,
short next to a typical approval window."""

_PAYLOAD_PREVIEW = 1500  # characters of payload shown in the message (Slack caps a block at 3000)


@dataclass(frozen=True, slots=True)
class Webhook:
    """POST each pending approval to ``url``, signed with ``secret`` (HMAC-SHA256).

    ``signature`` chooses the scheme: ``"bandmaster"`` (``X-Bandmaster-Signature``, see
    ``bandmaster.approvals._signing``) or ``"standard"``: the Standard Webhooks headers
    (``webhook-id`` = the Idempotency-Key, ``webhook-timestamp``, ``webhook-signature``) that
    off-the-shelf verifiers accept, with a ``whsec_`` secret. The body is the same either way.
    ``timeout`` bounds each attempt; ``retry`` decides how often and how long to retry
    (connection errors, timeouts, 429 and 5xx are retried; other 4xx are not). ``headers``
    are added to every request. The URL is never journaled whole (Slack-style URLs are
    secrets): the journal shows its scheme and host only.
    """

    url: str
    secret: str = field(kw_only=True, repr=False)
    timeout: float | None = field(default=5.0, kw_only=True)
    retry: Retry = field(default=DEFAULT_RETRY, kw_only=True)
    headers: Mapping[str, str] = field(default_factory=dict, kw_only=True)
    signature: Literal["bandmaster", "standard"] = field(default="bandmaster", kw_only=True)

    def __post_init__(self) -> None:
        parts = urlsplit(self.url) if isinstance(self.url, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            raise InvalidInput(f"bm.Webhook(url={self.url!r}): give an http:// or https:// URL")
        if not isinstance(self.secret, str) or len(self.secret) < 16:
            raise InvalidInput(
                "bm.Webhook(secret=...): give the shared signing secret, at least 16 characters "
                "(e.g. python -c 'import secrets; print(secrets.token_hex(32))')"
            )
        if self.signature not in ("bandmaster", "standard"):
            raise InvalidInput(f"bm.Webhook(signature={self.signature!r}): give 'bandmaster' or 'standard'")
        if self.signature == "standard":
            check_standard_secret(self.secret)
        if self.timeout is not None and self.timeout <= 0:
            raise InvalidInput(f"bm.Webhook(timeout={self.timeout}): seconds per attempt, > 0")

    @property
    def target(self) -> str:
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"

    async def send(self, request: ApprovalRequest, attempt: int) -> dict[str, Any]:
        body = json.dumps(slack_message(request), separators=(",", ":"), default=str)
        headers = {
            **self.headers,
            "Content-Type": "application/json",
            "Idempotency-Key": request.idempotency_key,
            "X-Bandmaster-Attempt": str(attempt),
        }
        if self.signature == "standard":  # signed per attempt: a fresh timestamp, the same id
            headers.update(standard_headers(self.secret, request.idempotency_key, body))
        else:
            headers.update(signed_headers(self.secret, body))
        try:
            async with httpx.AsyncClient(timeout=self.timeout) as client:
                response = await client.post(self.url, content=body.encode(), headers=headers)
        except httpx.TimeoutException as exc:
            raise StepTimeout(f"webhook {self.target}: no answer within {self.timeout}s") from exc
        except httpx.TransportError as exc:
            raise ProviderUnavailable(f"webhook {self.target}: {type(exc).__name__}: {exc}") from exc
        if response.status_code >= 300:
            raise error_for_status(
                response.status_code,
                response.text[:200],
                provider=f"webhook {self.target}",
                retry_after=response.headers.get("retry-after"),
            )
        return {"status_code": response.status_code}


def slack_message(request: ApprovalRequest) -> dict[str, Any]:
    """A Slack-compatible message (``text`` + ``blocks``) describing the approval; the
    ``bandmaster`` key carries the same facts for programs."""
    left = request.time_left()
    when = (
        f"*{request.default}* applies in {_duration(left)}"
        if left is not None
        else "no deadline: the run waits for a decision"
    )
    deciders = ", ".join(request.approvers) if request.approvers is not None else "anyone"
    text = f"Approval needed: {request.name} (run {request.run_id}, workflow {request.workflow}); {when}"
    preview = json.dumps(request.payload, indent=2, default=str)
    if len(preview) > _PAYLOAD_PREVIEW:
        preview = preview[:_PAYLOAD_PREVIEW] + "\n…"
    how = (
        f"`bandmaster approvals approve {request.run_id} --name {request.name}` or "
        f"`bandmaster approvals override {request.run_id} --name {request.name} --comment ...`"
    )
    return {
        "text": text,
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": f"Approval needed: {request.name}"}},
            {
                "type": "section",
                "fields": [
                    {"type": "mrkdwn", "text": f"*Run*\n`{request.run_id}`"},
                    {"type": "mrkdwn", "text": f"*Workflow*\n{request.workflow}"},
                    {"type": "mrkdwn", "text": f"*Time left*\n{when}"},
                    {"type": "mrkdwn", "text": f"*Who may decide*\n{deciders}"},
                ],
            },
            {"type": "section", "text": {"type": "mrkdwn", "text": f"```{preview}```"}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": f"Decide: {how}"}]},
        ],
        "bandmaster": {
            "run_id": request.run_id,
            "approval": request.name,
            "seq": request.seq,
            "workflow": request.workflow,
            "default": request.default,
            "deadline": request.deadline.isoformat() if request.deadline is not None else None,
            "approvers": list(request.approvers) if request.approvers is not None else None,
            "payload": request.payload,
        },
    }


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
