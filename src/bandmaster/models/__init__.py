"""Models: request/response types, providers, the registry and prices.

Provider SDKs are optional: ``bandmaster.models.openai_compat`` (extra ``openai``),
``bandmaster.models.anthropic`` (extra ``anthropic``), ``bandmaster.models.sklearn`` (extra
``sklearn``) are imported only when used.
"""

from bandmaster.models.base import (
    Message,
    Model,
    ModelChunk,
    ModelRequest,
    ModelResponse,
    StreamingModel,
    Usage,
)
from bandmaster.models.pricing import Price, PriceTable
from bandmaster.models.providers import CallableModel, Recorded, RecordedAnswer
from bandmaster.models.registry import AliasSpec, Registry, RegistryConfig, Resolution

__all__ = [
    "AliasSpec",
    "CallableModel",
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
    "StreamingModel",
    "Usage",
]
