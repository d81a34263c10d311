"""The public surface of ``import bandmaster as bm``, pinned."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

import bandmaster

EXPECTED = [
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


LAZY_PACKAGES = ["bandmaster", "bandmaster.observe", "bandmaster.approvals"]


@pytest.mark.parametrize("package", LAZY_PACKAGES)
def test_lazy_names_are_imported_for_type_checkers(package: str) -> None:
    """Each name loaded on first use is also imported under ``if TYPE_CHECKING:``, from the
    module it is loaded from, so checkers see its type rather than ``object``."""
    module = importlib.import_module(package)
    tree = ast.parse(Path(module.__file__ or "").read_text(encoding="utf-8"))
    typed: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            for stmt in node.body:
                assert isinstance(stmt, ast.ImportFrom)
                assert stmt.module is not None
                typed.update({alias.name: stmt.module for alias in stmt.names})
    assert typed == module._LAZY


@pytest.mark.parametrize("package", LAZY_PACKAGES)
def test_dir_lists_the_lazy_names_before_they_load(package: str) -> None:
    code = f"import {package} as m; print(sorted(set(m.__all__) - set(dir(m))))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_names_of_missing_extras_still_star_import_and_fail_when_used() -> None:
    code = (
        "import sys\n"
        "sys.modules['httpx2'] = sys.modules['presidio_analyzer'] = None  # extras approvals, pii\n"
        "from bandmaster import *\n"
        "import bandmaster as bm\n"
        "for use in (lambda: bm.Webhook('https://example.org', secret='x' * 16), bm.RedactPII,\n"
        "            lambda: bm.TokenVault.generate_key()):\n"
        "    try:\n"
        "        use()\n"
        "    except ImportError as exc:\n"
        "        print(exc)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 3
    assert "pip install 'bandmaster[approvals]'" in lines[0]
    assert "pip install 'bandmaster[pii]'" in lines[1]
    assert lines[2] == lines[1]
