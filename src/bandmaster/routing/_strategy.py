"""Which way of spending on models is best for a target? ``select_strategy`` compares, on the
training examples only and out of fold, every strategy family, simplest first:

``single``        one model for every query;
``mix``           random mixing of two models on the cost/accuracy hull (any budget between);
``router``        the question router (``QuestionRouter``): one model per query, by the question;
``cascade``       the agreement cascade (``CascadeSearch``: subsets, learned scorer, thresholds);
``gain-cascade``  the same cascades escalating by expected gain in correctness per dollar
                  (``GainScorer``: agreement trust plus the question model), so long, expensive
                  queries are not the ones escalated by default.

Every option's per-example outcome is out of fold (its scorer or router never saw that
example). For the target, each family offers its best option. Families are compared on what
choosing within them does on unseen examples (``family_outcomes``: the family's best option is
chosen on four folds and measured on the fifth), not on their best option's in-sample estimate,
which for a family of thousands of options is the luckiest of many. A family replaces a simpler
one only when it is better by more than ``margin`` standard errors of the paired per-example
difference, still meets the target within noise, and no simpler family's estimate is better:
cross-validation never picks a strategy that loses to a simpler one. Since the simple families
are among the candidates and are reproduced exactly, the choice is never worse than the best
simple baseline beyond that noise. The runner-up is reported.

The whole selection is itself cross-validated (``nested``): on each outer fold, the choice is
made on the other folds' out-of-fold outcomes and measured on the held fold, so the estimate
includes the optimism of choosing among many options.

Defaults are fixed on principle, not tuned to any data set: 5 folds (the usual bias/variance
compromise), one standard error of margin (the "one-SE rule"), 16 frontier points per
cascade subset, a log-spaced grid of 60 values for the router.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bandmaster.errors import TargetUnreachable, UsageError
from bandmaster.models import Model, ModelRequest
from bandmaster.routing._cascade import Cascade, CascadeSearch, Scorer, cascade_subsets
from bandmaster.routing._cascade_fit import FINALS, NEVER
from bandmaster.routing._fit import (
    AgreementScorer,
    Example,
    FinalAnswer,
    Judge,
    Outcomes,
    check_examples,
    collect,
    default_judge,
    fold_ids,
    small_blas,
    stage_scores,
)
from bandmaster.routing._question import (
    GainScorer,
    QuestionModel,
    QuestionRouter,
    RandomMix,
    gain_score,
    out_of_fold,
    route,
)
from bandmaster.routing._thresholds import (
    Decisions,
    OperatingPoint,
    accepting_stage,
    check_target,
    reproduces,
    simulate,
    sweep,
    transfer_thresholds,
    wilson_low,
    z_score,
)

FAMILIES = ("single", "mix", "router", "cascade", "gain-cascade")  # simplest first
MARGIN = 1.0  # standard errors a more complex family must win by
FOLDS = 5
POINTS_PER_SUBSET = 16
CASCADES = ("cascade", "gain-cascade")


@dataclass(frozen=True)
class Option:
    """One deployable configuration and its out-of-fold outcome on every training example."""

    family: str
    label: str
    correct: np.ndarray  # float [n]: 1/0, or the expected correctness (random mixing)
    cost: np.ndarray  # float [n] USD
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def accuracy(self) -> float:
        return float(self.correct.mean())

    @property
    def mean_cost(self) -> float:
        return float(self.cost.mean())

    def rows(self, index: np.ndarray) -> Option:
        return Option(self.family, self.label, self.correct[index], self.cost[index], self.settings)


@dataclass(frozen=True)
class Selection:
    chosen: Option
    runner_up: Option | None
    candidates: dict[str, Option]  # each family's best option for the target
    unseen: dict[str, Option] = field(default_factory=dict)  # each family, chosen out of fold


# --- the options of each family ------------------------------------------------------------


def singles(correct: np.ndarray, cost: np.ndarray, names: Sequence[str]) -> list[Option]:
    return [
        Option("single", names[k], correct[:, k].astype(float), cost[:, k].astype(float), {"model": k})
        for k in range(correct.shape[1])
    ]


def hull(accuracy: np.ndarray, cost: np.ndarray) -> list[int]:
    """Models on the upper-left convex hull of (cost, accuracy), cheapest first: the only ones
    random mixing ever needs."""
    order = sorted(range(len(cost)), key=lambda k: (cost[k], -accuracy[k]))
    points: list[int] = []
    for k in order:
        if points and accuracy[k] <= accuracy[points[-1]]:
            continue  # dearer and no better
        while len(points) >= 2:
            a, b = points[-2], points[-1]
            # drop b when it lies on or below the segment a -> k
            if (accuracy[b] - accuracy[a]) * (cost[k] - cost[a]) <= (accuracy[k] - accuracy[a]) * (
                cost[b] - cost[a]
            ):
                points.pop()
            else:
                break
        points.append(k)
    return points


def mixes(correct: np.ndarray, cost: np.ndarray, names: Sequence[str], *, steps: int = 40) -> list[Option]:
    """Random mixing between neighbours on the hull, in expectation per example."""
    c, y = cost.astype(float), correct.astype(float)
    corners = hull(y.mean(axis=0), c.mean(axis=0))
    options = []
    for a, b in itertools.pairwise(corners):
        for share in np.linspace(0, 1, steps + 1)[1:-1]:
            options.append(
                Option(
                    "mix",
                    f"{names[a]} / {names[b]} {share:.0%}",
                    (1 - share) * y[:, a] + share * y[:, b],
                    (1 - share) * c[:, a] + share * c[:, b],
                    {"weak": a, "strong": b, "share": float(share)},
                )
            )
    return options


def router_values(cost: np.ndarray, count: int = 60) -> np.ndarray:
    """Worth of one correct answer in USD, log-spaced from a hundredth of the cheapest mean cost
    to a thousand times the dearest: from "always the cheapest" to "always the likeliest"."""
    means = cost.mean(axis=0)
    low, high = max(means.min(), 1e-12) * 1e-2, max(means.max(), 1e-12) * 1e3
    return np.geomspace(low, high, count)


def routers(
    p: np.ndarray, expected: np.ndarray, correct: np.ndarray, cost: np.ndarray, values: np.ndarray
) -> list[Option]:
    """The question router at each value of a correct answer (``p`` and ``expected``: out-of-fold
    P(correct) and expected cost); outcomes are the chosen model's real ones."""
    rows = np.arange(len(p))
    options = []
    for value in values:
        chosen = route(p, expected, float(value))
        options.append(
            Option(
                "router",
                f"router value {value:.3g}",
                correct[rows, chosen].astype(float),
                cost[rows, chosen].astype(float),
                {"value": float(value)},
            )
        )
    return options


