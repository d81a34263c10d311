"""Learning a cascade from labelled examples: a scorer (when the models give no confidence)
and per-stage thresholds that minimise cost at a target accuracy, or maximise accuracy within a
budget.

Everything is learned on the training examples only. Thresholds are chosen on *out-of-fold*
scores (each example scored by a scorer that never saw it), so the fitted operating point is
an honest estimate rather than an overfit one.

The learned scorer (``AgreementScorer``) looks at every answer the cascade has so far. At stage
*k* it scores each of the k+1 answers ("candidates") with a logistic regression of its own for
that stage, on features of agreement (which models gave the same or a similar answer, vote
share, agreement on a code answer's function name), form (a bare option letter, a code
definition), the model that gave it and sizes. The stage's score is that of its most trusted
candidate, and that candidate is the answer the cascade returns if the stage accepts: a
majority of cheap models can outvote the model asked last.

Numerics are plain numpy (a small Newton solver for the logistic regressions), so fitting needs
no optional dependency.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel

from bandmaster.errors import UsageError
from bandmaster.models import Model, ModelRequest, ModelResponse
from bandmaster.routing._thresholds import Decisions


class Example(BaseModel):
    """A labelled input. ``label`` is compared with a model's output unless the model's
    response says itself whether it was right (``raw["correct"]``, as recorded tables do)."""

    input: str
    label: Any = None


Judge = Callable[[Example, ModelResponse], bool]
# What the last stage returns: the most trusted answer of all stages, or the last model's own.
FinalAnswer = Literal["best", "last"]


def default_judge(example: Example, response: ModelResponse) -> bool:
    recorded = (response.raw or {}).get("correct")
    if recorded is not None:
        return bool(recorded)
    return bool(response.output == example.label)


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
    requests = [ModelRequest(input=e.input) for e in examples]

    async def one(model: Model, request: ModelRequest) -> ModelResponse:
        async with gate:
            return await model.request(request)

    columns: list[list[ModelResponse]] = []
    for model in models:
        batch = getattr(model, "request_batch", None)
        if batch is not None:  # a local model answers every example in one call (one predict)
            columns.append(list(await batch(requests)))
        else:
            columns.append(list(await asyncio.gather(*(one(model, r) for r in requests))))
    responses = [list(row) for row in zip(*columns, strict=True)]
    correct = np.array(
        [[judge(e, r) for r in row] for e, row in zip(examples, responses, strict=True)], bool
    ).reshape(len(examples), len(models))
    cost = np.array([[r.cost for r in row] for row in responses], float).reshape(len(examples), len(models))
    return Outcomes(list(responses), correct, cost)


# --- what the scorer sees in one answer -------------------------------------------------------

# A bare choice: "B", "B)", "(B)", "b." or "B) the answer text". Multiple-choice answers are
# compared by that letter, so "B\n" and "B)" agree.
_CHOICE = re.compile(r"^\(?([A-Za-z0-9]{1,2})(?:[).:]|\)\s.*)?$", re.S)
# A choice stated in words: "The answer is (B).", "Option 2", "Correct answer: C) Paris".
# Matched only on short answers: the pattern's optional spaces backtrack on long runs of them.
_STATED = re.compile(
    r"^(?:the\s+)?(?:correct\s+|best\s+|final\s+|right\s+)?(?:answer|option|choice)"
    r"(?:\s+is)?\s*[:=-]?\s*\(?([A-Za-z0-9]{1,2})(?:[).:,]\s*.*|\s*)$",
    re.S | re.I,
)
STATED_MAX = 120  # characters
_FENCE_INFO = re.compile(r"[A-Za-z0-9_+-]*\n")  # a fence's language tag and newline
# Indentation is spaces and tabs only: "\s*" here would span blank lines and backtrack.
_DEF = re.compile(
    r"^[ \t]*(?:async[ \t]+)?(?:def|function|fn|func)[ \t]+([A-Za-z_]\w*)[ \t]*\(([^)]*)\)", re.M
)
_TOKEN = re.compile(r"[A-Za-z_]\w*|\d+(?:\.\d+)?|[^\s\w]")
_COMMENT = re.compile(r"#[^\n]*")


@dataclass(frozen=True)
class AnswerView:
    """The parts of an answer the agreement features compare."""

    key: str  # normalised answer: the option letter of a bare choice, else the collapsed text
    choice: bool  # a bare option letter / short label
    code: bool  # defines a function
    function: str | None  # name of the first function defined
    arity: int | None  # how many parameters it takes (tests call it with a fixed number)
    tokens: frozenset[str]  # tokens of the code block (or of the whole answer), comments dropped
    length: float  # log of the answer's size
    confidence: float | None


def view(response: ModelResponse) -> AnswerView:
    text = response.text or ("" if response.output is None else str(response.output))
    stripped = text.strip()
    choice = _CHOICE.match(stripped) or (_STATED.match(stripped) if len(stripped) <= STATED_MAX else None)
    # The whole answer is one short label ("B", "spam"): compare labels exactly.
    short = choice is not None or (len(stripped) <= 24 and len(stripped.split()) <= 1)
    key = (choice.group(1) if choice else " ".join(stripped.split())).lower()
    blocks = code_blocks(text)
    body = "\n".join(blocks) if blocks else text
    definition = _DEF.search(body)
    return AnswerView(
        key=key,
        choice=short,
        code=definition is not None,
        function=definition.group(1) if definition else None,
        arity=_arity(definition.group(2)) if definition else None,
        tokens=frozenset(_TOKEN.findall(_COMMENT.sub("", body))) if not short else frozenset((key,)),
        length=math.log1p(len(stripped)) / 10,
        confidence=response.confidence,
    )


def code_blocks(text: str) -> list[str]:
    """The code in ```lang fences and [PYTHON] ... [/PYTHON] tags, in one pass over ``text``
    (a lazy regex rescans the rest of the text for every unclosed opening: quadratic on
    garbage output)."""
    blocks = []
    parts = text.split("```")
    for inside in parts[1:-1:2]:  # between an opening and its closing fence
        info = _FENCE_INFO.match(inside)
        if info:
            blocks.append(inside[info.end() :])
    start = 0
    while (opening := text.find("[PYTHON]", start)) >= 0:
        closing = text.find("[/PYTHON]", opening)
        if closing < 0:
            break
        blocks.append(text[opening + len("[PYTHON]") : closing])
        start = closing + len("[/PYTHON]")
    return blocks


