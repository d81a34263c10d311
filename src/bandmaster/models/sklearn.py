"""scikit-learn (or any estimator with ``predict_proba``) as a model: the label is the output,
the predicted probability of that label the confidence. Loads ``.joblib`` files."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bandmaster.errors import UsageError
from bandmaster.models._base import ModelRequest, ModelResponse

try:
    import joblib
except ImportError as exc:  # pragma: no cover - exercised without the extra
    raise ImportError("the scikit-learn provider needs joblib: pip install 'bandmaster[sklearn]'") from exc


class SklearnModel:
    """Predictions run inline: a fitted text pipeline answers one input in well under a ms."""

    def __init__(self, estimator: Any, *, name: str | None = None) -> None:
        if isinstance(estimator, str | Path):
            path = Path(estimator)
            if not path.is_file():
                raise UsageError(f"scikit-learn model file {path} does not exist")
            name = name or path.stem
            estimator = joblib.load(path)
        if not hasattr(estimator, "predict"):
            raise UsageError(f"{type(estimator).__name__} has no predict(); pass a fitted estimator")
        self.estimator = estimator
        self.name = name or type(estimator).__name__

    async def request(self, req: ModelRequest) -> ModelResponse:
        return (await self.request_batch([req]))[0]

    async def request_batch(self, requests: Sequence[ModelRequest]) -> list[ModelResponse]:
        """Many inputs in one ``predict_proba``: what fitting and evaluating a cascade use, where
        one call per example would spend its time in per-call overhead."""
        started = time.perf_counter()
        features = [req.input if isinstance(req.input, dict) else req.text() for req in requests]
        if hasattr(self.estimator, "predict_proba"):
            probabilities = self.estimator.predict_proba(features)
            best = probabilities.argmax(axis=1)
            labels: list[Any] = [self.estimator.classes_[i] for i in best]
            confidences: list[float | None] = [float(p[i]) for p, i in zip(probabilities, best, strict=True)]
        else:
            labels, confidences = list(self.estimator.predict(features)), [None] * len(features)
        latency = (time.perf_counter() - started) / max(1, len(features))
        return [
            ModelResponse(
                output=label.item() if hasattr(label, "item") else label,
                text=str(label),
                confidence=confidence,
                model=self.name,
                latency=latency,
            )
            for label, confidence in zip(labels, confidences, strict=True)
        ]
