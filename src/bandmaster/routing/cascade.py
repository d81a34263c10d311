"""``bm.Cascade``: models ordered cheap → expensive; each answer is scored and accepted when
its score reaches that stage's threshold, else the next model is asked. The last stage's answer
is always accepted. A cascade is itself a model, so ``bm.call_model(cascade, ...)`` journals it
like any other call, with every stage's answer, score and cost in ``response.raw["stages"]``.

Scores come from the model's own confidence, or from a scorer that judges the query and the
answers so far (``AgreementScorer``, learned by ``Cascade.fit`` when models give no confidence).
Thresholds learned by ``fit`` can live in the registry's store so every worker uses the same.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np
from pydantic import BaseModel

from bandmaster.errors import UsageError
from bandmaster.models.base import Model, ModelRequest, ModelResponse
from bandmaster.routing.feedback import ThresholdTuner
from bandmaster.routing.fit import (
    AgreementScorer,
    Example,
    Judge,
    Outcomes,
    choose_thresholds,
    collect,
    default_judge,
    feature_rows,
    out_of_fold_scores,
    simulate,
)


class StageAnswer(BaseModel):
    model: str
    output: Any
    score: float | None
    cost: float
    accepted: bool


class Scorer(Protocol):
    """Scores stage ``stage``'s answer in [0, 1], given the answers of earlier stages."""

    def score(
        self, stage: int, request: ModelRequest, response: ModelResponse, earlier: Sequence[ModelResponse]
    ) -> float | None: ...


class ConfidenceScorer:
    """The model's own confidence (a classifier's probability, a calibrated LLM score)."""

    def score(
        self, stage: int, request: ModelRequest, response: ModelResponse, earlier: Sequence[ModelResponse]
    ) -> float | None:
        return response.confidence


