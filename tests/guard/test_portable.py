"""Guards as data (``bandmaster.guard._portable``): what carries ``call_model(guard=...)`` to a
worker process. Every built-in guard, the flagship's reply guard and the YAML guard set
survive the trip as JSON and behave the same after it; what cannot travel says why."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel
from tests.extras import DEMO, needs

import bandmaster as bm
from bandmaster.guard._base import Reask
from bandmaster.guard._portable import guard_from_data, guards_as_data, guards_from_data
from bandmaster.guard._spec import GuardSpec

demo = needs("demo", *DEMO)

json_schema = needs("guard", "jsonschema")

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


class Verdict(BaseModel):
    verdict: str


def toxicity(text: str) -> float:
    return 1.0 if "idiot" in text else 0.0


def trip(guards: list[bm.Guard]) -> tuple[bm.Guard, ...]:
    """Through JSON text, as a Temporal payload carries it."""
    return guards_from_data(json.loads(json.dumps(guards_as_data(guards))))


@json_schema
def test_every_built_in_guard_is_rebuilt_with_its_config() -> None:
    guards: list[bm.Guard] = [
        bm.ModelSettings(temperature=0, max_tokens=50, response_format="json"),
        bm.BannedTopics(["tax evasion"], classifier=toxicity, threshold=0.7, direction="output"),
        bm.MaxTokens(300, direction="both", on_violation="fallback"),
        bm.JsonSchema(Verdict, reask=1),
        bm.JsonSchema({"type": "object", "required": ["risk"]}, reask=0),
        bm.RequiredFields(["risk", "parties.0.name"], reask=2),
    ]
    rebuilt = trip(guards)
    assert [type(g) for g in rebuilt] == [type(g) for g in guards]
    assert [g.to_config() for g in rebuilt] == [g.to_config() for g in guards]
    banned = rebuilt[1]
    assert isinstance(banned, bm.BannedTopics)
    assert banned.classifier is toxicity  # imported by reference, the same function
    schema = rebuilt[3]
    assert isinstance(schema, bm.JsonSchema)
    assert schema.model is Verdict


async def test_a_rebuilt_guard_judges_answers_as_the_original_does() -> None:
    [original] = [bm.JsonSchema(Verdict, reask=1)]
    [rebuilt] = trip([original])
    good = bm.ModelResponse(output=None, text='{"verdict": "ok"}')
    request = bm.ModelRequest(input="x")
    assert (await rebuilt.check_output(good, request)).output == Verdict(verdict="ok")
    with pytest.raises(Reask, match=r"\$\.verdict: Field required"):
        await rebuilt.check_output(bm.ModelResponse(output=None, text="{}"), request)
    banned = trip([bm.BannedTopics(["guarantee"])])[0]
    assert isinstance(banned, bm.BannedTopics)
    with pytest.raises(bm.GuardViolation, match="banned topic 'Guarantee'"):
        await banned.check_output(bm.ModelResponse(output=None, text="Guarantee!"), request)


@json_schema
def test_rebuilding_is_cached_per_description() -> None:
    data = guards_as_data([bm.JsonSchema({"type": "object"})])
    assert guards_from_data(data)[0] is guards_from_data(json.loads(json.dumps(data)))[0]


@demo
def test_the_flagships_reply_guard_travels() -> None:
    sys.path.insert(0, str(EXAMPLES / "support_triage"))
    try:
        import triage
    finally:
        sys.path.remove(str(EXAMPLES / "support_triage"))
    rebuilt = trip(triage.REPLY_GUARD)
    assert [g.to_config() for g in rebuilt] == [g.to_config() for g in triage.REPLY_GUARD]
    assert isinstance(rebuilt[-1], bm.JsonSchema)
    assert rebuilt[-1].model is triage.Reply


@json_schema
def test_a_yaml_guard_set_travels() -> None:
    spec = GuardSpec(
        temperature=0,
        response_format="json",
        banned_topics=["insider trading"],
        max_input_tokens=6000,
        max_output_tokens=400,
        output_schema={"type": "object", "required": ["risk"]},
        required_fields=["risk"],
        reask=1,
    )
    guards = spec.guards()
    assert [g.to_config() for g in trip(guards)] == [g.to_config() for g in guards]


# --- what cannot travel, and bad data -------------------------------------------------------


class NoConfig(bm.Guard):
    name = "no_config"


class WithTokenizer(bm.Guard):
    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer

    def to_config(self) -> dict[str, Any]:
        return {"tokenizer": self.tokenizer}


def test_a_guard_without_to_config_is_refused_with_the_fix() -> None:
    with pytest.raises(bm.UsageError, match=r"give NoConfig a to_config\(\) method"):
        guards_as_data([NoConfig()])


def test_a_guard_class_defined_in_a_function_is_refused() -> None:
    class Local(bm.Guard):
        def to_config(self) -> dict[str, Any]:
            return {}

    with pytest.raises(bm.UsageError, match="is not defined at module level"):
        guards_as_data([Local()])


def test_a_lambda_classifier_is_refused_naming_the_field() -> None:
    with pytest.raises(
        bm.UsageError, match=r"guard BannedTopics, config 'classifier'.*not defined at module level"
    ):
        guards_as_data([bm.BannedTopics(classifier=lambda text: 0.0)])


def test_config_values_that_are_not_json_are_refused() -> None:
    with pytest.raises(bm.UsageError, match=r"config 'tokenizer': object values cannot travel"):
        guards_as_data([WithTokenizer(object())])


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"config": {}}, "does not describe a guard"),
        ({"type": "no_colon"}, "is not 'module:qualname'"),
        ({"type": "bandmaster.no_such_module:Guard"}, "cannot import 'bandmaster.no_such_module'"),
        ({"type": "bandmaster.guard._rules:NoSuchGuard"}, "has no 'NoSuchGuard'"),
        ({"type": "bandmaster.models._base:ModelRequest"}, "is not a bm.Guard subclass"),
        (
            {"type": "bandmaster.guard._rules:MaxTokens", "config": {"limit": 0}},
            r"MaxTokens\(limit\) must be",
        ),
        (
            {"type": "bandmaster.guard._rules:MaxTokens", "config": {"size": 3}},
            "cannot be rebuilt from its to_config",
        ),
        ({"type": "bandmaster.guard._rules:MaxTokens", "config": [1]}, "must be a dict"),
    ],
)
def test_bad_data_is_a_usage_error_saying_what_is_wrong(data: dict[str, Any], message: str) -> None:
    with pytest.raises(bm.UsageError, match=message):
        guard_from_data(data)
