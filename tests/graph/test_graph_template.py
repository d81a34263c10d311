"""Prompt templates over the graph state: filled without eval, never reaching private names."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from bandmaster.errors import UsageError
from bandmaster.graph._template import TemplateError, references, render, render_partial


class Ticket(BaseModel):
    text: str
    tags: list[str]


STATE = {
    "ticket": Ticket(text="charged twice", tags=["billing", "urgent"]),
    "intent": {"output": "billing", "confidence": 0.912},
    "clauses": {"output": ["pay in 30 days", 'say "hi"']},
}


def test_render_reads_keys_attributes_items_and_formats() -> None:
    text = render(
        "{ticket.text} [{ticket.tags[1]}] {intent.output} {intent.confidence:.2f} {{literal}}", STATE
    )
    assert text == "charged twice [urgent] billing 0.91 {literal}"


def test_containers_and_models_go_in_as_json() -> None:
    assert render("{clauses.output}", STATE) == '["pay in 30 days", "say \\"hi\\""]'
    assert render("{ticket}", STATE) == '{"text":"charged twice","tags":["billing","urgent"]}'
    assert render("{intent[confidence]!r}", STATE) == "0.912"


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{ticket.__class__}", "a private name"),
        ("{ticket._secret}", "a private name"),
        ("{0}", "positional fields are not allowed"),
        ("{}", "positional fields are not allowed"),
        ("{ticket.text", "malformed template"),
        ("{ticket.text()}", r"expected .name or \[index\] at '\(\)'"),
    ],
)
def test_bad_templates_are_refused(template: str, message: str) -> None:
    with pytest.raises(TemplateError, match=message):
        references(template)


def test_references_are_the_state_keys_read() -> None:
    assert references("{a.b} {c[0]} {a} {d:{width}} {{not_a_key}}") == {"a", "c", "d", "width"}


def test_a_missing_value_is_a_clear_error() -> None:
    with pytest.raises(TemplateError, match=r"\{intent.label\}: the state has no value there"):
        render("{intent.label}", STATE)


def test_render_partial_keeps_the_named_fields_for_later() -> None:
    partial = render_partial(
        "Part {index} of {count} of {ticket.text} {{x}}:\n{chunk!r} {clauses.output}",
        STATE,
        frozenset({"chunk", "index", "count"}),
    )
    assert (
        partial
        == 'Part {index} of {count} of charged twice {{x}}:\n{chunk!r} ["pay in 30 days", "say \\"hi\\""]'
    )
    assert partial.format(index=1, count=2, chunk="c") == (
        'Part 1 of 2 of charged twice {x}:\n\'c\' ["pay in 30 days", "say \\"hi\\""]'
    )


# --- hostile templates: bounded formatting, errors in the error tree --------------------------


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{ticket.text:>999999999}", r"spec '>999999999' asks for a width of 999999999; the limit is 1000"),
        ("{intent.confidence:.999999999f}", "asks for a precision of 999999999"),
        ("{intent.confidence:0999999999}", "asks for a width of 0999999999"),
        ("{ticket.created:%999999999Y}", "asks for a width of 999999999"),
        ("{ticket.text:{width:{depth}}}", "a field inside a format spec has no spec of its own"),
    ],
)
def test_formatting_over_the_limits_is_refused_when_checked(template: str, message: str) -> None:
    with pytest.raises(TemplateError, match=message) as caught:
        references(template)
    assert isinstance(caught.value, UsageError)


@pytest.mark.parametrize(
    ("template", "state", "message"),
    [
        ("{text:{spec}}", {"text": "a", "spec": ">999999999"}, "asks for a width of 999999999"),
        ("{score:.{digits}}", {"score": 0.5, "digits": 999999999}, "asks for a precision of 999999999"),
        ("{text:d}", {"text": "a"}, r"\{text:d\}: cannot format a str: Unknown format code 'd'"),
        ("{ticket:>5}", STATE, r"\{ticket:>5\}: cannot format a Ticket"),
        ("{text}" * 21, {"text": "x" * 1_000_000}, "renders to more than 20,000,000 characters"),
    ],
)
def test_formatting_over_the_limits_is_refused_when_rendered(
    template: str, state: dict[str, object], message: str
) -> None:
    with pytest.raises(TemplateError, match=message):
        render(template, state)
    with pytest.raises(TemplateError, match=message):
        render_partial(template, state, frozenset({"chunk"}))


def test_a_large_precision_only_cuts_a_string() -> None:
    assert references("{ticket.text:.5000}") == {"ticket"}
    assert render("{ticket.text:.5000}|{ticket.text:.7}", STATE) == "charged twice|charged"
    assert render("{text:.{n}}", {"text": "abcdef", "n": 999999}) == "abcdef"
    assert render("{n:0>4}|{n:9>3}", {"n": 7}) == "0007|997"  # a digit fill is not a width
