"""Human approvals: ``bm.approval`` pauses a run for a decision with a timed default;
``bm.Webhook`` announces it (signed, Slack-compatible); receivers check requests with
``verify_signature``; deciders use ``engine.approvals`` or ``bandmaster approvals``.

``Webhook`` needs the ``approvals`` extra (an HTTP client); everything else here does not.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bandmaster._lazy import lazy_loader
from bandmaster.approvals._signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign, verify_signature
from bandmaster.engine import Approval, ApprovalRequest, Approvals, AuditEntry, Decision, Notifier, approval

# The HTTP client is imported on first use, so receivers can verify without it.
_LAZY = {"signed_headers": "bandmaster.approvals._signing", "Webhook": "bandmaster.approvals._webhook"}

if TYPE_CHECKING:
    from bandmaster.approvals._signing import signed_headers
    from bandmaster.approvals._webhook import Webhook
else:
    __getattr__, __dir__ = lazy_loader(__name__, _LAZY)


__all__ = [
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "Approval",
    "ApprovalRequest",
    "Approvals",
    "AuditEntry",
    "Decision",
    "Notifier",
    "Webhook",
    "approval",
    "sign",
    "signed_headers",
    "verify_signature",
]
