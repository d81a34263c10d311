"""Routing expressions: parsed once, checked at definition time, evaluated without eval."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from pydantic import BaseModel

from bandmaster.routing._expr import Expression, ExpressionError


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


# --- hostile definitions: bounded formatting and allocation, no raw errors ------------------


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        ("'%.999999999f' % score", "asks for a precision of 999999999; the limit is 1000"),
        ("'%999999999d' % score", "asks for a width of 999999999"),
        ("'%(a)999999999s' % values", "asks for a width of 999999999"),
        ("'%*d' % (999999999, score)", "takes a width from the values"),
        ("-" * 950 + "1", "nested more than 50 levels deep"),
        ("1 + " * 60 + "1", "nested more than 50 levels deep"),
        ("[" * 60 + "]" * 60, "nested more than 50 levels deep"),
    ],
)
def test_hostile_definitions_are_refused_when_defined(source: str, reason: str) -> None:
    with pytest.raises(ExpressionError, match=r"rule 'r1': ") as caught:
        Expression(source, rule="r1")
    assert reason in caught.value.reason


@pytest.mark.parametrize(
    ("source", "values", "reason"),
    [
        ("text % score", {"text": "%.999999999f", "score": 1.0}, "precision of 999999999"),
        ("text % score", {"text": "%0999999999d", "score": 1}, "width of 999999999"),
        ("b'%999999999d' % score", {"score": 1}, "width of 999999999"),
        ("'a' * score", {"score": 10**9}, "more than 100,000"),
        ("score * [0]", {"score": 10**9}, "more than 100,000"),
        ("[text] * 1000", {"text": "x" * 1000}, "more than 100,000"),
        ("[[0] * 1000] * 1000", {}, "more than 100,000"),
        ("round(score, -999999999)", {"score": 5}, "round() to -999999999 digits"),
        ("lower(items)", {"items": [[0] * 10] * 10}, "lower() takes a string or a number, not list"),
        ("'%s' % items", {"items": [[0] * 10] * 10}, "'%' formats strings and numbers, not list"),
    ],
)
def test_evaluation_that_would_allocate_without_bound_is_refused(
    source: str, values: dict[str, object], reason: str
) -> None:
    rule = Expression(source, rule="r1")
    with pytest.raises(ExpressionError, match=r"rule 'r1': ") as caught:
        rule.evaluate(values)
    assert reason in caught.value.reason


def nested(depth: int) -> list[object]:
    value: list[object] = []
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("source", "values", "reason"),
    [
        ("intent['missing'] == 'x'", {"intent": {}}, "KeyError: 'missing'"),
        ("items[5] > 0", {"items": [1]}, "IndexError: list index out of range"),
        ("1 / score > 2", {"score": 0}, "ZeroDivisionError: division by zero"),
        ("text < 1", {"text": "a"}, "TypeError: '<' not supported"),
        ("max(items) > 1", {"items": []}, "ValueError: max() arg is an empty sequence"),
        ("lower(score) == 'x'", {"score": 10**5000}, "ValueError: Exceeds the limit"),
        ("flaky(text)", {"text": "a"}, "RuntimeError: the classifier is down"),
        ("len(items) > 0", {"items": nested(5000)}, "the values are nested too deeply to read"),
    ],
)
def test_a_failure_while_evaluating_names_the_rule(
    source: str, values: dict[str, object], reason: str
) -> None:
    def flaky(text: str) -> bool:
        raise RuntimeError("the classifier is down")

    rule = Expression(source, rule="billing", functions={"flaky": flaky})
    with pytest.raises(ExpressionError, match=r"^rule 'billing': evaluation failed: ") as caught:
        rule.evaluate(values)
    assert reason in caught.value.reason


def test_bounded_formatting_still_formats() -> None:
    assert Expression("'%.2f %%' % score", rule="r").evaluate({"score": 0.5}) == "0.50 %"
    assert Expression("'%(a)5.1f' % d", rule="r").evaluate({"d": {"a": 2.25}}) == "  2.2"
    # A precision on a string only cuts it, so it may be large.
    assert Expression("'%.5000s' % text", rule="r").evaluate({"text": "abc"}) == "abc"
    assert Expression("lower(text) * 3", rule="r").evaluate({"text": "Ab"}) == "ababab"
    assert Expression("round(score, 2)", rule="r").evaluate({"score": 0.123}) == 0.12
    assert Expression("1 + " * 40 + "1", rule="r").evaluate({}) == 41


def test_the_reported_gigabyte_formats_fail_fast_under_a_memory_limit() -> None:
    """Belt and braces, in a real process capped at 1.5 GB of address space: the two examples
    of the report end with their errors, not with a MemoryError or the process killed."""
    script = textwrap.dedent(
        """
        import resource
        resource.setrlimit(resource.RLIMIT_AS, (1_500_000_000, 1_500_000_000))
        from bandmaster.graph._template import render
        from bandmaster.routing._expr import Expression

        for attempt in (
            lambda: Expression("'%.999999999f' % score", rule="r").evaluate({"score": 0.5}),
            lambda: Expression("text % score", rule="r").evaluate({"text": "%.999999999f", "score": 0.5}),
            lambda: render("{ticket.text:>999999999}", {"ticket": {"text": "hi"}}),
        ):
            try:
                attempt()
                print("allowed")
            except Exception as exc:
                print(type(exc).__name__)
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["ExpressionError", "ExpressionError", "TemplateError"]
