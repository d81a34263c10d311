"""A guard set as data: the ``guard:`` key of a graph's ``ai`` node.

    classify_risk:
      kind: ai
      model: risk-classifier
      prompt: "Classify the risk of this contract: {contract.text}"
      fallback: [risk-rules]
      guard:
        temperature: 0
        response_format: json
        banned_topics: [insider trading, tax evasion]
        classifier: local_models:toxicity   # optional: a step name or module:attr, see BannedTopics
        max_input_tokens: 6000
        max_output_tokens: 400
        output_schema: {type: object, required: [risk], properties: {risk: {enum: [low, medium, high]}}}
        reask: 2
        required_fields: [risk]
        on_violation: raise          # or fallback: the node's fallback models answer instead

``GuardSpec.guards()`` builds the same guards a Python caller would pass to
``bm.call_model(guard=[...])``, in a fixed order: settings, banned topics, input budget, schema,
required fields, output budget. Invalid values are pydantic errors, which a graph reports with
file, line and node like any other field.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from bandmaster.errors import UsageError
from bandmaster.guard._base import Guard, OnViolation
from bandmaster.guard._rules import BannedTopics, MaxTokens, ModelSettings, RequiredFields
from bandmaster.guard._schema import JsonSchema, load_validator

__all__ = ["GuardSpec"]


class GuardSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    temperature: float | None = Field(default=None, ge=0, le=2)
    max_tokens: int | None = Field(default=None, gt=0)
    response_format: Literal["text", "json"] | None = None
    banned_topics: list[str] | None = Field(default=None, min_length=1)
    banned_in: Literal["input", "output", "both"] = "both"
    classifier: str | None = None
    classifier_threshold: float = Field(default=0.5, ge=0, le=1)
    max_input_tokens: int | None = Field(default=None, gt=0)
    max_output_tokens: int | None = Field(default=None, gt=0)
    output_schema: dict[str, Any] | None = None
    required_fields: list[str] | None = Field(default=None, min_length=1)
    reask: int = Field(default=2, ge=0, le=10)
    on_violation: OnViolation = "raise"

    @field_validator("banned_topics", "required_fields")
    @classmethod
    def _no_blank(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and any(not item.strip() for item in value):
            raise ValueError("entries must not be empty")
        return value

    @field_validator("banned_topics")
    @classmethod
    def _matchable(cls, value: list[str] | None) -> list[str] | None:
        if value:
            try:
                BannedTopics(value)  # compiles the phrases now, not at the first call
            except UsageError as exc:
                raise ValueError(str(exc)) from None
        return value

    @field_validator("output_schema")
    @classmethod
    def _valid_schema(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            try:
                load_validator(value)
            except (UsageError, ImportError) as exc:
                raise ValueError(str(exc)) from None
        return value

    def guards(self, resolve: Callable[[str], Callable[..., Any]] | None = None) -> list[Guard]:
        """The guards, in a fixed order. ``resolve`` turns ``classifier`` into the callable (a
        graph passes its step resolver: registered names, then ``module:attr``)."""
        guards: list[Guard] = []
        if self.temperature is not None or self.max_tokens is not None or self.response_format is not None:
            guards.append(
                ModelSettings(
                    temperature=self.temperature,
                    max_tokens=self.max_tokens,
                    response_format=self.response_format,
                )
            )
        if self.banned_topics or self.classifier:
            if self.classifier is not None and resolve is None:
                raise UsageError(f"guard classifier {self.classifier!r}: nothing to resolve it with")
            guards.append(
                BannedTopics(
                    self.banned_topics or (),
                    classifier=resolve(self.classifier) if self.classifier and resolve else None,
                    threshold=self.classifier_threshold,
                    direction=self.banned_in,
                    on_violation=self.on_violation,
                )
            )
        if self.max_input_tokens is not None:
            guards.append(MaxTokens(self.max_input_tokens, direction="input", on_violation=self.on_violation))
        if self.output_schema is not None:
            guards.append(JsonSchema(self.output_schema, reask=self.reask))
        if self.required_fields:
            guards.append(RequiredFields(self.required_fields, on_violation=self.on_violation))
        if self.max_output_tokens is not None:
            guards.append(
                MaxTokens(self.max_output_tokens, direction="output", on_violation=self.on_violation)
            )
        return guards
