"""Routing and cascade benchmark: the strategy ``select_strategy`` picks, against every simple
baseline, on sets it was never tuned on. Each set is train → test; everything is chosen on train
(out of fold), the test split is only measured.

    .venv/bin/python benchmarks/bench_cascade.py --routerbench DIR --banking77 DIR --clinc150 DIR
    .venv/bin/python benchmarks/bench_cascade.py --routerbench DIR --quick       # a smoke test
    .venv/bin/python benchmarks/bench_cascade.py --routerbench DIR --task winogrande --pair WEAK STRONG
    .venv/bin/python benchmarks/bench_cascade.py ... --json results.json

Sets: every RouterBench task in the folder (ARC-Challenge and MBPP here, any other table in the
same format alike) with all its LLMs; two-model pairs from them (Mixtral → GPT-4, GPT-3.5 →
GPT-4, or those given with --pair; a task without those models gets its most accurate model and
the best one costing at most a fifth of it); Banking77 and CLINC150 with the support-triage demo's three local
models (real class probabilities). Signals each set supports: RouterBench has answers, costs
and correctness only (agreement between answers and the question text; no logprobs, no
samples, no verifier); the local models add their predicted probability.

Per set and budget (a share of the strongest model's mean training cost): test accuracy and
cost of the chosen strategy, of each family's own best option (single, random mix, question
router, agreement cascade, gain cascade), and whether the chosen one is at least the best simple
baseline (single models, random mixing) within the 95% interval of the paired difference.
Pairs add RouteLLM's APGR and the dollar cut at 95% of the strong model's accuracy. The script
prints numbers and exits 0 even when a target is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from routerbench import load_task, tasks

from bandmaster.errors import TargetUnreachable, UsageError
from bandmaster.models import Model
from bandmaster.routing import FAMILIES, Comparison, Example, Option, Outcomes, collect

GPT4 = "gpt-4-1106-preview"
PAIRS = {"mixtral>gpt4": ("mistralai/mixtral-8x7b-chat", GPT4), "gpt35>gpt4": ("gpt-3.5-turbo-1106", GPT4)}
SHORT = {"arc_challenge": "arc"}  # set names as printed
BUDGETS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.8)  # x the strongest model's mean training cost
SIMPLE = ("single", "mix")
Z95 = 1.96


@dataclass
class DataSet:
    name: str
    models: list[Model]
    train: list[Example]
    test: list[Example]
    signals: str
    pair: tuple[int, int] | None = None  # columns of the weak and the strong model of a pair


@dataclass
class Point:
    family: str
    label: str
    test_accuracy: float
    test_cost_ratio: float  # x the strongest model's mean test cost
    train_accuracy: float
    train_cost_ratio: float


@dataclass
class BudgetRow:
    budget: float
    chosen: Point | None
    runner_up: str | None
    families: dict[str, Point]
    best_simple: Point | None
    margin: float  # 1.96 x standard error of the paired accuracy difference
    passed: bool | None


@dataclass
class SetResult:
    name: str
    signals: str
    train: int
    test: int
    strongest: str
    singles: dict[str, tuple[float, float]]  # model -> test (accuracy, cost ratio)
    rows: list[BudgetRow]
    apgr: dict[str, float] = field(default_factory=dict)
    cut: dict[str, Any] = field(default_factory=dict)
    bound: dict[str, Any] = field(default_factory=dict)  # pairs: what each signal can give (train)
    seconds: float = 0.0


def measure(
    option: Option, comparison: Comparison, test: Outcomes, test_examples: Sequence[Example]
) -> np.ndarray:
    """Per-example test (correctness, cost) of ``option`` deployed as fitted on train."""
    s = option.settings
    if option.family == "single":
        k = int(s["model"])
        return np.stack([test.correct[:, k].astype(float), test.cost[:, k]])
    if option.family == "mix":
        a, b, share = int(s["weak"]), int(s["strong"]), float(s["share"])
        y, c = test.correct.astype(float), test.cost
        return np.stack([(1 - share) * y[:, a] + share * y[:, b], (1 - share) * c[:, a] + share * c[:, b]])
    deployed = comparison.deploy(option)
    answered = asyncio.run(collect([deployed], test_examples))
    return np.stack([answered.correct[:, 0].astype(float), answered.cost[:, 0]])


def point(option: Option, outcome: np.ndarray, train_unit: float, test_unit: float) -> Point:
    return Point(
        option.family,
        option.label,
        float(outcome[0].mean()),
        float(outcome[1].mean() / test_unit),
        option.accuracy,
        option.mean_cost / train_unit,
    )


def paired_margin(a: np.ndarray, b: np.ndarray) -> float:
    d = a - b
    return float(Z95 * d.std(ddof=1) / math.sqrt(len(d))) if len(d) > 1 else 0.0


def run_set(data: DataSet, budgets: Sequence[float]) -> SetResult:
    started = time.perf_counter()
    train = asyncio.run(collect(data.models, data.train))
    test = asyncio.run(collect(data.models, data.test))
    comparison = Comparison.build(data.models, data.train, train, max_stages=3)
    names = [m.name for m in data.models]
    strongest = int(np.argmax(train.correct.mean(axis=0)))
    train_unit, test_unit = float(train.cost[:, strongest].mean()), float(test.cost[:, strongest].mean())
    singles = {
        names[k]: (float(test.correct[:, k].mean()), float(test.cost[:, k].mean() / test_unit))
        for k in range(len(names))
    }
    cache: dict[int, np.ndarray] = {}

    def outcome(option: Option) -> np.ndarray:
        if id(option) not in cache:
            cache[id(option)] = measure(option, comparison, test, data.test)
        return cache[id(option)]

    rows = []
    for share in budgets:
        target = {"budget": share * train_unit}
        try:
            selection = comparison.choose(target)
        except TargetUnreachable:
            rows.append(BudgetRow(share, None, None, {}, None, 0.0, None))
            continue
        families = {f: point(o, outcome(o), train_unit, test_unit) for f, o in selection.candidates.items()}
        chosen = point(selection.chosen, outcome(selection.chosen), train_unit, test_unit)
        simple = [o for f, o in selection.candidates.items() if f in SIMPLE]
        best_simple = max(simple, key=lambda o: outcome(o)[0].mean()) if simple else None
        margin, passed = 0.0, None
        if best_simple is not None:
            margin = paired_margin(outcome(selection.chosen)[0], outcome(best_simple)[0])
            passed = chosen.test_accuracy + margin >= float(outcome(best_simple)[0].mean()) - 1e-12
        rows.append(
            BudgetRow(
                share,
                chosen,
                selection.runner_up.family if selection.runner_up else None,
                families,
                point(best_simple, outcome(best_simple), train_unit, test_unit) if best_simple else None,
                margin,
                passed,
            )
        )
    result = SetResult(
        data.name, data.signals, len(data.train), len(data.test), names[strongest], singles, rows
    )
    if data.pair:
        result.apgr, result.cut = pair_metrics(comparison, train, test, data, outcome, train_unit, test_unit)
        result.bound = signal_bound(comparison, train, data.pair)
    result.seconds = time.perf_counter() - started
    return result


def pair_metrics(
    comparison: Comparison,
    train: Outcomes,
    test: Outcomes,
    data: DataSet,
    outcome: Any,
    train_unit: float,
    test_unit: float,
) -> tuple[dict[str, float], dict[str, Any]]:
    """APGR (RouteLLM: performance gap recovered, averaged over the strong model's cost share
    0.1 ... 1.0, test) per family, and the dollar cut at 95% of the strong model's accuracy."""
    assert data.pair is not None
    weak, strong = data.pair
    weak_acc, strong_acc = float(test.correct[:, weak].mean()), float(test.correct[:, strong].mean())
    gap = strong_acc - weak_acc
    apgr: dict[str, list[float]] = {f: [] for f in (*FAMILIES, "chosen")}
    for share in np.linspace(0.1, 1.0, 10):
        try:
            selection = comparison.choose({"budget": float(share) * train_unit})
        except TargetUnreachable:
            continue
        picks = {**selection.candidates, "chosen": selection.chosen}
        for family, option in picks.items():
            recovered = (float(outcome(option)[0].mean()) - weak_acc) / gap if gap > 0 else 1.0
            apgr[family].append(recovered)
    target = 0.95 * float(train.correct[:, strong].mean())
    cut: dict[str, Any] = {"target_train": target, "test_needed": 0.95 * strong_acc}
    try:
        selection = comparison.choose({"accuracy": target})
        got = outcome(selection.chosen)
        cut |= {
            "family": selection.chosen.family,
            "test_accuracy": float(got[0].mean()),
            "test_cost_ratio": float(got[1].mean() / test_unit),
            "dollar_cut": 1 - float(got[1].mean() / test_unit),
            "margin": float(Z95 * math.sqrt(max(got[0].mean() * (1 - got[0].mean()), 1e-12) / len(got[0]))),
            "strong_calls_note": "cost, not call share",
        }
    except TargetUnreachable as error:
        cut["error"] = str(error)
    return {f: float(np.mean(v)) for f, v in apgr.items() if v}, cut


