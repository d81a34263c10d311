"""Spans kept as plain Python objects while they are open and handed to the OpenTelemetry SDK's
span processors, as finished ``ReadableSpan``s, when they end.

Why: an SDK span costs about as much as a whole traced step is allowed to (``start_span`` runs
the sampler, validates every attribute through ``BoundedAttributes``, takes locks, calls each
processor's ``on_start``). A step span here is a slotted object until it ends, then one
``ReadableSpan`` given to ``on_end``: about a fifth of the cost (benchmarks/README.md,
"Observability (hooks) benchmark").

What it keeps from the SDK: ids from the provider's id generator, its resource and processors
(batching, export), the W3C context (a ``DeferredSpan`` is an ``opentelemetry.trace.Span``, so
it can be the current span: child spans of instrumented libraries and the ``traceparent``
header of provider requests carry its ids). What it skips, and why that is safe here:

- sampling per span: every deferred span is a descendant of a run span the SDK sampled, and
  follows that decision (what the SDK's default ``ParentBased`` sampler does);
- ``on_start`` / ``_on_ending``: used only when every processor leaves them as no-ops
  (``SpanSink.for_tracer`` checks; the SDK's batch and simple processors do). Otherwise, or for
  a provider that is not the SDK's, the tracing hook uses the public ``start_span`` API.
"""

from __future__ import annotations

import traceback
from collections.abc import Mapping
from random import getrandbits
from time import time_ns
from typing import Any

from opentelemetry import trace
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.context import Context
from opentelemetry.sdk.trace import Event, ReadableSpan, SpanProcessor
from opentelemetry.sdk.trace import Tracer as SdkTracer
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.trace.sampling import Decision
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags, TraceState
from opentelemetry.util import types

_UNSET = Status(StatusCode.UNSET)
# Processor classes whose on_start/_on_ending do nothing (the SDK's own, and the base class).
_NO_START_WORK = (SpanProcessor, BatchSpanProcessor, SimpleSpanProcessor)
_PLAIN_VALUES = (str, bool, int, float)
# W3C trace-context level 2: the trace id is random (``TraceFlags.RANDOM_TRACE_ID`` in recent
# APIs), set as the SDK sets it.
_RANDOM_TRACE_ID = 0x02


def _passive(processor: SpanProcessor) -> bool:
    kind = type(processor)
    # ``_on_ending`` is a recent SDK addition (private, called by the SDK's spans): absent is fine.
    ending = getattr(kind, "_on_ending", None)
    return any(kind.on_start is base.on_start for base in _NO_START_WORK) and (
        ending is None or any(ending is getattr(base, "_on_ending", None) for base in _NO_START_WORK)
    )


