"""Observability: statistics from the journal (``bandmaster.observe.stats``), and engine hooks
``bandmaster.observe._tracing.Tracing``
(OpenTelemetry, extra ``otel``) and ``bandmaster.observe._metrics.Metrics`` (Prometheus, extra
``metrics``), ``GenAIMetrics`` (OpenTelemetry GenAI client metrics) and ``Alerts`` (signed
webhook alerts, extra ``approvals``). All load on first use, so importing this package needs
no extra."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bandmaster._lazy import lazy_loader

_LAZY = {
    "ChunkReader": "bandmaster.observe._live",
    "run_updates": "bandmaster.observe._live",
    "Alerts": "bandmaster.observe._alerts",
    "GenAIMetrics": "bandmaster.observe._genai_metrics",
    "Metrics": "bandmaster.observe._metrics",
    "Tracing": "bandmaster.observe._tracing",
    "otlp_provider": "bandmaster.observe._tracing",
}

if TYPE_CHECKING:
    # the real types for checkers; loaded on first use at run time
    from bandmaster.observe._alerts import Alerts
    from bandmaster.observe._genai_metrics import GenAIMetrics
    from bandmaster.observe._live import ChunkReader, run_updates
    from bandmaster.observe._metrics import Metrics
    from bandmaster.observe._tracing import Tracing, otlp_provider
else:
    __getattr__, __dir__ = lazy_loader(__name__, _LAZY)


__all__ = ["Alerts", "ChunkReader", "GenAIMetrics", "Metrics", "Tracing", "otlp_provider", "run_updates"]