def escalation_cut(
    order: np.ndarray, train: Outcomes, weak: int, strong: int, probes: Sequence[int] = ()
) -> tuple[float, float]:
    """Escalating the weak model's queries to the strong one in ``order`` (a cascade: both are
    paid, and the ``probes`` asked before them): the dollar cut and the share escalated at the
    fewest escalations reaching 95% of the strong model's accuracy, in hindsight on ``train``
    (the best threshold for that order)."""
    yw, ys = train.correct[:, weak].astype(float), train.correct[:, strong].astype(float)
    cw, cs = train.cost[:, weak], train.cost[:, strong]
    n = len(yw)
    reached = (yw.sum() + np.concatenate([[0.0], np.cumsum((ys - yw)[order])])) / n
    first = int(np.flatnonzero(reached >= 0.95 * ys.mean() - 1e-12)[0])
    spent = (cw.sum() + train.cost[:, list(probes)].sum() + cs[order[:first]].sum()) / n
    return 1 - spent / float(cs.mean()), first / n


def signal_bound(comparison: Comparison, train: Outcomes, pair: tuple[int, int]) -> dict[str, Any]:
    """What each signal a pair has can give at 95% of the strong model's accuracy, on train: its
    out-of-fold AUC for "the weak model is wrong" and the dollar cut of escalating in its order
    with the threshold picked in hindsight (optimistic: an upper bound for that signal), against
    random order (in expectation: random mixing) and the oracle that knows the outcomes."""
    weak, strong = pair
    wrong = ~train.correct[:, weak]
    n = len(wrong)
    signals: dict[str, tuple[np.ndarray, tuple[int, ...]]] = {  # score, probes it needs
        "question (TF-IDF P(weak wrong))": (1 - comparison.p[:, weak], ()),
        "question length": (np.array([len(t) for t in comparison.texts], float), ()),
    }
    if comparison.search is not None:
        for subset in comparison.search.subsets:
            if subset[-1] == strong and weak in subset:
                head = subset[: subset.index(weak) + 1]
                names = " + ".join(comparison.models[i].name.split("/")[-1] for i in head)
                probes = tuple(i for i in head if i != weak)
                signals[f"answers ({names}): 1 - trust"] = (1 - comparison.search.oof.stage(head)[0], probes)
    result: dict[str, Any] = {}
    rng = np.random.default_rng(0)
    cuts = [escalation_cut(rng.permutation(n), train, weak, strong)[0] for _ in range(200)]
    result["random order (a cascade escalating at random; mean of 200)"] = {
        "auc": 0.5,
        "cut": float(np.mean(cuts)),
    }
    oracle = np.argsort(-(train.correct[:, strong] & wrong).astype(float), kind="stable")
    result["oracle"] = {"auc": 1.0, "cut": escalation_cut(oracle, train, weak, strong)[0]}
    for name, (score, probes) in signals.items():
        order = np.argsort(-score, kind="stable")
        cut, share = escalation_cut(order, train, weak, strong, probes)
        result[name] = {"auc": auc(score, wrong), "cut": cut, "escalated": share}
    return result


