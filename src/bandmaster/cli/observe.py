"""Observability options of ``bandmaster worker``: ``--trace`` (OpenTelemetry over OTLP, set up
from the standard ``OTEL_*`` variables) and ``--metrics-port`` (a Prometheus endpoint)."""

from __future__ import annotations

from typing import Annotated

import typer

from bandmaster.engine.hooks import Hooks
from bandmaster.errors import UsageError

TraceOption = Annotated[
    bool,
    typer.Option(
        "--trace",
        help="Export OpenTelemetry spans over OTLP/HTTP, configured by OTEL_EXPORTER_OTLP_ENDPOINT etc.",
    ),
]
MetricsPortOption = Annotated[
    int | None,
    typer.Option(
        "--metrics-port", min=0, max=65535, help="Serve Prometheus metrics on this port at /metrics"
    ),
]
MetricsHostOption = Annotated[
    str, typer.Option("--metrics-host", help="Address the metrics endpoint listens on")
]


def worker_hooks(trace: bool, metrics_port: int | None, metrics_host: str) -> list[Hooks]:
    """The hooks a worker runs with; starts the metrics endpoint. Raises ``UsageError`` with the
    install command when an extra is missing, or when the port cannot be bound."""
    hooks: list[Hooks] = []
    if trace:
        try:
            from bandmaster.observe.tracing import Tracing, otlp_provider
        except ImportError as exc:
            raise UsageError(f"--trace: {exc}") from exc
        hooks.append(Tracing(otlp_provider()))
    if metrics_port is not None:
        try:
            from bandmaster.observe.metrics import Metrics
        except ImportError as exc:
            raise UsageError(f"--metrics-port: {exc}") from exc
        metrics = Metrics()
        try:
            port = metrics.serve(metrics_port, metrics_host)
        except OSError as exc:
            raise UsageError(
                f"--metrics-port {metrics_port}: cannot listen on {metrics_host}: {exc}"
            ) from exc
        typer.echo(f"metrics on http://{metrics_host}:{port}/metrics", err=True)
        hooks.append(metrics)
    return hooks
