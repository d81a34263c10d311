"""Prompt templates over the graph state: filled without eval, never reaching private names."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from bandmaster.graph.template import TemplateError, references, render, render_partial


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
