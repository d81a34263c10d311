"""Guardrails around model calls: output validation with re-asks, rules on input and output,
and pinned provider settings; and PII/PHI redaction (``bandmaster.guard.pii``, extra ``pii``,
whose submodules load their heavy dependencies only when imported).

    response = await bm.call_model("extractor", text, guard=[
        bm.ModelSettings(temperature=0, response_format="json"),
        bm.BannedTopics(["insider trading"]),
        bm.MaxTokens(6000),
        bm.JsonSchema(Contract, reask=2),
    ])

Guards run in list order: ``check_input`` on the request before any model is called,
``check_output`` on each answer. A ``bm.JsonSchema`` failure re-asks the model with the
validation error, then falls back or raises ``bm.OutputValidationFailed``; a rule hit raises
``bm.GuardViolation`` (rule, direction, span) or, with ``on_violation="fallback"``, moves the
call to its fallback models. Write your own by subclassing ``bm.Guard`` (with ``to_config()``
it also guards calls that run in worker processes: ``bandmaster.guard.portable``).
"""

from bandmaster.errors import GuardViolation, OutputValidationFailed, Span
from bandmaster.guard.base import Direction, Guard, OnViolation, Reask
from bandmaster.guard.rules import (
    BannedTopics,
    Classification,
    Classifier,
    MaxTokens,
    ModelSettings,
    RequiredFields,
)
from bandmaster.guard.schema import JsonSchema
from bandmaster.models.jsontext import JsonNotFound, extract_json

__all__ = [
    "BannedTopics",
    "Classification",
    "Classifier",
    "Direction",
    "Guard",
    "GuardViolation",
    "JsonNotFound",
    "JsonSchema",
    "MaxTokens",
    "ModelSettings",
    "OnViolation",
    "OutputValidationFailed",
    "Reask",
    "RequiredFields",
    "Span",
    "extract_json",
]
