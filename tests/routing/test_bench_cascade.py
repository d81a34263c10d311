"""The routing benchmark's ``--quick`` mode runs end to end (a smoke test: numbers are not
asserted here, they live in benchmarks/README.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# The shared data sits beside the checkout (/work/main) or beside the worktrees (/work/wt/<name>).
CANDIDATES = [parent / "shared" / "data" / "routerbench-arc-mbpp" for parent in REPO.parents[:2]]
DATA = next((path for path in CANDIDATES if path.is_dir()), None)


@pytest.mark.skipif(DATA is None, reason="RouterBench tables not beside the repo")
def test_the_quick_benchmark_runs_and_reports_every_family(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    done = subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks" / "bench_cascade.py"),
            "--routerbench",
            str(DATA),
            "--quick",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "APGR (test)" in done.stdout
    assert "at 95% of the strong model" in done.stdout
    # Pairs say what each of their signals can give, against random order and the oracle.
    assert "what each signal gives at 95% of the strong model" in done.stdout
    for line in ("random order", "oracle", "question (TF-IDF", "answers (mixtral-8x7b-chat)"):
        assert line in done.stdout
    for family in ("single", "mix", "router", "cascade", "gain-cascade"):
        assert family in done.stdout
    assert out.is_file()


MODELS = {  # model: (accuracy, USD per query); an unseen task and unseen model names
    "acme/tiny": (0.55, 2e-5),
    "acme/mid": (0.70, 1e-4),
    "other/huge": (0.85, 3e-3),
}


def write_table(path: Path, rows: int, seed: int) -> None:
    """A RouterBench-format table (gzip CSV, Python-literal prompt and answer lists) for a
    two-option task whose answers are "1" or "2", like Winogrande's."""
    import csv
    import gzip
    import random

    rng = random.Random(seed)
    columns = ["Unnamed: 0", "sample_id", "prompt", "eval_name"]
    for model in MODELS:
        columns += [model, f"{model}|model_response", f"{model}|total_cost"]
    with gzip.open(path, "wt", newline="") as f:
        out = csv.DictWriter(f, columns)
        out.writeheader()
        for i in range(rows):
            truth = rng.choice("12")
            row = {"Unnamed: 0": i, "sample_id": f"coin.{seed}.{i}", "eval_name": "coin"}
            row["prompt"] = repr([f"Option 1 or option 2? case {seed}-{i} " + "word " * rng.randint(1, 40)])
            for model, (accuracy, price) in MODELS.items():
                right = rng.random() < accuracy
                said = truth if right else ("2" if truth == "1" else "1")
                # Scores as numbers, or as True/False (another export of the same table).
                row[model] = str(right) if model == "acme/mid" else (1.0 if right else 0.0)
                row[f"{model}|model_response"] = repr([said])
                row[f"{model}|total_cost"] = price * (1 + len(row["prompt"]) / 200)
            out.writerow(row)


@pytest.mark.parametrize("pair", [[], ["--pair", "acme/tiny", "acme/mid"]])
def test_an_unseen_task_and_pair_run_through_the_same_procedure(tmp_path: Path, pair: list[str]) -> None:
    write_table(tmp_path / "routerbench_coin_train.csv.gz", 240, 1)
    write_table(tmp_path / "routerbench_coin_test.csv.gz", 120, 2)
    out = tmp_path / "results.json"
    command = [sys.executable, str(REPO / "benchmarks" / "bench_cascade.py"), "--routerbench", str(tmp_path)]
    done = subprocess.run(
        [*command, "--quick", *pair, "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    results = json.loads(out.read_text())
    # Without --pair: the most accurate model, and the best one at most a fifth of its price.
    name = "COIN tiny>mid" if pair else "COIN mid>huge"
    assert [r["name"] for r in results] == [name]
    (result,) = results
    assert result["cut"]["test_needed"] > 0
    assert result["rows"][0]["passed"] is not None


def test_a_task_that_is_not_there_is_named_with_the_ones_that_are(tmp_path: Path) -> None:
    write_table(tmp_path / "routerbench_coin_train.csv.gz", 20, 1)
    write_table(tmp_path / "routerbench_coin_test.csv.gz", 20, 2)
    command = [sys.executable, str(REPO / "benchmarks" / "bench_cascade.py"), "--routerbench", str(tmp_path)]
    done = subprocess.run(
        [*command, "--task", "winogrande"], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert "no RouterBench task 'winogrande'" in done.stderr
    assert "['coin']" in done.stderr
    done = subprocess.run(
        [*command, "--task", "coin", "--pair", "acme/tiny", "acme/giant"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2
    assert "acme/giant" in done.stderr
    assert "other/huge" in done.stderr


def test_an_unseen_table_loads_every_model_from_its_header(tmp_path: Path) -> None:
    from benchmarks.routerbench import load_task, tasks

    write_table(tmp_path / "routerbench_coin_train.csv.gz", 40, 1)
    write_table(tmp_path / "routerbench_coin_test.csv.gz", 20, 2)
    assert tasks(tmp_path) == ["coin"]
    task = load_task(tmp_path, "coin")
    assert list(task.models) == list(MODELS)
    assert (len(task.train), len(task.test)) == (40, 20)
    # True/False scores read as 1/0: no row of the table is lost to them.
    answered = [task.models["acme/mid"].answers[e.input].correct for e in task.train]
    assert 0 < sum(answered) < len(answered)
