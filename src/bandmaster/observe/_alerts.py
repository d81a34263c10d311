"""Alerts as an engine hook: page someone when a model goes down, not only draw it.

    alerts = Alerts(bm.Webhook(url, secret=secret), dashboard_url="https://bm.example.com")
    engine = bm.Engine("bm.db", workflows=[triage], hooks=[alerts])
    # workers: bandmaster worker app.py --alert-webhook URL  (secret in BANDMASTER_ALERT_SECRET)

Each alert is a transition, sent once (not once per call) as a signed, Slack-compatible POST
through the same ``bm.Webhook`` settings and signature as approval notifications, with a link
to the dashboard page of what it is about:

    breaker_open        a model's circuit breaker opened (firing) or closed again (resolved)
    fallback_rate       a model step's share of calls answered by a fallback reached
                        ``fallback_rate`` over the last ``window`` seconds, or fell below it
    approval_deadline   a pending approval is within ``approval_warning`` seconds of its deadline
    runs_waiting        runs of a workflow have been ready for ``queue_wait`` seconds and no
                        worker holds a lease on any run of it: nobody serves that workflow

The first two come from the steps this engine runs; the last two from the journal, read every
``check_every`` seconds on a read-only connection. Delivery runs on a thread: a hook never
waits for a receiver, and one that stays down costs retries, not runs.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import sqlite3
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote, urlencode

from bandmaster.approvals import Webhook, signed_headers
from bandmaster.engine.hooks import EngineClosed, EngineOpened, Hooks, StepFinished
from bandmaster.errors import InvalidInput

try:
    import httpx2 as httpx  # the client bm.Webhook uses
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError("alerts need an HTTP client: pip install 'bandmaster[approvals]'") from exc

log = logging.getLogger("bandmaster.alerts")

AlertStatus = Literal["firing", "resolved"]


@dataclass(frozen=True, slots=True)
class Alert:
    """One transition of one alert, as sent."""

    name: str
    status: AlertStatus
    subject: str
    """What it is about: a model, ``workflow/step``, ``run_id/approval`` or a workflow."""
    summary: str
    link: str | None
    at: float = field(default_factory=time.time)
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    """The ``Idempotency-Key``: the same on every retry of this alert."""


class Alerts(Hooks):
    """Send alerts to ``webhook``; ``dashboard_url`` is the server's base URL for links."""

    def __init__(
        self,
        webhook: Webhook,
        *,
        dashboard_url: str | None = None,
        fallback_rate: float = 0.5,
        window: float = 300.0,
        min_calls: int = 10,
        approval_warning: float = 300.0,
        queue_wait: float = 60.0,
        check_every: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not isinstance(webhook, Webhook):
            raise InvalidInput(f"Alerts(webhook={webhook!r}): give a bm.Webhook(url, secret=...)")
        if not 0 < fallback_rate <= 1:
            raise InvalidInput(f"Alerts(fallback_rate={fallback_rate}): a share of calls, in (0, 1]")
        for name, seconds in (("window", window), ("queue_wait", queue_wait), ("check_every", check_every)):
            if seconds <= 0:
                raise InvalidInput(f"Alerts({name}={seconds}): seconds, > 0")
        self.webhook = webhook
        self.dashboard_url = dashboard_url.rstrip("/") if dashboard_url else None
        self.fallback_rate, self.window, self.min_calls = fallback_rate, window, max(1, min_calls)
        self.approval_warning, self.queue_wait, self.check_every = approval_warning, queue_wait, check_every
        self.clock = clock
        self._breakers: dict[str, str] = {}  # model -> last state seen
        self._windows: dict[str, _Window] = {}  # per workflow/step
        self._firing: set[tuple[str, str]] = set()  # (alert name, subject)
        self._lock = threading.Lock()  # the journal checker thread fires alerts too
        self._outbox: queue.Queue[Alert | None] = queue.Queue()
        self._sender: threading.Thread | None = None
        self._journals: list[Path] = []
        self._stop = threading.Event()
        self._checker: threading.Thread | None = None

    # --- hooks ---------------------------------------------------------------------------------

    def engine_opened(self, event: EngineOpened) -> None:
        if event.journal not in self._journals:
            self._journals.append(event.journal)
        if self._checker is None:
            self._stop.clear()
            self._checker = threading.Thread(target=self._check_loop, name="bandmaster-alerts", daemon=True)
            self._checker.start()

    def engine_closed(self, event: EngineClosed) -> None:
        self.close()

    def step_finished(self, event: StepFinished) -> None:
        if event.step.kind != "model" or event.status == "cancelled" or not event.meta:
            return
        meta = event.meta
        for model, state in (meta.get("breakers") or {}).items():
            self._breaker(str(model), str(state))
        if event.status == "completed":
            self._fallback(f"{event.step.workflow}/{event.step.name}", bool(meta.get("fallback")))

    # --- rules ---------------------------------------------------------------------------------

    def _breaker(self, model: str, state: str) -> None:
        before = self._breakers.get(model, "closed")
        self._breakers[model] = state
        if state == before:
            return
        link = self._link("/ui/models", model=model)
        if state == "open":
            self._transition("breaker_open", model, True, f"circuit breaker of model {model} opened", link)
        elif state == "closed":
            self._transition("breaker_open", model, False, f"circuit breaker of model {model} closed", link)

    def _fallback(self, subject: str, fell_back: bool) -> None:
        now = self.clock()
        window = self._windows.get(subject)
        if window is None:
            window = self._windows[subject] = _Window()
        window.add(now, fell_back, self.window)
        if window.calls < self.min_calls:
            return
        rate = window.fallbacks / window.calls
        summary = (
            f"{subject}: {rate:.0%} of {window.calls} model calls in {self.window:g} s answered by a fallback"
        )
        link = self._link("/ui/stats")
        self._transition("fallback_rate", subject, rate >= self.fallback_rate, summary, link)

    def check_journal(self, journal: Path) -> None:
        """The journal rules: approvals near their deadline, runs no worker takes."""
        now = self.clock()
        try:
            with contextlib.closing(sqlite3.connect(f"{journal.as_uri()}?mode=ro", uri=True)) as db:
                waiting = db.execute(_WAITING, (now - self.queue_wait, now)).fetchall()
                try:
                    approvals = db.execute(_APPROVALS, (now + self.approval_warning,)).fetchall()
                except sqlite3.OperationalError:
                    approvals = []  # no approval was ever opened in this journal
        except sqlite3.Error as exc:
            log.warning("alerts: cannot read %s: %s", journal, exc)
            return
        stuck = {  # subject (triage@1, or triage without a version) -> workflow, runs
            f"{workflow}@{version}" if version else str(workflow): (str(workflow), int(count))
            for workflow, version, count in waiting
        }
        with self._lock:
            firing = list(self._firing)
        for name, subject in firing:
            if name == "runs_waiting" and subject not in stuck:
                self._transition(name, subject, False, f"runs of {subject} are being taken again", None)
        for subject, (workflow, count) in stuck.items():
            summary = (
                f"{count} runs of {subject} ready for over {self.queue_wait:g} s and no worker serves it"
            )
            link = self._link("/ui/runs", workflow=workflow, status="queued")
            self._transition("runs_waiting", subject, True, summary, link)
        near = {f"{run_id}/{name}": (run_id, deadline) for run_id, name, deadline in approvals}
        for name, subject in firing:
            if name == "approval_deadline" and subject not in near:
                with self._lock:
                    self._firing.discard((name, subject))  # decided or timed out: nothing to resolve
        for subject, (run_id, deadline) in near.items():
            left = max(0.0, float(deadline) - now)
            summary = f"approval {subject} reaches its deadline in {left:.0f} s"
            link = self._link(f"/ui/runs/{quote(str(run_id), safe='')}")
            self._transition("approval_deadline", subject, True, summary, link)

    def _transition(self, name: str, subject: str, firing: bool, summary: str, link: str | None) -> None:
        """Send when the alert changes state: once per transition, never once per call."""
        key = (name, subject)
        with self._lock:
            if firing == (key in self._firing):
                return
            if firing:
                self._firing.add(key)
            else:
                self._firing.discard(key)
        alert = Alert(name, "firing" if firing else "resolved", subject, summary, link, self.clock())
        log.warning("alert %s %s: %s", alert.name, alert.status, alert.summary)
        self._send(alert)

    def _link(self, path: str, **query: str) -> str | None:
        if self.dashboard_url is None:
            return None
        return self.dashboard_url + path + ("?" + urlencode(query) if query else "")

    # --- delivery ------------------------------------------------------------------------------

    def _send(self, alert: Alert) -> None:
        if self._sender is None or not self._sender.is_alive():
            self._sender = threading.Thread(
                target=self._deliver_loop, name="bandmaster-alert-sender", daemon=True
            )
            self._sender.start()
        self._outbox.put(alert)

    def _deliver_loop(self) -> None:
        while (alert := self._outbox.get()) is not None:
            try:
                self.deliver(alert)
            except Exception as exc:  # a receiver that stays down: logged, never raised into runs
                log.error(
                    "alert %s %s not delivered to %s: %s", alert.name, alert.status, self.webhook.target, exc
                )

    def deliver(self, alert: Alert) -> int:
        """POST ``alert`` under the webhook's retry policy; returns the attempts it took."""
        body = json.dumps(alert_message(alert), separators=(",", ":"))
        waited, attempt = 0.0, 0
        with httpx.Client(timeout=self.webhook.timeout) as client:
            while True:
                attempt += 1
                headers = {
                    **self.webhook.headers,
                    "Content-Type": "application/json",
                    "Idempotency-Key": alert.id,
                    "X-Bandmaster-Attempt": str(attempt),
                    **signed_headers(self.webhook.secret, body),
                }
                try:
                    response = client.post(self.webhook.url, content=body.encode(), headers=headers)
                    if response.status_code < 300:
                        return attempt
                    error: Exception = RuntimeError(f"{self.webhook.target} answered {response.status_code}")
                    retryable = response.status_code == 429 or response.status_code >= 500
                except httpx.TransportError as exc:
                    error, retryable = exc, True
                delay = self.webhook.retry.backoff(attempt) if attempt < self.webhook.retry.attempts else None
                total = self.webhook.retry.total
                if not retryable or delay is None or (total is not None and waited + delay > total):
                    raise error
                waited += delay
                time.sleep(delay)

    def _check_loop(self) -> None:
        while not self._stop.wait(self.check_every):
            for journal in list(self._journals):
                try:
                    self.check_journal(journal)
                except Exception:
                    log.exception("alerts: journal check failed")

    def close(self, timeout: float = 20.0) -> None:
        """Stop checking the journal; wait up to ``timeout`` s for queued alerts to go out."""
        self._stop.set()
        if self._checker is not None:
            self._checker.join(timeout=self.check_every + 5)
            self._checker = None
        if self._sender is not None:
            self._outbox.put(None)
            self._sender.join(timeout=timeout)
            self._sender = None


class _Window:
    """Calls and fallbacks over the last seconds, in one-second buckets: memory and work per
    call stay constant however many calls a window holds."""

    __slots__ = ("buckets", "calls", "fallbacks")

    def __init__(self) -> None:
        self.buckets: deque[list[int]] = deque()  # [second, calls, fallbacks]
        self.calls = 0
        self.fallbacks = 0

    def add(self, now: float, fell_back: bool, window: float) -> None:
        second = int(now)
        if self.buckets and self.buckets[-1][0] == second:
            self.buckets[-1][1] += 1
            self.buckets[-1][2] += fell_back
        else:
            self.buckets.append([second, 1, int(fell_back)])
        self.calls += 1
        self.fallbacks += fell_back
        while self.buckets and self.buckets[0][0] + 1 <= now - window:  # wholly before the window
            _, calls, fallbacks = self.buckets.popleft()
            self.calls -= calls
            self.fallbacks -= fallbacks


def alert_message(alert: Alert) -> dict[str, Any]:
    """A Slack-compatible message (``text`` + ``blocks``); ``bandmaster`` has the same facts."""
    title = f"[{alert.status.upper()}] {alert.name}: {alert.subject}"
    text = f"{title}. {alert.summary}" + (f" {alert.link}" if alert.link else "")
    blocks: list[Mapping[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": title[:150]}},
        {"type": "section", "text": {"type": "plain_text", "text": alert.summary}},
    ]
    if alert.link:
        blocks.append(
            {"type": "context", "elements": [{"type": "mrkdwn", "text": f"<{alert.link}|Open dashboard>"}]}
        )
    return {
        "text": text,
        "blocks": blocks,
        "bandmaster": {
            "alert": alert.name,
            "status": alert.status,
            "subject": alert.subject,
            "summary": alert.summary,
            "link": alert.link,
            "at": alert.at,
            "id": alert.id,
        },
    }


# Ready runs older than the wait, per workflow, where no run of that workflow is leased now.
_WAITING = """
    SELECT workflow, version, count(*) FROM runs AS r
    WHERE status IN ('queued', 'waiting') AND ready_at <= ?
      AND NOT EXISTS (SELECT 1 FROM runs AS l WHERE l.workflow = r.workflow AND l.version IS r.version
                      AND l.status = 'running' AND l.lease_expires > ?)
    GROUP BY workflow, version
"""
"""Ready runs of a workflow version (``triage@1``) that no run of that version is executing."""
_APPROVALS = (
    "SELECT run_id, name, deadline FROM approvals "
    "WHERE status = 'pending' AND deadline IS NOT NULL AND deadline <= ?"
)
