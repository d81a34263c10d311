"""The models of the support triage, registered under the names the workflow calls.

intent      a cascade small → medium → large over the local intent models (``local_models.py``),
            thresholds fitted on the training tickets; with ``BANDMASTER_TRIAGE_LLM`` set to an
            OpenAI-compatible model name (and ``OPENAI_BASE_URL``/``OPENAI_API_KEY``), that LLM
            replaces the local large model as the last stage
reply       drafts a JSON reply to a billing question (a local template model here)
summarizer  condenses a customer's earlier messages for the agent (extractive, local)

``Chaos`` wraps a model and injects the faults the field reports list (timeouts, 429s, garbage
output) so ``bandmaster demo --chaos`` shows the policies at work.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from local_models import PRICES, train
from triage import REDACTOR

import bandmaster as bm
from bandmaster.models.sklearn import SklearnModel

LLM_LABELS = "billing, clinical, technical, account"


class Priced:
    """A local model billed at a nominal per-call price, so cascade costs mean something."""

    def __init__(self, model: bm.Model, price: float) -> None:
        self.model, self.price, self.name = model, price, model.name

    async def request(self, req: bm.ModelRequest) -> bm.ModelResponse:
        response = await self.model.request(req)
        return response.model_copy(update={"cost": self.price, "model": self.name})

    async def request_batch(self, requests: Sequence[bm.ModelRequest]) -> list[bm.ModelResponse]:
        # Cascade.fit asks for every example at once when a model can answer a batch.
        responses = await self.model.request_batch(requests)  # type: ignore[attr-defined]
        return [r.model_copy(update={"cost": self.price, "model": self.name}) for r in responses]


class Chaos:
    """Injects faults into a fraction of calls: slow answers (past the step timeout), 429s with
    Retry-After, 503s and garbage. Seeded, so a run under chaos is repeatable."""

    def __init__(self, model: bm.Model, *, rate: float, seed: int = 7, delay: float = 3.0) -> None:
        self.model, self.rate, self.delay, self.name = model, rate, delay, model.name
        self.random = random.Random(seed)
        self.injected: dict[str, int] = {"timeout": 0, "429": 0, "503": 0, "garbage": 0}

    async def request(self, req: bm.ModelRequest) -> bm.ModelResponse:
        if self.random.random() >= self.rate:
            return await self.model.request(req)
        fault = self.random.choice(list(self.injected))
        self.injected[fault] += 1
        if fault == "timeout":
            await asyncio.sleep(self.delay)
        if fault == "429":
            raise bm.RateLimited(f"{self.name}: rate limited (injected)", retry_after=0.05)
        if fault == "503":
            raise bm.ProviderUnavailable(f"{self.name}: 503 (injected)")
        if self.name.startswith("intent"):  # a classifier's garbage fails parsing in the provider
            raise bm.MalformedResponse(f"{self.name}: unparseable answer (injected)")
        response = await self.model.request(req)
        return response.model_copy(update={"text": '{"subject": "Re: your bill", "body": ', "output": "???"})


def write_reply(text: str) -> str:
    """A billing auto-reply as JSON, chosen by what the question is about."""
    lowered = text.lower()
    topics = [
        (
            ("refund", "twice", "overcharg"),
            "We have opened a refund review; refunds post within 5-7 business days.",
        ),
        (
            ("itemized", "receipt", "statement"),
            "An itemized statement has been sent to the e-mail on your account.",
        ),
        (
            ("payment plan", "balance"),
            "You can set up a payment plan under Billing > Payment plans in the portal.",
        ),
        (
            ("insurance", "claim", "copay", "aetna", "cigna", "humana"),
            "We will re-submit the claim to your insurer.",
        ),
    ]
    body = next(
        (answer for words, answer in topics if any(w in lowered for w in words)),
        "A billing specialist has reviewed your question and will follow up by e-mail.",
    )
    return json.dumps({"subject": "Re: your billing question", "body": body})


def summarize(text: str) -> str:
    """The first clause of each earlier message: what the agent needs at a glance."""
    lines = [line.split(",")[0].split("?")[0].strip() for line in text.splitlines() if line.strip()]
    return "Earlier: " + "; ".join(lines[:3])


@dataclass
class TriageModels:
    registry: bm.Registry
    cascade: bm.Cascade
    tiers: dict[str, bm.Model]
    chaos: list[Chaos]


def _llm_stage() -> bm.Model | None:
    name = os.environ.get("BANDMASTER_TRIAGE_LLM")
    if not name:
        return None
    from bandmaster.models.openai_compat import OpenAICompatModel

    return OpenAICompatModel(name)  # answers with one of LLM_LABELS, asked by the system prompt


def redacted_texts(texts: Sequence[str], *, cache_dir: Path | None) -> list[str]:
    """The training texts as the workflow's redactor leaves them, so no name, date or number
    from a training ticket can become a vocabulary term of a cached model (the models only ever
    see redacted tickets in the workflow, too). Presidio takes ~10 ms a text: the result is
    cached beside the models, keyed by the texts and the redactor's settings."""
    settings = json.dumps([REDACTOR.to_config(), list(texts)])
    path = (
        cache_dir / f"redacted-{hashlib.sha256(settings.encode()).hexdigest()[:16]}.json"
        if cache_dir
        else None
    )
    if path is not None and path.is_file():
        cached = json.loads(path.read_text())
        if isinstance(cached, list) and len(cached) == len(texts):
            return [str(text) for text in cached]
    result = REDACTOR.redact_texts(texts)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result))
    return result


