"""``extract_json`` on the shapes models really answer with, and on tricky ones."""

from __future__ import annotations

import pytest

from bandmaster.guard import JsonNotFound, extract_json


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"a": 1}', {"a": 1}),
        ('  \n{"a": 1}\n  ', {"a": 1}),
        ("\ufeff[1, 2]", [1, 2]),
        ("42", 42),
        ('"just a string"', "just a string"),
        ('```json\n{"a": 1}\n```', {"a": 1}),
        ('```JSON\n{"a": 1}\n```', {"a": 1}),
        ('```\n{"a": 1}\n```', {"a": 1}),
        ('Here is the result:\n```json\n{"a": 1}\n```\nLet me know!', {"a": 1}),
        ('Sure! {"risk": "low", "score": 0.2} Hope that helps.', {"risk": "low", "score": 0.2}),
        # a fence labelled json wins over an earlier unlabelled one
        ('```python\nprint("hi")\n```\nand\n```json\n{"b": 2}\n```', {"b": 2}),
        # prose braces that are not JSON are skipped
        ('Using {placeholders} here, the answer is {"a": {"b": [1, 2]}}.', {"a": {"b": [1, 2]}}),
        # citations in square brackets do not beat the object
        ('As shown in [1], {"a": 1}', {"a": 1}),
        # braces and fences inside JSON strings do not confuse the scan
        ('Result: {"code": "if (x) { y(); } ```", "n": 1} end', {"code": "if (x) { y(); } ```", "n": 1}),
        ('Réponse : {"clé": "café ☕"}', {"clé": "café ☕"}),
        ("An array: [1, 2, 3] is all.", [1, 2, 3]),
        # the first complete object wins when there are two
        ('{"first": 1} and then {"second": 2}', {"first": 1}),
    ],
)
def test_extracts_the_json_value(text: str, expected: object) -> None:
    assert extract_json(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("The label is refund.", "no JSON object or array"),
        ('{"a": 1,}', "no valid JSON"),  # trailing comma: not repaired
        ("{'a': 1}", "no valid JSON"),  # single quotes: not repaired
        ('```json\n{"a": \n```', "no valid JSON"),  # a truncated answer
    ],
)
def test_reports_why_there_is_no_json(text: str, message: str) -> None:
    with pytest.raises(JsonNotFound, match=message):
        extract_json(text)


def test_error_points_at_the_line_and_column() -> None:
    with pytest.raises(JsonNotFound, match=r"line 2 column \d+"):
        extract_json('Answer:\n{"a": 1, "b": }')


def test_long_prose_full_of_brackets_is_bounded() -> None:
    text = "{ [ " * 5000 + '{"ok": true}'
    with pytest.raises(JsonNotFound):  # the object is past the scan bound: refused, not slow
        extract_json(text)
    assert extract_json("{ " * 10 + '{"ok": true}') == {"ok": True}
