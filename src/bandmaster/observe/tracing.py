"""OpenTelemetry tracing as an engine hook: spans run → step → attempt → model call.

    engine = bm.Engine("bm.db", workflows=[triage], hooks=[Tracing()])

Model calls carry the GenAI semantic-convention attributes (``gen_ai.request.model``,
``gen_ai.usage.input_tokens``, ...) read from the step's journal meta, so this module never
imports ``bandmaster.models``. Retries, fallbacks, breaker changes and cache hits are span
events; failures set the span status to ERROR. Payloads are never recorded unless
``capture_payloads=True``, and then only what the journal itself holds.

The model-call span is the current span during each attempt, so the provider SDK request
carries it as a W3C ``traceparent`` header. A run carries the trace context it was started in
(stored with the run), so every execution of it, including a resume after a crash in another
process, lands in the same trace.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Mapping
from typing import Any

from pydantic_core import to_json

from bandmaster.engine.hooks import (
    AttemptFinished,
    AttemptStarted,
    EngineClosed,
    Hooks,
    RunCreated,
    RunFinished,
    RunStarted,
    StepFinished,
    StepStarted,
)

try:
    from opentelemetry import context as otel_context
    from opentelemetry import trace
    from opentelemetry.context import Context
    from opentelemetry.trace import (
        NonRecordingSpan,
        Span,
        SpanContext,
        SpanKind,
        Status,
        StatusCode,
        TraceFlags,
        TracerProvider,
    )
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
except ImportError as exc:  # pragma: no cover - exercised without the extra
    raise ImportError("bandmaster tracing needs OpenTelemetry: pip install 'bandmaster[otel]'") from exc

TRACER_NAME = "bandmaster"
_PROPAGATOR = TraceContextTextMapPropagator()


class _Attempt:
    __slots__ = ("model", "span", "started_ns", "token")

    def __init__(self, span: Span | None, model: Span | None, token: object, started_ns: int) -> None:
        self.span = span
        self.model = model
        self.token = token
        self.started_ns = started_ns


class Tracing(Hooks):
    """Emit spans for runs, steps, attempts and model calls to ``tracer_provider`` (default:
    the global one, see ``opentelemetry.trace.set_tracer_provider`` or ``otlp_provider``).

    ``capture_payloads``: also record each step's journaled output and each model call's
    journaled request (truncated to ``max_payload_chars``). Off by default: spans leave the
    process, and redaction applies to what the journal holds, not to arbitrary values.
    """

    def __init__(
        self,
        tracer_provider: TracerProvider | None = None,
        *,
        capture_payloads: bool = False,
        max_payload_chars: int = 4096,
    ) -> None:
        self.provider = tracer_provider
        self.tracer = trace.get_tracer(TRACER_NAME, tracer_provider=tracer_provider)
        self.capture_payloads = capture_payloads
        self.max_payload_chars = max_payload_chars
        # Each open span with the context that makes it the parent (built once, used per child).
        self._runs: dict[str, tuple[Span, Context]] = {}
        self._steps: dict[tuple[str, int], tuple[Span, Context]] = {}
        self._attempts: dict[tuple[str, int], _Attempt] = {}
        # The successful attempt's model span, ended once the step's meta (tokens, cost) is known.
        self._answered: dict[tuple[str, int], tuple[Span, int]] = {}

    # --- runs --------------------------------------------------------------------------------

    def run_created(self, event: RunCreated) -> Mapping[str, str] | None:
        """A short span in the caller's context (e.g. its HTTP request) marks the start; every
        execution of the run becomes its child, so a resumed run continues the same trace."""
        span = self.tracer.start_span(
            f"start {event.workflow}",
            kind=SpanKind.PRODUCER,
            attributes={"bandmaster.run_id": event.run_id, "bandmaster.workflow": event.workflow},
        )
        span.end()
        carrier: dict[str, str] = {}
        _PROPAGATOR.inject(carrier, context=trace.set_span_in_context(span))
        return carrier

    def run_started(self, event: RunStarted) -> None:
        parent = _PROPAGATOR.extract(event.headers) if event.headers else _derived_parent(event.run_id)
        attributes: dict[str, Any] = {
            "bandmaster.run_id": event.run_id,
            "bandmaster.workflow": event.workflow,
            "bandmaster.resumed": event.resumed,
        }
        if event.version is not None:
            attributes["bandmaster.workflow.version"] = event.version
        span = self.tracer.start_span(f"run {event.workflow}", context=parent, attributes=attributes)
        self._runs[event.run_id] = (span, trace.set_span_in_context(span))

    def run_finished(self, event: RunFinished) -> None:
        entry = self._runs.pop(event.run_id, None)
        if entry is None:
            return
        span = entry[0]
        span.set_attribute("bandmaster.outcome", event.outcome)
        if event.outcome == "failed" and event.error is not None:
            _fail(span, event.error)
        span.end()

    # --- steps and attempts ------------------------------------------------------------------

    def step_started(self, event: StepStarted) -> None:
        run = self._runs.get(event.run_id)
        span = self.tracer.start_span(
            f"{event.kind} {event.name}",  # the kind is in the name: "step classify", "model intent"
            context=run[1] if run is not None else None,
            attributes={"bandmaster.step.name": event.name, "bandmaster.step.seq": event.seq},
        )
        self._steps[event.run_id, event.seq] = (span, trace.set_span_in_context(span))

    def attempt_started(self, event: AttemptStarted) -> None:
        step = event.step
        entry = self._steps.get((step.run_id, step.seq))
        if entry is None:
            return
        parent_context = entry[1]
        if step.kind != "model":
            # A plain step's attempt gets its own span only if it fails or is a retry (made
            # when it ends): one successful attempt is the step span itself, which keeps a
            # traced no-op step within ~2 SDK spans' cost. Code in the step runs under it.
            token = otel_context.attach(parent_context)
            self._attempts[step.run_id, step.seq] = _Attempt(None, None, token, time.time_ns())
            return
        span = self.tracer.start_span(
            f"attempt {event.attempt}",
            context=parent_context,
            attributes={"bandmaster.attempt": event.attempt, "bandmaster.target": event.target},
        )
        model = self.tracer.start_span(
            f"chat {event.target}",
            context=trace.set_span_in_context(span),
            kind=SpanKind.CLIENT,
            attributes={"gen_ai.operation.name": "chat", "gen_ai.request.model": event.target},
        )
        # Current during the call: the provider SDK request carries it as `traceparent`.
        token = otel_context.attach(trace.set_span_in_context(model))
        self._attempts[step.run_id, step.seq] = _Attempt(span, model, token, 0)

    def attempt_finished(self, event: AttemptFinished) -> None:
        key = (event.step.run_id, event.step.seq)
        attempt = self._attempts.pop(key, None)
        if attempt is None:
            return
        otel_context.detach(attempt.token)  # type: ignore[arg-type]
        entry = self._steps.get(key)
        step = entry[0] if entry is not None else None
        if attempt.span is None:  # a plain step's attempt
            if (event.error is None and event.attempt == 1) or entry is None:
                return
            attempt.span = self.tracer.start_span(
                f"attempt {event.attempt}",
                context=entry[1],
                attributes={"bandmaster.attempt": event.attempt, "bandmaster.target": event.target},
                start_time=attempt.started_ns,
            )
        if event.error is None:
            attempt.span.end()
            if attempt.model is not None:
                self._answered[key] = (attempt.model, time.time_ns())
            return
        for span in (attempt.model, attempt.span):
            if span is not None:
                _fail(span, event.error)
                span.end()
        if event.retry_delay is not None and step is not None:
            step.add_event(
                "retry",
                {
                    "bandmaster.attempt": event.attempt,
                    "bandmaster.retry.delay_s": event.retry_delay,
                    "error.type": type(event.error).__name__,
                },
            )

    def step_finished(self, event: StepFinished) -> None:
        key = (event.step.run_id, event.step.seq)
        entry = self._steps.pop(key, None)
        answered = self._answered.pop(key, None)
        if entry is None:
            return
        span = entry[0]
        if event.status != "completed":
            span.set_attribute("bandmaster.step.status", event.status)
        if event.attempts > 1:
            span.set_attribute("bandmaster.step.attempts", event.attempts)
        meta = event.meta
        if event.step.kind == "model" and meta:
            self._model_step(span, meta, event.attempts)
        if answered is not None:
            model_span, ended = answered
            model_span.set_attributes(_response_attributes(meta))
            model_span.end(end_time=ended)
        if self.capture_payloads:
            if event.output is not None:
                span.set_attribute("bandmaster.output", event.output[: self.max_payload_chars])
            request = meta.get("request")
            if request is not None:
                text = to_json(request, serialize_unknown=True).decode()
                span.set_attribute("bandmaster.input", text[: self.max_payload_chars])
        if event.status == "failed" and event.error is not None:
            _fail(span, event.error)
        span.end()

    def _model_step(self, span: Span, meta: Mapping[str, Any], attempts: int) -> None:
        span.set_attribute("gen_ai.operation.name", "chat")
        requested = meta.get("alias") or meta.get("served_by")
        if requested:
            span.set_attribute("gen_ai.request.model", str(requested))
        if meta.get("version"):
            span.set_attribute("bandmaster.model.version", str(meta["version"]))
        if meta.get("served_by"):
            span.set_attribute("bandmaster.model.served_by", str(meta["served_by"]))
        span.set_attribute("bandmaster.retries", max(attempts - 1, 0))
        span.set_attributes(_response_attributes(meta))
        if meta.get("cache_hit"):
            span.set_attribute("bandmaster.cache_hit", True)
            span.add_event("cache_hit", {"gen_ai.response.model": str(meta.get("model") or "")})
        elif "cache_hit" in meta:
            span.set_attribute("bandmaster.cache_hit", False)
        if meta.get("fallback"):
            span.set_attribute("bandmaster.fallback", str(meta["fallback"]))
            span.add_event("fallback", {"bandmaster.fallback.model": str(meta["fallback"])})
        for model, state in (meta.get("breakers") or {}).items():
            span.add_event(
                "breaker", {"bandmaster.breaker.model": str(model), "bandmaster.breaker.state": state}
            )

    def engine_closed(self, event: EngineClosed) -> None:
        flush = getattr(self.provider or trace.get_tracer_provider(), "force_flush", None)
        if flush is not None:
            flush()


def _derived_parent(run_id: str) -> Context:
    """For a run started without trace headers (by a client without this hook): a parent
    derived from the run id, so every execution of the run still shares one trace. The parent
    itself is never exported; trace UIs show the executions under a missing root."""
    digest = hashlib.sha256(run_id.encode()).digest()
    parent = SpanContext(
        trace_id=int.from_bytes(digest[:16], "big") or 1,
        span_id=int.from_bytes(digest[16:24], "big") or 1,
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
    )
    return trace.set_span_in_context(NonRecordingSpan(parent))


def _response_attributes(meta: Mapping[str, Any]) -> dict[str, Any]:
    attributes: dict[str, Any] = {}
    if meta.get("model"):
        attributes["gen_ai.response.model"] = str(meta["model"])
    tokens = meta.get("tokens") or {}
    if "input" in tokens:
        attributes["gen_ai.usage.input_tokens"] = int(tokens["input"])
    if "output" in tokens:
        attributes["gen_ai.usage.output_tokens"] = int(tokens["output"])
    if meta.get("finish_reason"):
        attributes["gen_ai.response.finish_reasons"] = [str(meta["finish_reason"])]
    if meta.get("cost") is not None:
        attributes["bandmaster.cost_usd"] = float(meta["cost"])
    if meta.get("confidence") is not None:
        attributes["bandmaster.confidence"] = float(meta["confidence"])
    return attributes


def _fail(span: Span, error: BaseException) -> None:
    span.set_attribute("error.type", type(error).__name__)
    span.record_exception(error)
    span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))


def otlp_provider(service_name: str | None = None) -> TracerProvider:
    """A tracer provider exporting spans in batches over OTLP/HTTP (protobuf).

    The standard variables configure it: ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or
    ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``), ``OTEL_EXPORTER_OTLP_HEADERS`` (API keys for
    Langfuse, Grafana Cloud, ...), ``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``.
    """
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError as exc:  # pragma: no cover - exercised without the extra
        raise ImportError(
            "exporting traces needs the OpenTelemetry SDK and OTLP exporter: pip install 'bandmaster[otel]'"
        ) from exc
    name = service_name or os.environ.get("OTEL_SERVICE_NAME") or "bandmaster"
    provider = SdkTracerProvider(resource=Resource.create({"service.name": name}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return provider
