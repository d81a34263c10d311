"""Observability options of ``bandmaster worker``: ``--trace`` (OpenTelemetry over OTLP, set up
from the standard ``OTEL_*`` variables), ``--metrics-port`` (a Prometheus endpoint) and
``--alert-webhook`` (alerts, signed with the secret in ``BANDMASTER_ALERT_SECRET``)."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from bandmaster.engine.hooks import Hooks
from bandmaster.errors import InvalidInput, UsageError

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
AlertWebhookOption = Annotated[
    str | None,
    typer.Option(
        "--alert-webhook",
        help="POST alerts (breaker open/closed, fallback rate, approval deadline, runs waiting) "
        "here, signed with the secret in BANDMASTER_ALERT_SECRET",
    ),
]
DashboardUrlOption = Annotated[
    str | None, typer.Option("--dashboard-url", help="Base URL of the dashboard, for links in alerts")
]
ALERT_SECRET_ENV = "BANDMASTER_ALERT_SECRET"  # a secret never goes on a command line (ps shows it)


def worker_hooks(trace: bool, metrics_port: int | None, metrics_host: str) -> list[Hooks]:
    """The hooks a worker runs with; starts the metrics endpoint. Raises ``UsageError`` with the
    install command when an extra is missing, or when the port cannot be bound."""
    hooks: list[Hooks] = []
    if trace:
        try:
            from bandmaster.observe import Tracing, otlp_provider
        except ImportError as exc:
            raise UsageError(f"--trace: {exc}") from exc
        hooks.append(Tracing(otlp_provider()))
    if metrics_port is not None:
        try:
            from bandmaster.observe import Metrics
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


def alert_hooks(webhook: str | None, dashboard_url: str | None) -> list[Hooks]:
    """The alerts hook for ``--alert-webhook``, or none. Raises ``UsageError`` naming the flag."""
    if webhook is None:
        if dashboard_url is not None:
            raise UsageError("--dashboard-url is for links in alerts: give --alert-webhook too")
        return []
    secret = os.environ.get(ALERT_SECRET_ENV)
    if not secret:
        raise UsageError(f"--alert-webhook: set {ALERT_SECRET_ENV} to the receiver's signing secret")
    try:
        from bandmaster.approvals import Webhook
        from bandmaster.observe import Alerts

        return [Alerts(Webhook(webhook, secret=secret), dashboard_url=dashboard_url)]
    except ImportError as exc:
        raise UsageError(f"--alert-webhook: {exc}") from exc
    except InvalidInput as exc:
        raise UsageError(f"--alert-webhook: {exc}") from exc
