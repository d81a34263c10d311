"""What the question alone says: per candidate model, P(it answers correctly) and the expected
cost of asking it, learned from labelled examples. Used three ways:

``QuestionRouter``  a model that sends each request to the model with the best expected value
                    (``value`` * P(correct) - expected cost): one call per request.
``QuestionScorer``  a cascade scorer: stage k's score is P(stage k's model is right | question).
``GainScorer``      a cost-aware cascade scorer: escalate when the expected gain in correctness
                    per dollar of asking the next model is high, so expensive queries are not
                    escalated merely for being long.

Features are pluggable (``TextFeatures``: anything with scikit-learn's ``fit_transform`` /
``transform`` on a list of texts, e.g. an embedding model); the default is word uni- and bigram
TF-IDF. Each model's classifier is a logistic regression calibrated by cross-validation
(``CalibratedClassifierCV``, sigmoid). Costs are a per-model linear fit on the question's
length (input tokens grow with it). Needs the ``sklearn`` extra.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np

from bandmaster.errors import UsageError
from bandmaster.models import Model, ModelRequest, ModelResponse


class TextFeatures(Protocol):
    """Turns texts into a feature matrix, fitted on training texts (scikit-learn's API)."""

    def fit_transform(self, texts: Sequence[str]) -> Any: ...

    def transform(self, texts: Sequence[str]) -> Any: ...


def tfidf() -> TextFeatures:
    try:
        from sklearn.feature_extraction.text import TfidfVectorizer  # noqa: F401
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise UsageError("question routing needs scikit-learn: pip install 'bandmaster[sklearn]'") from exc
    return _Words()


class _Words:
    """Word uni- and bigram TF-IDF over words seen in at least two training questions. When no
    word is (every question a one-off code, or empty), one constant feature: the question then
    says nothing, and each model's classifier learns its base rate."""

    def __init__(self) -> None:
        self.vectorizer: Any = None

    def fit_transform(self, texts: Sequence[str]) -> Any:
        from sklearn.feature_extraction.text import TfidfVectorizer

        vectorizer = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True, max_features=50_000)
        try:
            x = vectorizer.fit_transform(texts)
        except ValueError:  # "no terms remain": no word shared by two questions
            self.vectorizer = None
            return np.ones((len(texts), 1))
        self.vectorizer = vectorizer
        return x

    def transform(self, texts: Sequence[str]) -> Any:
        return np.ones((len(texts), 1)) if self.vectorizer is None else self.vectorizer.transform(texts)


CALIBRATION_FOLDS = 3


class QuestionModel:
    """Per model: P(correct | question) and expected cost; ``fit`` on texts, a bool
    [n, models] correctness matrix and a USD [n, models] cost matrix."""

    def __init__(self, *, features: Callable[[], TextFeatures] = tfidf) -> None:
        self.make_features = features
        self.features: TextFeatures | None = None
        self.classifiers: list[Any] = []  # a fitted classifier, or the base rate as a float
        self.cost_fit: np.ndarray = np.zeros((0, 2))  # per model: intercept, USD per character
        self.cost_floor: np.ndarray = np.zeros(0)

    def fit(self, texts: Sequence[str], correct: np.ndarray, cost: np.ndarray) -> QuestionModel:
        from sklearn.calibration import CalibratedClassifierCV
        from sklearn.linear_model import LogisticRegression

        if len(texts) != correct.shape[0] or correct.shape != cost.shape:
            raise UsageError("texts, correct and cost must describe the same examples and models")
        self.features = self.make_features()
        x = self.features.fit_transform(list(texts))
        self.classifiers = []
        for k in range(correct.shape[1]):
            y = correct[:, k].astype(int)
            if min(y.sum(), len(y) - y.sum()) < CALIBRATION_FOLDS:  # too few of one class
                self.classifiers.append(float(y.mean()))
                continue
            base = LogisticRegression(C=1.0, max_iter=1000)
            model = CalibratedClassifierCV(base, method="sigmoid", cv=CALIBRATION_FOLDS)
            self.classifiers.append(model.fit(x, y))
        length = np.array([len(t) for t in texts], float)
        design = np.stack([np.ones_like(length), length], axis=1)
        self.cost_fit = np.linalg.lstsq(design, cost, rcond=None)[0].T  # [models, 2]
        self.cost_floor = cost.min(axis=0)
        return self

    def columns(self, models: Sequence[int]) -> QuestionModel:
        """The same model for some of its models, in this order (each model's classifier and
        cost fit are its own, so nothing is refitted)."""
        part = QuestionModel(features=self.make_features)
        part.features = self.features
        part.classifiers = [self.classifiers[k] for k in models]
        part.cost_fit = self.cost_fit[list(models)]
        part.cost_floor = self.cost_floor[list(models)]
        return part

    def p_correct(self, texts: Sequence[str]) -> np.ndarray:
        if self.features is None:
            raise UsageError("QuestionModel.fit must run before it predicts")
        x = self.features.transform(list(texts))
        columns = [
            np.full(len(texts), c) if isinstance(c, float) else c.predict_proba(x)[:, 1]
            for c in self.classifiers
        ]
        return np.stack(columns, axis=1)

    def expected_cost(self, texts: Sequence[str]) -> np.ndarray:
        length = np.array([len(t) for t in texts], float)
        estimate = self.cost_fit[:, 0][None, :] + length[:, None] * self.cost_fit[:, 1][None, :]
        return np.asarray(np.maximum(estimate, self.cost_floor[None, :]))