def per_example(decisions: Decisions, thresholds: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Correctness and spend of each example under ``thresholds`` (as ``simulate``, unaveraged)."""
    n, stages = decisions.correct.shape
    accepted = accepting_stage(decisions.scores, thresholds, stages)
    rows = np.arange(n)
    spent = np.cumsum(decisions.cost, axis=1)[rows, accepted]
    return decisions.correct[rows, accepted].astype(float), spent.astype(float)


def thin(points: Sequence[OperatingPoint], count: int) -> list[OperatingPoint]:
    """At most ``count`` frontier points, spread evenly over the logarithm of cost (a frontier
    is often dense near the dearest end, where budgets rarely sit); its ends are kept."""
    if len(points) <= count:
        return list(points)
    costs = np.log(np.maximum([p.cost for p in points], 1e-300))
    levels = np.linspace(costs[0], costs[-1], count)
    keep = sorted({int(np.argmin(np.abs(costs - level))) for level in levels} | {0, len(points) - 1})
    return [points[i] for i in keep]


def cascade_options(
    family: str, label: str, plan: _CascadePlan, settings: dict[str, Any], *, count: int = POINTS_PER_SUBSET
) -> list[Option]:
    """Up to ``count`` points of the cascade's out-of-fold frontier, among those its deployment
    reproduces. Most frontier points are not: where answers fall into a few agreement patterns,
    each pattern's out-of-fold score differs a little by fold, and a threshold between those
    values accepts the pattern in some folds only, an operating point no one scorer can have."""
    options = []
    frontier = [p for p in sweep(plan.decisions).frontier() if plan.reproducible(p.thresholds)]
    for point in thin(frontier, count):
        correct, spent = per_example(plan.decisions, point.thresholds)
        options.append(
            Option(family, label, correct, spent, {**settings, "thresholds": list(point.thresholds)})
        )
    return options


# --- choosing ------------------------------------------------------------------------------


def _meets(option: Option, accuracy: float | None, budget: float | None, z: float) -> bool:
    if accuracy is not None:
        return float(wilson_low(np.asarray(option.accuracy), len(option.correct), z)) >= accuracy - 1e-12
    return option.mean_cost <= (budget or 0.0) + 1e-15


def _objective(option: Option, accuracy: float | None) -> tuple[float, float]:
    """Smaller is better: cost at an accuracy target, lost accuracy within a budget."""
    if accuracy is not None:
        return option.mean_cost, -option.accuracy
    return -option.accuracy, option.mean_cost


def _paired(d: np.ndarray) -> tuple[float, float]:
    """Mean and standard error of a paired per-example difference."""
    if len(d) < 2:
        return float(d.mean()), 0.0
    return float(d.mean()), float(d.std(ddof=1) / np.sqrt(len(d)))


def _evidence(d: np.ndarray) -> tuple[float, float]:
    """Mean and standard error of a paired difference, counting one pseudo-win and one
    pseudo-loss of the largest size seen (as Agresti and Caffo adjust a difference of
    proportions): when two options differ on only a handful of examples, the plain standard
    error is as small as the difference and two lucky examples would count as evidence. With
    it, a one-SE win needs about what an exact sign test at that level needs (3 of 3, 10 of 14)."""
    size = float(np.abs(d).max()) if len(d) else 0.0
    return _paired(np.concatenate([d, [size, -size]]))


def _beats(a: Option, b: Option, accuracy: float | None, budget: float | None, margin: float) -> bool:
    """Is ``a`` better than ``b`` by more than ``margin`` standard errors of the paired
    per-example difference, while still meeting the target within ``margin`` of its own
    standard error? Within a budget: more accurate, and not dearer than the budget beyond
    noise. At an accuracy target: cheaper, and not short of the target beyond noise (a cheaper
    option that misses the target on unseen examples is no better)."""
    if accuracy is None:
        mean, se = _evidence(a.correct - b.correct)
        spend, spread = _paired(a.cost)
        return mean > margin * se and mean > 0 and spend - margin * spread <= (budget or 0.0) + 1e-15
    saved, se = _evidence(b.cost - a.cost)
    reached, spread = _paired(a.correct)
    return saved > margin * se and saved > 0 and reached + margin * spread >= accuracy - 1e-12


def closest(options: Sequence[Option], accuracy: float | None) -> Option:
    if accuracy is not None:
        return max(options, key=lambda o: (o.accuracy, -o.mean_cost))
    return min(options, key=lambda o: (o.mean_cost, -o.accuracy))


def _best_index(
    correct: np.ndarray, cost: np.ndarray, accuracy: float | None, budget: float | None, z: float
) -> int:
    """Index of the best of K options (rows of ``correct`` / ``cost``, [K, n]) for the target,
    as ``select`` ranks a family's options; the closest when none meets it."""
    n = correct.shape[1]
    acc, usd = correct.mean(axis=1), cost.mean(axis=1)
    if accuracy is not None:
        feasible = wilson_low(acc, n, z) >= accuracy - 1e-12
        if not feasible.any():
            return int(np.lexsort((usd, -acc))[0])
        pool = np.flatnonzero(feasible)
        return int(pool[np.lexsort((-acc[pool], usd[pool]))[0]])
    feasible = usd <= (budget or 0.0) + 1e-15
    if not feasible.any():
        return int(np.lexsort((-acc, usd))[0])
    pool = np.flatnonzero(feasible)
    return int(pool[np.lexsort((usd[pool], -acc[pool]))[0]])


def family_outcomes(
    options: Sequence[Option],
    target: dict[str, float],
    *,
    confidence_z: float = 0.0,
    folds: int = FOLDS,
    seed: int = 1,
) -> dict[str, Option]:
    """Per family, what choosing within it does on unseen examples: on each fold, the family's
    best option for ``target`` is chosen on the other folds and its outcome taken on the held
    fold. A family with thousands of options (cascade subsets x thresholds) has a best option
    whose in-sample estimate is the luckiest of many; this estimate is not, so families are
    compared on it and a rich family cannot win by its winner's curse."""
    accuracy, budget = check_target(target)
    grouped: dict[str, list[Option]] = {}
    for option in options:
        grouped.setdefault(option.family, []).append(option)
    n = len(options[0].correct) if options else 0
    ids = np.random.default_rng(seed).permutation(n) % folds
    result = {}
    for family, members in grouped.items():
        correct = np.stack([o.correct for o in members])
        cost = np.stack([o.cost for o in members])
        if n < 2 * folds:  # too few examples to hold any out: the in-sample choice
            k = _best_index(correct, cost, accuracy, budget, confidence_z)
            result[family] = Option(family, members[k].label, correct[k], cost[k], members[k].settings)
            continue
        got_correct, got_cost = np.zeros(n), np.zeros(n)
        for fold in range(folds):
            inner, outer = ids != fold, ids == fold
            k = _best_index(correct[:, inner], cost[:, inner], accuracy, budget, confidence_z)
            got_correct[outer], got_cost[outer] = correct[k, outer], cost[k, outer]
        result[family] = Option(family, f"{family} (chosen out of fold)", got_correct, got_cost)
    return result


def select(
    options: Sequence[Option],
    target: dict[str, float],
    *,
    confidence_z: float = 0.0,
    margin: float = MARGIN,
    families: Sequence[str] = FAMILIES,
    deployable: Callable[[Option], bool] | None = None,
) -> Selection:
    """The family and option to deploy for ``target`` (see the module doc). Each family offers
    its best option that meets the target and that ``deployable`` (if given) accepts."""
    accuracy, budget = check_target(target)
    meeting: dict[str, list[Option]] = {}
    for option in options:
        if option.family in families and _meets(option, accuracy, budget, confidence_z):
            meeting.setdefault(option.family, []).append(option)
    best: dict[str, Option] = {}
    for family, group in meeting.items():
        ranked = sorted(group, key=lambda o: _objective(o, accuracy))  # stable: ties keep their order
        offered = next((o for o in ranked if deployable is None or deployable(o)), None)
        if offered is not None:
            best[family] = offered
    if not best:
        near = closest(list(options), accuracy)
        wanted = f"accuracy {accuracy:.3f}" if accuracy is not None else f"budget {budget:.3g} USD per query"
        raise TargetUnreachable(
            f"target {wanted} is out of reach for every strategy on the training examples: the "
            f"closest is {near.label} ({near.family}) at accuracy {near.accuracy:.3f}, "
            f"{near.mean_cost:.3g} USD per query",
            best=OperatingPoint((), near.accuracy, near.mean_cost, (), examples=len(near.correct)),
        )
    ordered = [f for f in families if f in best]
    # Families are compared on what choosing within them does on held-out examples.
    unseen = family_outcomes([o for o in options if o.family in best], target, confidence_z=confidence_z)
    chosen = ordered[0]
    for family in ordered[1:]:
        simpler = [unseen[f] for f in ordered[: ordered.index(family)]]
        if _beats(unseen[family], unseen[chosen], accuracy, budget, margin) and all(
            _objective(unseen[family], accuracy) < _objective(s, accuracy) for s in simpler
        ):
            chosen = family
    others = [f for f in ordered if f != chosen]
    runner_up = best[min(others, key=lambda f: _objective(unseen[f], accuracy))] if others else None
    return Selection(best[chosen], runner_up, best, unseen)


@dataclass(frozen=True)
class NestedEstimate:
    accuracy: float
    cost: float
    accuracy_low: float  # one-sided 95% Wilson bound
    accuracy_high: float
    picks: list[str]  # the family chosen on each outer fold


def nested(
    options: Sequence[Option],
    target: dict[str, float],
    *,
    folds: int = 5,
    seed: int = 1,
    margin: float = MARGIN,
    families: Sequence[str] = FAMILIES,
) -> NestedEstimate:
    """The outcome of running ``select`` on unseen data, estimated by an outer cross-validation
    over the out-of-fold outcomes: choose on four folds, measure on the fifth."""
    n = len(options[0].correct)
    ids = np.random.default_rng(seed).permutation(n) % folds
    correct = np.zeros(n)
    cost = np.zeros(n)
    picks = []
    for fold in range(folds):
        inner, outer = np.flatnonzero(ids != fold), np.flatnonzero(ids == fold)
        try:
            chosen = select([o.rows(inner) for o in options], target, margin=margin, families=families).chosen
        except TargetUnreachable:  # unreachable on this part: the closest, as measured
            chosen = closest([o.rows(inner) for o in options], target.get("accuracy"))
        kept = next(o for o in options if o.label == chosen.label and o.settings == chosen.settings)
        correct[outer], cost[outer] = kept.correct[outer], kept.cost[outer]
        picks.append(chosen.family)
    z = 1.6449  # one-sided 95%
    accuracy = float(correct.mean())
    low = float(wilson_low(np.asarray(accuracy), n, z))
    high = 1.0 - float(wilson_low(np.asarray(1.0 - accuracy), n, z))
    return NestedEstimate(accuracy, float(cost.mean()), low, high, picks)


# --- building every option from the training answers, and deploying the chosen one ----------


@dataclass
class Comparison:
    """Every strategy's out-of-fold options on the training examples, and what deploying one
    needs (the cascade search and the question model's inputs)."""

    models: list[Model]
    texts: list[str]
    outcomes: Outcomes
    options: list[Option]
    search: CascadeSearch | None
    p: np.ndarray  # out-of-fold P(correct | question) [n, models]
    expected: np.ndarray  # out-of-fold expected cost [n, models]
    _questions: dict[tuple[int, ...], QuestionModel] = field(default_factory=dict)
    _plans: dict[tuple[str, tuple[int, ...], str], _CascadePlan] = field(default_factory=dict)
    _agreement: dict[tuple[int, ...], tuple[AgreementScorer, np.ndarray]] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        models: Sequence[Model],
        examples: Sequence[Example],
        outcomes: Outcomes,
        *,
        families: Sequence[str] = FAMILIES,
        max_stages: int = 3,
        folds: int = 5,
    ) -> Comparison:
        names = [m.name for m in models]
        texts = [ModelRequest(input=e.input).text() for e in examples]
        correct, cost = outcomes.correct, outcomes.cost
        options = singles(correct, cost, names) + mixes(correct, cost, names)
        ids = fold_ids(len(texts), folds)
        p, expected = np.zeros(correct.shape), np.zeros(cost.shape)
        if {"router", "gain-cascade"} & set(families):
            p, expected = out_of_fold(texts, correct, cost, folds=ids)
        if "router" in families:
            options += routers(p, expected, correct, cost, router_values(cost))
        comparison = cls(list(models), texts, outcomes, options, None, p, expected)
        worth = cascade_subsets(correct.mean(axis=0), cost.mean(axis=0), max_stages)
        if {"cascade", "gain-cascade"} & set(families) and len(models) > 1 and worth:
            comparison.search = CascadeSearch(models, examples, outcomes, max_stages=max_stages, folds=folds)
            with small_blas():
                for subset in comparison.search.subsets:
                    label = " > ".join(names[i] for i in subset)
                    for family, final in itertools.product(CASCADES, FINALS):
                        if family in families:
                            plan = comparison._plan(family, subset, final)
                            settings = {"subset": list(subset), "final": final}
                            options += cascade_options(family, label, plan, settings)
        return comparison

    def question(self, columns: tuple[int, ...]) -> QuestionModel:
        """The question model of these models, fitted on every training example (kept)."""
        everyone = tuple(range(len(self.models)))
        if everyone not in self._questions:
            self._questions[everyone] = QuestionModel().fit(
                self.texts, self.outcomes.correct, self.outcomes.cost
            )
        return self._questions[everyone].columns(columns)

    def choose(
        self, target: dict[str, float], *, confidence_z: float = 0.0, families: Sequence[str] = FAMILIES
    ) -> Selection:
        """``select`` over these options, passing over any cascade option that, deployed (its
        scorer refitted on every training example, its thresholds carried over), would not do
        on the training examples what its out-of-fold estimate says (``deployable``)."""
        return select(
            self.options, target, confidence_z=confidence_z, families=families, deployable=self.deployable
        )

    def deployable(self, option: Option) -> bool:
        """Does ``option`` deployed send as many training examples to each stage, at about the
        same cost, as its out-of-fold estimate? Single models, mixing and the router carry no
        thresholds over and are deployed as estimated."""
        if option.family not in CASCADES:
            return True
        return self._plan_of(option).reproducible(option.settings["thresholds"])

    def training_points(self, option: Option) -> tuple[OperatingPoint, OperatingPoint]:
        """A cascade option's out-of-fold estimate and what its deployment does, both on the
        training examples."""
        plan, thresholds = self._plan_of(option), option.settings["thresholds"]
        return plan.estimate(thresholds), plan.deployed(thresholds)

    def deploy(self, option: Option, *, name: str = "strategy") -> Model:
        """The chosen option as a model: fitted on every training example."""
        models, s = self.models, option.settings
        if option.family == "single":
            return models[int(s["model"])]
        if option.family == "mix":
            return RandomMix(models[s["weak"]], models[s["strong"]], share=s["share"], name=name)
        if option.family == "router":
            return QuestionRouter(
                models, self.question(tuple(range(len(models)))), value=s["value"], name=name
            )
        plan = self._plan_of(option)
        cascade = Cascade([models[i] for i in s["subset"]], scorer=plan.scorer, final=s["final"], name=name)
        cascade.thresholds = [t if np.isfinite(t) else NEVER for t in plan.moved(s["thresholds"])]
        return cascade

    def _plan_of(self, option: Option) -> _CascadePlan:
        s = option.settings
        return self._plan(option.family, tuple(s["subset"]), s["final"])

    def _plan(self, family: str, subset: tuple[int, ...], final: FinalAnswer) -> _CascadePlan:
        """A cascade's scorer refitted on every training example, its scores there and the
        out-of-fold decisions its thresholds are chosen on (kept)."""
        key = (family, subset, final)
        if key in self._plans:
            return self._plans[key]
        assert self.search is not None
        correct, cost = self.outcomes.correct, self.outcomes.cost
        if subset not in self._agreement:
            agreement = AgreementScorer().fit(self.search.panel, correct, stages=subset)
            self._agreement[subset] = (agreement, stage_scores(agreement, self.search.panel, subset))
        agreement, refitted = self._agreement[subset]
        decisions = self.search.oof.decisions(subset, cost, final=final)
        scorer: Scorer = agreement
        if family == "gain-cascade":
            columns = list(subset)
            question = self.question(subset)
            units = cost.mean(axis=0)
            scorer = GainScorer(agreement, question, units=[float(units[i]) for i in subset])
            gained = gain_scores(decisions.scores, self.p, self.expected, units, subset)
            decisions = Decisions(gained, decisions.correct, decisions.cost)
            inside = np.zeros(correct.shape)
            inside[:, columns] = question.p_correct(self.texts)
            spend = np.zeros(cost.shape)
            spend[:, columns] = question.expected_cost(self.texts)
            refitted = gain_scores(refitted, inside, spend, units, subset)
        plan = _CascadePlan(scorer, decisions, refitted)
        self._plans[key] = plan
        return plan


