"""``bm.JsonSchema``: parse a model's answer as JSON and validate it, re-asking on failure.

The answer's JSON is found by ``bandmaster.models._jsontext.extract_json`` (fenced blocks and
prose around the object are tolerated), then validated against a pydantic model (the response's
``output`` becomes the model instance) or a JSON Schema dict (validated with the ``jsonschema``
library, extra ``guard``; ``output`` is the parsed JSON). An invalid answer raises ``Reask`` with
the validation errors, which the call shows the model before asking again.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ValidationError

from bandmaster.errors import UsageError
from bandmaster.guard._base import Guard, Reask
from bandmaster.models import JsonNotFound, ModelRequest, ModelResponse, extract_json

__all__ = ["JsonSchema", "load_validator"]

MAX_ERRORS_SHOWN = 5
"""Validation errors listed in a re-ask; more only lengthen the prompt."""


def load_validator(schema: dict[str, Any]) -> Any:
    """A ``jsonschema`` validator for ``schema`` (its ``$schema`` dialect, else the latest),
    after checking that the schema itself is valid."""
    try:
        import jsonschema
    except ImportError as exc:  # pragma: no cover - exercised without the extra
        raise ImportError(
            "validating against a JSON Schema dict needs jsonschema: pip install 'bandmaster[guard]' "
            "(or pass a pydantic model instead)"
        ) from exc
    cls = jsonschema.validators.validator_for(schema)
    try:
        cls.check_schema(schema)
    except jsonschema.SchemaError as exc:
        path = "/".join(str(p) for p in exc.path) or "(top)"
        raise UsageError(f"invalid JSON Schema at {path}: {exc.message}") from None
    return cls(schema)


class JsonSchema(Guard):
    """Require a JSON answer matching ``schema`` (a pydantic model class or a JSON Schema
    dict), re-asking the model up to ``reask`` times with the validation error.

    Before sending, the request gets the schema as ``json_schema`` (structured output where
    the provider supports it, an instruction otherwise) unless it already has one.
    """

    name = "json_schema"

    def __init__(self, schema: type[BaseModel] | dict[str, Any], *, reask: int = 2) -> None:
        if isinstance(reask, bool) or not isinstance(reask, int) or reask < 0:
            raise UsageError(f"JsonSchema(reask=...) must be a whole number >= 0, not {reask!r}")
        self.reask = reask
        self.model: type[BaseModel] | None = None
        self._validator: Any = None
        if isinstance(schema, type) and issubclass(schema, BaseModel):
            self.model = schema
            self.schema: dict[str, Any] = schema.model_json_schema()
        elif isinstance(schema, dict):
            self._validator = load_validator(schema)
            self.schema = schema
        else:
            raise UsageError(
                f"JsonSchema takes a pydantic model class or a JSON Schema dict, not {type(schema).__name__}"
            )

    async def check_input(self, request: ModelRequest) -> ModelRequest:
        if request.json_schema is not None:
            return request
        return request.model_copy(update={"json_schema": self.schema})

    async def check_output(self, response: ModelResponse, request: ModelRequest) -> ModelResponse:
        output = response.output
        if isinstance(output, str) or output is None:
            try:
                output = extract_json(output if isinstance(output, str) and output else response.text)
            except JsonNotFound as exc:
                raise Reask(f"the answer is not JSON: {exc}") from None
        return response.model_copy(update={"output": self.validate(output)})

    def validate(self, value: Any) -> Any:
        """``value`` as the pydantic model (or unchanged, for a dict schema); ``Reask`` naming
        each problem by its path when it does not match."""
        if self.model is not None:
            if isinstance(value, self.model):
                return value
            try:
                return self.model.model_validate(value)
            except ValidationError as exc:
                problems = [
                    f"{_path(error['loc'])}: {error['msg']}" for error in exc.errors(include_url=False)
                ]
                raise Reask(_summary(problems)) from None
        errors = sorted(self._validator.iter_errors(value), key=lambda e: list(e.absolute_path))
        if errors:
            raise Reask(_summary([f"{_path(e.absolute_path)}: {e.message}" for e in errors]))
        return value

    def to_config(self) -> dict[str, Any]:
        return {"schema": self.model if self.model is not None else self.schema, "reask": self.reask}

    def revive(self, response: ModelResponse) -> ModelResponse:
        if self.model is None or isinstance(response.output, self.model):
            return response
        return response.model_copy(update={"output": self.model.model_validate(response.output)})

    def __repr__(self) -> str:
        target = self.model.__name__ if self.model is not None else "schema"
        return f"JsonSchema({target}, reask={self.reask})"


def _path(loc: Any) -> str:
    parts = list(loc)
    return "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parts)


def _summary(problems: list[str]) -> str:
    shown = problems[:MAX_ERRORS_SHOWN]
    more = len(problems) - len(shown)
    return "the JSON does not match the schema: " + "; ".join(shown) + (f" (and {more} more)" if more else "")
