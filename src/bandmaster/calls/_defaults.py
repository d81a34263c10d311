"""The process's default model registry, chosen once at the edge, and the reset of every
process-wide model cache for tests.

``bm.call_model`` serves a call from the ``registry=`` it is given, else the engine's
(``bm.Engine(registry=...)``), else this default: the one set with ``bm.use_registry``, or on
first use ``$BANDMASTER_MODELS`` / ``./models.yaml`` when present (an empty registry when not).
It is resolved once per process, not per call: a later change of the environment or of the
working directory is not seen until ``use_registry`` or ``reset_models``.
"""

from __future__ import annotations

import os
from pathlib import Path

from bandmaster.calls.hub import reset_hubs
from bandmaster.errors import UsageError
from bandmaster.models import Registry

_default: Registry | None = None


def use_registry(registry: Registry | str | os.PathLike[str]) -> Registry:
    """Serve ``bm.call_model`` from ``registry`` (or the ``models.yaml`` at that path) when
    neither the call nor the engine names one. Returns the registry now in use."""
    global _default
    if isinstance(registry, str | os.PathLike):
        registry = Registry.load(Path(registry))
    elif not isinstance(registry, Registry):
        raise UsageError(f"use_registry({registry!r}): give a bm.Registry or the path of a models.yaml")
    _default = registry
    return registry


def default_registry() -> Registry:
    """The registry set by ``use_registry``; else, loaded once, ``$BANDMASTER_MODELS`` or
    ``./models.yaml`` when present, else an empty registry."""
    global _default
    if _default is None:
        path = os.environ.get("BANDMASTER_MODELS") or (
            "models.yaml" if Path("models.yaml").is_file() else None
        )
        _default = Registry.load(path) if path else Registry()
    return _default


def reset_models() -> None:
    """Forget every process-wide model state: the default registry (the next call resolves it
    again) and the hubs with their breaker states and alias overrides.

    For tests: call it between tests (an autouse fixture) so that a breaker opened or a
    registry chosen in one test is not seen by the next. The default tokenizer's cache is
    left alone: it holds an immutable encoding, and dropping it would re-import tiktoken
    inside a Temporal workflow sandbox, which refuses late imports."""
    global _default
    _default = None
    reset_hubs()


__all__ = ["default_registry", "reset_models", "use_registry"]