async def build_models(
    train_rows: Sequence[dict[str, Any]],
    *,
    cache_dir: Path | None,
    chaos: float = 0.0,
    target: float | None = None,
) -> TriageModels:
    """Train (or load) the local models on two thirds of the training tickets, fit the cascade's
    thresholds on the other third (confidences on the models' own training data are too rosy),
    and register everything under the names the workflow calls. Both on redacted text: what
    the workflow's models are asked about, and nothing a cached model could leak."""
    rows = list(train_rows)
    random.Random(0).shuffle(rows)  # public sets come sorted by label: both parts must see every label
    split = len(rows) * 2 // 3
    labels = [str(r["intent"]) for r in rows]
    texts = await asyncio.to_thread(redacted_texts, [str(r["text"]) for r in rows], cache_dir=cache_dir)
    fitted = await asyncio.to_thread(train, texts[:split], labels[:split], cache_dir=cache_dir)
    tiers: dict[str, bm.Model] = {
        tier: Priced(SklearnModel(pipeline, name=f"intent-{tier}"), PRICES[tier])
        for tier, pipeline in fitted.items()
    }
    llm = _llm_stage()
    if llm is not None:
        tiers["large"] = llm
    cascade = bm.Cascade(list(tiers.values()), name="intent-cascade")
    held_texts, held_labels = texts[split:], labels[split:]
    examples = [
        bm.Example(input=text, label=label) for text, label in zip(held_texts, held_labels, strict=True)
    ]
    if target is None:
        # What the large model alone reaches on the held-out third: cost less at no loss.
        large_correct = fitted["large"].predict(held_texts) == held_labels
        target = float(sum(large_correct) / len(held_labels))
    await cascade.fit(examples, target={"accuracy": target})
    chaos_wrappers: list[Chaos] = []
    reply: bm.Model = bm.CallableModel(write_reply, name="reply-templates")
    if chaos:
        wrapped = [Chaos(model, rate=chaos, seed=i) for i, model in enumerate(cascade.models)]
        cascade.models = list(wrapped)
        reply = Chaos(reply, rate=chaos, seed=99)
        chaos_wrappers = [*wrapped, reply]
    registry = bm.Registry.from_dict(
        {
            "aliases": {
                "intent": {
                    "versions": {"production": "intent-cascade"},
                    "policy": {
                        "timeout": 1.0,
                        "retry": {"attempts": 4, "initial": 0.02},
                        "fallback": ["intent-large"],
                    },
                },
                "reply": {
                    "versions": {"production": "reply-templates"},
                    "policy": {"timeout": 1.0, "retry": {"attempts": 4, "initial": 0.02}},
                },
            }
        },
        models={
            "intent-cascade": cascade,
            "reply-templates": reply,
            "summarizer": bm.CallableModel(summarize, name="summarizer"),
            **{f"intent-{tier}": model for tier, model in tiers.items()},
        },
    )
    return TriageModels(registry=registry, cascade=cascade, tiers=tiers, chaos=chaos_wrappers)
