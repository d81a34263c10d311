"""Routing expressions: parsed once, checked at definition time, evaluated without eval."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from bandmaster.routing.expr import Expression, ExpressionError


class Intent(BaseModel):
    label: str
    confidence: float


def test_expression_reads_models_dicts_and_functions() -> None:
    rule = Expression(
        "intent.label == 'billing' and intent.confidence > 0.9 and len(text) < 50 and contains_math(text)",
        rule="billing",
        variables=["intent", "text"],
        functions={"contains_math": lambda t: "+" in t},
    )
    assert rule.evaluate({"intent": Intent(label="billing", confidence=0.95), "text": "1 + 1"}) is True
    assert rule.evaluate({"intent": {"label": "billing", "confidence": 0.5}, "text": "1 + 1"}) is False
    assert rule.names == {"intent", "text"}


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        ("intent.__class__", "private"),
        ("intent._secret", "private"),
        ("__import__('os').system('true')", "unknown function"),
        ("open('/etc/passwd')", "unknown function"),
        ("(lambda: 1)()", "unknown function"),
        ("[x for x in text]", "not allowed"),
        ("2 ** 999999", "not allowed"),
        ("text.upper()", "unknown function"),
        ("foo > 1", "unknown name"),
        ("intent.confidence >", "syntax error"),
        ("x := 1", "syntax error"),
    ],
)
def test_hostile_or_broken_expressions_fail_at_definition(source: str, reason: str) -> None:
    with pytest.raises(ExpressionError) as caught:
        Expression(source, rule="r1", variables=["intent", "text"])
    assert reason in str(caught.value)
    assert "r1" in str(caught.value)


def test_error_names_the_column() -> None:
    with pytest.raises(ExpressionError) as caught:
        Expression("len(text) > 3 and bogus", rule="r", variables=["text"])
    assert caught.value.column == 19


def test_expression_length_is_bounded() -> None:
    with pytest.raises(ExpressionError, match="longer than"):
        Expression(" or ".join(["text == 'a'"] * 200), rule="huge", variables=["text"])


def test_missing_value_at_evaluation_is_a_clear_error() -> None:
    rule = Expression("score > 1", rule="r")
    with pytest.raises(ExpressionError, match="no value for score"):
        rule.evaluate({})
