"""A run's terms on Temporal: kept in the run's memo, and handed to Temporal's own task-queue
priority and fairness, which order the run's workflow and activity tasks on the matching
service (activities inherit the workflow's priority).

Temporal's priority is a small key, 1 (first) to 5 (last), 3 by default, served strictly in
key order; bandmaster's priority is an unbounded integer, higher first. The mapping keeps 0 at
Temporal's default and gives the signs and the tens their own bands::

    priority >= 10 -> 1     1..9 -> 2     0 -> 3     -9..-1 -> 4     <= -10 -> 5

Within a key, tasks of different fairness keys (the run's tenant) are dispatched in turn, so
one tenant's backlog does not hold back another's (the server needs fairness enabled:
``matching.enableFairness``, as ``_devserver.py`` starts it). Temporal has no aging: a lower
band waits while a higher one has tasks.
"""

from __future__ import annotations

from typing import Any

from temporalio.common import Priority

from bandmaster.engine import RunTerms

TERMS_MEMO = "bandmaster.terms"
"""The run's memo entry holding its terms (absent: the default terms)."""


def priority_key(priority: int) -> int:
    """Temporal's priority key (1 first .. 5 last) of a bandmaster priority (higher first)."""
    if priority >= 10:
        return 1
    if priority > 0:
        return 2
    if priority == 0:
        return 3
    return 4 if priority > -10 else 5


def task_priority(terms: RunTerms) -> Priority:
    """The priority and fairness key a run's tasks are queued with."""
    return Priority(priority_key=priority_key(terms.priority), fairness_key=terms.tenant)


def terms_as_data(terms: RunTerms) -> dict[str, Any]:
    return {"priority": terms.priority, "tenant": terms.tenant, "budget_usd": terms.budget_usd}


def terms_from_data(data: Any) -> RunTerms:
    """The terms a memo entry (or an activity's input) carries; the defaults for None."""
    if not isinstance(data, dict):
        return RunTerms()
    return RunTerms(int(data.get("priority") or 0), data.get("tenant"), data.get("budget_usd"))
