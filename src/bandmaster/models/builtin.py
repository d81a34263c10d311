"""Providers without extra dependencies: Python callables and recorded answers."""

from __future__ import annotations

import csv
import inspect
import json
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from bandmaster.errors import InvalidRequest, MalformedResponse
from bandmaster.models._base import ModelRequest, ModelResponse, Usage

CallableAnswer = ModelResponse | str | tuple[Any, float] | Mapping[str, Any]


def to_response(answer: Any, *, model: str, latency: float) -> ModelResponse:
    """Accept the shapes a Python function naturally returns; anything invalid (a confidence
    outside [0, 1], a wrong type) is a ``MalformedResponse``, like garbage from an API."""
    try:
        return _to_response(answer, model=model, latency=latency)
    except (ValidationError, ValueError, TypeError) as exc:
        raise MalformedResponse(f"model {model!r} returned an invalid answer: {exc}") from exc


def _to_response(answer: Any, *, model: str, latency: float) -> ModelResponse:
    if isinstance(answer, ModelResponse):
        return answer.model_copy(
            update={"model": answer.model or model, "latency": answer.latency or latency}
        )
    if isinstance(answer, str):
        return ModelResponse(output=answer, text=answer, model=model, latency=latency)
    if isinstance(answer, tuple) and len(answer) == 2:
        output, confidence = answer
        return ModelResponse(
            output=output, text=str(output), confidence=float(confidence), model=model, latency=latency
        )
    if isinstance(answer, Mapping):
        data = dict(answer)
        data.setdefault("model", model)
        data.setdefault("latency", latency)
        if "text" not in data and isinstance(data.get("output"), str):
            data["text"] = data["output"]
        return ModelResponse.model_validate(data)
    raise MalformedResponse(
        f"model {model!r} returned {type(answer).__name__}; return a ModelResponse, a string, "
        f"(output, confidence) or a dict of ModelResponse fields"
    )


class CallableModel:
    """A Python function as a model: ``fn(request)`` or, if it takes a ``str``, ``fn(text)``.
    Sync functions run inline, so keep them fast (rules, lookups, small local models)."""

    def __init__(
        self, fn: Callable[..., CallableAnswer | Awaitable[CallableAnswer]], *, name: str | None = None
    ) -> None:
        self.fn = fn
        self.name: str = name or str(getattr(fn, "__name__", "callable"))
        params = list(inspect.signature(fn).parameters.values())
        annotation = params[0].annotation if params else None
        self._wants_text = annotation in (str, "str")

    async def request(self, req: ModelRequest) -> ModelResponse:
        started = time.perf_counter()
        answer = self.fn(req.text() if self._wants_text else req)
        if inspect.isawaitable(answer):
            answer = await answer
        return to_response(answer, model=self.name, latency=time.perf_counter() - started)


def _truth(value: Any) -> bool | None:
    """Correctness as tables write it: 1/0, 1.0/0.0, true/false, yes/no, or empty."""
    if value is None or value == "":
        return None
    if isinstance(value, bool | int | float):
        return bool(value)
    text = str(value).strip().lower()
    if text in ("true", "yes", "y", "t"):
        return True
    if text in ("false", "no", "n", "f"):
        return False
    return bool(float(text))


class RecordedAnswer(BaseModel):
    output: Any
    text: str | None = None
    confidence: float | None = None
    cost: float = 0.0
    correct: bool | None = None
    usage: Usage = Usage()


class Recorded:
    """Answers from a table of real past responses, keyed by the request text: offline
    evaluation, replay and demos. Cost, confidence and correctness come from the table."""

    def __init__(self, answers: Mapping[str, RecordedAnswer | str], *, name: str = "recorded") -> None:
        self.name = name
        self.answers: dict[str, RecordedAnswer] = {
            key: value if isinstance(value, RecordedAnswer) else RecordedAnswer(output=value)
            for key, value in answers.items()
        }

    async def request(self, req: ModelRequest) -> ModelResponse:
        key = req.text()
        answer = self.answers.get(key)
        if answer is None:
            raise InvalidRequest(f"recorded model {self.name!r} has no answer for input {key[:80]!r}")
        text = answer.text if answer.text is not None else str(answer.output)
        return ModelResponse(
            output=answer.output,
            text=text,
            confidence=answer.confidence,
            usage=answer.usage,
            cost=answer.cost,
            model=self.name,
            raw={"correct": answer.correct},
        )

    @classmethod
    def from_rows(
        cls,
        rows: Iterable[Mapping[str, Any]],
        *,
        name: str,
        input_key: str = "input",
        output_key: str = "output",
        cost_key: str | None = "cost",
        confidence_key: str | None = "confidence",
        correct_key: str | None = "correct",
    ) -> Recorded:
        answers: dict[str, RecordedAnswer] = {}
        for number, row in enumerate(rows, 1):
            if input_key not in row or output_key not in row:
                raise InvalidRequest(
                    f"recorded table {name!r}, row {number}: needs {input_key!r} and {output_key!r}"
                )

            def number_or_none(key: str | None, row: Mapping[str, Any] = row) -> float | None:
                value = row.get(key) if key else None
                return float(value) if value not in (None, "") else None

            try:
                answers[str(row[input_key])] = RecordedAnswer(
                    output=row[output_key],
                    cost=number_or_none(cost_key) or 0.0,
                    confidence=number_or_none(confidence_key),
                    correct=_truth(row.get(correct_key) if correct_key else None),
                )
            except (ValueError, ValidationError) as exc:
                raise InvalidRequest(f"recorded table {name!r}, row {number}: {exc}") from exc
        return cls(answers, name=name)

    @classmethod
    def from_file(cls, path: str | Path, *, name: str | None = None, **columns: Any) -> Recorded:
        """Load a ``.jsonl`` or ``.csv`` table (column names as keyword arguments)."""
        path = Path(path)
        if not path.is_file():
            raise InvalidRequest(f"recorded table {path} does not exist")
        with path.open(newline="") as f:
            if path.suffix == ".jsonl":
                rows: list[Mapping[str, Any]] = [json.loads(line) for line in f if line.strip()]
            else:
                rows = list(csv.DictReader(f))
        return cls.from_rows(rows, name=name or path.stem, **columns)