class SpanSink:
    """Where deferred spans go: an SDK tracer's processors, with its resource and id generator."""

    __slots__ = (
        "_direct_contexts",
        "_id_generator",
        "_info",
        "_multi",
        "_processors",
        "_random_ids",
        "_random_trace_ids",
        "_sampler",
        "_scope",
        "resource",
    )

    def __init__(self, tracer: SdkTracer, multi: Any, processors: tuple[SpanProcessor, ...]) -> None:
        self._multi = multi
        self._processors = processors
        self.resource = tracer.resource
        self._sampler = tracer.sampler
        self._id_generator = generator = tracer.id_generator
        # The SDK's default generator is random.getrandbits(64) in a loop that skips 0: called
        # directly, it saves a Python call per span.
        self._random_ids = type(generator) is RandomIdGenerator
        is_random = getattr(generator, "is_trace_id_random", None)  # recent SDKs only
        self._random_trace_ids = _RANDOM_TRACE_ID if is_random is not None and is_random() else 0
        self._info = tracer.instrumentation_info
        self._scope = InstrumentationScope(self._info.name, self._info.version, self._info.schema_url)
        self._direct_contexts = _direct_contexts_work()

    @classmethod
    def for_tracer(cls, tracer: trace.Tracer) -> SpanSink | None:
        """A sink for ``tracer``, or None when spans must go through its public API: not the
        SDK's tracer, or a processor does work when spans start or are ending."""
        if not isinstance(tracer, SdkTracer):
            return None
        multi = tracer.span_processor
        processors = getattr(multi, "_span_processors", None)  # the SDK's composite processors
        if not isinstance(processors, tuple) or not all(_passive(p) for p in processors):
            return None
        return cls(tracer, multi, processors)

    def current(self) -> bool:
        """False once a processor was added to the provider: check it again (``for_tracer``)."""
        return self._multi._span_processors is self._processors

    def start_sampled(
        self, name: str, context: Context | None, kind: SpanKind, attributes: dict[str, Any]
    ) -> trace.Span:
        """A span the sampler decides on, as the SDK's ``Tracer.start_span`` makes it: a run, or
        the start of one (its parent is the span current in ``context``, if any)."""
        parent: SpanContext | None = trace.get_current_span(context).get_span_context()
        if parent is not None and parent.is_valid:
            trace_id = parent.trace_id
            random_id = parent.trace_flags & _RANDOM_TRACE_ID
        else:
            parent = None
            trace_id = self._id_generator.generate_trace_id()
            random_id = self._random_trace_ids
        sampled = self._sampler.should_sample(context, trace_id, name, kind, attributes)
        decision = sampled.decision
        flags = TraceFlags((TraceFlags.SAMPLED if decision is Decision.RECORD_AND_SAMPLE else 0) | random_id)
        span_context = SpanContext(
            trace_id, self._id_generator.generate_span_id(), False, flags, sampled.trace_state
        )
        if decision is Decision.DROP:
            return trace.NonRecordingSpan(span_context)
        return DeferredSpan(self, name, span_context, parent, kind, dict(sampled.attributes), time_ns())

    def _child_context(self, parent: SpanContext) -> SpanContext:
        """A new span's context below ``parent``, a recorded span: sampled as it is, in its
        trace state."""
        span_id = getrandbits(64) if self._random_ids else 0
        if not span_id:
            span_id = self._id_generator.generate_span_id()
        if self._direct_contexts:  # see _direct_contexts_work
            trace_id, _, _, flags, state, _ = parent  # no property calls
            return _tuple_new(SpanContext, (trace_id, span_id, False, flags, state, True))  # type: ignore[no-any-return]
        return SpanContext(parent.trace_id, span_id, False, parent.trace_flags, parent.trace_state)

    def start(
        self,
        name: str,
        parent: SpanContext,
        attributes: dict[str, Any],
        start_time: int,
        kind: SpanKind = SpanKind.INTERNAL,
    ) -> DeferredSpan:
        """An open span below ``parent``, a recorded span."""
        context = self._child_context(parent)
        return DeferredSpan(self, name, context, parent, kind, attributes, start_time)

    def finish_plain(
        self, name: str, parent: SpanContext, attributes: dict[str, Any], start_time: int
    ) -> None:
        """A span that ends now with nothing but ``attributes``, without an open ``DeferredSpan``
        first: what a plain step's span is, most of the time (one Python call less per part)."""
        context = self._child_context(parent)
        readable = ReadableSpan(
            name,
            context,
            parent,
            self.resource,
            attributes,
            (),
            (),
            SpanKind.INTERNAL,
            self._info,
            _UNSET,
            start_time,
            time_ns(),
            self._scope,
        )
        for processor in self._processors:
            processor.on_end(readable)

    def finish(self, span: DeferredSpan, end_time: int) -> None:
        readable = ReadableSpan(
            span.name,
            span.context,
            span.parent,
            self.resource,
            span.attributes,
            span.events or (),
            span.links or (),
            span.kind,
            self._info,
            span.status,
            span.start_time,
            end_time,
            self._scope,
        )
        for processor in self._processors:  # what the provider's composite processor does
            processor.on_end(readable)


_tuple_new: Any = tuple.__new__


