"""Graphs and guarded model calls the both-backends tests run: every node kind, guards that
re-ask and fall back, and custom guards that can or cannot travel to a Temporal activity.
Module-level, as the Temporal backend requires of what its workers import."""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel

import bandmaster as bm
from bandmaster.graph import AIStep, End, Graph, Human, MapReduce, Parallel, Route, Router, Step

INTENT_SCHEMA = {
    "type": "object",
    "required": ["label", "confidence"],
    "properties": {"label": {"enum": ["billing", "other"]}, "confidence": {"type": "number"}},
}


def classifier(text: str) -> str:
    """Answers prose first; valid JSON once re-asked (the re-ask names the error)."""
    if "was not valid" not in text:
        return "I think this is about billing."
    label = "billing" if "charged" in text else "other"
    return json.dumps({"label": label, "confidence": 0.9})


def summarizer(text: str) -> str:
    return f"summary of {len(text.split())} words"


def registry() -> bm.Registry:
    return bm.Registry.from_dict(
        {},
        models={"classifier": bm.CallableModel(classifier), "summarizer": bm.CallableModel(summarizer)},
    )


def measure(text: str) -> int:
    return len(text)


async def finish(state: dict[str, Any]) -> str:
    review = state.get("review", "none")
    return f"{state['classify']['output']['label']}:{state['measure']}:{review}"


def triage_graph() -> Graph:
    """ai (with a guard) and step in parallel, a router, a human wait with a timed default,
    a step, an end."""
    return Graph(
        "triage_graph",
        [
            Parallel("scan", branches=["classify", "measure"], next="route"),
            AIStep(
                "classify",
                model="classifier",
                prompt="Classify this ticket: {ticket.text}",
                guard={"temperature": 0, "output_schema": INTENT_SCHEMA, "reask": 1},
                retry=2,  # policy objects travel to the activity too
                breaker={"failures": 3},
                timeout=10,
            ),
            Step("measure", call="measure", inputs={"text": "ticket.text"}),
            Router(
                "route",
                routes=[Route(when="classify.output.label == 'billing'", to="review")],
                default="finish",
            ),
            Human("review", signal="approve", timeout=30, default="auto", next="finish"),
            Step("finish", call="finish", next="done"),
            End("done", output="finish"),
        ],
        input="ticket",
        steps={"measure": measure, "finish": finish},
    )


def summary_graph() -> Graph:
    """A map-reduce over a document longer than the map model's context."""
    return Graph(
        "summary_graph",
        [
            MapReduce(
                "summary",
                document="{input}",
                map_model="summarizer",
                map_prompt="Summarise part {index} of {count}: {chunk}",
                reduce_prompt="Join these: {summaries}",
                context_limit=40,
                next="done",
            ),
            End("done", output="summary"),
        ],
    )


# --- guarded model calls in code-first workflows ---------------------------------------------


class Reply(BaseModel):
    subject: str
    body: str
    tone: Literal["friendly", "formal"]


REPLY_GUARD = [
    bm.ModelSettings(temperature=0.2, response_format="json"),
    bm.BannedTopics(["diagnosis", "guarantee"], direction="output"),
    bm.MaxTokens(300, direction="output"),
    bm.JsonSchema(Reply, reask=2),
]


@bm.workflow
async def draft_reply(text: str) -> dict[str, Any]:
    response = await bm.call_model("drafter", text, guard=REPLY_GUARD)
    assert isinstance(response.output, Reply)  # a model instance again, on either backend
    return {"subject": response.output.subject, "model": response.model}


@bm.workflow
async def draft_strictly(text: str) -> str:
    """A banned topic in the answer is a violation that fails the call (no re-ask)."""
    response = await bm.call_model("drafter", text, guard=[bm.BannedTopics(["guarantee"])])
    return response.text


class EndsWith(bm.Guard):
    """A custom guard that travels: a module-level class with ``to_config``."""

    name = "ends_with"

    def __init__(self, suffix: str) -> None:
        self.suffix = suffix

    def to_config(self) -> dict[str, Any]:
        return {"suffix": self.suffix}

    async def check_output(self, response: bm.ModelResponse, request: bm.ModelRequest) -> bm.ModelResponse:
        if not response.text.endswith(self.suffix):
            raise self.violation("output", f"does not end with {self.suffix!r}")
        return response


class Untravelled(bm.Guard):
    """A custom guard without ``to_config``: fine on the embedded engine only."""

    name = "untravelled"


@bm.workflow
async def custom_guarded(text: str, suffix: str) -> str:
    response = await bm.call_model("drafter", text, guard=[EndsWith(suffix)])
    return response.text


@bm.workflow
async def untravelled_guard(text: str) -> str:
    response = await bm.call_model("drafter", text, guard=[Untravelled()])
    return response.text


# --- policy objects passed to call_model -----------------------------------------------------


@bm.workflow
async def retried_then_fallen_back(text: str) -> str:
    """``broken`` fails twice (its retries), then ``shout`` answers; the breaker counts."""
    response = await bm.call_model(
        "broken",
        text,
        retry=bm.Retry(attempts=2, initial=0.01, retry_on=(bm.ProviderUnavailable,)),
        breaker=bm.Breaker(failures=5, window=60, reset=60),
        fallback=["shout"],
    )
    return f"{response.output} by {response.model}"
