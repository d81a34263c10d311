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
it also guards calls that run in worker processes: ``bandmaster.guard._portable``).
"""

from typing import TYPE_CHECKING

from bandmaster._lazy import lazy_loader
from bandmaster.errors import GuardViolation, OutputValidationFailed, Span
from bandmaster.guard._base import Direction, Guard, OnViolation, Reask
from bandmaster.guard._rules import (
    BannedTopics,
    Classification,
    Classifier,
    MaxTokens,
    ModelSettings,
    RequiredFields,
)
from bandmaster.guard._schema import JsonSchema
from bandmaster.models import JsonNotFound, extract_json

__all__ = [
    "BannedTopics",
    "Classification",
    "Classifier",
    "Direction",
    "Guard",
    "GuardLog",
    "GuardSpec",
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
    "ask",
    "check_guards",
    "check_input",
    "extract_json",
    "guards_as_data",
    "guards_from_data",
    "revive",
]

# Names other rooms use, loaded on first use.
_LAZY = {
    "GuardLog": "bandmaster.guard._enforce",
    "GuardSpec": "bandmaster.guard._spec",
    "ask": "bandmaster.guard._enforce",
    "check_guards": "bandmaster.guard._enforce",
    "check_input": "bandmaster.guard._enforce",
    "guards_as_data": "bandmaster.guard._portable",
    "guards_from_data": "bandmaster.guard._portable",
    "revive": "bandmaster.guard._enforce",
}

if TYPE_CHECKING:
    from bandmaster.guard._enforce import GuardLog, ask, check_guards, check_input, revive
    from bandmaster.guard._portable import guards_as_data, guards_from_data
    from bandmaster.guard._spec import GuardSpec
else:
    __getattr__, __dir__ = lazy_loader(__name__, _LAZY)
