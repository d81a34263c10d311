"""bandmaster: durable orchestration of AI models, data and business logic.

import bandmaster as bm

@bm.step(timeout=2.0, retry=bm.Retry(attempts=3))
async def classify(text: str) -> str: ...

@bm.workflow
async def triage(text: str) -> str:
    return await classify(text)

bm.run(triage, "my card was charged twice")
"""

from typing import TYPE_CHECKING

from bandmaster import _wiring  # noqa: F401  registers the embedded engine's model desk and stats
from bandmaster._lazy import lazy_loader
from bandmaster.calls import call_model
from bandmaster.calls._defaults import use_registry
from bandmaster.calls.streaming import ModelStream, StreamChunk, stream_model
from bandmaster.engine import (
    Engine,
    Hooks,
    Redactor,
    RunHandle,
    RunInfo,
    Step,
    StepContext,
    StepInfo,
    Workflow,
    current_step,
    deprecate_patch,
    now,
    patched,
    random,
    run,
    sleep,
    step,
    uuid,
    wait_for,
    workflow,
)
from bandmaster.engine._approval_pause import Decision, approval
from bandmaster.engine._terms import RunTerms
from bandmaster.engine.backend import Backend, Capabilities
from bandmaster.errors import (
    AlreadyDecided,
    ApprovalNotFound,
    AuthenticationFailed,
    BackendUnavailable,
    BandmasterError,
    BudgetExceeded,
    Cancelled,
    CircuitOpen,
    FallbacksExhausted,
    GuardViolation,
    IdempotencyConflict,
    InvalidArchive,
    InvalidInput,
    InvalidRequest,
    InvalidSignature,
    MalformedResponse,
    NonDeterminismError,
    NotAuthorized,
    NotSupported,
    OutputValidationFailed,
    PayloadTooLarge,
    ProviderUnavailable,
    RateLimited,
    RedactionError,
    RegistryError,
    ReplayDivergence,
    ReplayError,
    RetriesExhausted,
    RetryableError,
    RevealDenied,
    RunCancelled,
    RunFailed,
    RunNotFound,
    ScheduleNotFound,
    StepError,
    StepFailed,
    StepTimeout,
    StoreError,
    TokenNotFound,
    UnknownModel,
    UnsafeBind,
    UsageError,
    WaitTimeout,
    WorkflowNotFound,
)
from bandmaster.guard import BannedTopics, Guard, JsonSchema, MaxTokens, ModelSettings, RequiredFields
from bandmaster.models import (
    CallableModel,
    Message,
    Model,
    ModelRequest,
    ModelResponse,
    PriceTable,
    Recorded,
    Registry,
    UnknownPriceWarning,
    Usage,
)
from bandmaster.policies import Breaker, Retry
from bandmaster.triggers import Schedule, schedule

__version__ = "0.1.0"

# Routing pulls in numpy; load it on first use so `import bandmaster` stays light.
_LAZY = {
    "Cascade": "bandmaster.routing",
    "Example": "bandmaster.routing",
    "RouteDecision": "bandmaster.routing",
    "Router": "bandmaster.routing",
    "TemporalEngine": "bandmaster.temporal",  # needs the temporal extra
    # The webhook notifier imports an HTTP client (extra: approvals).
    "Webhook": "bandmaster.approvals",
    # Presidio + spaCy (extra "pii"): loaded on first use of either name.
    "RedactPII": "bandmaster.guard.pii",
    "TokenVault": "bandmaster.guard.pii.vault",
}

if TYPE_CHECKING:  # the real types for checkers; the same names as _LAZY (tests/test_public_api.py)
    from bandmaster.approvals import Webhook
    from bandmaster.guard.pii import RedactPII
    from bandmaster.guard.pii.vault import TokenVault
    from bandmaster.routing import Cascade, Example, RouteDecision, Router
    from bandmaster.temporal import TemporalEngine
else:
    __getattr__, __dir__ = lazy_loader(__name__, _LAZY)


__all__ = [
    "AlreadyDecided",
    "ApprovalNotFound",
    "AuthenticationFailed",
    "Backend",
    "BackendUnavailable",
    "BandmasterError",
    "BannedTopics",
    "Breaker",
    "BudgetExceeded",
    "CallableModel",
    "Cancelled",
    "Capabilities",
    "Cascade",
    "CircuitOpen",
    "Decision",
    "Engine",
    "Example",
    "FallbacksExhausted",
    "Guard",
    "GuardViolation",
    "Hooks",
    "IdempotencyConflict",
    "InvalidArchive",
    "InvalidInput",
    "InvalidRequest",
    "InvalidSignature",
    "JsonSchema",
    "MalformedResponse",
    "MaxTokens",
    "Message",
    "Model",
    "ModelRequest",
    "ModelResponse",
    "ModelSettings",
    "ModelStream",
    "NonDeterminismError",
    "NotAuthorized",
    "NotSupported",
    "OutputValidationFailed",
    "PayloadTooLarge",
    "PriceTable",
    "ProviderUnavailable",
    "RateLimited",
    "Recorded",
    "RedactPII",
    "RedactionError",
    "Redactor",
    "Registry",
    "RegistryError",
    "ReplayDivergence",
    "ReplayError",
    "RequiredFields",
    "RetriesExhausted",
    "Retry",
    "RetryableError",
    "RevealDenied",
    "RouteDecision",
    "Router",
    "RunCancelled",
    "RunFailed",
    "RunHandle",
    "RunInfo",
    "RunNotFound",
    "RunTerms",
    "Schedule",
    "ScheduleNotFound",
    "Step",
    "StepContext",
    "StepError",
    "StepFailed",
    "StepInfo",
    "StepTimeout",
    "StoreError",
    "StreamChunk",
    "TemporalEngine",
    "TokenNotFound",
    "TokenVault",
    "UnknownModel",
    "UnknownPriceWarning",
    "UnsafeBind",
    "Usage",
    "UsageError",
    "WaitTimeout",
    "Webhook",
    "Workflow",
    "WorkflowNotFound",
    "__version__",
    "approval",
    "call_model",
    "current_step",
    "deprecate_patch",
    "now",
    "patched",
    "random",
    "run",
    "schedule",
    "sleep",
    "step",
    "stream_model",
    "use_registry",
    "uuid",
    "wait_for",
    "workflow",
]