def _arity(parameters: str) -> int:
    names = [p.strip() for p in parameters.split(",") if p.strip()]
    return len([p for p in names if p not in ("self", "cls") and not p.startswith("*")])


def similarity(a: AnswerView, b: AnswerView) -> float:
    """1 for the same label; for longer answers the Jaccard overlap of their token sets (two
    correct programs rarely match exactly, but they share most identifiers and operators)."""
    if not a.key or not b.key:
        return 0.0  # two empty answers do not agree on anything
    if a.choice or b.choice:
        return float(a.key == b.key)
    if a.key == b.key:
        return 1.0
    union = len(a.tokens | b.tokens)
    return len(a.tokens & b.tokens) / union if union else 0.0


@dataclass
class Panel:
    """Precomputed answer views of M models on n examples, so that features of any subset of
    the models (``Cascade.search``) are slices instead of recomputation."""

    same: np.ndarray  # bool [n, M, M]: identical normalised answers
    sim: np.ndarray  # float [n, M, M]
    same_function: np.ndarray  # bool [n, M, M]: both define the same function name
    same_arity: np.ndarray  # bool [n, M, M]: both define a function with as many parameters
    choice: np.ndarray  # float [n, M]
    code: np.ndarray  # float [n, M]
    length: np.ndarray  # float [n, M]
    confidence: np.ndarray  # float [n, M] (0.5 where the model gave none)
    has_confidence: np.ndarray  # float [n, M]
    query: np.ndarray  # float [n]: log of the query's size

    @classmethod
    def build(cls, requests: Sequence[ModelRequest], responses: Sequence[Sequence[ModelResponse]]) -> Panel:
        n = len(responses)
        m = len(responses[0]) if n else 0
        views = [[view(r) for r in row] for row in responses]
        same = np.zeros((n, m, m), bool)
        sim = np.zeros((n, m, m))
        fn = np.zeros((n, m, m), bool)
        arity = np.zeros((n, m, m), bool)
        for e, row in enumerate(views):
            for i in range(m):
                for j in range(i, m):
                    a, b = row[i], row[j]
                    same[e, i, j] = same[e, j, i] = a.key == b.key
                    sim[e, i, j] = sim[e, j, i] = similarity(a, b)
                    fn[e, i, j] = fn[e, j, i] = a.function is not None and a.function == b.function
                    arity[e, i, j] = arity[e, j, i] = a.arity is not None and a.arity == b.arity
        conf = np.array([[v.confidence if v.confidence is not None else 0.5 for v in row] for row in views])
        return cls(
            same=same,
            sim=sim,
            same_function=fn,
            same_arity=arity,
            choice=np.array([[float(v.choice) for v in row] for row in views]).reshape(n, m),
            code=np.array([[float(v.code) for v in row] for row in views]).reshape(n, m),
            length=np.array([[v.length for v in row] for row in views]).reshape(n, m),
            confidence=conf.reshape(n, m),
            has_confidence=np.array(
                [[float(v.confidence is not None) for v in row] for row in views]
            ).reshape(n, m),
            query=np.array([math.log1p(len(q.text())) / 10 for q in requests]),
        )

    def features(self, stages: Sequence[int]) -> np.ndarray:
        """Candidate features [n, k+1, F] for the decision after ``stages`` (panel columns, in
        the order asked) have answered: one row per answer so far."""
        s = np.asarray(stages)
        m = len(s)
        n = self.sim.shape[0]
        others = ~np.eye(m, dtype=bool)
        sim = self.sim[:, s][:, :, s] * others  # agreement with each other stage, self zeroed
        same = self.same[:, s][:, :, s] & others
        votes = 1 + same.sum(axis=2)  # answers identical to this one, itself included
        denominator = max(m - 1, 1)
        columns = [
            np.broadcast_to(np.eye(m), (n, m, m)),  # which model gave it (its prior reliability)
            sim,  # which models agree with it
            (sim.sum(axis=2) / denominator)[..., None],  # vote share (similarity-weighted)
            (same.sum(axis=2) / denominator)[..., None],  # exact vote share
            (votes == votes.max(axis=1, keepdims=True))[..., None],  # the plurality answer
            ((self.same_function[:, s][:, :, s] & others).sum(axis=2) / denominator)[..., None],
            # code that takes as many parameters as the others' (a test calls it one way)
            ((self.same_arity[:, s][:, :, s] & others).sum(axis=2) / denominator)[..., None],
            self.choice[:, s][..., None],
            self.code[:, s][..., None],
            self.confidence[:, s][..., None],
            self.has_confidence[:, s][..., None],
            self.length[:, s][..., None],
            np.broadcast_to(self.query[:, None, None], (n, m, 1)),
        ]
        return np.concatenate([np.asarray(c, float) for c in columns], axis=2)


