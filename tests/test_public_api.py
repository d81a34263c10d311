"""The public surface of ``import bandmaster as bm``, pinned."""

from __future__ import annotations

import bandmaster

EXPECTED = [
    "AlreadyDecided",
    "ApprovalNotFound",
    "AuthenticationFailed",
    "BackendUnavailable",
    "BandmasterError",
    "BannedTopics",
    "Breaker",
    "CallableModel",
    "Cancelled",
    "Cascade",
    "CircuitOpen",
    "Decision",
    "Engine",
    "Example",
    "FallbacksExhausted",
    "Guard",
    "GuardViolation",
    "Hooks",
    "InvalidArchive",
    "InvalidInput",
    "InvalidRequest",
    "InvalidSignature",
    "JsonSchema",
    "MalformedResponse",
    "MaxTokens",
    "Message",
    "Model",
    "ModelHub",
    "ModelRequest",
    "ModelResponse",
    "ModelSettings",
    "ModelStream",
    "NonDeterminismError",
    "NotAuthorized",
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
    "now",
    "random",
    "run",
    "sleep",
    "step",
    "stream_model",
    "uuid",
    "wait_for",
    "workflow",
]


def test_all_is_pinned() -> None:
    assert bandmaster.__all__ == EXPECTED


def test_all_is_sorted_and_unique() -> None:
    assert bandmaster.__all__ == sorted(set(bandmaster.__all__))


def test_every_exported_name_exists() -> None:
    missing = [name for name in bandmaster.__all__ if not hasattr(bandmaster, name)]
    assert missing == []


def test_star_import_gives_exactly_all() -> None:
    namespace: dict[str, object] = {}
    exec("from bandmaster import *", namespace)
    assert sorted(k for k in namespace if k != "__builtins__") == sorted(EXPECTED)


def test_version() -> None:
    assert bandmaster.__version__ == "0.1.0"