@dataclass(frozen=True)
class _CascadePlan:
    scorer: Scorer
    decisions: Decisions  # out of fold: what the option's thresholds were chosen on
    refitted: np.ndarray  # the deployed scorer's scores on the training examples

    def moved(self, thresholds: Sequence[float]) -> list[float]:
        return transfer_thresholds(self.decisions.scores, self.refitted, thresholds)

    def estimate(self, thresholds: Sequence[float]) -> OperatingPoint:
        d = self.decisions
        return simulate(d.scores, d.correct, d.cost, thresholds)

    def deployed(self, thresholds: Sequence[float]) -> OperatingPoint:
        """What the deployed cascade does on the training examples."""
        d = self.decisions
        return simulate(self.refitted, d.correct, d.cost, self.moved(thresholds))

    def reproducible(self, thresholds: Sequence[float]) -> bool:
        return reproduces(self.estimate(thresholds), self.deployed(thresholds))


def gain_scores(
    trust: np.ndarray, p: np.ndarray, expected: np.ndarray, units: np.ndarray, subset: Sequence[int]
) -> np.ndarray:
    """Cascade decision scores [n, S] with every stage but the last turned into gain scores."""
    scores = trust.copy()
    for k in range(len(subset) - 1):
        nxt = subset[k + 1]
        scores[:, k] = gain_score(trust[:, k], p[:, nxt], expected[:, nxt], float(units[nxt]))
    return scores


