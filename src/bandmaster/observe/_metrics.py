"""Prometheus metrics as an engine hook.

    metrics = Metrics()
    engine = bm.Engine("bm.db", workflows=[triage], hooks=[metrics])
    metrics.serve(9464)            # http://127.0.0.1:9464/metrics; workers: --metrics-port

Labels are bounded: workflow and step names come from code, model names from the registry
and the providers' answers (capped at ``max_models`` distinct values, the rest is ``other``).
Tenants (``start(tenant=...)``) label only the ``bandmaster_tenant_*`` series, capped at
``max_tenants`` distinct values (the rest is ``other``); runs without a tenant are not counted
there. Run ids never become labels.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bandmaster.engine import current_terms
from bandmaster.engine.hooks import (
    AttemptFinished,
    EngineOpened,
    Hooks,
    RunFinished,
    RunStarted,
    StepFinished,
)
from bandmaster.errors import UsageError

try:
    from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, start_http_server
except ImportError as exc:  # pragma: no cover - exercised without the extra
    raise ImportError("bandmaster metrics need prometheus-client: pip install 'bandmaster[metrics]'") from exc

BREAKER_STATES = {"closed": 0, "half_open": 1, "open": 2}
"""Values of ``bandmaster_breaker_state``."""

DEFAULT_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
"""Step latency buckets in seconds: from journal-only steps (~1 ms) to slow model calls."""

OTHER = "other"


class Metrics(Hooks):
    """Record step latency, failures, retries, fallbacks, breaker states, model tokens and cost,
    runs by outcome and the journal's size in ``registry`` (default: prometheus-client's global
    registry, which ``serve`` and most exporters publish). One ``Metrics`` per registry."""

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        buckets: Sequence[float] = DEFAULT_BUCKETS,
        max_models: int = 100,
        max_tenants: int = 100,
    ) -> None:
        self.registry = registry if registry is not None else REGISTRY
        self.max_models = max_models
        self.max_tenants = max_tenants
        self._models: set[str] = set()
        self._tenants: set[str] = set()
        self._journals: list[Path] = []
        self._servers: list[Any] = []
        reg = self.registry
        try:
            self.step_seconds = Histogram(
                "bandmaster_step_duration_seconds",
                "Duration of journaled steps and model calls executed live (all attempts)",
                ["workflow", "step"],
                buckets=tuple(buckets),
                registry=reg,
            )
            self.step_failures = Counter(
                "bandmaster_step_failures",
                "Steps that failed after their retries",
                ["workflow", "step"],
                registry=reg,
            )
            self.retries = Counter(
                "bandmaster_step_retries",
                "Failed attempts that were retried",
                ["workflow", "step"],
                registry=reg,
            )
            self.fallbacks = Counter(
                "bandmaster_model_fallbacks",
                "Model calls answered by a fallback, by the model that answered",
                ["workflow", "step", "model"],
                registry=reg,
            )
            self.model_calls = Counter(
                "bandmaster_model_calls",
                "Model calls by model and cache outcome",
                ["model", "cache"],
                registry=reg,
            )
            self.tokens = Counter(
                "bandmaster_model_tokens",
                "Tokens by model and direction",
                ["model", "direction"],
                registry=reg,
            )
            self.cost = Counter("bandmaster_model_cost_usd", "Model cost in USD", ["model"], registry=reg)
            # The same facts as the tracing hook's attempt and chat spans: one per model attempt,
            # a timed-out primary before its fallback included.
            self.model_attempts = Counter(
                "bandmaster_model_attempts",
                "Model attempts by the model tried (primary or fallback), retries included",
                ["model"],
                registry=reg,
            )
            self.model_failures = Counter(
                "bandmaster_model_attempt_failures",
                "Failed model attempts by model and error type (e.g. StepTimeout)",
                ["model", "error"],
                registry=reg,
            )
            self.step_cost = Counter(
                "bandmaster_step_cost_usd", "Model cost in USD by step", ["workflow", "step"], registry=reg
            )
            self.queue_depth = Gauge(
                "bandmaster_queue_depth", "Runs queued and ready, waiting for a worker", registry=reg
            )
            self.pending_approvals = Gauge(
                "bandmaster_approvals_pending", "Approvals waiting for a decision", registry=reg
            )
            self.breaker = Gauge(
                "bandmaster_breaker_state",
                "Circuit breaker per model as last seen: 0 closed, 1 half-open, 2 open",
                ["model"],
                registry=reg,
            )
            self.runs = Counter(
                "bandmaster_runs",
                "Run executions by how they ended: completed, failed, cancelled, suspended, released",
                ["workflow", "status"],
                registry=reg,
            )
            self.active = Gauge("bandmaster_runs_active", "Runs executing now", ["workflow"], registry=reg)
            self.tenant_started = Counter(
                "bandmaster_tenant_runs_started",
                "Runs started (first execution) per tenant",
                ["tenant"],
                registry=reg,
            )
            self.tenant_runs = Counter(
                "bandmaster_tenant_runs",
                "Run executions per tenant by how they ended (as bandmaster_runs)",
                ["tenant", "status"],
                registry=reg,
            )
            self.tenant_cost = Counter(
                "bandmaster_tenant_model_cost_usd", "Model cost in USD per tenant", ["tenant"], registry=reg
            )
            self.journal_bytes = Gauge(
                "bandmaster_journal_bytes", "Size of the journal files (database and WAL)", registry=reg
            )
        except ValueError as exc:  # "Duplicated timeseries in CollectorRegistry"
            raise UsageError(
                f"{exc}: this registry already has bandmaster metrics; share one Metrics() per "
                "process, or give each its own prometheus_client.CollectorRegistry()"
            ) from exc
        self.journal_bytes.set_function(self._journal_size)
        self.queue_depth.set_function(lambda: self._count(_QUEUED, time.time()))
        self.pending_approvals.set_function(lambda: self._count(_PENDING))

    def serve(self, port: int, host: str = "127.0.0.1") -> int:
        """Expose ``/metrics`` over HTTP from a daemon thread; returns the port (0: any free one).
        Loopback by default: bind another address only on a network you trust."""
        server, _thread = start_http_server(port, addr=host, registry=self.registry)
        self._servers.append(server)
        return int(server.server_port)

    def shutdown(self) -> None:
        """Stop the HTTP endpoints ``serve`` started."""
        while self._servers:
            server = self._servers.pop()
            server.shutdown()
            server.server_close()

    # --- hooks ---------------------------------------------------------------------------------

    def engine_opened(self, event: EngineOpened) -> None:
        if event.journal not in self._journals:
            self._journals.append(event.journal)

    def run_started(self, event: RunStarted) -> None:
        self.active.labels(event.workflow).inc()
        tenant = self._tenant()
        if tenant is not None and not event.resumed:
            self.tenant_started.labels(tenant).inc()

    def run_finished(self, event: RunFinished) -> None:
        self.active.labels(event.workflow).dec()
        self.runs.labels(event.workflow, event.outcome).inc()
        tenant = self._tenant()
        if tenant is not None:
            self.tenant_runs.labels(tenant, event.outcome).inc()

    def attempt_finished(self, event: AttemptFinished) -> None:
        # Counted when the attempt ends (as its span is), so a plain step's attempt builds no
        # extra start event for metrics.
        if event.retry_delay is not None:
            self.retries.labels(event.step.workflow, event.step.name).inc()
        if event.step.kind == "model":
            model = self._model(event.target)
            self.model_attempts.labels(model).inc()
            if event.error is not None:
                self.model_failures.labels(model, type(event.error).__name__).inc()

    def step_finished(self, event: StepFinished) -> None:
        step = event.step
        if event.status == "cancelled":
            return  # not journaled; it runs again and is counted then
        self.step_seconds.labels(step.workflow, step.name).observe(event.duration)
        if event.status == "failed":
            self.step_failures.labels(step.workflow, step.name).inc()
        if step.kind == "model" and event.meta:
            self._model_call(step.workflow, step.name, event.meta)

    def _model_call(self, workflow: str, step: str, meta: Any) -> None:
        for model, state in (meta.get("breakers") or {}).items():
            self.breaker.labels(self._model(model)).set(BREAKER_STATES.get(state, -1))
        answered = meta.get("model") or meta.get("served_by")
        if not answered:
            return  # failed: every candidate's error is in the step's failure count
        model = self._model(answered)
        self.model_calls.labels(model, "hit" if meta.get("cache_hit") else "miss").inc()
        tokens = meta.get("tokens") or {}
        for direction in ("input", "output"):
            if tokens.get(direction):
                self.tokens.labels(model, direction).inc(tokens[direction])
        if meta.get("cost"):
            self.cost.labels(model).inc(meta["cost"])
            self.step_cost.labels(workflow, step).inc(meta["cost"])
            tenant = self._tenant()
            if tenant is not None:
                self.tenant_cost.labels(tenant).inc(meta["cost"])
        if meta.get("fallback"):
            self.fallbacks.labels(workflow, step, self._model(meta["fallback"])).inc()

    def _tenant(self) -> str | None:
        """The running run's tenant as a bounded label (hooks run in the run's context)."""
        tenant = current_terms().tenant
        if tenant is None or tenant in self._tenants:
            return tenant
        if len(self._tenants) >= self.max_tenants:
            return OTHER
        self._tenants.add(tenant)
        return tenant

    def _model(self, name: object) -> str:
        """Bound the ``model`` label's values."""
        label = str(name)
        if label in self._models:
            return label
        if len(self._models) >= self.max_models:
            return OTHER
        self._models.add(label)
        return label

    def _journal_size(self) -> float:
        total = 0
        for path in self._journals:
            for file in (path, Path(f"{path}-wal")):
                with contextlib.suppress(OSError):
                    total += os.stat(file).st_size
        return float(total)

    def _count(self, sql: str, *params: object) -> float:
        """A count from the journal, read at scrape time on a read-only connection."""
        total = 0
        for path in self._journals:
            try:
                with contextlib.closing(sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)) as db:
                    total += db.execute(sql, params).fetchone()[0]
            except sqlite3.Error:
                continue  # no such table yet (no approval ever opened), or the file is gone
        return float(total)


_QUEUED = "SELECT count(*) FROM runs WHERE status IN ('queued', 'waiting') AND ready_at <= ?"
_PENDING = "SELECT count(*) FROM approvals WHERE status = 'pending'"
