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
from typing import TYPE_CHECKING, Any

from pydantic_core import to_json

from bandmaster.engine import Redactor
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

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider

    from bandmaster.observe._deferred_spans import SpanSink

TRACER_NAME = "bandmaster"
_PROPAGATOR = TraceContextTextMapPropagator()
_CREATED_KEPT = 1024


class _Attempt:
    __slots__ = ("model", "span", "started_ns", "token")

    def __init__(self, span: Span | None, model: Span | None, token: object, started_ns: int) -> None:
        self.span = span
        self.model = model
        self.token = token
        self.started_ns = started_ns


_PlainStep = tuple["SpanSink", str, dict[str, Any], int, SpanContext]
"""Where a plain step's span goes, its name, attributes, start time (ns) and parent (its run's
recorded span)."""


class _Run:
    """An executing run's span, and what its steps need of it."""

    __slots__ = ("parent", "sink", "span", "token", "unsampled")

    def __init__(
        self, span: Span, sink: SpanSink | None, parent: SpanContext | None, token: object, unsampled: bool
    ) -> None:
        self.span = span
        # Where its children go and their parent when they are deferred spans (the run is
        # recorded), else None: fixed for the run even if the provider changes meanwhile.
        self.sink = sink
        self.parent = parent
        self.token = token
        # Not recorded, with deferred spans: nothing below it is made (it is current, so its
        # context, sampled flag included, still reaches provider requests).
        self.unsampled = unsampled


