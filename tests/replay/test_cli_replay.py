"""``bandmaster replay`` as a real subprocess: tables, JSON, golden scoring, live models, and
the exit codes CI relies on (0 within --max-diff, 1 beyond it, 2 bad input)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import GOLDEN, TICKETS, Recorded

WF = Path(__file__).resolve().parent / "wf_triage.py"
TARGET = f"{WF}:triage"


def bandmaster(
    *args: str | Path, cwd: Path, threshold: float | None = None
) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).parent / "bandmaster"
    env = {k: v for k, v in os.environ.items() if k not in ("BANDMASTER_DB", "TRIAGE_THRESHOLD")}
    env.update(COLUMNS="200", NO_COLOR="1")
    if threshold is not None:
        env["TRIAGE_THRESHOLD"] = str(threshold)
    return subprocess.run(
        [str(exe), *map(str, args)], capture_output=True, text=True, timeout=60, cwd=cwd, env=env
    )


def test_unchanged_code_exits_0_with_max_diff_0(recorded: Recorded, tmp_path: Path) -> None:
    result = bandmaster("replay", TARGET, "--db", recorded.db, "--max-diff", "0", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"replayed {len(TICKETS)} runs of triage (recorded): 0 changed, 0 diverged" in result.stdout


def test_changed_threshold_exits_1_beyond_max_diff(recorded: Recorded, tmp_path: Path) -> None:
    result = bandmaster("replay", TARGET, "--db", recorded.db, "--max-diff", "3", cwd=tmp_path, threshold=0.9)
    assert result.returncode == 1
    assert "4 changed, 4 diverged" in result.stdout
    for ticket in ("T-02", "T-03", "T-05", "T-11"):
        assert recorded.run_ids[ticket] in result.stdout
    assert "triage_router→auto_reply ⇒ triage_router→human" in result.stdout
    assert "diverged at step 'escalate'" in result.stdout
    assert "4 of 12 runs changed; --max-diff is 3" in result.stderr

    within = bandmaster("replay", TARGET, "--db", recorded.db, "--max-diff", "4", cwd=tmp_path, threshold=0.9)
    assert within.returncode == 0
    by_fraction = bandmaster(
        "replay", TARGET, "--db", recorded.db, "--max-diff", "30%", cwd=tmp_path, threshold=0.9
    )
    assert by_fraction.returncode == 1  # 4/12 = 33 %
    assert (
        bandmaster(
            "replay", TARGET, "--db", recorded.db, "--max-diff", "0.34", cwd=tmp_path, threshold=0.9
        ).returncode
        == 0
    )


def test_json_report_and_golden_confusion(recorded: Recorded, tmp_path: Path) -> None:
    labels = tmp_path / "labels.jsonl"
    labels.write_text("".join(json.dumps({"id": t, "label": label}) + "\n" for t, label in GOLDEN.items()))
    args = (
        "replay",
        TARGET,
        "--db",
        recorded.db,
        "--golden",
        labels,
        "--golden-key",
        "ticket.id",
        "--decision",
        "route",
    )

    result = bandmaster(*args, "--json", cwd=tmp_path, threshold=0.83)

    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["summary"]["changed"] == 2
    assert report["golden"]["accuracy"] == 1.0
    assert report["golden"]["recorded_accuracy"] == pytest.approx(10 / 12)
    assert report["golden"]["confusion"] == {"auto_reply": {"auto_reply": 5}, "human": {"human": 7}}

    table = bandmaster(*args, cwd=tmp_path, threshold=0.83)
    assert "accuracy 1.000 (12/12 labelled runs; recorded 0.833)" in table.stdout
    assert "confusion" in table.stdout


def test_live_models_print_cost_delta(recorded: Recorded, tmp_path: Path) -> None:
    models = tmp_path / "models.yaml"
    models.write_text('models:\n  intent: {provider: callable, function: "wf_triage:intent_today"}\n')

    result = bandmaster(
        "replay", TARGET, "--db", recorded.db, "--live-models", "--models", models, "--json", cwd=tmp_path
    )

    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)["summary"]
    assert summary["mode"] == "live-models"
    assert summary["model_calls_made"] == len(TICKETS)
    assert summary["cost"] == pytest.approx(0.01 * len(TICKETS))
    assert summary["cost_delta"] == pytest.approx((0.01 - 0.002) * len(TICKETS))
    # Today's model says "billing" for everything: every other ticket's answer changed.
    assert summary["changed"] == sum(1 for _, _, label, _ in TICKETS if label != "billing")

    text = bandmaster(
        "replay", TARGET, "--db", recorded.db, "--live-models", "--models", models, cwd=tmp_path
    )
    assert "model calls: 12 live" in text.stdout
    assert "delta +0.096000" in text.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--max-diff", "lots"), "--max-diff 'lots': give a count of runs"),
        (("--runs", "colour=red"), "unknown key 'colour'"),
        (("--decision", "verdict"), "decision 'verdict'"),
    ],
)
def test_bad_input_exits_2(recorded: Recorded, tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    result = bandmaster("replay", TARGET, "--db", recorded.db, *args, cwd=tmp_path)
    assert result.returncode == 2
    assert message in result.stderr


def test_missing_journal_exits_2(tmp_path: Path) -> None:
    result = bandmaster("replay", TARGET, "--db", tmp_path / "none.db", cwd=tmp_path)
    assert result.returncode == 2
    assert "no journal at" in result.stderr
    assert not (tmp_path / "none.db").exists()
