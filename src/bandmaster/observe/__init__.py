"""Observability: statistics from the journal (``bandmaster.observe.stats``), and engine hooks
``bandmaster.observe.tracing.Tracing``
(OpenTelemetry, extra ``otel``) and ``bandmaster.observe.metrics.Metrics`` (Prometheus, extra
``metrics``), ``GenAIMetrics`` (OpenTelemetry GenAI client metrics) and ``Alerts`` (signed
webhook alerts, extra ``approvals``). All load on first use, so importing this package needs
no extra."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bandmaster._lazy import lazy_loader

_LAZY = {
    "Alerts": "bandmaster.observe.alerts",
    "GenAIMetrics": "bandmaster.observe.genai_metrics",
    "Metrics": "bandmaster.observe.metrics",
    "Tracing": "bandmaster.observe.tracing",
    "otlp_provider": "bandmaster.observe.tracing",
}

if TYPE_CHECKING:  # the real types for checkers; loaded on first use at run time
    from bandmaster.observe.alerts import Alerts
    from bandmaster.observe.genai_metrics import GenAIMetrics
    from bandmaster.observe.metrics import Metrics
    from bandmaster.observe.tracing import Tracing, otlp_provider
else:
    __getattr__, __dir__ = lazy_loader(__name__, _LAZY)


__all__ = ["Alerts", "GenAIMetrics", "Metrics", "Tracing", "otlp_provider"]
