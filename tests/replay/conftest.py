"""Recorded runs of the triage workflow (``wf_triage.py``): one journal per test, written by a
real engine with a scripted intent model, before the code is changed and replayed."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

import pytest

import bandmaster as bm
from bandmaster.testing import ScriptedModel, temp_engine

from . import wf_triage

# (ticket id, text, intent label, confidence). THRESHOLD is 0.8 when these are recorded.
TICKETS = [
    ("T-01", "I was charged twice", "billing", 0.95),
    ("T-02", "refund my last invoice", "billing", 0.85),
    ("T-03", "card declined at checkout", "billing", 0.82),
    ("T-04", "where is my parcel", "shipping", 0.91),
    ("T-05", "parcel arrived damaged", "shipping", 0.88),
    ("T-06", "change my delivery address", "shipping", 0.79),
    ("T-07", "reset my password", "account", 0.97),
    ("T-08", "delete my account", "account", 0.65),
    ("T-09", "my chest hurts after the pills", "other", 0.99),
    ("T-10", "the app crashes on start", "bug", 0.55),
    ("T-11", "two-factor code never arrives", "account", 0.80),
    ("T-12", "lorem ipsum", "other", 0.40),
]
INTENT_COST = 0.002  # USD per recorded intent call
# The correct decision per ticket, by hand: what a careful agent would have done.
GOLDEN = {
    "T-01": "auto_reply", "T-02": "auto_reply", "T-03": "human", "T-04": "auto_reply",
    "T-05": "auto_reply", "T-06": "human", "T-07": "auto_reply", "T-08": "human",
    "T-09": "human", "T-10": "human", "T-11": "human", "T-12": "human",
}  # fmt: skip


def intent_model(
    *, cost: float = INTENT_COST, overrides: dict[str, tuple[str, float]] | None = None
) -> ScriptedModel:
    answers = {text: (label, confidence) for _, text, label, confidence in TICKETS}
    answers.update(overrides or {})
    return ScriptedModel(answers, name="intent", cost=cost)


@dataclass
class Recorded:
    db: Path
    run_ids: dict[str, str]  # ticket id -> run id
    model: ScriptedModel

    def ids(self, *tickets: str) -> set[str]:
        return {self.run_ids[t] for t in tickets}

    def rows(self) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
        """Every run and step row of the source journal, to prove a replay never writes it."""
        with sqlite3.connect(self.db) as conn:
            runs = conn.execute("SELECT * FROM runs ORDER BY id").fetchall()
            steps = conn.execute("SELECT * FROM steps ORDER BY run_id, seq").fetchall()
        return runs, steps


@pytest.fixture
async def recorded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Recorded:
    monkeypatch.setattr(wf_triage, "THRESHOLD", 0.8)  # restored after the test
    model = intent_model()
    registry = bm.Registry(models={"intent": model})
    db = tmp_path / "recorded.db"
    run_ids = {}
    async with temp_engine([wf_triage.triage], registry=registry, db=db) as engine:
        for ticket_id, text, _, _ in TICKETS:
            handle = await engine.start(wf_triage.triage, wf_triage.Ticket(id=ticket_id, text=text))
            await handle.result(timeout=30)
            run_ids[ticket_id] = handle.id
    assert model.calls == len(TICKETS)
    return Recorded(db, run_ids, model)