# --- logistic regression ----------------------------------------------------------------------


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return np.asarray(1 / (1 + np.exp(-np.clip(z, -30, 30))))


@contextlib.contextmanager
def small_blas() -> Iterator[None]:
    """Fitting multiplies many small matrices, where a BLAS thread pool costs more in waking
    and spinning threads than it saves (ten times slower, measured on two cores). While
    fitting, limit it to one thread with threadpoolctl (installed with scikit-learn) when
    available; without it fitting is only slower."""
    try:
        from threadpoolctl import threadpool_limits  # type: ignore[import-untyped, unused-ignore]
    except ImportError:  # pragma: no cover - depends on the environment
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def fit_logistic(
    x: np.ndarray, y: np.ndarray, *, l2: float = 1.0, iterations: int = 30, start: np.ndarray | None = None
) -> np.ndarray:
    """L2-regularised logistic regression by Newton steps; returns weights, intercept last.
    ``start`` (weights fitted on similar data, e.g. another fold) saves most of the steps.
    Each step is halved until the penalised loss goes down: a full Newton step from zero can
    overshoot and diverge (weights of hundreds to billions) where features are nearly collinear, as the
    model indicators and the intercept are."""
    n, d = x.shape
    xb = np.hstack([x, np.ones((n, 1))])
    w = np.zeros(d + 1)
    rate = float(np.clip(y.mean(), 1e-3, 1 - 1e-3)) if n else 0.5
    w[-1] = math.log(rate / (1 - rate))
    if n == 0 or y.all() or not y.any():
        return w  # one class only: its base rate
    if start is not None:
        w = start.copy()
    penalty = np.full(d + 1, l2)
    penalty[-1] = 1e-6  # the intercept is (almost) free
    loss = _penalised_loss(xb, y, w, penalty)
    for _ in range(iterations):
        p = _sigmoid(xb @ w)
        gradient = xb.T @ (p - y) + penalty * w
        hessian = (xb.T * (p * (1 - p))) @ xb + np.diag(penalty)
        step = np.linalg.solve(hessian, gradient)
        for _ in range(30):  # halve the step until the loss does not rise
            tried = w - step
            tried_loss = _penalised_loss(xb, y, tried, penalty)
            if tried_loss <= loss:
                break
            step = step / 2
        else:
            break  # no step lowers the loss: at the minimum, to numerical precision
        w, loss = tried, tried_loss
        if np.abs(step).max() < 1e-5:  # scores stable to ~1e-5
            break
    return w