class Cascade:
    def __init__(
        self,
        models: Sequence[Model],
        *,
        thresholds: Sequence[float] | None = None,
        scorer: Scorer | None = None,
        name: str = "cascade",
    ) -> None:
        if len(models) < 2:
            raise UsageError("a cascade needs at least two models, cheapest first")
        self.models = list(models)
        self.name = name
        self.scorer: Scorer = scorer or ConfidenceScorer()
        self.thresholds: list[float] = (
            list(thresholds) if thresholds is not None else [0.9] * (len(models) - 1)
        )
        # Accuracy the fit expects of answers each stage accepts (for online feedback).
        self.expected_accuracy: list[float] = [0.9] * (len(models) - 1)
        self.tuner: ThresholdTuner | None = None
        if len(self.thresholds) != len(self.models) - 1:
            raise UsageError(
                f"cascade {name!r}: {len(self.models)} models need {len(self.models) - 1} thresholds "
                f"(the last model always answers), got {len(self.thresholds)}"
            )

    async def request(self, req: ModelRequest) -> ModelResponse:
        answered: list[ModelResponse] = []
        stages: list[StageAnswer] = []
        total = 0.0
        for index, model in enumerate(self.models):
            response = await model.request(req)
            total += response.cost
            score = self.scorer.score(index, req, response, answered)
            last = index == len(self.models) - 1
            accepted = last or (score is not None and score >= self.thresholds[index])
            stages.append(
                StageAnswer(
                    model=response.model or model.name,
                    output=response.output,
                    score=score,
                    cost=response.cost,
                    accepted=accepted,
                )
            )
            answered.append(response)
            if accepted:
                raw = {**(response.raw or {}), "stages": [s.model_dump() for s in stages]}
                return response.model_copy(
                    update={
                        "cost": total,
                        "confidence": score if score is not None else response.confidence,
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
        return self.thresholds

    async def fit(
        self,
        examples: Sequence[Example],
        *,
        target: dict[str, float],
        judge: Judge = default_judge,
        learn_scorer: bool | None = None,
    ) -> FitReport:
        """Learn thresholds (and a scorer) on training examples; see ``fit_cascade``."""
        return await fit_cascade(self, examples, target=target, judge=judge, learn_scorer=learn_scorer)

    async def evaluate(self, examples: Sequence[Example], *, judge: Judge = default_judge) -> Evaluation:
        """Measure the cascade on held-out examples; see ``evaluate_cascade``."""
        return await evaluate_cascade(self, examples, judge=judge)


class FitReport(BaseModel):
    thresholds: list[float]
    accuracy: float  # out-of-fold estimate on the training examples
    cost: float  # mean USD per query, same estimate
    escalation: list[float]  # share of examples reaching each stage
    learned_scorer: bool
    frontier: list[tuple[float, float]]  # (cost, accuracy) points of the best trade-offs


class Evaluation(BaseModel):
    accuracy: float
    cost: float
    escalation: list[float]
    single_models: dict[str, tuple[float, float]]  # model -> (accuracy, mean cost)
    oracle: tuple[float, float]  # cheapest correct model per query (accuracy, mean cost)
    curve: list[tuple[float, float]]  # (cost, accuracy) over thresholds, for the plot

    def plot(self, path: str, *, title: str = "cascade: cost vs accuracy") -> None:
        """Write the cost/accuracy curve with the single models and the oracle as a PNG."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(7, 4.5))
        xs, ys = zip(*self.curve, strict=True) if self.curve else ((), ())
        ax.plot(xs, ys, "-", color="tab:blue", label="cascade (threshold sweep)")
        ax.plot([self.cost], [self.accuracy], "o", color="tab:blue", markersize=9, label="cascade (fitted)")
        for name, (acc, cost) in self.single_models.items():
            ax.plot([cost], [acc], "s", color="tab:gray")
            ax.annotate(
                name.split("/")[-1], (cost, acc), fontsize=7, xytext=(3, 3), textcoords="offset points"
            )
        ax.plot([self.oracle[1]], [self.oracle[0]], "*", color="tab:green", markersize=12, label="oracle")
        ax.set_xscale("log")
        ax.set_xlabel("mean cost per query (USD, log scale)")
        ax.set_ylabel("accuracy")
        ax.set_title(title)
        ax.legend(loc="lower right", fontsize=8)
        fig.tight_layout()
        fig.savefig(path, dpi=120)
        plt.close(fig)


NEVER = 1.01  # a threshold no score in [0, 1] reaches: that stage always escalates


async def fit_cascade(
    cascade: Cascade,
    examples: Sequence[Example],
    *,
    target: dict[str, float],
    judge: Judge = default_judge,
    learn_scorer: bool | None = None,
) -> FitReport:
    """Learn ``cascade``'s thresholds (and its scorer when models give no confidence) from
    labelled training examples; ``target`` is ``{"accuracy": x}`` or ``{"budget": usd}``."""
    if set(target) - {"accuracy", "budget"} or len(target) != 1:
        raise UsageError(f"target must be {{'accuracy': x}} or {{'budget': usd_per_query}}, got {target}")
    outcomes = await collect(cascade.models, examples, judge=judge)
    if learn_scorer is None:
        learn_scorer = any(r.confidence is None for row in outcomes.responses for r in row[:-1])
    if learn_scorer:
        rows = feature_rows(examples, outcomes)
        scores = out_of_fold_scores(rows, outcomes.correct)
        cascade.scorer = AgreementScorer().fit(rows, outcomes.correct)
    else:
        scores = np.array([[r.confidence or 0.0 for r in row] for row in outcomes.responses])
    chosen, frontier = choose_thresholds(
        scores, outcomes.correct, outcomes.cost, accuracy=target.get("accuracy"), budget=target.get("budget")
    )
    cascade.thresholds = [t if math.isfinite(t) else NEVER for t in chosen.thresholds]
    cascade.expected_accuracy = accepted_accuracy(scores, outcomes.correct, chosen.thresholds)
    cascade.tuner = None
    return FitReport(
        thresholds=cascade.thresholds,
        accuracy=chosen.accuracy,
        cost=chosen.cost,
        escalation=list(chosen.escalation),
        learned_scorer=learn_scorer,
        frontier=[(p.cost, p.accuracy) for p in frontier],
    )


async def evaluate_cascade(
    cascade: Cascade, examples: Sequence[Example], *, judge: Judge = default_judge
) -> Evaluation:
    """Accuracy, mean cost and escalation of the cascade as configured, next to each single
    model and the oracle, on ``examples`` (use held-out ones)."""
    outcomes = await collect(cascade.models, examples, judge=judge)
    scores = np.array(
        [
            [
                cascade.scorer.score(k, ModelRequest(input=e.input), r, row[:k]) or 0.0
                for k, r in enumerate(row)
            ]
            for e, row in zip(examples, outcomes.responses, strict=True)
        ]
    )
    point = simulate(scores, outcomes.correct, outcomes.cost, cascade.thresholds)
    _, frontier = choose_thresholds(scores, outcomes.correct, outcomes.cost, accuracy=1.0, grid=16)
    names = [m.name for m in cascade.models]
    singles = {
        name: (float(outcomes.correct[:, k].mean()), float(outcomes.cost[:, k].mean()))
        for k, name in enumerate(names)
    }
    return Evaluation(
        accuracy=point.accuracy,
        cost=point.cost,
        escalation=list(point.escalation),
        single_models=singles,
        oracle=oracle(outcomes),
        curve=[(p.cost, p.accuracy) for p in frontier],
    )


def accepted_accuracy(scores: np.ndarray, correct: np.ndarray, thresholds: Sequence[float]) -> list[float]:
    """Per tunable stage, the accuracy of the answers that stage accepts under ``thresholds``."""
    undecided = np.ones(len(correct), bool)
    result = []
    for k, threshold in enumerate(thresholds):
        take = undecided & (scores[:, k] >= threshold)
        result.append(float(correct[take, k].mean()) if take.any() else 1.0)
        undecided &= ~take
    return result


def oracle(outcomes: Outcomes) -> tuple[float, float]:
    """Accuracy and mean cost of asking only the cheapest model that answers correctly."""
    costs = np.where(outcomes.correct, outcomes.cost, np.inf).min(axis=1)
    right = np.isfinite(costs)
    spent = np.where(right, costs, 0.0)
    return float(right.mean()), float(spent.mean())
