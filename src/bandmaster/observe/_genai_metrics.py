"""The OpenTelemetry GenAI client metrics as an engine hook.

    from opentelemetry.sdk.metrics import MeterProvider
    engine = bm.Engine("bm.db", workflows=[triage], hooks=[GenAIMetrics(MeterProvider(...))])

``gen_ai.client.operation.duration`` (seconds) is recorded once per model attempt, a timed-out
or failed one included (with ``error.type``), from the same attempt events as the chat spans;
``gen_ai.client.token.usage`` ({token}) once per answered call and token type, with the usage
the chat span carries. A cache hit made no call: it records neither.
"""

from __future__ import annotations

import time
from typing import Any

from bandmaster.engine.hooks import AttemptFinished, AttemptStarted, Hooks, StepFinished

try:
    from opentelemetry import metrics
except ImportError as exc:  # pragma: no cover - exercised without the extra
    raise ImportError("GenAI metrics need OpenTelemetry: pip install 'bandmaster[otel]'") from exc

# The bucket boundaries the GenAI semantic conventions recommend.
TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864)
DURATION_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)


class GenAIMetrics(Hooks):
    """Record the GenAI client metrics with ``meter_provider`` (default: the global one)."""

    def __init__(self, meter_provider: metrics.MeterProvider | None = None) -> None:
        meter = (meter_provider or metrics.get_meter_provider()).get_meter("bandmaster")
        self.duration = meter.create_histogram(
            "gen_ai.client.operation.duration",
            unit="s",
            description="GenAI operation duration",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self.token_usage = meter.create_histogram(
            "gen_ai.client.token.usage",
            unit="{token}",
            description="Number of input and output tokens used",
            explicit_bucket_boundaries_advisory=TOKEN_BUCKETS,
        )
        self._started: dict[tuple[str, int], float] = {}

    def attempt_started(self, event: AttemptStarted) -> None:
        if event.step.kind == "model":
            self._started[(event.step.run_id, event.step.seq)] = time.perf_counter()

    def attempt_finished(self, event: AttemptFinished) -> None:
        started = self._started.pop((event.step.run_id, event.step.seq), None)
        if started is None:
            return
        attributes: dict[str, Any] = {"gen_ai.operation.name": "chat", "gen_ai.request.model": event.target}
        if event.error is not None:
            attributes["error.type"] = type(event.error).__name__
        self.duration.record(time.perf_counter() - started, attributes)

    def step_finished(self, event: StepFinished) -> None:
        meta = event.meta
        if event.step.kind != "model" or event.status != "completed" or not meta or meta.get("cache_hit"):
            return
        attributes: dict[str, Any] = {"gen_ai.operation.name": "chat"}
        if meta.get("served_by"):
            attributes["gen_ai.request.model"] = str(meta["served_by"])
        if meta.get("model"):
            attributes["gen_ai.response.model"] = str(meta["model"])
        tokens = meta.get("tokens") or {}
        for direction in ("input", "output"):
            if tokens.get(direction) is not None:
                self.token_usage.record(
                    int(tokens[direction]), {**attributes, "gen_ai.token.type": direction}
                )
