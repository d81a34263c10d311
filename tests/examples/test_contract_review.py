"""The contract-review example end to end: ``bandmaster demo --example contract-review``."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

from tests.extras import DEMO, needs

pytestmark = needs("demo", *DEMO)  # `bandmaster demo` imports the demo extra

CONTRACTS = Path(__file__).resolve().parents[2] / "examples" / "contract_review" / "contracts.jsonl"


def test_contract_review_runs_all_five_stages_on_every_sample_contract(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bandmaster.cli",
            "demo",
            "--example",
            "contract-review",
            "--json",
            "--db",
            str(tmp_path / "review.db"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    gold = [json.loads(line) for line in CONTRACTS.read_text().splitlines()]
    assert report["completed"] == report["contracts"] == len(gold)
    # Better than calling every contract compliant, and the specialised model finds real issues.
    always_compliant = sum(g["compliant"] for g in gold) / len(gold)
    assert report["compliance_accuracy"] > always_compliant
    assert report["issue_precision"] > 0.5
    assert report["issue_recall"] > 0.3
    # The long contracts went through map-reduce, the short ones in one call.
    chunks = {r["contract"]: r["chunks"] for r in report["results"]}
    long_ones = {g["id"] for g in gold if len(g["text"].split()) > 250}
    assert long_ones
    assert all(chunks[c] > 1 for c in long_ones)
    assert report["long_contracts"] == sum(n > 1 for n in chunks.values())
    with sqlite3.connect(tmp_path / "review.db") as journal:
        per_run = journal.execute(
            "SELECT count(DISTINCT name) FROM steps WHERE name IN "
            "('clause-extractor', 'risk-classifier', 'compliance-checker', 'format') GROUP BY run_id"
        ).fetchall()
        requests = [
            json.loads(m)["request"]
            for (m,) in journal.execute(
                "SELECT meta FROM steps WHERE kind = 'model' AND name = 'risk-classifier'"
            )
        ]
    assert per_run == [(4,)] * len(gold)  # every stage journaled for every contract
    # The guardrail settings of the YAML reached each model request.
    assert all(r["temperature"] == 0 and r["max_tokens"] == 200 and r["json_schema"] for r in requests)
