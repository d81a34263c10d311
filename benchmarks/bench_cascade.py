"""Cascade benchmark on real answers: RouterBench ARC-Challenge and MBPP, 11 LLMs, through the
``Recorded`` provider (each recorded answer keeps its real USD cost and correctness).

    .venv/bin/python benchmarks/bench_cascade.py DATA_DIR                  # both tasks
    .venv/bin/python benchmarks/bench_cascade.py DATA_DIR --task arc --plot-dir /tmp/plots
    .venv/bin/python benchmarks/bench_cascade.py DATA_DIR --json results.json

DATA_DIR holds ``routerbench_{arc_challenge,mbpp}_{train,test}.csv.gz`` (not shipped with
bandmaster). Everything is chosen on the train split: which models form each cascade, its
scorer and thresholds (``Cascade.search``, cross-validated inside train). The test split is
only measured. The script prints numbers and exits 0 even when a target is missed; see
benchmarks/README.md for what each row means.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bandmaster.models.base import ModelRequest, ModelResponse
from bandmaster.routing.cascade import NEVER, Cascade, CascadeSearch, Evaluation, oracle
from bandmaster.routing.fit import Outcomes, collect, view
from bandmaster.routing.routerbench import RouterBenchTask, load_task

GPT4 = "gpt-4-1106-preview"
# The naive baseline: accept when these three cheap models agree, else ask GPT-4.
NAIVE = ("mistralai/mixtral-8x7b-chat", "zero-one-ai/Yi-34B-Chat", "gpt-3.5-turbo-1106")


@dataclass(frozen=True)
class Goal:
    """The project's target for a task: test accuracy at least ``accuracy`` (or GPT-4's, when
    None) and above every single model when ``beat_singles``, at most ``cost_ratio`` x GPT-4's
    mean cost."""

    text: str
    cost_ratio: float
    accuracy: float | None = None
    beat_singles: bool = False


@dataclass(frozen=True)
class Setup:
    name: str
    goal: Goal
    # Cascade targets: ("accuracy", x) absolute, ("accuracy", "gpt4") GPT-4's train accuracy,
    # ("budget", r) r x GPT-4's mean train cost. `primary` is the one that answers the goal.
    targets: tuple[tuple[str, float | str], ...]
    primary: int


SETUPS = {
    "arc": Setup(
        "ARC-Challenge",
        Goal("accuracy >= GPT-4's at <= 25% of its cost", cost_ratio=0.25),
        (("budget", 0.10), ("budget", 0.25), ("accuracy", 0.93), ("accuracy", 0.95), ("accuracy", "gpt4")),
        primary=1,
    ),
    "mbpp": Setup(
        "MBPP",
        Goal(
            "accuracy >= 0.70 and above every single model, at <= 10% of GPT-4's cost",
            cost_ratio=0.10,
            accuracy=0.70,
            beat_singles=True,
        ),
        (("budget", 0.05), ("budget", 0.10), ("accuracy", 0.65), ("accuracy", 0.70)),
        primary=1,
    ),
}


class Unanimous:
    """Naive baseline scorer: 1 when every model so far gave the same (normalised) answer."""

    def score(
        self, stage: int, request: ModelRequest, response: ModelResponse, earlier: Sequence[ModelResponse]
    ) -> float | None:
        key = view(response).key
        return float(bool(earlier) and all(view(r).key == key for r in earlier))


@dataclass
class Row:
    kind: str  # single | baseline | cascade | oracle
    name: str
    models: list[str]
    train_accuracy: float
    train_cost: float
    test_accuracy: float
    test_cost: float
    escalation: list[float] = field(default_factory=list)  # test: share reaching each stage
    train_check: bool | None = None
    test_check: bool | None = None
    primary: bool = False
    fit_seconds: float = 0.0


def meets(goal: Goal, accuracy: float, cost: float, gpt4: tuple[float, float], best_single: float) -> bool:
    wanted = goal.accuracy if goal.accuracy is not None else gpt4[0]
    ok = accuracy >= wanted - 1e-12 and cost <= goal.cost_ratio * gpt4[1] + 1e-15
    return ok and (not goal.beat_singles or accuracy > best_single + 1e-12)


def singles(outcomes: Outcomes, names: Sequence[str]) -> dict[str, tuple[float, float]]:
    return {
        name: (float(outcomes.correct[:, k].mean()), float(outcomes.cost[:, k].mean()))
        for k, name in enumerate(names)
    }


async def bench_task(data_dir: Path, key: str, plot_dir: Path | None) -> dict[str, Any]:
    setup = SETUPS[key]
    started = time.perf_counter()
    task: RouterBenchTask = load_task(data_dir, key)  # type: ignore[arg-type]
    names = list(task.models)
    models = [task.models[n] for n in names]
    train_out = await collect(models, task.train)
    test_out = await collect(models, task.test)
    train_single, test_single = singles(train_out, names), singles(test_out, names)
    gpt4_train, gpt4_test = train_single[GPT4], test_single[GPT4]
    best_train = max(a for a, _ in train_single.values())
    best_test = max(a for a, _ in test_single.values())
    rows = [
        Row("single", n.split("/")[-1], [n], *train_single[n], *test_single[n]) for n in names
    ]  # fmt: skip

    naive = Cascade(
        [task.models[n] for n in (*NAIVE, GPT4)], scorer=Unanimous(), thresholds=[NEVER, NEVER, 1.0]
    )
    naive_train, naive_test = await naive.evaluate(task.train), await naive.evaluate(task.test)
    rows.append(
        Row(
            "baseline",
            "3 cheap agree, else GPT-4",
            [m.name for m in naive.models],
            naive_train.accuracy,
            naive_train.cost,
            naive_test.accuracy,
            naive_test.cost,
            naive_test.escalation,
        )
    )

    search = CascadeSearch(models, task.train, train_out)
    evaluations: dict[str, Evaluation] = {}
    for index, (kind, value) in enumerate(setup.targets):
        t0 = time.perf_counter()
        if kind == "budget":
            assert isinstance(value, float)
            target, label = {"budget": value * gpt4_train[1]}, f"budget {value:.0%} of GPT-4 cost"
        elif value == "gpt4":
            target, label = {"accuracy": gpt4_train[0]}, f"accuracy >= GPT-4 ({gpt4_train[0]:.3f})"
        else:
            assert isinstance(value, float)
            target, label = {"accuracy": value}, f"accuracy >= {value:.2f}"
        cascade = search.best(target, name=label)
        fit_seconds = time.perf_counter() - t0
        evaluation = await cascade.evaluate(task.test)
        evaluations[label] = evaluation
        report = cascade.report
        assert report is not None
        rows.append(
            Row(
                "cascade",
                label,
                report.models,
                report.accuracy,
                report.cost,
                evaluation.accuracy,
                evaluation.cost,
                evaluation.escalation,
                train_check=meets(setup.goal, report.accuracy, report.cost, gpt4_train, best_train),
                test_check=meets(setup.goal, evaluation.accuracy, evaluation.cost, gpt4_test, best_test),
                primary=index == setup.primary,
                fit_seconds=fit_seconds,
            )
        )
    rows.append(Row("oracle", "oracle (cheapest correct)", names, *oracle(train_out), *oracle(test_out)))

    if plot_dir is not None:
        plot_dir.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - a script, nothing else runs
        primary = next(r for r in rows if r.primary)
        others = {"naive baseline": (naive_test.accuracy, naive_test.cost)}
        others |= {
            r.name: (r.test_accuracy, r.test_cost) for r in rows if r.kind == "cascade" and not r.primary
        }
        # All eleven models and their oracle, not only the cascade's own.
        shown = evaluations[primary.name].model_copy(
            update={"single_models": test_single, "oracle": oracle(test_out)}
        )
        path = plot_dir / f"cascade_{key}.png"
        shown.plot(
            str(path), title=f"{setup.name} test: cascade ({primary.name}) vs single models", others=others
        )
        print(f"plot written to {path}", file=sys.stderr)

    return {
        "task": setup.name,
        "goal": setup.goal.text,
        "train_examples": len(task.train),
        "test_examples": len(task.test),
        "gpt4": {"train": gpt4_train, "test": gpt4_test},
        "rows": [asdict(r) for r in rows],
        "seconds": time.perf_counter() - started,
        "subsets_searched": len(search.subsets),
    }


def _status(check: bool | None) -> str:
    return "-" if check is None else ("PASS" if check else "MISS")


def print_table(result: dict[str, Any]) -> None:
    gpt4_train, gpt4_test = result["gpt4"]["train"], result["gpt4"]["test"]
    print(f"\n{result['task']}: {result['train_examples']} train / {result['test_examples']} test queries")
    print(f"goal: {result['goal']}   (train column for cascades: cross-validated estimate inside train)")
    header = (
        f"{'row':<34} {'train acc':>9} {'$/query':>9} {'xGPT4':>6} | {'test acc':>8} {'$/query':>9} "
        f"{'xGPT4':>6} | {'train':>5} {'test':>5} | models (test escalation per stage)"
    )
    print(header)
    print("-" * len(header))
    for r in result["rows"]:
        mark = "*" if r["primary"] else " "
        models = (
            ", ".join(m.split("/")[-1] for m in r["models"]) if r["kind"] in ("cascade", "baseline") else ""
        )
        reach = " (" + " ".join(f"{x:.2f}" for x in r["escalation"]) + ")" if r["escalation"] else ""
        print(
            f"{mark}{r['name'][:33]:<33} {r['train_accuracy']:>9.3f} {r['train_cost']:>9.2e} "
            f"{r['train_cost'] / gpt4_train[1]:>6.1%} | {r['test_accuracy']:>8.3f} {r['test_cost']:>9.2e} "
            f"{r['test_cost'] / gpt4_test[1]:>6.1%} | {_status(r['train_check']):>5} "
            f"{_status(r['test_check']):>5} | {models}{reach}"
        )
    primary = next(r for r in result["rows"] if r["primary"])
    print(
        f"* goal row: test {_status(primary['test_check'])} "
        f"(accuracy {primary['test_accuracy']:.3f} at {primary['test_cost'] / gpt4_test[1]:.1%} "
        f"of GPT-4's cost; GPT-4 {gpt4_test[0]:.3f}); train estimate {_status(primary['train_check'])}. "
        f"{result['subsets_searched']} model subsets searched, {result['seconds']:.1f} s."
    )


async def run(args: argparse.Namespace) -> dict[str, Any]:
    keys = ["arc", "mbpp"] if args.task == "both" else [args.task]
    return {key: await bench_task(args.data_dir, key, args.plot_dir) for key in keys}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("data_dir", type=Path, help="folder with the RouterBench csv.gz tables")
    parser.add_argument("--task", choices=["arc", "mbpp", "both"], default="both")
    parser.add_argument("--plot-dir", type=Path, help="write cost/accuracy curves (PNG) here")
    parser.add_argument("--json", type=Path, metavar="PATH", help="write every number as JSON to PATH")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    results = asyncio.run(run(args))
    for result in results.values():
        print_table(result)
    print(f"\ntotal {time.perf_counter() - started:.1f} s")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
        print(f"results written to {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
