"""Models: request/response types, providers, the registry and prices.

Provider SDKs are optional: ``bandmaster.models.openai_compat`` (extra ``openai``),
``bandmaster.models.anthropic`` (extra ``anthropic``), ``bandmaster.models.sklearn`` (extra
``sklearn``) are imported only when used.
"""

from typing import TYPE_CHECKING

from bandmaster._lazy import lazy_loader
from bandmaster.models._base import (
    Message,
    Model,
    ModelChunk,
    ModelRequest,
    ModelResponse,
    StreamingModel,
    Usage,
)
from bandmaster.models._pricing import Price, PriceTable
from bandmaster.models._registry import AliasSpec, Registry, RegistryConfig, Resolution
from bandmaster.models.builtin import CallableModel, Recorded, RecordedAnswer

__all__ = [
    "AliasSpec",
    "BreakerSpec",
    "BudgetsSpec",
    "CallableModel",
    "JsonNotFound",
    "LimitsSpec",
    "Message",
    "Model",
    "ModelChunk",
    "ModelRequest",
    "ModelResponse",
    "Price",
    "PriceTable",
    "Recorded",
    "RecordedAnswer",
    "Registry",
    "RegistryConfig",
    "Resolution",
    "RetrySpec",
    "StreamingModel",
    "TenantBudget",
    "UnknownPriceWarning",
    "Usage",
    "error_for_status",
    "extract_json",
    "stream_chunks",
]

# Names other rooms use, loaded on first use.
_LAZY = {
    "BreakerSpec": "bandmaster.models._registry",
    "BudgetsSpec": "bandmaster.models._budget_spec",
    "TenantBudget": "bandmaster.models._budget_spec",
    "UnknownPriceWarning": "bandmaster.models._pricing",
    "JsonNotFound": "bandmaster.models._jsontext",
    "LimitsSpec": "bandmaster.models._registry",
    "RetrySpec": "bandmaster.models._registry",
    "error_for_status": "bandmaster.models._http_errors",
    "extract_json": "bandmaster.models._jsontext",
    "stream_chunks": "bandmaster.models._base",
}

if TYPE_CHECKING:
    from bandmaster.models._base import stream_chunks
    from bandmaster.models._budget_spec import BudgetsSpec, TenantBudget
    from bandmaster.models._http_errors import error_for_status
    from bandmaster.models._jsontext import JsonNotFound, extract_json
    from bandmaster.models._pricing import UnknownPriceWarning
    from bandmaster.models._registry import BreakerSpec, LimitsSpec, RetrySpec
else:
    __getattr__, __dir__ = lazy_loader(__name__, _LAZY)