def out_of_fold(
    texts: Sequence[str],
    correct: np.ndarray,
    cost: np.ndarray,
    *,
    folds: np.ndarray,
    features: Callable[[], TextFeatures] = tfidf,
) -> tuple[np.ndarray, np.ndarray]:
    """P(correct) and expected cost for every example from a ``QuestionModel`` fitted without
    its fold (``folds``: a fold id per example)."""
    p = np.zeros(correct.shape)
    c = np.zeros(cost.shape)
    for fold in np.unique(folds):
        held = folds == fold
        model = QuestionModel(features=features).fit(
            [t for t, h in zip(texts, held, strict=True) if not h], correct[~held], cost[~held]
        )
        shown = [t for t, h in zip(texts, held, strict=True) if h]
        p[held], c[held] = model.p_correct(shown), model.expected_cost(shown)
    return p, c


def route(p: np.ndarray, cost: np.ndarray, value: float) -> np.ndarray:
    """Per example, the model with the best ``value`` * P(correct) - expected cost."""
    return np.asarray(np.argmax(value * p - cost, axis=1))


class QuestionRouter:
    """Sends each request to one of ``models`` by the question alone (see ``route``); the
    choice is in ``raw["route"]``."""

    def __init__(
        self, models: Sequence[Model], question: QuestionModel, *, value: float, name: str = "router"
    ) -> None:
        if len(question.classifiers) != len(models):
            raise UsageError(
                f"the question model was fitted for {len(question.classifiers)} models, not {len(models)}"
            )
        self.models, self.question, self.value, self.name = list(models), question, value, name

    async def request(self, req: ModelRequest) -> ModelResponse:
        text = [req.text()]
        chosen = int(route(self.question.p_correct(text), self.question.expected_cost(text), self.value)[0])
        response = await self.models[chosen].request(req)
        return response.model_copy(
            update={"raw": {**(response.raw or {}), "route": self.models[chosen].name}}
        )


class RandomMix:
    """Asks ``strong`` for a ``share`` of requests and ``weak`` for the rest: the baseline every
    router must beat. The split is by a hash of the request, so a replay asks the same model."""

    def __init__(self, weak: Model, strong: Model, *, share: float, name: str = "mix") -> None:
        if not 0.0 <= share <= 1.0:
            raise UsageError(f"share must be in [0, 1], got {share}")
        self.weak, self.strong, self.share, self.name = weak, strong, share, name

    async def request(self, req: ModelRequest) -> ModelResponse:
        digest = hashlib.sha256(req.fingerprint().encode()).digest()
        draw = int.from_bytes(digest[:8], "big") / 2**64
        return await (self.strong if draw < self.share else self.weak).request(req)


class QuestionScorer:
    """Cascade scorer: P(stage k's model is right | question), from a ``QuestionModel`` fitted on
    the cascade's models in order."""

    def __init__(self, question: QuestionModel) -> None:
        self.question = question

    def score(
        self, stage: int, request: ModelRequest, response: ModelResponse, earlier: Sequence[ModelResponse]
    ) -> float | None:
        return float(self.question.p_correct([request.text()])[0, stage])


def gain_score(trust: np.ndarray, p_next: np.ndarray, cost_next: np.ndarray, unit: float) -> np.ndarray:
    """Map the expected gain in correctness per dollar of asking the next model to a score in
    (0, 1] that falls as that gain rises: accept (score >= t) when the gain per dollar is below
    (1 - t) / (t · unit). ``unit`` (the next model's mean cost) makes the ratio unit-free."""
    gain = np.clip(p_next - trust, 0.0, None)
    return np.asarray(1.0 / (1.0 + gain * unit / np.maximum(cost_next, 1e-12)))


class GainScorer:
    """Cost-aware cascade scorer: ``base`` says how far the current answer can be trusted, the
    ``QuestionModel`` (fitted on the cascade's models in order) how likely the next model is
    right and what it would cost; see ``gain_score``."""

    def __init__(self, base: Any, question: QuestionModel, *, units: Sequence[float]) -> None:
        self.base, self.question, self.units = base, question, list(units)

    def score(
        self, stage: int, request: ModelRequest, response: ModelResponse, earlier: Sequence[ModelResponse]
    ) -> float | None:
        return self._gain(stage, request, self.base.score(stage, request, response, earlier))

    def pick(self, stage: int, request: ModelRequest, answered: Sequence[ModelResponse]) -> tuple[int, float]:
        """The base scorer's pick (``AgreementScorer``), else the latest answer; scored by gain."""
        if hasattr(self.base, "pick"):
            chosen, trust = self.base.pick(stage, request, answered)
        else:
            chosen, trust = stage, self.base.score(stage, request, answered[stage], answered[:stage])
        gained = self._gain(stage, request, trust)
        return chosen, trust if gained is None else gained

    def _gain(self, stage: int, request: ModelRequest, trust: float | None) -> float | None:
        if trust is None or stage + 1 >= len(self.question.classifiers):
            return trust  # the last stage: nothing to escalate to
        text = [request.text()]
        p = self.question.p_correct(text)[0, stage + 1]
        c = self.question.expected_cost(text)[0, stage + 1]
        return float(gain_score(np.array([trust]), np.array([p]), np.array([c]), self.units[stage + 1])[0])
