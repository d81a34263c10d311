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
import itertools
import json
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bandmaster.models.base import ModelRequest, ModelResponse
from bandmaster.routing.cascade import NEVER, Cascade, CascadeSearch, Evaluation, oracle
from bandmaster.routing.fit import AgreementScorer, Outcomes, collect, small_blas, view
from bandmaster.routing.routerbench import RouterBenchTask, load_task
from bandmaster.routing.thresholds import Decisions, OperatingPoint, better, sweep

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
class Target:
    """("accuracy", x) absolute, ("accuracy", "gpt4") GPT-4's train accuracy, ("budget", r)
    r x GPT-4's mean train cost; ``confidence``: met by the fit's one-sided confidence bound."""

    kind: str
    value: float | str
    confidence: float | None = None


@dataclass(frozen=True)
class Setup:
    name: str
    goal: Goal
    targets: tuple[Target, ...]
    primary: int  # the target that answers the goal
    choices: bool = False  # answers are option letters: agreement patterns are exact


CONFIDENCE = 0.9
SETUPS = {
    "arc": Setup(
        "ARC-Challenge",
        Goal("accuracy >= GPT-4's at <= 25% of its cost", cost_ratio=0.25),
        (
            Target("budget", 0.10),
            Target("budget", 0.25),
            Target("budget", 0.25, CONFIDENCE),
            Target("accuracy", 0.93),
            Target("accuracy", 0.93, CONFIDENCE),
            Target("accuracy", 0.95),
            Target("accuracy", "gpt4"),
        ),
        primary=1,
        choices=True,
    ),
    "mbpp": Setup(
        "MBPP",
        Goal(
            "accuracy >= 0.70 and above every single model, at <= 10% of GPT-4's cost",
            cost_ratio=0.10,
            accuracy=0.70,
            beat_singles=True,
        ),
        (
            Target("budget", 0.05),
            Target("budget", 0.10),
            Target("budget", 0.10, CONFIDENCE),
            Target("accuracy", 0.65),
            Target("accuracy", 0.65, CONFIDENCE),
            Target("accuracy", 0.70),
        ),
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
    kind: str  # single | baseline | router | cascade | bound | oracle
    name: str
    models: list[str]
    train_accuracy: float
    train_cost: float
    test_accuracy: float
    test_cost: float
    escalation: list[float] = field(default_factory=list)  # test: share reaching each stage
    train_check: bool | None = None  # meets the task's goal
    test_check: bool | None = None
    target_train: bool | None = None  # meets the row's own target
    target_test: bool | None = None
    primary: bool = False
    fit_seconds: float = 0.0


def meets(goal: Goal, accuracy: float, cost: float, gpt4: tuple[float, float], best_single: float) -> bool:
    wanted = goal.accuracy if goal.accuracy is not None else gpt4[0]
    ok = accuracy >= wanted - 1e-12 and cost <= goal.cost_ratio * gpt4[1] + 1e-15
    return ok and (not goal.beat_singles or accuracy > best_single + 1e-12)


def reaches(target: dict[str, float], accuracy: float, cost: float) -> bool:
    """Does a measured (accuracy, cost) reach the target the cascade was fitted for?"""
    if "budget" in target:
        return cost <= target["budget"] + 1e-15
    return accuracy >= target["accuracy"] - 1e-12


def query_router(task: RouterBenchTask, train: Outcomes, test: Outcomes, budget: float) -> Row:
    """A per-query router that sees only the question: per model, a logistic regression on the
    prompt's TF-IDF predicts whether it answers correctly; a query goes to the cheapest model
    whose predicted P(correct) clears a threshold (else the most promising one). The threshold
    is the one whose out-of-fold training accuracy is best within ``budget``."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import KFold, cross_val_predict

    vectorizer = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)
    x_train = vectorizer.fit_transform([e.input for e in task.train])
    x_test = vectorizer.transform([e.input for e in task.test])
    folds = KFold(5, shuffle=True, random_state=0)
    oof = np.zeros(train.correct.shape)
    held = np.zeros(test.correct.shape)
    for k in range(train.correct.shape[1]):
        y = train.correct[:, k]
        if y.all() or not y.any():  # one class: its rate is the prediction
            oof[:, k], held[:, k] = float(y.mean()), float(y.mean())
            continue
        model = LogisticRegression(C=1.0, max_iter=2000)
        oof[:, k] = cross_val_predict(model, x_train, y, cv=folds, method="predict_proba")[:, 1]
        held[:, k] = model.fit(x_train, y).predict_proba(x_test)[:, 1]
    order = np.argsort(train.cost.mean(axis=0), kind="stable")  # cheapest first

    def route(p: np.ndarray, threshold: float) -> np.ndarray:
        clears = p[:, order] >= threshold
        first = order[clears.argmax(axis=1)]
        return np.asarray(np.where(clears.any(axis=1), first, p.argmax(axis=1)))

    def measure(out: Outcomes, chosen: np.ndarray) -> tuple[float, float]:
        rows = np.arange(len(chosen))
        return float(out.correct[rows, chosen].mean()), float(out.cost[rows, chosen].mean())

    grid = np.linspace(0.3, 1.0, 71)
    scored = [(*measure(train, route(oof, t)), t) for t in grid]
    within = [s for s in scored if s[1] <= budget] or [min(scored, key=lambda s: s[1])]
    accuracy, cost, threshold = max(within, key=lambda s: (s[0], -s[1]))
    test_accuracy, test_cost = measure(test, route(held, threshold))
    return Row("router", "query-only router (TF-IDF)", [], accuracy, cost, test_accuracy, test_cost)


def hindsight_bound(search: CascadeSearch, budget: float) -> Row:
    """An optimistic ceiling for agreement cascades within ``budget``: every subset's scorer
    fitted *and* thresholds chosen on the same training answers (no held-out folds), best subset
    kept. Train only; if even this misses a target, no threshold or subset choice reaches it."""
    correct, cost = search.outcomes.correct, search.outcomes.cost
    rows = np.arange(correct.shape[0])
    best: tuple[tuple[int, ...], OperatingPoint] | None = None
    with small_blas():
        for subset in search.subsets:
            scorer = AgreementScorer().fit(search.panel, correct, stages=subset)
            scores = np.zeros((len(rows), len(subset)))
            right = np.zeros((len(rows), len(subset)), bool)
            for k in range(len(subset)):
                p = scorer.probabilities(k, search.panel.features(subset[: k + 1]))
                scores[:, k] = p.max(axis=1)
                right[:, k] = correct[rows, np.asarray(subset)[p.argmax(axis=1)]]
            point = sweep(Decisions(scores, right, cost[:, list(subset)])).choose(budget=budget)
            if best is None or better(point, best[1], accuracy=None, budget=budget):
                best = (subset, point)
    assert best is not None
    subset, point = best
    models = [search.candidates[i].name for i in subset]
    nan = float("nan")
    return Row("bound", "hindsight bound (fitted scorer)", models, point.accuracy, point.cost, nan, nan)


def pattern_bound(search: CascadeSearch, budget: float) -> Row:
    """A ceiling for *any* cascade that decides from which of the models asked so far agree:
    per subset, every agreement pattern (e.g. "stage 1 and 2 agree") gets its best decision in
    hindsight on the training answers (accept, returning the answer that is right most often
    for that pattern, or ask the next model), for a cost/accuracy trade-off ``lam``. Mixing two
    such policies interpolates, so the accuracy at ``budget`` is read off the trade-off curve."""
    keys = [[view(r).key for r in row] for row in search.outcomes.responses]
    correct, cost = search.outcomes.correct, search.outcomes.cost
    best: tuple[tuple[int, ...], float, float] = ((), 0.0, 0.0)
    for subset in search.subsets:
        # node: canonical pattern of the first k+1 answers -> [examples, best right, cost so far]
        nodes: dict[tuple[int, ...], list[float]] = {}
        right: dict[tuple[int, ...], np.ndarray] = {}
        for e, row in enumerate(keys):
            labels: dict[str, int] = {}
            pattern: tuple[int, ...] = ()
            for k, stage in enumerate(subset):
                pattern = (*pattern, labels.setdefault(row[stage], len(labels)))
                node = nodes.setdefault(pattern, [0.0, 0.0, 0.0])
                node[0] += 1
                node[2] += float(cost[e, list(subset[: k + 1])].sum())
                right.setdefault(pattern, np.zeros(len(subset)))[: k + 1] += correct[e, list(subset[: k + 1])]
        for pattern, node in nodes.items():
            node[1] = float(right[pattern].max())
        deepest = sorted(nodes, key=len, reverse=True)
        points = []
        for lam in np.geomspace(1e-6, 1.0, 80):
            value: dict[tuple[int, ...], tuple[float, float, float]] = {}  # loss, right, cost
            children: dict[tuple[int, ...], list[tuple[float, float, float]]] = {}
            for pattern in deepest:
                count, hits, spent = nodes[pattern]
                accept = (lam * (count - hits) + spent, hits, spent)
                below = children.get(pattern)
                if below and len(pattern) < len(subset):
                    ask = tuple(float(sum(v[i] for v in below)) for i in range(3))
                    accept = min(accept, (ask[0], ask[1], ask[2]))
                value[pattern] = accept
                children.setdefault(pattern[:-1], []).append(accept)
            top = children[()]
            points.append((sum(v[2] for v in top) / len(keys), sum(v[1] for v in top) / len(keys)))
        points.sort()
        reach = max((a for c, a in points if c <= budget), default=0.0)
        for (c1, a1), (c2, a2) in itertools.pairwise(points):
            if c1 <= budget < c2:
                reach = max(reach, a1 + (a2 - a1) * (budget - c1) / (c2 - c1))
        if reach > best[1]:
            best = (subset, reach, min(budget, max(c for c, _ in points)))
    subset, accuracy, spent = best
    models = [search.candidates[i].name for i in subset]
    nan = float("nan")
    return Row("bound", "pattern bound (any scorer)", models, accuracy, spent, nan, nan)


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

    goal_budget = setup.goal.cost_ratio * gpt4_train[1]
    router = query_router(task, train_out, test_out, goal_budget)
    router.train_check = meets(setup.goal, router.train_accuracy, router.train_cost, gpt4_train, best_train)
    router.test_check = meets(setup.goal, router.test_accuracy, router.test_cost, gpt4_test, best_test)
    rows.append(router)

    search = CascadeSearch(models, task.train, train_out)
    evaluations: dict[str, Evaluation] = {}
    for index, spec in enumerate(setup.targets):
        t0 = time.perf_counter()
        kind, value = spec.kind, spec.value
        if kind == "budget":
            assert isinstance(value, float)
            target, label = {"budget": value * gpt4_train[1]}, f"budget {value:.0%} of GPT-4 cost"
        elif value == "gpt4":
            target, label = {"accuracy": gpt4_train[0]}, f"accuracy >= GPT-4 ({gpt4_train[0]:.3f})"
        else:
            assert isinstance(value, float)
            target, label = {"accuracy": value}, f"accuracy >= {value:.2f}"
        if spec.confidence is not None:
            label += f" @{spec.confidence:.0%}"
        cascade = search.best(target, name=label, confidence=spec.confidence)
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
                target_train=reaches(target, report.accuracy, report.cost),
                target_test=reaches(target, evaluation.accuracy, evaluation.cost),
                primary=index == setup.primary,
                fit_seconds=fit_seconds,
            )
        )
    rows.append(hindsight_bound(search, goal_budget))
    if setup.choices:
        rows.append(pattern_bound(search, goal_budget))
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


def _pair(train: bool | None, test: bool | None) -> str:
    return "-" if train is None and test is None else f"{_status(train)}/{_status(test)}"


def _numbers(accuracy: float, cost: float, gpt4_cost: float) -> str:
    if math.isnan(accuracy):
        return f"{'-':>8} {'-':>9} {'-':>6}"
    return f"{accuracy:>8.3f} {cost:>9.2e} {cost / gpt4_cost:>6.1%}"


def print_table(result: dict[str, Any]) -> None:
    gpt4_train, gpt4_test = result["gpt4"]["train"], result["gpt4"]["test"]
    print(f"\n{result['task']}: {result['train_examples']} train / {result['test_examples']} test queries")
    print(f"goal: {result['goal']}   (train column for cascades: cross-validated estimate inside train)")
    header = (
        f"{'row':<34} {'train':>8} {'$/query':>9} {'xGPT4':>6} | {'test':>8} {'$/query':>9} "
        f"{'xGPT4':>6} | {'target':>9} {'goal':>9} | models (test escalation per stage)"
    )
    print(header)
    print("-" * len(header))
    for r in result["rows"]:
        mark = "*" if r["primary"] else " "
        shown = r["kind"] in ("cascade", "baseline", "bound")
        models = " > ".join(m.split("/")[-1] for m in r["models"]) if shown else ""
        reach = " (" + " ".join(f"{x:.2f}" for x in r["escalation"]) + ")" if r["escalation"] else ""
        print(
            f"{mark}{r['name'][:33]:<33} {_numbers(r['train_accuracy'], r['train_cost'], gpt4_train[1])} | "
            f"{_numbers(r['test_accuracy'], r['test_cost'], gpt4_test[1])} | "
            f"{_pair(r['target_train'], r['target_test']):>9} {_pair(r['train_check'], r['test_check']):>9} "
            f"| {models}{reach}"
        )
    cascades = [r for r in result["rows"] if r["kind"] == "cascade"]
    for r in cascades:
        print(f"target {r['name']}: train {_status(r['target_train'])}, test {_status(r['target_test'])}")
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
