"""Learning a cascade from labelled examples: a scorer (when the models give no confidence)
and per-stage thresholds that minimise cost at a target accuracy, or maximise accuracy within a
budget.

Everything is learned on the training examples only. Thresholds are chosen on *out-of-fold*
scores (each example scored by a scorer that never saw it), so the fitted operating point is
an honest estimate rather than an overfit one.
"""

from __future__ import annotations

import asyncio
import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import BaseModel

from bandmaster.errors import UsageError
from bandmaster.models.base import Model, ModelRequest, ModelResponse


class Example(BaseModel):
    """A labelled input. ``label`` is compared with a model's output unless the model's
    response says itself whether it was right (``raw["correct"]``, as recorded tables do)."""

    input: str
    label: Any = None


Judge = Callable[[Example, ModelResponse], bool]


def default_judge(example: Example, response: ModelResponse) -> bool:
    recorded = (response.raw or {}).get("correct")
    if recorded is not None:
        return bool(recorded)
    return bool(response.output == example.label)


def _normalise(output: Any) -> str:
    return " ".join(str(output).strip().lower().split())


@dataclass
class Outcomes:
    """Every model's answer to every example: the raw material of fitting and evaluation."""

    responses: list[list[ModelResponse]]  # [example][stage]
    correct: np.ndarray  # bool [examples, stages]
    cost: np.ndarray  # USD [examples, stages]


async def collect(
    models: Sequence[Model],
    examples: Sequence[Example],
    *,
    judge: Judge = default_judge,
    concurrency: int = 32,
) -> Outcomes:
    gate = asyncio.Semaphore(concurrency)

    async def answers(example: Example) -> list[ModelResponse]:
        async with gate:
            request = ModelRequest(input=example.input)
            return [await model.request(request) for model in models]

    responses = await asyncio.gather(*(answers(e) for e in examples))
    correct = np.array([[judge(e, r) for r in row] for e, row in zip(examples, responses, strict=True)], bool)
    cost = np.array([[r.cost for r in row] for row in responses], float)
    return Outcomes(list(responses), correct, cost)


class AgreementScorer:
    """Scores stage *k*'s answer by how many earlier stages gave the same answer, the model's
    own confidence when it has one, and the sizes of query and answer, through one logistic
    regression per stage learned from which answers were right."""

    def __init__(self) -> None:
        self.weights: list[tuple[np.ndarray, float] | None] = []

    @staticmethod
    def features(
        stage: int, request: ModelRequest, response: ModelResponse, earlier: Sequence[ModelResponse]
    ) -> list[float]:
        answer = _normalise(response.output)
        agreeing = sum(_normalise(r.output) == answer for r in earlier)
        return [
            agreeing / stage if stage else 0.0,
            float(agreeing == stage and stage > 0),
            response.confidence if response.confidence is not None else 0.5,
            math.log1p(len(request.text())) / 10,
            math.log1p(len(response.text or str(response.output))) / 10,
        ]

    def fit(self, rows: Sequence[Sequence[list[float]]], correct: np.ndarray) -> AgreementScorer:
        from sklearn.linear_model import LogisticRegression

        self.weights = []
        for stage in range(correct.shape[1]):
            x = np.array([row[stage] for row in rows])
            y = correct[:, stage]
            if y.all() or not y.any():
                self.weights.append(None)  # one class only: score by its base rate
                continue
            model = LogisticRegression(C=1.0, max_iter=1000).fit(x, y)
            self.weights.append((model.coef_[0].copy(), float(model.intercept_[0])))
        self._base = correct.mean(axis=0)
        return self

    def score_features(self, stage: int, features: list[float]) -> float:
        fitted = self.weights[stage] if stage < len(self.weights) else None
        if fitted is None:
            return float(self._base[stage]) if hasattr(self, "_base") else 0.5
        coef, intercept = fitted
        return float(1 / (1 + math.exp(-(float(np.dot(coef, features)) + intercept))))

    def score(
        self, stage: int, request: ModelRequest, response: ModelResponse, earlier: Sequence[ModelResponse]
    ) -> float | None:
        return self.score_features(stage, self.features(stage, request, response, earlier))


