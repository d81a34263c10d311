"""Fixtures: an SDK tracer provider that keeps finished spans in memory, and a fresh
Prometheus registry per test. The scripted provider server comes from tests/models."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from tests.models.conftest import scripted_process, server  # noqa: F401  (fixtures)

if TYPE_CHECKING:  # extras: the fixtures below skip their tests when these are missing
    from opentelemetry.sdk.trace import ReadableSpan
    from prometheus_client import CollectorRegistry

HERE = Path(__file__).resolve().parent
OTEL = "needs bandmaster[otel]: pip install 'bandmaster[otel]'"
METRICS = "needs bandmaster[metrics]: pip install 'bandmaster[metrics]'"


class Spans:
    """The spans a test's provider finished, with lookups by name."""

    def __init__(self) -> None:
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider()
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))

    def all(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def named(self, name: str) -> list[ReadableSpan]:
        return [s for s in self.all() if s.name == name]

    def one(self, name: str) -> ReadableSpan:
        found = self.named(name)
        assert len(found) == 1, f"{len(found)} spans named {name!r} in {[s.name for s in self.all()]}"
        return found[0]

    def children(self, parent: ReadableSpan) -> list[ReadableSpan]:
        assert parent.context is not None
        return [s for s in self.all() if s.parent is not None and s.parent.span_id == parent.context.span_id]


@pytest.fixture
def spans() -> Iterator[Spans]:
    pytest.importorskip("opentelemetry.sdk", reason=OTEL)
    collected = Spans()
    yield collected
    collected.provider.shutdown()


@pytest.fixture
def prom_registry() -> CollectorRegistry:
    prometheus_client = pytest.importorskip("prometheus_client", reason=METRICS)
    registry: CollectorRegistry = prometheus_client.CollectorRegistry()
    return registry


def start_printing_port(args: list[str], log: Path) -> tuple[subprocess.Popen[str], int]:
    """Start a helper process that prints ``PORT <n>`` once it listens; return it and the port."""
    with open(log, "wb") as err:
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("PORT "):
        proc.kill()
        proc.wait(10)
        raise AssertionError(f"{args[1]} did not start: {line!r} {log.read_text()}")
    return proc, int(line.split()[1])


def stop(proc: subprocess.Popen[str]) -> None:
    proc.kill()
    proc.wait(timeout=10)
    if proc.stdout is not None:
        proc.stdout.close()


@pytest.fixture
def otlp_receiver(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """``otlp_receiver.py`` in its own process: (endpoint URL, file of received span lines)."""
    pytest.importorskip("opentelemetry.proto", reason=OTEL)
    out = tmp_path / "received.tsv"
    out.touch()
    proc, port = start_printing_port(
        [sys.executable, str(HERE / "otlp_receiver.py"), str(out)], tmp_path / "otlp.err"
    )
    try:
        yield f"http://127.0.0.1:{port}", out
    finally:
        stop(proc)