def _penalised_loss(xb: np.ndarray, y: np.ndarray, w: np.ndarray, penalty: np.ndarray) -> float:
    """Negative log-likelihood plus the ridge term whose gradient ``fit_logistic`` uses."""
    z = xb @ w
    return float(np.sum(np.logaddexp(0.0, z) - y * z) + 0.5 * np.sum(penalty * w * w))


def _predict(w: np.ndarray, x: np.ndarray) -> np.ndarray:
    return _sigmoid(x @ w[:-1] + w[-1])


L2 = 3.0  # ridge on the stage regressions: a few hundred examples, up to ~20 features each


def fit_stage(x: np.ndarray, y: np.ndarray, start: np.ndarray | None = None) -> np.ndarray:
    """Weights of one stage's decision from candidate features ``x`` [n, k+1, F] and whether
    each candidate answer was right ``y`` [n, k+1]."""
    return fit_logistic(x.reshape(-1, x.shape[2]), y.reshape(-1).astype(float), l2=L2, start=start)


# --- the learned scorer -----------------------------------------------------------------------


class AgreementScorer:
    """Per stage, a logistic regression scoring each answer so far by agreement, form and
    source; ``pick`` returns the most trusted answer and its score (see the module doc)."""

    def __init__(self, weights: Sequence[np.ndarray] = ()) -> None:
        self.weights: list[np.ndarray] = list(weights)

    def fit(self, panel: Panel, correct: np.ndarray, stages: Sequence[int] | None = None) -> AgreementScorer:
        """``correct`` is bool [n, M] over the panel's columns; ``stages`` the columns that form
        the cascade, cheapest first (default: all, in order)."""
        order = list(range(correct.shape[1])) if stages is None else list(stages)
        self.weights = [
            fit_stage(panel.features(order[: k + 1]), correct[:, order[: k + 1]]) for k in range(len(order))
        ]
        return self

    def probabilities(self, stage: int, features: np.ndarray) -> np.ndarray:
        if stage >= len(self.weights):
            raise UsageError(f"this scorer was fitted for {len(self.weights)} stages, not stage {stage}")
        return _predict(self.weights[stage], features)

    def pick(self, stage: int, request: ModelRequest, answered: Sequence[ModelResponse]) -> tuple[int, float]:
        """The most trusted of the answers so far (index into ``answered``) and its score."""
        probabilities = self.probabilities(stage, _single(request, answered))
        best = int(np.argmax(probabilities))
        return best, float(probabilities[best])

    def score(
        self, stage: int, request: ModelRequest, response: ModelResponse, earlier: Sequence[ModelResponse]
    ) -> float | None:
        return float(self.probabilities(stage, _single(request, [*earlier, response]))[-1])