def feature_rows(examples: Sequence[Example], outcomes: Outcomes) -> list[list[list[float]]]:
    rows = []
    for example, responses in zip(examples, outcomes.responses, strict=True):
        request = ModelRequest(input=example.input)
        rows.append([AgreementScorer.features(k, request, r, responses[:k]) for k, r in enumerate(responses)])
    return rows


def out_of_fold_scores(
    rows: list[list[list[float]]], correct: np.ndarray, folds: int = 5, seed: int = 0
) -> np.ndarray:
    """Each example scored by a scorer fitted on the other folds."""
    n, stages = correct.shape
    order = np.random.default_rng(seed).permutation(n)
    scores = np.zeros((n, stages))
    for fold in range(folds):
        held = order[fold::folds]
        train = np.setdiff1d(order, held)
        scorer = AgreementScorer().fit([rows[i] for i in train], correct[train])
        for i in held:
            scores[i] = [scorer.score_features(k, rows[i][k]) for k in range(stages)]
    return scores


@dataclass(frozen=True)
class OperatingPoint:
    thresholds: tuple[float, ...]
    accuracy: float
    cost: float
    escalation: tuple[float, ...]  # share of examples that reached each stage


def simulate(
    scores: np.ndarray, correct: np.ndarray, cost: np.ndarray, thresholds: Sequence[float]
) -> OperatingPoint:
    n, stages = correct.shape
    accepted_at = np.full(n, stages - 1)
    undecided = np.ones(n, bool)
    for k, threshold in enumerate(thresholds):
        take = undecided & (scores[:, k] >= threshold)
        accepted_at[take] = k
        undecided &= ~take
    rows = np.arange(n)
    spent = np.cumsum(cost, axis=1)[rows, accepted_at]
    reached = tuple(float((accepted_at >= k).mean()) for k in range(stages))
    return OperatingPoint(
        tuple(float(t) for t in thresholds),
        float(correct[rows, accepted_at].mean()),
        float(spent.mean()),
        reached,
    )


def choose_thresholds(
    scores: np.ndarray,
    correct: np.ndarray,
    cost: np.ndarray,
    *,
    accuracy: float | None = None,
    budget: float | None = None,
    grid: int = 24,
) -> tuple[OperatingPoint, list[OperatingPoint]]:
    """Search threshold combinations (quantiles of each stage's scores, plus never/always).
    Returns the chosen point and the cost/accuracy frontier."""
    if (accuracy is None) == (budget is None):
        raise UsageError("give exactly one target: {'accuracy': x} or {'budget': usd_per_query}")
    stages = correct.shape[1]
    candidates = []
    for k in range(stages - 1):
        qs = np.unique(np.quantile(scores[:, k], np.linspace(0, 1, grid)))
        candidates.append([*qs.tolist(), math.inf])
    points = [simulate(scores, correct, cost, combo) for combo in itertools.product(*candidates)]
    frontier = _frontier(points)
    if accuracy is not None:
        feasible = [p for p in points if p.accuracy >= accuracy]
        chosen = (
            min(feasible, key=lambda p: (p.cost, -p.accuracy))
            if feasible
            else max(points, key=lambda p: p.accuracy)
        )
    else:
        feasible = [p for p in points if p.cost <= (budget or 0)]
        chosen = (
            max(feasible, key=lambda p: (p.accuracy, -p.cost))
            if feasible
            else min(points, key=lambda p: p.cost)
        )
    return chosen, frontier


def _frontier(points: list[OperatingPoint]) -> list[OperatingPoint]:
    best: list[OperatingPoint] = []
    for point in sorted(points, key=lambda p: (p.cost, -p.accuracy)):
        if not best or point.accuracy > best[-1].accuracy:
            best.append(point)
    return best