def auc(score: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney, ties count half)."""
    _, inverse, counts = np.unique(score, return_inverse=True, return_counts=True)
    ranks = (np.cumsum(counts) - (counts - 1) / 2)[inverse]  # average ranks, 1-based
    k = int(positive.sum())
    if k in (0, len(score)):
        return 0.5
    return float((ranks[positive].sum() - k * (k + 1) / 2) / (k * (len(score) - k)))


# --- the sets --------------------------------------------------------------------------------


def routerbench_sets(
    folder: Path, quick: bool, names: Sequence[str] = (), pairs: Sequence[tuple[str, str]] = ()
) -> list[DataSet]:
    """Each task (``names``, default every one in ``folder``) with all its models, and each
    pair (weak → strong) alone and with a probe: the task's cheapest model (on train) outside
    the pair, asked first for a second opinion whose agreement with the weak model's answer is a
    signal (its cost counted), standing in for the self-consistency samples RouterBench does not
    have. Pairs: ``pairs``, else the named ones (``PAIRS``) the task has, else ``default_pair``."""
    sets = []
    for key in names or tasks(folder):
        task = load_task(folder, key)
        train, test = (task.train[:200], task.test[:100]) if quick else (task.train, task.test)
        label = SHORT.get(task.name, task.name).upper()
        signals = "answer agreement, question text"
        if not quick:
            sets.append(
                DataSet(
                    f"{label} ({len(task.models)} models)", list(task.models.values()), train, test, signals
                )
            )
        outcomes = asyncio.run(collect(list(task.models.values()), train))
        chosen = task_pairs(task.models, outcomes, pairs)
        for pair, (weak, strong) in chosen[:1] if quick else chosen:
            models: list[Model] = [task.models[weak], task.models[strong]]
            pair_signals = "the weak answer's form, question text"
            sets.append(DataSet(f"{label} {pair}", models, train, test, pair_signals, pair=(0, 1)))
            outside = [k for k, m in enumerate(task.models) if m not in (weak, strong)]
            if quick or not outside:
                continue
            probe = list(task.models)[min(outside, key=lambda k: outcomes.cost[:, k].mean())]
            probed: list[Model] = [task.models[probe], *models]
            name = f"{label} {pair} + probe {probe.split('/')[-1]}"
            sets.append(DataSet(name, probed, train, test, signals, pair=(1, 2)))
    return sets


def task_pairs(
    models: dict[str, Model], train: Outcomes, wanted: Sequence[tuple[str, str]]
) -> list[tuple[str, tuple[str, str]]]:
    """The (label, (weak, strong)) pairs to measure on one task."""
    names = list(models)
    if wanted:
        missing = sorted({m for pair in wanted for m in pair} - set(names))
        if missing:
            raise UsageError(f"--pair names models this task does not have: {missing}; it has {names}")
        return [(f"{short(w)}>{short(s)}", (w, s)) for w, s in wanted]
    named = [(label, pair) for label, pair in PAIRS.items() if set(pair) <= set(names)]
    return named or default_pair(names, train)


def default_pair(names: Sequence[str], train: Outcomes) -> list[tuple[str, tuple[str, str]]]:
    """For a task without the named models: the most accurate model on train as the strong one,
    and as the weak one the most accurate of those costing at most a fifth of it (a cheap model
    worth routing to), if any."""
    accuracy, cost = train.correct.mean(axis=0), train.cost.mean(axis=0)
    strong = int(np.argmax(accuracy))
    cheap = [k for k in range(len(names)) if k != strong and cost[k] <= cost[strong] / 5]
    if not cheap:
        return []
    weak = max(cheap, key=lambda k: accuracy[k])
    return [(f"{short(names[weak])}>{short(names[strong])}", (names[weak], names[strong]))]


def short(model: str) -> str:
    return model.split("/")[-1]


def local_sets(banking77: Path | None, clinc150: Path | None, limit: int) -> list[DataSet]:
    """The demo's three local intent models, trained on half of each set's training split; the
    other half (at most ``limit``) is the routing training set, a random ``limit`` of the test
    split the test (bounded: every cascade answers each test query one request at a time)."""
    if banking77 is None and clinc150 is None:
        return []
    demo = Path(__file__).resolve().parents[1] / "examples" / "support_triage"
    sys.path.insert(0, str(demo))
    from local_models import PRICES, train  # type: ignore[import-not-found]
    from triage_models import Priced  # type: ignore[import-not-found]

    from bandmaster.models.sklearn import SklearnModel

    sets = []
    for name, folder in (("Banking77", banking77), ("CLINC150", clinc150)):
        if folder is None:
            continue
        if name == "Banking77":
            rows = {s: list(csv.DictReader((folder / f"{s}.csv").open())) for s in ("train", "test")}
            pairs = {s: [(r["text"], r["category"]) for r in rows[s]] for s in rows}
        else:
            data = json.loads((folder / "data_full.json").read_text())
            pairs = {s: [(t, i) for t, i in data[s]] for s in ("train", "test")}
        shuffled = list(pairs["train"])
        np.random.default_rng(0).shuffle(shuffled)
        half = len(shuffled) // 2
        texts, labels = [t for t, _ in shuffled[:half]], [y for _, y in shuffled[:half]]
        fitted = train(texts, labels, cache_dir=Path("/tmp/bandmaster-bench-models"))
        models: list[Model] = [
            Priced(SklearnModel(fitted[tier], name=f"intent-{tier}"), PRICES[tier]) for tier in fitted
        ]
        routing_train = [Example(input=t, label=y) for t, y in shuffled[half:][:limit]]
        test_pairs = list(pairs["test"])
        np.random.default_rng(1).shuffle(test_pairs)  # a bounded, label-mixed sample of test
        test = [Example(input=t, label=y) for t, y in test_pairs[:limit]]
        sets.append(DataSet(name, models, routing_train, test, "model probability, agreement, question text"))
    return sets


# --- output ----------------------------------------------------------------------------------


def _fmt(p: Point | None) -> str:
    return "-" if p is None else f"{p.test_accuracy:.3f} @ {p.test_cost_ratio:.1%}"


def print_set(result: SetResult) -> None:
    print(f"\n{result.name}: {result.train} train / {result.test} test; signals: {result.signals}")
    print(f"budgets and costs are shares of {result.strongest}'s mean cost; test accuracy @ test cost")
    singles = ", ".join(f"{m.split('/')[-1]} {a:.3f}@{c:.1%}" for m, (a, c) in result.singles.items())
    print(f"single models: {singles}")
    header = f"{'budget':>7} | {'chosen':<34} | " + " | ".join(f"{f:<15}" for f in FAMILIES) + " | vs simple"
    print(header)
    print("-" * len(header))
    for row in result.rows:
        chosen = "-" if row.chosen is None else f"{row.chosen.family:<12} {_fmt(row.chosen)}"
        cells = " | ".join(f"{_fmt(row.families.get(f)):<15}" for f in FAMILIES)
        verdict = "-" if row.passed is None else ("PASS" if row.passed else "MISS")
        simple = _fmt(row.best_simple)
        print(f"{row.budget:>7.0%} | {chosen:<34} | {cells} | {verdict} ({simple} ±{row.margin:.3f})")
    if result.apgr:
        print("APGR (test): " + ", ".join(f"{f} {v:.3f}" for f, v in result.apgr.items()))
    if result.cut:
        c = result.cut
        if "error" in c:
            print(f"95% of strong: {c['error']}")
        else:
            ok = c["dollar_cut"] >= 0.45 and c["test_accuracy"] + c["margin"] >= c["test_needed"]
            print(
                f"at 95% of the strong model ({c['test_needed']:.3f} on test): {c['family']} "
                f"{c['test_accuracy']:.3f} ±{c['margin']:.3f} at {c['test_cost_ratio']:.1%} of its "
                f"dollars, a cut of {c['dollar_cut']:.1%} -> {'PASS' if ok else 'MISS'} (target >= 45%)"
            )
    if result.bound:
        print("what each signal gives at 95% of the strong model (train; cut in hindsight, an upper bound):")
        for name, b in result.bound.items():
            share = f", escalating {b['escalated']:.1%}" if "escalated" in b else ""
            print(f"  {name:<60} AUC(weak wrong) {b['auc']:.3f}  cut {b['cut']:.1%}{share}")
    print(f"({result.seconds:.1f} s)")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--routerbench", type=Path, help="folder with routerbench_*_{train,test}.csv.gz")
    parser.add_argument("--banking77", type=Path, help="Banking77 folder (train.csv, test.csv)")
    parser.add_argument("--clinc150", type=Path, help="CLINC150 folder (data_full.json)")
    parser.add_argument(
        "--limit", type=int, default=1500, help="routing train and test examples per local set"
    )
    parser.add_argument(
        "--task",
        action="append",
        default=[],
        metavar="NAME",
        help="a RouterBench task (routerbench_NAME_train/test.csv.gz); repeat; default: every one "
        "in the folder (--quick: ARC, else the first)",
    )
    parser.add_argument(
        "--pair",
        action="append",
        nargs=2,
        default=[],
        metavar=("WEAK", "STRONG"),
        help="a weak → strong model pair to measure on each task; repeat; default: Mixtral → GPT-4 and "
        "GPT-3.5 → GPT-4 where the task has them, else its most accurate model and the best one "
        "costing at most a fifth of it",
    )
    parser.add_argument("--quick", action="store_true", help="one small pair: a smoke test")
    parser.add_argument("--json", type=Path, metavar="PATH", help="write every number as JSON to PATH")
    args = parser.parse_args(argv)
    sets: list[DataSet] = []
    if args.routerbench:
        found = tasks(args.routerbench)
        if not found:
            parser.error(
                f"no RouterBench tables (routerbench_TASK_train.csv.gz and _test) in {args.routerbench}"
            )
        quick = ["arc_challenge" if "arc_challenge" in found else found[0]] if args.quick and found else []
        try:
            sets += routerbench_sets(
                args.routerbench, args.quick, args.task or quick, [tuple(p) for p in args.pair]
            )
        except UsageError as error:
            parser.error(str(error))
    if not args.quick:
        sets += local_sets(args.banking77, args.clinc150, args.limit)
    if not sets:
        parser.error("give at least one data folder (--routerbench, --banking77, --clinc150)")
    budgets = (0.3,) if args.quick else BUDGETS
    started = time.perf_counter()
    results = []
    for data in sets:
        result = run_set(data, budgets)
        print_set(result)
        results.append(result)
    print(f"\ntotal {time.perf_counter() - started:.1f} s")
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in results], indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
