"""scikit-learn (or any estimator with ``predict_proba``) as a model: the label is the output,
the predicted probability of that label the confidence. Loads ``.joblib`` files."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from bandmaster.errors import UsageError
from bandmaster.models.base import ModelRequest, ModelResponse

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
        started = time.perf_counter()
        features = [req.input if isinstance(req.input, dict) else req.text()]
        if hasattr(self.estimator, "predict_proba"):
            probabilities = self.estimator.predict_proba(features)[0]
            best = int(probabilities.argmax())
            label: Any = self.estimator.classes_[best]
            confidence: float | None = float(probabilities[best])
        else:
            label, confidence = self.estimator.predict(features)[0], None
        label = label.item() if hasattr(label, "item") else label
        return ModelResponse(
            output=label,
            text=str(label),
            confidence=confidence,
            model=self.name,
            latency=time.perf_counter() - started,
        )
