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
import time
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
from pydantic import BaseModel

from bandmaster.engine import current_run
from bandmaster.errors import TargetUnreachable, UsageError
from bandmaster.models import Model, ModelRequest, ModelResponse
from bandmaster.routing._cascade_fit import (
    FINALS,
    Evaluation,
    FitReport,
    best_option,
    closest_reachable,
    configure,
    evaluate_cascade,
    fit_cascade,
)
from bandmaster.routing._feedback import ThresholdTuner
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
    OperatingPoint,
    Sweep,
    better,
    check_target,
    sweep,
    z_score,
)
from bandmaster.store import SQLiteStore

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
        self.subsets = cascade_subsets(self.accuracy, self.mean_cost, max_stages)
        if not self.subsets:
            raise UsageError(
                "no candidate cascade: one candidate is cheapest and at least as accurate as every "
                "other, or all cost the same; use that model alone"
            )
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
        check_examples(len(examples), folds)
        outcomes = await collect(candidates, examples, judge=judge)
        return cls(candidates, examples, outcomes, max_stages=max_stages, folds=folds)

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
                    final, table, point = best_option(self.tables(subset), accuracy, budget, z)
                except TargetUnreachable as error:
                    missed.append(error)
                    continue
                if winner is None or better(point, winner[3], accuracy=accuracy, budget=budget, z=z):
                    winner = (subset, final, table, point)
            if winner is None:
                raise closest_reachable(missed, accuracy=accuracy, budget=budget, z=z)
            subset, final, table, point = winner
            scorer = AgreementScorer().fit(self.panel, self.outcomes.correct, stages=subset)
            cascade = Cascade([self.candidates[i] for i in subset], scorer=scorer, name=name)
            refitted = stage_scores(scorer, self.panel, subset)
            configure(
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


def cascade_subsets(accuracy: np.ndarray, cost: np.ndarray, max_stages: int) -> list[tuple[int, ...]]:
    """Ordered subsets (cheap → expensive, 2 to ``max_stages`` models) worth fitting: the last
    model is on the cost/accuracy frontier and the earlier ones together cost less than it."""
    order = sorted(range(len(cost)), key=lambda i: (cost[i], -accuracy[i]))
    rank = {model: position for position, model in enumerate(order)}

    def dominated(i: int) -> bool:  # another model is no dearer and no worse (ties: cheaper first)
        return any(
            j != i
            and cost[j] <= cost[i]
            and accuracy[j] >= accuracy[i]
            and (cost[j], -accuracy[j], rank[j]) < (cost[i], -accuracy[i], rank[i])
            for j in order
        )

    subsets = []
    for last in (i for i in order if not dominated(i)):
        cheaper = order[: rank[last]]
        for size in range(1, max_stages):
            for head in itertools.combinations(cheaper, size):
                if sum(cost[i] for i in head) < cost[last] or cost[last] == 0:
                    subsets.append((*head, last))
    return subsets
