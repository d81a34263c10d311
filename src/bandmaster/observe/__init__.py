"""Observability: statistics from the journal (``bandmaster.observe.stats``), and engine hooks
``bandmaster.observe.tracing.Tracing``
(OpenTelemetry, extra ``otel``) and ``bandmaster.observe.metrics.Metrics`` (Prometheus, extra
``metrics``). Both load on first use, so importing this package needs neither extra."""

from __future__ import annotations

import importlib

_LAZY = {
    "Metrics": "bandmaster.observe.metrics",
    "Tracing": "bandmaster.observe.tracing",
    "otlp_provider": "bandmaster.observe.tracing",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'bandmaster.observe' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = ["Metrics", "Tracing", "otlp_provider"]
