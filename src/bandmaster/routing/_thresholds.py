"""Choosing a cascade's thresholds: every combination of candidate thresholds is evaluated
exactly on per-example stage decisions (``sweep``), and the cheapest point reaching a target
accuracy, or the most accurate within a budget, is chosen (``Sweep.choose``).

With ``confidence`` the choice also allows for the estimate being measured on a finite sample:
a point counts as meeting an accuracy target only when the lower one-sided Wilson bound of its
accuracy does (a budget: the upper bound of its mean cost), so a target fitted on a few hundred
examples is still met on unseen ones as often as ``confidence`` says. Wilson, not the normal
approximation: the normal interval has no width at accuracy 1.0 and is too narrow near 0.95,
which is where accuracy targets sit.

A target no point reaches raises ``TargetUnreachable`` naming the closest point, instead of
quietly returning it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import numpy as np

from bandmaster.errors import TargetUnreachable, UsageError


@dataclass(frozen=True)
class Decisions:
    """Per example and stage: the stage's score and whether the answer it would return is
    right. Thresholds are chosen on these."""

    scores: np.ndarray  # [n, S]
    correct: np.ndarray  # bool [n, S]
    cost: np.ndarray  # [n, S] per-stage cost


@dataclass(frozen=True)
class OperatingPoint:
    thresholds: tuple[float, ...]
    accuracy: float
    cost: float
    escalation: tuple[float, ...]  # share of examples that reached each stage
    examples: int = 0  # how many examples the estimate is measured on
    cost_sd: float = 0.0  # standard deviation of the per-example cost

    def accuracy_low(self, z: float) -> float:
        """The one-sided Wilson lower bound of the accuracy at ``z`` (0: the estimate itself)."""
        if z == 0 or not self.examples:
            return self.accuracy
        return float(wilson_low(np.asarray(self.accuracy), self.examples, z))

    def cost_high(self, z: float) -> float:
        """The mean cost ``z`` standard errors above the estimate."""
        if z == 0 or not self.examples:
            return self.cost
        return self.cost + z * self.cost_sd / math.sqrt(self.examples)


def z_score(confidence: float | None) -> float:
    """How many standard errors of margin a one-sided ``confidence`` (0.5 <= c < 1) asks for;
    None: none (the target is met by the estimate itself)."""
    if confidence is None:
        return 0.0
    if isinstance(confidence, bool) or not isinstance(confidence, int | float) or not 0.5 <= confidence < 1:
        raise UsageError(
            f"confidence must be a probability in [0.5, 1), e.g. 0.9, or None, got {confidence!r}"
        )
    return NormalDist().inv_cdf(float(confidence))


def wilson_low(rate: np.ndarray, n: int, z: float) -> np.ndarray:
    """Wilson score lower bound of binomial rates measured on ``n`` trials, ``z`` one-sided."""
    if z == 0 or n == 0:
        return rate
    z2 = z * z
    centre = rate + z2 / (2 * n)
    spread = z * np.sqrt(np.clip(rate * (1 - rate), 0, None) / n + z2 / (4 * n * n))
    return np.asarray((centre - spread) / (1 + z2 / n))


def accepting_stage(scores: np.ndarray, thresholds: Sequence[float], stages: int) -> np.ndarray:
    """Per example, the first stage whose score reaches its threshold (else the last)."""
    n = scores.shape[0]
    accepted_at = np.full(n, stages - 1)
    undecided = np.ones(n, bool)
    for k, threshold in enumerate(thresholds):
        take = undecided & (scores[:, k] >= threshold)
        accepted_at[take] = k
        undecided &= ~take
    return accepted_at


def simulate(
    scores: np.ndarray, correct: np.ndarray, cost: np.ndarray, thresholds: Sequence[float]
) -> OperatingPoint:
    n, stages = correct.shape
    accepted_at = accepting_stage(scores, thresholds, stages)
    rows = np.arange(n)
    spent = np.cumsum(cost, axis=1)[rows, accepted_at]
    reached = tuple(float((accepted_at >= k).mean()) for k in range(stages))
    return OperatingPoint(
        tuple(float(t) for t in thresholds),
        float(correct[rows, accepted_at].mean()) if n else 0.0,
        float(spent.mean()) if n else 0.0,
        reached,
        examples=n,
        cost_sd=float(spent.std()) if n else 0.0,
    )


def transfer_thresholds(oof: np.ndarray, final: np.ndarray, thresholds: Sequence[float]) -> list[float]:
    """Carry thresholds chosen on out-of-fold scores ``oof`` over to the scorer refitted on all
    training examples (its scores on them: ``final``), by the share of examples each accepts.

    Scores of the refitted scorer sit slightly off the out-of-fold ones, and where answers fall
    into a few agreement patterns, every example of a pattern has nearly the same score: a
    threshold taken as is can land between folds' values for one pattern and flip the whole
    pattern. Matching the share keeps what the fit measured, and each threshold sits halfway
    between two distinct scores so a small shift does not flip a pattern either. Shares are
    matched stage by stage among the examples that reach the stage, so the deployed cascade
    sends as many examples to each stage as the estimate (a stage's refitted scores can rank
    the examples that reach it differently from the out-of-fold ones)."""
    n = oof.shape[0]
    reaching_oof = np.ones(n, bool)
    reaching = np.ones(n, bool)
    result = []
    for k, threshold in enumerate(thresholds):
        taken = reaching_oof & (oof[:, k] >= threshold)
        reaching_oof &= ~taken
        share = float(taken.mean()) if n else 0.0  # of all examples, accepted here out of fold
        if share == 0.0 or not math.isfinite(threshold) or not reaching.any():
            result.append(math.inf)  # never accepts
            continue
        # Scores closer than TIE are one value: the scorer's fit is only that precise, and a
        # threshold between them would split a pattern on noise.
        column = np.round(final[reaching, k] / TIE) * TIE
        values = np.unique(column)[::-1]  # distinct scores, highest first
        shares = np.cumsum(np.unique(column, return_counts=True)[1][::-1]) / n  # accepted at >= each
        i = int(np.argmin(np.abs(shares - share)))  # accept scores >= values[i]
        if share < abs(shares[i] - share):
            # Accepting nothing is closer: a few examples out of fold, while the refit's top
            # score is a whole pattern (a quarter of the examples, say) that was never accepted.
            result.append(math.inf)
            continue
        lower = values[i + 1] if i + 1 < len(values) else values[i] - 1e-3
        cut = float((values[i] + lower) / 2)
        result.append(cut)
        reaching &= ~(final[:, k] >= cut)
    return result


TIE = 1e-4  # scores closer than this are treated as equal when thresholds are placed


def reproduces(estimate: OperatingPoint, deployed: OperatingPoint, *, tolerance: float = 0.02) -> bool:
    """Does the deployed cascade, run on the training examples, send as many of them to each
    stage as the out-of-fold estimate said (within ``tolerance``), at about the same cost?"""
    reach = max(
        (abs(a - b) for a, b in zip(estimate.escalation, deployed.escalation, strict=True)), default=0.0
    )
    return reach <= tolerance and abs(deployed.cost - estimate.cost) <= 0.05 * max(estimate.cost, 1e-300)


def check_target(target: Any) -> tuple[float | None, float | None]:
    """``{"accuracy": x}`` (0 < x <= 1) or ``{"budget": usd_per_query}`` (> 0)."""
    if not isinstance(target, dict) or len(target) != 1 or set(target) - {"accuracy", "budget"}:
        raise UsageError(f"target must be {{'accuracy': x}} or {{'budget': usd_per_query}}, got {target!r}")
    ((kind, value),) = target.items()
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise UsageError(f"target {kind} must be a number, got {value!r}")
    if kind == "accuracy" and not 0 < value <= 1:
        raise UsageError(f"target accuracy must be in (0, 1], got {value}")
    if kind == "budget" and value <= 0:
        raise UsageError(f"target budget must be a positive cost per query in USD, got {value}")
    return (float(value), None) if kind == "accuracy" else (None, float(value))


def _grid(scores: np.ndarray, size: int) -> np.ndarray:
    """Candidate thresholds for one stage: quantiles of its scores, plus never accepting."""
    return np.array([*np.unique(np.quantile(scores, np.linspace(0, 1, size))).tolist(), math.inf])


@dataclass(frozen=True)
class Sweep:
    """Accuracy and mean cost of every combination of candidate thresholds (quantiles of each
    stage's scores, plus never accepting): tables indexed [g_0, ..., g_{S-2}]."""

    decisions: Decisions
    grids: list[np.ndarray]
    accuracy: np.ndarray
    cost: np.ndarray
    cost_sq: np.ndarray  # mean squared per-example cost: with ``cost``, its spread

    def point(self, flat: int) -> OperatingPoint:
        index = np.unravel_index(flat, self.accuracy.shape) if self.grids else ()
        thresholds = [float(g[i]) for g, i in zip(self.grids, index, strict=True)]
        return simulate(self.decisions.scores, self.decisions.correct, self.decisions.cost, thresholds)

    def choose(
        self, *, accuracy: float | None = None, budget: float | None = None, z: float = 0.0
    ) -> OperatingPoint:
        """The cheapest thresholds reaching ``accuracy``, or the most accurate within ``budget``
        (ties: the cheaper). With ``z`` > 0 a point reaches the target only when the Wilson
        lower bound of its accuracy (its cost ``z`` standard errors higher) still does. A target
        out of reach raises ``TargetUnreachable`` naming the closest point."""
        return self.point(int(self.ranked(accuracy=accuracy, budget=budget, z=z)[0]))

    def ranked(
        self, *, accuracy: float | None = None, budget: float | None = None, z: float = 0.0
    ) -> np.ndarray:
        """Flat indices of every point that meets the target, best first (see ``choose``)."""
        if (accuracy is None) == (budget is None):
            raise UsageError("give exactly one target: {'accuracy': x} or {'budget': usd_per_query}")
        acc, cost = self.accuracy.reshape(-1), self.cost.reshape(-1)
        n = max(len(self.decisions.correct), 1)
        eps = 1e-12
        if accuracy is not None:
            feasible = wilson_low(acc, n, z) >= accuracy - eps
            if not feasible.any():
                top = np.flatnonzero(acc >= acc.max() - eps)
                closest = self.point(int(top[np.argmin(cost[top])]))
                raise unreachable(closest, accuracy=accuracy, budget=None, z=z)
            pool = np.flatnonzero(feasible)
            return np.asarray(pool[np.lexsort((-acc[pool], cost[pool]))])
        spread = np.sqrt(np.clip(self.cost_sq.reshape(-1) - cost**2, 0, None) / n)
        feasible = cost + z * spread <= (budget or 0) + eps
        if not feasible.any():
            bottom = np.flatnonzero(cost <= cost.min() + eps)
            closest = self.point(int(bottom[np.argmax(acc[bottom])]))
            raise unreachable(closest, accuracy=None, budget=budget, z=z)
        pool = np.flatnonzero(feasible)
        return np.asarray(pool[np.lexsort((cost[pool], -acc[pool]))])

    def frontier(self) -> list[OperatingPoint]:
        """The points no other point beats on both cost and accuracy, cheapest first."""
        acc, cost = self.accuracy.reshape(-1), self.cost.reshape(-1)
        points: list[OperatingPoint] = []
        top = -1.0
        for i in np.lexsort((-acc, cost)):
            if acc[i] > top + 1e-12:
                top = float(acc[i])
                points.append(self.point(int(i)))
        return points


def unreachable(
    closest: OperatingPoint, *, accuracy: float | None, budget: float | None, z: float
) -> TargetUnreachable:
    """The error for a target no point meets, naming the closest point that exists."""
    bound = f" (Wilson lower bound {closest.accuracy_low(z):.3f})" if z and accuracy is not None else ""
    if accuracy is not None:
        message = (
            f"target accuracy {accuracy:.3f} is out of reach on the training examples: the most "
            f"accurate point found is {closest.accuracy:.3f}{bound} at {closest.cost:.3g} USD per query; "
            "lower the target (or fit with confidence=None / more examples)"
        )
    else:
        message = (
            f"budget {budget:.3g} USD per query is out of reach on the training examples: the "
            f"cheapest point found costs {closest.cost:.3g} USD per query (accuracy "
            f"{closest.accuracy:.3f}); raise the budget or add a cheaper first model"
        )
    return TargetUnreachable(message, best=closest)


def sweep(decisions: Decisions, *, budget: int = 3_000) -> Sweep:
    """Every combination of candidate thresholds, evaluated exactly without looping over the
    combinations: what the stages from k on give is a table over the thresholds of k..
    (accept at k, or take the table of k+1), one array op per stage; the first stage's table is
    averaged over the examples with a matrix product. ``budget`` bounds the combinations."""
    scores, correct, cost = decisions.scores, decisions.correct.astype(float), decisions.cost
    n, stages = correct.shape
    size = max(4, min(64, round(budget ** (1 / max(stages - 1, 1)))))
    grids = [_grid(scores[:, k], size) for k in range(stages - 1)]
    spent = np.cumsum(cost, axis=1)
    accuracy = correct[:, -1][:, None]  # [n, rest]: the last stage always accepts
    price = spent[:, -1][:, None]
    square = price**2
    for k in range(stages - 2, 0, -1):
        take = (scores[:, k][:, None] >= grids[k][None, :])[:, :, None]  # [n, g_k, 1]
        accuracy = np.where(take, correct[:, k, None, None], accuracy[:, None, :]).reshape(n, -1)
        price = np.where(take, spent[:, k, None, None], price[:, None, :]).reshape(n, -1)
        square = np.where(take, spent[:, k, None, None] ** 2, square[:, None, :]).reshape(n, -1)
    shape = tuple(len(g) for g in grids)
    if stages == 1:
        means = [t.mean(axis=0).reshape(()) for t in (accuracy, price, square)]
        return Sweep(decisions, grids, *means)
    take = (scores[:, 0][:, None] >= grids[0][None, :]).astype(float)  # [n, g_0]
    acc = ((take * correct[:, :1]).sum(axis=0)[:, None] + (1 - take).T @ accuracy) / n
    usd = ((take * spent[:, :1]).sum(axis=0)[:, None] + (1 - take).T @ price) / n
    usd_sq = ((take * spent[:, :1] ** 2).sum(axis=0)[:, None] + (1 - take).T @ square) / n
    return Sweep(decisions, grids, acc.reshape(shape), usd.reshape(shape), usd_sq.reshape(shape))


def better(
    a: OperatingPoint, b: OperatingPoint, *, accuracy: float | None, budget: float | None, z: float = 0.0
) -> bool:
    """Is ``a`` a better answer to the target than ``b``? Meeting it (with a margin of ``z``
    standard errors) beats missing it; among points that meet it, cheaper (accuracy target) or
    more accurate (budget) wins; among points that miss, closer wins."""
    eps = 1e-12
    if accuracy is not None:
        ok_a, ok_b = a.accuracy_low(z) >= accuracy - eps, b.accuracy_low(z) >= accuracy - eps
        if ok_a != ok_b:
            return ok_a
        return (
            (a.cost, -a.accuracy) < (b.cost, -b.accuracy)
            if ok_a
            else (-a.accuracy, a.cost) < (-b.accuracy, b.cost)
        )
    limit = (budget or 0) + eps
    ok_a, ok_b = a.cost_high(z) <= limit, b.cost_high(z) <= limit
    if ok_a != ok_b:
        return ok_a
    return (
        (-a.accuracy, a.cost) < (-b.accuracy, b.cost)
        if ok_a
        else (a.cost, -a.accuracy) < (b.cost, -b.accuracy)
    )