class Tracing(Hooks):
    """Emit spans for runs, steps, attempts and model calls to ``tracer_provider`` (default:
    the global one, see ``opentelemetry.trace.set_tracer_provider`` or ``otlp_provider``).

    ``capture_payloads``: also record each step's journaled output and each model call's
    journaled request (truncated to ``max_payload_chars``). Off by default: spans leave the
    process, and redaction applies to what the journal holds, not to arbitrary values.

    ``step_context``: make each step's span the current span while the step runs, so spans made
    by the step's own code (an instrumented HTTP or database client) are its children. Off by
    default, when they are children of the run span, which is current for the whole execution:
    a current span per step costs about 8-12 µs more per step. A model call's span is current
    during the call either way (the provider request's ``traceparent``).

    With the OpenTelemetry SDK's provider, spans are built when they end and handed to the
    provider's processors (see ``deferred_spans``); other providers get every span through the
    public API.
    """

    def __init__(
        self,
        tracer_provider: TracerProvider | None = None,
        *,
        capture_payloads: bool = False,
        max_payload_chars: int = 4096,
        step_context: bool = False,
    ) -> None:
        self.provider = tracer_provider
        self.tracer = trace.get_tracer(TRACER_NAME, tracer_provider=tracer_provider)
        self.capture_payloads = capture_payloads
        self.max_payload_chars = max_payload_chars
        self.step_context = step_context
        # Deferred spans go here (None: the public API); checked again once per run.
        self._sink: SpanSink | None = None
        self._sink_checked: object = None
        # Each open span: runs, steps (by run id and seq), attempts.
        self._runs: dict[str, _Run] = {}
        # Runs created here: their trace headers and the parent context they stand for.
        self._created: dict[str, tuple[Mapping[str, str], Context]] = {}
        # A plain step's span is made when it ends, from a _PlainStep, unless something is added
        # to it on the way (a retry, a failure): _step_span makes it then.
        self._steps: dict[tuple[str, int], Span | _PlainStep] = {}
        self._step_tokens: dict[tuple[str, int], object] = {}  # with step_context
        self._attempts: dict[tuple[str, int], _Attempt] = {}
        # The successful attempt's model span, ended once the step's meta (tokens, cost) is known.
        self._answered: dict[tuple[str, int], tuple[Span, int]] = {}
        # Attempts retried per step (a move to a fallback is not a retry), as the metrics count.
        self._retries: dict[tuple[str, int], int] = {}

    # --- making spans --------------------------------------------------------------------------

    def _check_sink(self) -> None:
        """Deferred spans when the provider is the SDK's and its processors allow them."""
        sink = self._sink
        if sink is not None and sink.current():
            return
        provider = self.provider or trace.get_tracer_provider()
        if sink is None and provider is self._sink_checked:
            return
        self._sink_checked = provider
        try:
            from bandmaster.observe._deferred_spans import SpanSink
        except ImportError:  # the OpenTelemetry API without its SDK: the public API it is
            return
        tracer = self.tracer if self.provider is not None else provider.get_tracer(TRACER_NAME)
        self._sink = SpanSink.for_tracer(tracer)

    def _start_sampled(
        self, name: str, context: Context | None, kind: SpanKind, attributes: dict[str, Any]
    ) -> Span:
        """A span the sampler decides on: a run, or the start of one."""
        sink = self._sink
        if sink is not None:
            return sink.start_sampled(name, context, kind, attributes)
        return self.tracer.start_span(name, context, kind, attributes)

    def _start(
        self,
        name: str,
        parent: Span | None,
        attributes: dict[str, Any],
        start_time: int | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
    ) -> Span:
        """A child of ``parent`` (None: of the current context)."""
        sink = self._sink
        if sink is not None and parent is not None:
            if not parent.is_recording():  # the run was not sampled: nor are its children
                return NonRecordingSpan(parent.get_span_context())
            return sink.start(name, parent.get_span_context(), attributes, start_time or time.time_ns(), kind)
        context = trace.set_span_in_context(parent) if parent is not None else None
        return self.tracer.start_span(name, context, kind, attributes, start_time=start_time)

    # --- runs ----------------------------------------------------------------------------------

    def run_created(self, event: RunCreated) -> Mapping[str, str] | None:
        """A short span in the caller's context (e.g. its HTTP request) marks the start; every
        execution of the run becomes its child, so a resumed run continues the same trace."""
        self._check_sink()
        span = self._start_sampled(
            f"start {event.workflow}",
            None,
            SpanKind.PRODUCER,
            {"bandmaster.run_id": event.run_id, "bandmaster.workflow": event.workflow},
        )
        span.end()
        carrier: dict[str, str] = {}
        _PROPAGATOR.inject(carrier, context=trace.set_span_in_context(span))
        if self._sink is not None:
            # What run_started would parse from these headers, kept for the run's execution in
            # this process (the usual case), bounded for runs executed elsewhere.
            if len(self._created) >= _CREATED_KEPT:
                del self._created[next(iter(self._created))]
            context = span.get_span_context()
            remote = SpanContext(
                context.trace_id, context.span_id, True, context.trace_flags, context.trace_state
            )
            self._created[event.run_id] = (carrier, trace.set_span_in_context(NonRecordingSpan(remote)))
        return carrier

    def run_started(self, event: RunStarted) -> None:
        self._check_sink()
        created = self._created.pop(event.run_id, None)
        if created is not None and created[0] == event.headers:
            parent = created[1]
        elif event.headers:
            parent = _PROPAGATOR.extract(event.headers)
        else:
            parent = _derived_parent(event.run_id)
        attributes: dict[str, Any] = {
            "bandmaster.run_id": event.run_id,
            "bandmaster.workflow": event.workflow,
            "bandmaster.resumed": event.resumed,
        }
        if event.version is not None:
            attributes["bandmaster.workflow.version"] = event.version
        span = self._start_sampled(f"run {event.workflow}", parent, SpanKind.INTERNAL, attributes)
        deferred = self._sink is not None and span.is_recording()
        # Current for the whole execution (run_finished runs in the same task): the workflow's
        # own spans, and its steps' unless step_context, are its children.
        token = otel_context.attach(trace.set_span_in_context(span))
        unsampled = self._sink is not None and not deferred
        self._runs[event.run_id] = _Run(
            span,
            self._sink if deferred else None,
            span.get_span_context() if deferred else None,
            token,
            unsampled,
        )

    def run_finished(self, event: RunFinished) -> None:
        run = self._runs.pop(event.run_id, None)
        if run is None:
            return
        otel_context.detach(run.token)  # type: ignore[arg-type]
        span = run.span
        span.set_attribute("bandmaster.outcome", event.outcome)
        if event.outcome == "failed" and event.error is not None:
            _fail(span, event.error, event.redactor)
        span.end()

    # --- steps and attempts ------------------------------------------------------------------

    def step_started(self, event: StepStarted) -> None:
        name = f"{event.kind} {event.name}"  # the kind is in the name: "step classify", "model intent"
        attributes = {"bandmaster.step.name": event.name, "bandmaster.step.seq": event.seq}
        started = int(event.started * 1e9)  # the journal's start time
        key = (event.run_id, event.seq)
        run = self._runs.get(event.run_id)
        if run is not None and run.unsampled:
            return
        if run is not None and run.sink is not None and run.parent is not None and not self.step_context:
            if event.kind != "model":  # the usual case: nothing until it ends
                self._steps[key] = (run.sink, name, attributes, started, run.parent)
                return
            span: Span = run.sink.start(name, run.parent, attributes, started)
        else:
            span = self._start(name, run.span if run is not None else None, attributes, started)
        self._steps[key] = span
        if self.step_context:
            self._step_tokens[key] = otel_context.attach(trace.set_span_in_context(span))

    def _step_span(self, key: tuple[str, int]) -> Span | None:
        """The open span of step ``key``, made now if it was a _PlainStep."""
        entry = self._steps.get(key)
        if type(entry) is tuple:
            sink, name, attributes, started, parent = entry
            entry = self._steps[key] = sink.start(name, parent, attributes, started)
        return entry  # type: ignore[return-value]

    def attempt_started(self, event: AttemptStarted) -> None:
        step = event.step
        key = (step.run_id, step.seq)
        if step.kind != "model":
            # A plain step's attempt gets its own span only if it fails or is a retry, made
            # when it ends: one successful attempt is the step span itself, so the usual case
            # costs nothing here. The first attempt starts with the step.
            if event.attempt > 1:
                self._attempts[key] = _Attempt(None, None, None, time.time_ns())
            return
        step_span = self._step_span(key)
        if step_span is None:
            return
        span = self._start(
            f"attempt {event.attempt}",
            step_span,
            {"bandmaster.attempt": event.attempt, "bandmaster.target": event.target},
        )
        model = self._start(
            f"chat {event.target}",
            span,
            {"gen_ai.operation.name": "chat", "gen_ai.request.model": event.target},
            kind=SpanKind.CLIENT,
        )
        # Current during the call: the provider SDK request carries it as `traceparent`.
        token = otel_context.attach(trace.set_span_in_context(model))
        self._attempts[key] = _Attempt(span, model, token, 0)

    def attempt_finished(self, event: AttemptFinished) -> None:
        if event.error is None and event.attempt == 1 and event.step.kind != "model":
            return  # the usual case: the step span stands for its one successful attempt
        key = (event.step.run_id, event.step.seq)
        attempt = self._attempts.pop(key, None)
        if attempt is not None and attempt.token is not None:
            otel_context.detach(attempt.token)  # type: ignore[arg-type]
        step = self._step_span(key)
        if step is None:
            return
        if attempt is None:  # a plain step's first attempt
            attempt = _Attempt(None, None, None, int(event.step.started * 1e9))
        if attempt.span is None:  # a plain step's failed or retried attempt
            attempt.span = self._start(
                f"attempt {event.attempt}",
                step,
                {"bandmaster.attempt": event.attempt, "bandmaster.target": event.target},
                attempt.started_ns,
            )
        if event.error is None:
            attempt.span.end()
            if attempt.model is not None:
                self._answered[key] = (attempt.model, time.time_ns())
            return
        for span in (attempt.model, attempt.span):
            if span is not None:
                _fail(span, event.error, event.step.redactor)
                span.end()
        if event.retry_delay is not None:
            self._retries[key] = self._retries.get(key, 0) + 1
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
        entry = self._steps.get(key)
        if type(entry) is tuple:
            if event.status == "completed" and event.attempts == 1 and not self.capture_payloads:
                del self._steps[key]  # the usual case: a plain step that just worked
                sink, name, attributes, started, parent = entry
                sink.finish_plain(name, parent, attributes, started)
                return
            self._step_span(key)
        span = self._steps.pop(key, None)
        if not isinstance(span, Span):
            return
        if self.step_context:
            otel_context.detach(self._step_tokens.pop(key))  # type: ignore[arg-type]
        if event.status != "completed":
            span.set_attribute("bandmaster.step.status", event.status)
        if event.attempts > 1:
            span.set_attribute("bandmaster.step.attempts", event.attempts)
        meta = event.meta
        retries = self._retries.pop(key, 0)
        if event.step.kind == "model":
            answered = self._answered.pop(key, None)
            if meta:
                self._model_step(span, meta, retries)
            if answered is not None:
                model_span, ended = answered
                model_span.set_attributes(_request_attributes(meta))
                model_span.set_attributes(_response_attributes(meta))
                model_span.set_attributes(_usage_attributes(meta))
                model_span.end(end_time=ended)
        if self.capture_payloads:
            if event.output is not None:
                span.set_attribute("bandmaster.output", event.output[: self.max_payload_chars])
            request = meta.get("request")
            if request is not None:
                text = to_json(request, serialize_unknown=True).decode()
                span.set_attribute("bandmaster.input", text[: self.max_payload_chars])
        if event.status == "failed" and event.error is not None:
            _fail(span, event.error, event.step.redactor)
        span.end()

    def _model_step(self, span: Span, meta: Mapping[str, Any], retries: int) -> None:
        span.set_attribute("gen_ai.operation.name", "chat")
        requested = meta.get("alias") or meta.get("served_by")
        if requested:
            span.set_attribute("gen_ai.request.model", str(requested))
        if meta.get("version"):
            span.set_attribute("bandmaster.model.version", str(meta["version"]))
        if meta.get("served_by"):
            span.set_attribute("bandmaster.model.served_by", str(meta["served_by"]))
        span.set_attribute("bandmaster.retries", retries)
        span.set_attributes(_request_attributes(meta))
        # Token usage goes on the chat span that made the call only, so a backend summing
        # gen_ai.usage.* over a trace counts it once; a cache hit made no call and used none.
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


