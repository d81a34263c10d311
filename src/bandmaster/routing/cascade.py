"""``bm.Cascade``: models ordered cheap → expensive; each answer is scored and accepted when
its score reaches that stage's threshold, else the next model is asked. The last stage always
answers. A cascade is itself a model, so ``bm.call_model(cascade, ...)`` journals it like any
other call, with every stage's answer, score and cost in ``response.raw["stages"]``.

Scores come from the model's own confidence, or from a scorer that judges the query and the
answers so far (``AgreementScorer``, learned by ``Cascade.fit`` when models give no confidence).
A learned scorer also *picks* the answer: the most trusted of the answers so far, so three
cheap models that agree can outvote the one asked last. ``Cascade.search`` chooses which of a
set of candidate models form the cascade, by cross-validation on the training examples.
Thresholds learned by ``fit`` can live in the registry's store so every worker uses the same.
"""

from __future__ import annotations

import itertools
import json
import math
import time
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
from pydantic import BaseModel

from bandmaster.engine.context import current_run
from bandmaster.errors import TargetUnreachable, UsageError
from bandmaster.models.base import Model, ModelRequest, ModelResponse
from bandmaster.routing.feedback import ThresholdTuner
from bandmaster.routing.fit import (
    AgreementScorer,
    Example,
    FinalAnswer,
    Judge,
    Outcomes,
    OutOfFold,
    Panel,
    collect,
    default_judge,
    small_blas,
    stage_scores,
)
from bandmaster.routing.thresholds import (
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
from bandmaster.store.sqlite import SQLiteStore

REFRESH = 0.2  # seconds between re-reads of shared thresholds


class StageAnswer(BaseModel):
    model: str
    output: Any
    score: float | None
    cost: float
    accepted: bool
    answer_from: str | None = None  # on the accepting stage: the model whose answer was returned


class Scorer(Protocol):
    """Scores stage ``stage``'s answer in [0, 1], given the answers of earlier stages."""

    def score(
        self, stage: int, request: ModelRequest, response: ModelResponse, earlier: Sequence[ModelResponse]
    ) -> float | None: ...


@runtime_checkable
class Picker(Protocol):
    """A scorer that can also say which of the answers so far to trust most."""

    def pick(
        self, stage: int, request: ModelRequest, answered: Sequence[ModelResponse]
    ) -> tuple[int, float]: ...


class ConfidenceScorer:
    """The model's own confidence (a classifier's probability, a calibrated LLM score)."""

    def score(
        self, stage: int, request: ModelRequest, response: ModelResponse, earlier: Sequence[ModelResponse]
    ) -> float | None:
        return response.confidence


NEVER = 1.01  # a threshold no score in [0, 1] reaches: that stage always escalates


class Cascade:
    """``final="best"`` (with a ``Picker`` scorer): the last stage returns the most trusted
    answer of all stages; ``"last"``: the last model's own answer."""

    def __init__(
        self,
        models: Sequence[Model],
        *,
        thresholds: Sequence[float] | None = None,
        scorer: Scorer | None = None,
        final: FinalAnswer = "last",
        name: str = "cascade",
    ) -> None:
        if len(models) < 2:
            raise UsageError("a cascade needs at least two models, cheapest first")
        if final not in ("best", "last"):
            raise UsageError(f"final must be 'best' or 'last', got {final!r}")
        self.models = list(models)
        self.name = name
        self.scorer: Scorer = scorer or ConfidenceScorer()
        self.final: FinalAnswer = final
        self.thresholds: list[float] = (
            list(thresholds) if thresholds is not None else [0.9] * (len(models) - 1)
        )
        # Accuracy the fit expects of answers each stage accepts (for online feedback).
        self.expected_accuracy: list[float] = [0.9] * (len(models) - 1)
        self.tuner: ThresholdTuner | None = None
        self._store: SQLiteStore | None = None
        self._checked = float("-inf")
        self.report: FitReport | None = None  # set by fit / search
        if len(self.thresholds) != len(self.models) - 1:
            raise UsageError(
                f"cascade {name!r}: {len(self.models)} models need {len(self.models) - 1} thresholds "
                f"(the last model always answers), got {len(self.thresholds)}"
            )

    def decide(
        self, stage: int, request: ModelRequest, answered: Sequence[ModelResponse]
    ) -> tuple[int, float | None]:
        """After ``stage`` has answered: which answer the cascade would return (an index into
        ``answered``) and its score."""
        last = stage == len(self.models) - 1
        if isinstance(self.scorer, Picker) and not (last and self.final == "last"):
            return self.scorer.pick(stage, request, answered)
        return stage, self.scorer.score(stage, request, answered[stage], answered[:stage])

    # --- thresholds shared through the journal store ---------------------------------------

    def bind(self, store: SQLiteStore) -> Cascade:
        """Share thresholds through ``store`` (the engine's journal): every worker's copy of
        this cascade adopts what ``fit`` or ``feedback`` set anywhere, within ``REFRESH`` s."""
        self._store = store
        self._checked = float("-inf")
        self._adopt()
        return self

    def _adopt(self) -> None:
        store = self._store
        now = time.monotonic()
        if store is None or now - self._checked < REFRESH:
            return
        self._checked = now
        stored = store.kv_get(f"cascade:{self.name}")
        if stored is not None:
            data = json.loads(stored)
            if len(data["thresholds"]) == len(self.thresholds):
                self.thresholds = [float(t) for t in data["thresholds"]]

    def publish(self) -> None:
        """Write the current thresholds to the bound store (``fit`` and ``feedback`` do it)."""
        if self._store is not None:
            self._store.kv_put(f"cascade:{self.name}", json.dumps({"thresholds": self.thresholds}))

    async def request(self, req: ModelRequest) -> ModelResponse:
        if self._store is None:
            run = current_run.get()
            if run is not None:
                self.bind(run.store)  # the first engine that runs this cascade shares its thresholds
        self._adopt()
        answered: list[ModelResponse] = []
        stages: list[StageAnswer] = []
        for index, model in enumerate(self.models):
            response = await model.request(req)
            answered.append(response)
            chosen, score = self.decide(index, req, answered)
            last = index == len(self.models) - 1
            accepted = last or (score is not None and score >= self.thresholds[index])
            picked = answered[chosen]
            stages.append(
                StageAnswer(
                    model=response.model or model.name,
                    output=response.output,
                    score=score,
                    cost=response.cost,
                    accepted=accepted,
                    answer_from=(picked.model or self.models[chosen].name) if accepted else None,
                )
            )
            if accepted:
                raw = {**(picked.raw or {}), "stages": [s.model_dump() for s in stages]}
                confidence = picked.confidence if score is None else min(max(score, 0.0), 1.0)
                return picked.model_copy(
                    update={
                        "cost": sum(r.cost for r in answered),
                        "confidence": confidence,
                        "raw": raw,
                        "latency": sum(r.latency for r in answered),
                    }
                )
        raise AssertionError("unreachable: the last stage always accepts")

    def feedback(self, response: ModelResponse, correct: bool) -> list[float]:
        """Tell the cascade whether an answer it gave was right (e.g. a human override said
        no); thresholds move within guard rails (see ``ThresholdTuner``)."""
        stages = (response.raw or {}).get("stages") or []
        accepted = next((i for i, s in enumerate(stages) if s.get("accepted")), None)
        if accepted is None:
            raise UsageError("feedback needs a response produced by this cascade (raw['stages'] missing)")
        if self.tuner is None:
            self.tuner = ThresholdTuner(fitted=list(self.thresholds), expected=list(self.expected_accuracy))
        self.thresholds = list(self.tuner.observe(accepted, correct))
        self.publish()
        return self.thresholds

    async def fit(
        self,
        examples: Sequence[Example],
        *,
        target: dict[str, float],
        judge: Judge = default_judge,
        learn_scorer: bool | None = None,
        confidence: float | None = None,
    ) -> FitReport:
        """Learn thresholds (and a scorer) on training examples; see ``fit_cascade``."""
        return await fit_cascade(
            self, examples, target=target, judge=judge, learn_scorer=learn_scorer, confidence=confidence
        )

    async def evaluate(self, examples: Sequence[Example], *, judge: Judge = default_judge) -> Evaluation:
        """Measure the cascade on held-out examples; see ``evaluate_cascade``."""
        return await evaluate_cascade(self, examples, judge=judge)

    @classmethod
    async def search(
        cls,
        candidates: Sequence[Model],
        examples: Sequence[Example],
        *,
        target: dict[str, float],
        judge: Judge = default_judge,
        max_stages: int = 4,
        name: str = "cascade",
        confidence: float | None = None,
    ) -> Cascade:
        """Choose which candidates form the cascade (ordered cheap → expensive, up to
        ``max_stages``), its scorer and thresholds, all on ``examples``; see ``CascadeSearch``.
        The estimate is in ``cascade.report``."""
        z_score(confidence)  # a bad confidence fails before any model is asked
        search = await CascadeSearch.prepare(candidates, examples, judge=judge, max_stages=max_stages)
        return search.best(target, name=name, confidence=confidence)


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
        final, table, chosen = _best_option(options, accuracy, budget, z)
        return _configure(
            cascade,
            final,
            table,
            chosen,
            learned=learn_scorer,
            refitted=refitted,
            target=(accuracy, budget, z),
            confidence=confidence,
        )


FINALS: tuple[FinalAnswer, ...] = ("best", "last")


def _best_option(
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
        raise _closest(missed, accuracy=accuracy, budget=budget, z=z)
    return best


def _closest(
    missed: Sequence[TargetUnreachable], *, accuracy: float | None, budget: float | None, z: float
) -> TargetUnreachable:
    closest = missed[0].best
    for error in missed[1:]:
        if better(error.best, closest, accuracy=accuracy, budget=budget, z=z):
            closest = error.best
    return unreachable(closest, accuracy=accuracy, budget=budget, z=z)


CANDIDATES = 200  # operating points tried, best first, for one the deployed scorer reproduces


def _configure(
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


class CascadeSearch:
    """Which candidate models should form the cascade? Every model answers every training
    example once; then every ordered subset (cheap → expensive by mean training cost, 2 to
    ``max_stages`` models) gets out-of-fold decisions, and for a target the subset whose
    out-of-fold operating point best meets it wins. Subsets are pruned where the answer is
    clear without fitting: the last model must be on the training cost/accuracy frontier (a
    last resort that another model beats on both counts is never the best one), and the
    earlier models together must cost less than the last (else asking it directly is cheaper).

    The winner's estimate is the best of many, hence optimistic: measure on held-out data."""

    def __init__(
        self,
        candidates: Sequence[Model],
        examples: Sequence[Example],
        outcomes: Outcomes,
        *,
        max_stages: int = 4,
        folds: int = 5,
    ) -> None:
        if len(candidates) < 2:
            raise UsageError("a cascade search needs at least two candidate models")
        if max_stages < 2:
            raise UsageError(f"max_stages must be at least 2, got {max_stages}")
        self.candidates = list(candidates)
        self.outcomes = outcomes
        self.panel = Panel.build([ModelRequest(input=e.input) for e in examples], outcomes.responses)
        self.oof = OutOfFold(self.panel, outcomes.correct, folds=folds)
        self.mean_cost = outcomes.cost.mean(axis=0)
        self.accuracy = outcomes.correct.mean(axis=0)
        self.subsets = self._subsets(max_stages)
        self._tables: dict[tuple[int, ...], list[tuple[FinalAnswer, Sweep]]] = {}

    @classmethod
    async def prepare(
        cls,
        candidates: Sequence[Model],
        examples: Sequence[Example],
        *,
        judge: Judge = default_judge,
        max_stages: int = 4,
        folds: int = 5,
    ) -> CascadeSearch:
        """Ask every candidate every example (the only model calls of the search)."""
        outcomes = await collect(candidates, examples, judge=judge)
        return cls(candidates, examples, outcomes, max_stages=max_stages, folds=folds)

    def _subsets(self, max_stages: int) -> list[tuple[int, ...]]:
        cost, acc = self.mean_cost, self.accuracy
        order = sorted(range(len(self.candidates)), key=lambda i: (cost[i], -acc[i]))
        rank = {model: position for position, model in enumerate(order)}

        def dominated(i: int) -> bool:  # another model is no dearer and no worse (ties: cheaper first)
            return any(
                j != i
                and cost[j] <= cost[i]
                and acc[j] >= acc[i]
                and (cost[j], -acc[j], rank[j]) < (cost[i], -acc[i], rank[i])
                for j in order
            )

        subsets = []
        for last in (i for i in order if not dominated(i)):
            cheaper = order[: rank[last]]
            for size in range(1, max_stages):
                for head in itertools.combinations(cheaper, size):
                    if sum(cost[i] for i in head) < cost[last] or cost[last] == 0:
                        subsets.append((*head, last))
        if not subsets:
            raise UsageError("no candidate cascade: every candidate costs the same or beats the others")
        return subsets

    def tables(self, subset: tuple[int, ...]) -> list[tuple[FinalAnswer, Sweep]]:
        """Out-of-fold threshold tables of one subset, both ways of answering at the last stage
        (kept: they do not depend on the target)."""
        if subset not in self._tables:
            self._tables[subset] = [
                (f, sweep(self.oof.decisions(subset, self.outcomes.cost, final=f))) for f in FINALS
            ]
        return self._tables[subset]

    def best(
        self, target: dict[str, float], *, name: str = "cascade", confidence: float | None = None
    ) -> Cascade:
        """The cascade (models, scorer fitted on all training examples, thresholds) whose
        out-of-fold operating point best meets ``target`` (with ``confidence``: its confidence
        bound does, see ``fit_cascade``)."""
        accuracy, budget = check_target(target)
        z = z_score(confidence)
        winner: tuple[tuple[int, ...], FinalAnswer, Sweep, OperatingPoint] | None = None
        missed: list[TargetUnreachable] = []
        with small_blas():
            for subset in self.subsets:
                try:
                    final, table, point = _best_option(self.tables(subset), accuracy, budget, z)
                except TargetUnreachable as error:
                    missed.append(error)
                    continue
                if winner is None or better(point, winner[3], accuracy=accuracy, budget=budget, z=z):
                    winner = (subset, final, table, point)
            if winner is None:
                raise _closest(missed, accuracy=accuracy, budget=budget, z=z)
            subset, final, table, point = winner
            scorer = AgreementScorer().fit(self.panel, self.outcomes.correct, stages=subset)
            cascade = Cascade([self.candidates[i] for i in subset], scorer=scorer, name=name)
            refitted = stage_scores(scorer, self.panel, subset)
            _configure(
                cascade,
                final,
                table,
                point,
                learned=True,
                refitted=refitted,
                target=(accuracy, budget, z),
                subsets_tried=len(self.subsets),
                confidence=confidence,
            )
        return cascade


async def evaluate_cascade(
    cascade: Cascade, examples: Sequence[Example], *, judge: Judge = default_judge
) -> Evaluation:
    """Accuracy, mean cost and escalation of the cascade as configured, next to each single
    model and the oracle, on ``examples`` (use held-out ones). Every model answers every
    example (for the single-model numbers); the cascade's own choices are replayed from those
    answers with the same ``decide`` that ``request`` uses."""
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