@dataclass(frozen=True)
class StrategyReport:
    chosen: str  # family
    label: str
    accuracy: float  # out-of-fold estimate of the chosen option
    cost: float
    runner_up: str | None
    runner_up_accuracy: float | None
    runner_up_cost: float | None
    nested: NestedEstimate  # the selection itself, cross-validated
    candidates: dict[str, tuple[float, float]]  # family -> (accuracy, cost) of its best option
    # family -> (accuracy, cost) when its option is chosen on other folds (what families are compared on)
    out_of_fold: dict[str, tuple[float, float]] = field(default_factory=dict)
    # What the deployed model does on the training examples (cascades: their refitted scorer and
    # carried-over thresholds; ``escalation`` is the share reaching each stage, out of fold).
    deployed_cost: float = 0.0
    escalation: list[float] = field(default_factory=list)
    deployed_escalation: list[float] = field(default_factory=list)


async def select_strategy(
    models: Sequence[Model],
    examples: Sequence[Example],
    *,
    target: dict[str, float],
    judge: Judge = default_judge,
    confidence: float | None = None,
    families: Sequence[str] = FAMILIES,
    max_stages: int = 3,
    name: str = "strategy",
) -> tuple[Model, StrategyReport]:
    """Compare every strategy on ``examples`` (out of fold) and deploy the one to use for
    ``target`` (``{"accuracy": x}`` or ``{"budget": usd}``), with its report. Raises
    ``TargetUnreachable`` naming the closest option when no strategy meets the target."""
    check_target(target)
    z = z_score(confidence)
    unknown = set(families) - set(FAMILIES)
    if unknown:
        raise UsageError(f"unknown strategy families {sorted(unknown)}; choose from {list(FAMILIES)}")
    check_examples(len(examples), FOLDS)
    outcomes = await collect(models, examples, judge=judge)
    comparison = Comparison.build(models, examples, outcomes, families=families, max_stages=max_stages)
    selection = comparison.choose(target, confidence_z=z, families=families)
    chosen, runner = selection.chosen, selection.runner_up
    deployed_cost, escalation, deployed_escalation = chosen.mean_cost, [], []
    if chosen.family in CASCADES:
        estimate, deployed = comparison.training_points(chosen)
        deployed_cost = deployed.cost
        escalation, deployed_escalation = list(estimate.escalation), list(deployed.escalation)
    report = StrategyReport(
        chosen=chosen.family,
        label=chosen.label,
        accuracy=chosen.accuracy,
        cost=chosen.mean_cost,
        runner_up=runner.family if runner else None,
        runner_up_accuracy=runner.accuracy if runner else None,
        runner_up_cost=runner.mean_cost if runner else None,
        nested=nested(comparison.options, target, families=families),
        candidates={f: (o.accuracy, o.mean_cost) for f, o in selection.candidates.items()},
        out_of_fold={f: (o.accuracy, o.mean_cost) for f, o in selection.unseen.items()},
        deployed_cost=deployed_cost,
        escalation=escalation,
        deployed_escalation=deployed_escalation,
    )
    return comparison.deploy(chosen, name=name), report