def _request_attributes(meta: Mapping[str, Any]) -> dict[str, Any]:
    """The sampling parameters that were sent (GenAI conventions), when the request set them."""
    request = meta.get("request")
    attributes: dict[str, Any] = {}
    for field, attribute in (
        ("temperature", "gen_ai.request.temperature"),
        ("max_tokens", "gen_ai.request.max_tokens"),
    ):
        value = request.get(field) if isinstance(request, Mapping) else getattr(request, field, None)
        if value is not None:
            attributes[attribute] = value
    return attributes


def _usage_attributes(meta: Mapping[str, Any]) -> dict[str, Any]:
    attributes: dict[str, Any] = {}
    tokens = meta.get("tokens") or {}
    if "input" in tokens:
        attributes["gen_ai.usage.input_tokens"] = int(tokens["input"])
    if "output" in tokens:
        attributes["gen_ai.usage.output_tokens"] = int(tokens["output"])
    return attributes


def _response_attributes(meta: Mapping[str, Any]) -> dict[str, Any]:
    attributes: dict[str, Any] = {}
    if meta.get("provider"):
        attributes["gen_ai.provider.name"] = str(meta["provider"])
    if meta.get("model"):
        attributes["gen_ai.response.model"] = str(meta["model"])
    if meta.get("finish_reason"):
        attributes["gen_ai.response.finish_reasons"] = [str(meta["finish_reason"])]
    if meta.get("cost") is not None:
        attributes["bandmaster.cost_usd"] = float(meta["cost"])
    if meta.get("confidence") is not None:
        attributes["bandmaster.confidence"] = float(meta["confidence"])
    return attributes


def _fail(span: Span, error: BaseException, redactor: Redactor | None) -> None:
    kind = type(error).__name__
    span.set_attribute("error.type", kind)
    if redactor is None:
        span.record_exception(error)
        message = str(error)
    else:
        # The journal holds this error redacted, and so does the trace: the redacted message,
        # no traceback (its last line repeats the raw message).
        message = str(redactor.redact(str(error)))
        attributes = {"exception.type": type(error).__qualname__, "exception.message": message}
        span.add_event("exception", attributes)
    span.set_status(Status(StatusCode.ERROR, f"{kind}: {message}"))


def otlp_provider(service_name: str | None = None) -> SdkTracerProvider:
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
