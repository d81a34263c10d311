"""What the spend workflow carries when it continues as new: today's and recent tenant days and
recently active runs; old days and idle runs are dropped (``temporal/_spend.py``)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

pytest.importorskip("temporalio", reason="the Temporal backend needs: pip install 'bandmaster[temporal]'")

from bandmaster.temporal._spend import KEEP_DAYS, pruned


def test_continue_as_new_keeps_recent_spend_only() -> None:
    now = datetime(2026, 12, 6, 12, tzinfo=UTC).timestamp()
    rows = {
        "tenant:acme\x002026-12-06": [3.0, 0.5, now],
        "tenant:acme\x002026-11-30": [1.0, 0.0, now - 6 * 86400],  # within KEEP_DAYS
        "tenant:acme\x002026-11-01": [9.0, 0.0, now - 35 * 86400],
        "run:fresh\x00": [0.2, 0.0, now - 3600],
        "run:idle\x00": [0.7, 0.0, now - (KEEP_DAYS + 1) * 86400],
    }
    kept = pruned(rows, now)
    assert set(kept) == {"tenant:acme\x002026-12-06", "tenant:acme\x002026-11-30", "run:fresh\x00"}
    assert kept["tenant:acme\x002026-12-06"] == [3.0, 0.5, now], "spend and holds carried as they are"