def _direct_contexts_work() -> bool:
    """Whether a ``SpanContext`` is the tuple ``(trace_id, span_id, is_remote, trace_flags,
    trace_state, is_valid)`` it has been so far, so that a child's is built (and a parent's read)
    as a tuple. Its constructor, a Python function, checks the ids and appends ``is_valid``; a
    child span's trace id is its parent's and its span id is not 0, so they are valid. Checked
    once against the constructor and the properties."""
    flags, state = TraceFlags(TraceFlags.SAMPLED), TraceState([("k", "v")])
    direct = _tuple_new(SpanContext, (3, 5, False, flags, state, True))
    made = SpanContext(3, 5, False, flags, state)
    return bool(
        tuple(made) == (3, 5, False, flags, state, True)
        and direct == made
        and direct.trace_id == 3
        and direct.span_id == 5
        and direct.is_valid
        and direct.trace_flags is flags
        and direct.trace_state is state
        and not direct.is_remote
    )


class DeferredSpan(trace.Span):
    """An open span that costs nothing to the SDK until it ends (``SpanSink.finish``)."""

    __slots__ = (
        "attributes",
        "context",
        "end_time",
        "events",
        "kind",
        "links",
        "name",
        "parent",
        "sink",
        "start_time",
        "status",
    )

    def __init__(
        self,
        sink: SpanSink,
        name: str,
        context: SpanContext,
        parent: SpanContext | None,
        kind: SpanKind,
        attributes: dict[str, Any],
        start_time: int,
    ) -> None:
        self.sink = sink
        self.name = name
        self.context = context
        self.parent = parent
        self.kind = kind
        self.attributes: dict[str, Any] | BoundedAttributes = attributes
        self.start_time = start_time
        self.events: list[Event] | None = None
        self.links: list[Link] | None = None
        self.status = _UNSET
        self.end_time: int | None = None

    def end(self, end_time: int | None = None) -> None:
        if self.end_time is not None:
            return
        self.end_time = end_time if end_time is not None else time_ns()
        self.sink.finish(self, self.end_time)

    def get_span_context(self) -> SpanContext:
        return self.context

    def is_recording(self) -> bool:
        return self.end_time is None

    def set_attribute(self, key: str, value: types.AnyValue) -> None:
        if self.end_time is not None:
            return
        if type(value) in _PLAIN_VALUES and type(self.attributes) is dict:
            self.attributes[key] = value
            return
        # Anything else (sequences, bad types) is checked as the SDK checks it.
        if not isinstance(self.attributes, BoundedAttributes):
            self.attributes = BoundedAttributes(attributes=self.attributes, immutable=False)
        self.attributes[key] = value

    def set_attributes(self, attributes: Mapping[str, types.AnyValue]) -> None:
        for key, value in attributes.items():
            self.set_attribute(key, value)

    def add_event(self, name: str, attributes: types.Attributes = None, timestamp: int | None = None) -> None:
        if self.end_time is not None:
            return
        if self.events is None:
            self.events = []
        event_attributes = BoundedAttributes(attributes=attributes, immutable=True) if attributes else None
        self.events.append(Event(name, event_attributes, timestamp))

    def add_link(self, context: SpanContext, attributes: types.Attributes = None) -> None:
        if self.end_time is not None or not context.is_valid:
            return
        if self.links is None:
            self.links = []
        self.links.append(Link(context, BoundedAttributes(attributes=attributes) if attributes else None))

    def update_name(self, name: str) -> None:
        if self.end_time is None:
            self.name = name

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        # The SDK's rules: OK is final, UNSET is ignored.
        if self.end_time is not None or self.status.status_code is StatusCode.OK:
            return
        if not isinstance(status, Status):
            status = Status(status, description)
        if status.status_code is not StatusCode.UNSET:
            self.status = status

    def record_exception(
        self,
        exception: BaseException,
        attributes: types.Attributes = None,
        timestamp: int | None = None,
        escaped: bool = False,
    ) -> None:
        """The same ``exception`` event as the SDK's ``Span.record_exception``."""
        kind = type(exception)
        module, qualname = kind.__module__, kind.__qualname__
        recorded: dict[str, Any] = {
            "exception.type": f"{module}.{qualname}" if module and module != "builtins" else qualname,
            "exception.message": str(exception),
            "exception.stacktrace": "".join(traceback.format_exception(exception)),
            "exception.escaped": str(escaped),
        }
        if attributes:
            recorded.update(attributes)
        self.add_event("exception", recorded, timestamp)
