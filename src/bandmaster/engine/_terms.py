"""A run's terms: its priority, its tenant and its budget, fixed when it starts.

They travel with the run (journaled with it on the embedded engine, in the workflow's start on
Temporal) and are in context while its steps and model calls run, where the limiter, the budget
and the run claims read them::

    handle = await engine.start(triage, ticket, priority=10, tenant="acme", budget_usd=0.05)
    ...
    terms = current_terms()   # inside a step or model call: RunTerms(10, "acme", 0.05)
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from bandmaster._types import URL_NAME, URL_NAME_RULE
from bandmaster.errors import InvalidInput

MAX_PRIORITY = 1_000_000
"""Priorities are integers in ``[-MAX_PRIORITY, MAX_PRIORITY]``; higher goes first."""


@dataclass(frozen=True, slots=True)
class RunTerms:
    """``priority``: higher is served first under saturation (0 is the default; aging keeps low
    priorities from starving). ``tenant``: whose run it is, for fair share, tenant budgets and
    per-tenant stats (None: no tenant). ``budget_usd``: the most this run may spend on model
    calls (None: no run budget)."""

    priority: int = 0
    tenant: str | None = None
    budget_usd: float | None = None

    def __post_init__(self) -> None:
        if isinstance(self.priority, bool) or not isinstance(self.priority, int):
            raise InvalidInput(f"priority must be an integer, got {self.priority!r}")
        if abs(self.priority) > MAX_PRIORITY:
            raise InvalidInput(f"priority {self.priority} out of range: use -{MAX_PRIORITY}..{MAX_PRIORITY}")
        tenant = self.tenant
        if tenant is not None and (not isinstance(tenant, str) or not URL_NAME.fullmatch(tenant)):
            raise InvalidInput(f"tenant {tenant!r} is not a valid name: use {URL_NAME_RULE}")
        if self.budget_usd is not None and not _dollars(self.budget_usd):
            raise InvalidInput(f"budget_usd must be a finite number of dollars >= 0, got {self.budget_usd!r}")

    @property
    def default(self) -> bool:
        """No priority, tenant or budget was given."""
        return self == DEFAULT_TERMS


def _dollars(value: object) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return math.isfinite(value) and value >= 0


DEFAULT_TERMS = RunTerms()

_current: ContextVar[RunTerms] = ContextVar("bandmaster_terms", default=DEFAULT_TERMS)


def current_terms() -> RunTerms:
    """The terms of the run whose step or model call is running (the defaults outside a run)."""
    return _current.get()


@contextmanager
def terms_scope(terms: RunTerms) -> Iterator[RunTerms]:
    """Run the body with ``terms`` as the current run's terms."""
    token = _current.set(terms)
    try:
        yield terms
    finally:
        _current.reset(token)
