"""Confidence signals that real deployments have, as model wrappers: each asks the wrapped
model (and, for some, more calls) and returns its answer with ``confidence`` set, so a
``bm.Cascade`` uses it through ``ConfidenceScorer`` and ``Cascade.fit`` chooses thresholds on it
like on a classifier's probability.

``LogprobConfidence``  the provider's token log-probabilities (OpenAI-compatible ``logprobs``):
                       the answer token's probability, or the mean token log-probability.
``SelfConsistency``    ``samples`` answers at a temperature; the share that agree with the
                       majority is the confidence, the majority answer is returned.
``Verified``           a verifier model judges P(correct | question, answer).

Each response's ``cost`` is the sum of every call it made, so cost-aware fitting charges for
the signal. Wrappers, not subclasses: they hold any ``Model`` (STYLE.md, practice 3).
"""

from __future__ import annotations

import asyncio
import math
import re
from collections import Counter
from collections.abc import Sequence
from typing import Any, Literal

from bandmaster.errors import UsageError
from bandmaster.models import Model, ModelRequest, ModelResponse
from bandmaster.routing._fit import view

LogprobMode = Literal["answer", "mean"]


def token_logprobs(response: ModelResponse) -> list[float]:
    """Per-token log-probabilities a provider returned in ``raw["logprobs"]``: a list of
    numbers, or of ``{"token": ..., "logprob": ...}`` (the OpenAI ``logprobs.content`` shape).
    Empty when the provider gave none."""
    raw = (response.raw or {}).get("logprobs")
    if not isinstance(raw, list):
        return []
    values: list[float] = []
    for item in raw:
        value = item.get("logprob") if isinstance(item, dict) else item
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            values.append(float(min(value, 0.0)))
    return values


def logprob_confidence(response: ModelResponse, mode: LogprobMode = "answer") -> float | None:
    """``"answer"``: the probability of the first token (a label or option letter is one
    token); ``"mean"``: exp of the mean token log-probability (longer answers). None without
    logprobs."""
    values = token_logprobs(response)
    if not values:
        return None
    return math.exp(values[0] if mode == "answer" else sum(values) / len(values))


class LogprobConfidence:
    """Asks ``model`` for token log-probabilities and sets ``confidence`` from them; a
    response without any keeps the model's own confidence (None: the cascade escalates)."""

    def __init__(self, model: Model, *, mode: LogprobMode = "answer") -> None:
        if mode not in ("answer", "mean"):
            raise UsageError(f"mode must be 'answer' or 'mean', got {mode!r}")
        self.model, self.mode, self.name = model, mode, model.name

    async def request(self, req: ModelRequest) -> ModelResponse:
        asked = req.model_copy(update={"params": {**req.params, "logprobs": True}})
        response = await self.model.request(asked)
        confidence = logprob_confidence(response, self.mode)
        if confidence is None:
            return response
        return response.model_copy(update={"confidence": confidence})


class SelfConsistency:
    """``samples`` answers from ``model`` at ``temperature``; returns the majority answer with
    the share of samples that gave it as ``confidence``. Answers are compared as the cascade's
    agreement scorer compares them (option letters, labels, normalised text)."""

    def __init__(self, model: Model, *, samples: int = 5, temperature: float = 0.7) -> None:
        if isinstance(samples, bool) or not isinstance(samples, int) or samples < 2:
            raise UsageError(f"self-consistency needs at least 2 samples, got {samples!r}")
        self.model, self.samples, self.temperature, self.name = model, samples, temperature, model.name

    async def request(self, req: ModelRequest) -> ModelResponse:
        asked = req.model_copy(update={"temperature": self.temperature})
        answers: Sequence[ModelResponse] = await asyncio.gather(
            *(self.model.request(asked) for _ in range(self.samples))
        )
        keys = [view(a).key for a in answers]
        majority, votes = Counter(keys).most_common(1)[0]
        chosen = answers[keys.index(majority)]
        return chosen.model_copy(
            update={
                "confidence": votes / len(answers),
                "cost": sum(a.cost for a in answers),
                "latency": max(a.latency for a in answers),
                "raw": {**(chosen.raw or {}), "samples": keys},
            }
        )


_PLACEHOLDER = re.compile(r"\{(question|answer)\}")
VERIFY = (
    "Question:\n{question}\n\nProposed answer:\n{answer}\n\n"
    "Is the proposed answer correct? Reply with one word: yes or no."
)


def verdict(response: ModelResponse) -> float | None:
    """P(correct) from a verifier's yes/no answer: its confidence (or first-token probability)
    in what it said, turned around for a "no"."""
    said = (response.text or str(response.output or "")).strip().lower()
    yes, no = said.startswith("yes"), said.startswith("no")
    if not (yes or no):
        return None
    sure = response.confidence if response.confidence is not None else logprob_confidence(response)
    if sure is None:
        return 1.0 if yes else 0.0
    return sure if yes else 1.0 - sure


class Verified:
    """Asks ``model``, then ``verifier`` whether the answer is right (``prompt`` takes
    ``{question}`` and ``{answer}``); ``confidence`` is the verifier's P(correct). A verifier
    that answers neither yes nor no leaves it None (the cascade escalates)."""

    def __init__(self, model: Model, verifier: Model, *, prompt: str = VERIFY) -> None:
        if "{question}" not in prompt or "{answer}" not in prompt:
            raise UsageError("the verifier prompt must contain {question} and {answer}")
        self.model, self.verifier, self.prompt, self.name = model, verifier, prompt, model.name

    async def request(self, req: ModelRequest) -> ModelResponse:
        response = await self.model.request(req)
        answer = response.text or str(response.output or "")
        # One pass over the template: the question and answer are data, never a format spec,
        # and braces inside them are not placeholders.
        fill = {"question": req.text(), "answer": answer}
        text = _PLACEHOLDER.sub(lambda m: fill[m.group(1)], self.prompt)
        judged = await self.verifier.request(
            ModelRequest(input=text, max_tokens=1, params={"logprobs": True})
        )
        raw: dict[str, Any] = {**(response.raw or {}), "verifier": judged.text or str(judged.output)}
        return response.model_copy(
            update={
                "confidence": verdict(judged),
                "cost": response.cost + judged.cost,
                "latency": response.latency + judged.latency,
                "raw": raw,
            }
        )
