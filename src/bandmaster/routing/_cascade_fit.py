"""Fitting and measuring a ``bm.Cascade`` offline: thresholds from training examples
(``fit_cascade``), held-out evaluation and its plot (``evaluate_cascade``), and the reports
they return. The runtime (``cascade.py``) needs none of this to answer requests."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
from pydantic import BaseModel

from bandmaster.errors import TargetUnreachable, UsageError
from bandmaster.models import ModelRequest
from bandmaster.routing._fit import (
    AgreementScorer,
    Example,
    FinalAnswer,
    Judge,
    Outcomes,
    OutOfFold,
    Panel,
    check_examples,
    collect,
    default_judge,
    small_blas,
    stage_scores,
)
from bandmaster.routing._thresholds import (
    Decisions,
    OperatingPoint,
    Sweep,
    better,
    check_target,
    reproduces,
    simulate,
    sweep,
    transfer_thresholds,
    unreachable,
    z_score,
)

if TYPE_CHECKING:
    from bandmaster.routing._cascade import Cascade


class FitReport(BaseModel):
    models: list[str]
    thresholds: list[float]
    final: FinalAnswer
    accuracy: float  # out-of-fold estimate on the training examples
    cost: float  # mean USD per query, same estimate
    escalation: list[float]  # share of examples reaching each stage
    learned_scorer: bool
    frontier: list[tuple[float, float]]  # (cost, accuracy) points of the best trade-offs
    subsets_tried: int = 1  # > 1 after a search: the estimate is then the best of several (optimistic)
    confidence: float | None = None  # the target was met with this one-sided confidence
    accuracy_low: float = 0.0  # lower confidence bound of ``accuracy`` (= accuracy without confidence)
    cost_high: float = 0.0  # upper confidence bound of ``cost``
    # The deployed cascade (refitted scorer, transferred thresholds) run on the training
    # examples: it must escalate as the estimate says (``reproduced``).
    deployed_cost: float = 0.0
    deployed_escalation: list[float] = []
    reproduced: bool = True


class Evaluation(BaseModel):
    accuracy: float
    cost: float
    escalation: list[float]  # share of examples reaching each stage
    single_models: dict[str, tuple[float, float]]  # model -> (accuracy, mean cost)
    oracle: tuple[float, float]  # cheapest correct model per query (accuracy, mean cost)
    curve: list[tuple[float, float]]  # (cost, accuracy) over thresholds on these examples

    def plot(
        self,
        path: str,
        *,
        title: str = "cascade: cost vs accuracy",
        others: Mapping[str, tuple[float, float]] | None = None,
    ) -> None:
        """Write the cost/accuracy curve with the single models and the oracle as a PNG;
        ``others`` adds labelled (accuracy, cost) points, e.g. baselines."""
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        fig = Figure(figsize=(8, 5))
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        if self.curve:
            xs, ys = zip(*self.curve, strict=True)
            ax.step(xs, ys, "-", where="post", color="tab:blue", label="cascade (threshold sweep)")
        ax.plot([self.cost], [self.accuracy], "o", color="tab:blue", markersize=9, label="cascade (fitted)")
        for label, (acc, cost) in self.single_models.items():
            ax.plot([cost], [acc], "s", color="tab:gray")
            ax.annotate(
                label.split("/")[-1], (cost, acc), fontsize=7, xytext=(3, 3), textcoords="offset points"
            )
        markers = "DvP^Xh<>"
        for i, (label, (acc, cost)) in enumerate((others or {}).items()):
            colour = ("C1", "C3", "C4", "C5", "C6", "C8", "C9")[i % 7]  # not the cascade, oracle, models
            ax.plot([cost], [acc], markers[i % len(markers)], color=colour, markersize=7, label=label)
        ax.plot([self.oracle[1]], [self.oracle[0]], "*", color="tab:green", markersize=12, label="oracle")
        ax.set_xscale("log")
        ax.set_xlabel("mean cost per query (USD, log scale)")
        ax.set_ylabel("accuracy")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(loc="best", fontsize=7, framealpha=0.8)
        fig.tight_layout()
        fig.savefig(path, dpi=120)


async def fit_cascade(
    cascade: Cascade,
    examples: Sequence[Example],
    *,
    target: dict[str, float],
    judge: Judge = default_judge,
    learn_scorer: bool | None = None,
    folds: int = 5,
    confidence: float | None = None,
) -> FitReport:
    """Learn ``cascade``'s thresholds (and its scorer when models give no confidence) from
    labelled training examples; ``target`` is ``{"accuracy": x}`` or ``{"budget": usd}``.
    With ``confidence`` (e.g. 0.9) the target must hold for the one-sided confidence bound of
    the out-of-fold estimate, not just the estimate: a margin that grows as examples get fewer,
    so the target is still met on unseen data. A target no point meets raises
    ``TargetUnreachable`` naming the closest one. Only ``examples`` are sent to the models."""
    accuracy, budget = check_target(target)
    z = z_score(confidence)
    check_examples(len(examples), folds)
    outcomes = await collect(cascade.models, examples, judge=judge)
    if learn_scorer is None:
        learn_scorer = any(r.confidence is None for row in outcomes.responses for r in row[:-1])
    stages = list(range(len(cascade.models)))
    with small_blas():
        if learn_scorer:
            panel = Panel.build([ModelRequest(input=e.input) for e in examples], outcomes.responses)
            oof = OutOfFold(panel, outcomes.correct, folds=folds)
            options = [(f, sweep(oof.decisions(stages, outcomes.cost, final=f))) for f in FINALS]
            scorer = AgreementScorer().fit(panel, outcomes.correct)
            cascade.scorer = scorer
            refitted: np.ndarray | None = stage_scores(scorer, panel, stages)
        else:
            confidences = np.array([[r.confidence or 0.0 for r in row] for row in outcomes.responses])
            options = [("last", sweep(Decisions(confidences, outcomes.correct, outcomes.cost)))]
            refitted = None  # the models' own confidences: thresholds apply as chosen
        final, table, chosen = best_option(options, accuracy, budget, z)
        return configure(
            cascade,
            final,
            table,
            chosen,
            learned=learn_scorer,
            refitted=refitted,
            target=(accuracy, budget, z),
            confidence=confidence,
        )


NEVER = 1.01  # a threshold no score in [0, 1] reaches: that stage always escalates
FINALS: tuple[FinalAnswer, ...] = ("best", "last")


def best_option(
    options: Sequence[tuple[FinalAnswer, Sweep]], accuracy: float | None, budget: float | None, z: float
) -> tuple[FinalAnswer, Sweep, OperatingPoint]:
    """The option whose point best meets the target; ``TargetUnreachable`` (naming the
    closest point of all options) when none meets it."""
    best: tuple[FinalAnswer, Sweep, OperatingPoint] | None = None
    missed: list[TargetUnreachable] = []
    for final, table in options:
        try:
            point = table.choose(accuracy=accuracy, budget=budget, z=z)
        except TargetUnreachable as error:
            missed.append(error)
            continue
        if best is None or better(point, best[2], accuracy=accuracy, budget=budget, z=z):
            best = (final, table, point)
    if best is None:
        raise closest_reachable(missed, accuracy=accuracy, budget=budget, z=z)
    return best


def closest_reachable(
    missed: Sequence[TargetUnreachable], *, accuracy: float | None, budget: float | None, z: float
) -> TargetUnreachable:
    closest = missed[0].best
    for error in missed[1:]:
        if better(error.best, closest, accuracy=accuracy, budget=budget, z=z):
            closest = error.best
    return unreachable(closest, accuracy=accuracy, budget=budget, z=z)


CANDIDATES = 200  # operating points tried, best first, for one the deployed scorer reproduces


def configure(
    cascade: Cascade,
    final: FinalAnswer,
    table: Sweep,
    point: OperatingPoint,
    *,
    learned: bool,
    refitted: np.ndarray | None,
    target: tuple[float | None, float | None, float],
    subsets_tried: int = 1,
    confidence: float | None = None,
) -> FitReport:
    """Set the fitted thresholds and record how they were estimated.

    Thresholds are chosen on out-of-fold scores; the deployed scorer is refitted on every
    training example, so they are carried over by the share of examples each stage accepts
    (``transfer_thresholds``). Where the refitted scores cannot realise that share (e.g. a
    stage whose refitted score is one constant), the point is not reproducible and the next
    best point that is takes its place: the deployed cascade, run on the training examples,
    then escalates as the estimate says (``FitReport.deployed_*``)."""
    accuracy, budget, z = target
    thresholds = list(point.thresholds)
    deployed = point
    reproduced = True
    if refitted is not None:
        d = table.decisions
        reproduced = False
        first: tuple[OperatingPoint, list[float], OperatingPoint] | None = None
        for flat in table.ranked(accuracy=accuracy, budget=budget, z=z)[:CANDIDATES]:
            candidate = table.point(int(flat))
            moved = transfer_thresholds(d.scores, refitted, candidate.thresholds)
            run = simulate(refitted, d.correct, d.cost, moved)
            first = first or (candidate, moved, run)
            if reproduces(candidate, run):
                point, thresholds, deployed, reproduced = candidate, moved, run, True
                break
        else:
            assert first is not None
            point, thresholds, deployed = first
    cascade.final = final
    cascade.thresholds = [t if math.isfinite(t) else NEVER for t in thresholds]
    cascade.expected_accuracy = accepted_accuracy(table.decisions, point.thresholds)
    cascade.tuner = None
    cascade.publish()
    cascade.report = FitReport(
        models=[m.name for m in cascade.models],
        thresholds=cascade.thresholds,
        final=final,
        accuracy=point.accuracy,
        cost=point.cost,
        escalation=list(point.escalation),
        learned_scorer=learned,
        frontier=[(p.cost, p.accuracy) for p in table.frontier()],
        subsets_tried=subsets_tried,
        confidence=confidence,
        accuracy_low=point.accuracy_low(z_score(confidence)),
        cost_high=point.cost_high(z_score(confidence)),
        deployed_cost=deployed.cost,
        deployed_escalation=list(deployed.escalation),
        reproduced=reproduced,
    )
    return cascade.report


async def evaluate_cascade(
    cascade: Cascade, examples: Sequence[Example], *, judge: Judge = default_judge
) -> Evaluation:
    """Accuracy, mean cost and escalation of the cascade as configured, next to each single
    model and the oracle, on ``examples`` (use held-out ones). Every model answers every
    example (for the single-model numbers); the cascade's own choices are replayed from those
    answers with the same ``decide`` that ``request`` uses."""
    if not examples:
        raise UsageError("evaluate needs at least one labelled example (use held-out ones)")
    outcomes = await collect(cascade.models, examples, judge=judge)
    n, stages = outcomes.correct.shape
    scores = np.zeros((n, stages))
    right = np.zeros((n, stages), bool)
    for e, (example, row) in enumerate(zip(examples, outcomes.responses, strict=True)):
        request = ModelRequest(input=example.input)
        for k in range(stages):
            chosen, score = cascade.decide(k, request, row[: k + 1])
            scores[e, k] = score if score is not None else -1.0  # no score: below any threshold
            right[e, k] = outcomes.correct[e, chosen]
    point = simulate(scores, right, outcomes.cost, cascade.thresholds)
    with small_blas():
        curve = sweep(Decisions(scores, right, outcomes.cost)).frontier()
    singles = {
        m.name: (float(outcomes.correct[:, k].mean()), float(outcomes.cost[:, k].mean()))
        for k, m in enumerate(cascade.models)
    }
    return Evaluation(
        accuracy=point.accuracy,
        cost=point.cost,
        escalation=list(point.escalation),
        single_models=singles,
        oracle=oracle(outcomes),
        curve=[(p.cost, p.accuracy) for p in curve],
    )


def accepted_accuracy(decisions: Decisions, thresholds: Sequence[float]) -> list[float]:
    """Per tunable stage, the accuracy of the answers that stage accepts under ``thresholds``."""
    undecided = np.ones(len(decisions.correct), bool)
    result = []
    for k, threshold in enumerate(thresholds):
        take = undecided & (decisions.scores[:, k] >= threshold)
        result.append(float(decisions.correct[take, k].mean()) if take.any() else 1.0)
        undecided &= ~take
    return result


def oracle(outcomes: Outcomes) -> tuple[float, float]:
    """Accuracy and mean cost of asking only the cheapest model that answers correctly."""
    costs = np.where(outcomes.correct, outcomes.cost, np.inf).min(axis=1)
    right = np.isfinite(costs)
    spent = np.where(right, costs, 0.0)
    return float(right.mean()), float(spent.mean())