def _single(request: ModelRequest, answered: Sequence[ModelResponse]) -> np.ndarray:
    panel = Panel.build([request], [list(answered)])
    return np.asarray(panel.features(range(len(answered)))[0])


def check_examples(n: int, folds: int) -> None:
    """Enough labelled examples for ``folds``-fold cross-validation (two per fold)? Checked
    before any model is asked."""
    if n < 2 * folds:
        raise UsageError(f"fitting needs at least {2 * folds} labelled examples, got {n}")


def fold_ids(n: int, folds: int, seed: int = 0) -> np.ndarray:
    check_examples(n, folds)
    ids = np.empty(n, int)
    ids[np.random.default_rng(seed).permutation(n)] = np.arange(n) % folds
    return ids


class OutOfFold:
    """Out-of-fold stage decisions for any ordered subset of a panel's models. Results are
    cached per prefix of stages: cascades that start with the same models share them."""

    def __init__(self, panel: Panel, correct: np.ndarray, *, folds: int = 5, seed: int = 0) -> None:
        self.panel = panel
        self.correct = correct
        self.folds = fold_ids(correct.shape[0], folds, seed)
        self._cache: dict[tuple[int, ...], tuple[np.ndarray, np.ndarray]] = {}

    def stage(self, stages: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
        """(score, column of the picked answer) per example for the decision after ``stages``."""
        if stages not in self._cache:
            x = self.panel.features(stages)
            y = self.correct[:, list(stages)]
            scores = np.zeros(x.shape[0])
            picked = np.zeros(x.shape[0], int)
            w: np.ndarray | None = None
            for fold in np.unique(self.folds):
                held = self.folds == fold
                w = fit_stage(x[~held], y[~held], start=w)
                p = _predict(w, x[held])
                best = p.argmax(axis=1)
                scores[held] = p[np.arange(len(best)), best]
                picked[held] = np.asarray(stages)[best]
            self._cache[stages] = (scores, picked)
        return self._cache[stages]

    def decisions(self, stages: Sequence[int], cost: np.ndarray, *, final: FinalAnswer = "best") -> Decisions:
        """``final="best"``: the last stage returns the most trusted answer; ``"last"``: its own."""
        n = self.correct.shape[0]
        scores = np.zeros((n, len(stages)))
        right = np.zeros((n, len(stages)), bool)
        for k in range(len(stages)):
            score, picked = self.stage(tuple(stages[: k + 1]))
            scores[:, k] = score
            right[:, k] = self.correct[np.arange(n), picked]
        if final == "last":
            right[:, -1] = self.correct[:, stages[-1]]
        return Decisions(scores, right, cost[:, list(stages)])


def stage_scores(scorer: AgreementScorer, panel: Panel, stages: Sequence[int]) -> np.ndarray:
    """[n, S]: the score of each stage's decision (its most trusted answer) on the panel."""
    return np.stack(
        [scorer.probabilities(k, panel.features(stages[: k + 1])).max(axis=1) for k in range(len(stages))],
        axis=1,
    )
