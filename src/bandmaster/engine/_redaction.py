"""The journal's redaction hook: with a ``Redactor`` configured (``@bm.workflow(redact=...)``
or ``bm.Engine(redact=...)``), every value on its way to the journal is rewritten first: the
run input and output, step and model outputs, model requests in step meta, signal payloads and
error messages. The engine only knows this protocol; ``bm.RedactPII`` is one implementation.

Workflow code sees the *redacted* value (a step's result is read back from what was written),
so a live execution and a replay of the same journal see the same thing.
"""

from __future__ import annotations

import json
from typing import Any, Protocol, runtime_checkable

from bandmaster._moved import import_module
from bandmaster.engine._serde import Codec, What, _label, error_record
from bandmaster.errors import RedactionError


@runtime_checkable
class Redactor(Protocol):
    """Rewrites a JSON value (dicts, lists, strings, numbers) so nothing sensitive remains.
    Must be deterministic enough for the caller's needs and must not change the shape."""

    def redact(self, value: Any) -> Any: ...


def _dumps(value: Any) -> str:
    # Compact and UTF-8 like pydantic's dump_json, so redacted rows look like the others.
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def redact_json(redactor: Redactor, text: str | None) -> str | None:
    """Journal text (JSON) with every string value redacted."""
    if text is None:
        return None
    return _dumps(redactor.redact(json.loads(text)))


def redact_value(redactor: Redactor, codec: Codec, text: str, *, what: What) -> tuple[Any, str]:
    """``(value, json)`` after redaction: the value is loaded back from the redacted JSON, so
    the workflow sees exactly what a replay will see."""
    redacted = redact_json(redactor, text)
    assert redacted is not None
    try:
        return codec.load(redacted), redacted
    except ValueError as exc:
        raise RedactionError(
            f"{_label(what)} no longer validates as {codec.annotation!r} once redacted ({exc}). "
            f"Declare the sensitive fields as plain str, or keep the raw value out of the workflow "
            f"and fetch it from the source system (or the token vault) inside the step that needs it."
        ) from None


_ERROR_TEXT_FIELDS = ("message", "traceback", "args", "attrs")


def redact_error_record(redactor: Redactor, record: dict[str, Any]) -> dict[str, Any]:
    """An error record with its free text redacted; ``type`` is kept so replay can rebuild it."""
    out = dict(record)
    for key in _ERROR_TEXT_FIELDS:
        if key in out:
            out[key] = redactor.redact(out[key])
    if "errors" in out:
        out["errors"] = [redact_error_record(redactor, e) for e in out["errors"]]
    if "errors_by" in out:
        out["errors_by"] = {k: redact_error_record(redactor, e) for k, e in out["errors_by"].items()}
    return out


def error_json(exc: BaseException, redactor: Redactor | None) -> str:
    """The journal text of an exception, redacted when a redactor is configured."""
    record = error_record(exc)
    if redactor is not None:
        record = redact_error_record(redactor, record)
    return json.dumps(record)


# --- redaction as a property of the workflow in the journal ---------------------------------
# A redactor travels as data, ``{"type": "module:Class", "config": {...}}`` from its
# ``to_config()``, so a writer that does not hold the workflow's code (a plain client, the CLI,
# the server) rebuilds the same redactor from the journal. ``config`` is None when the redactor
# holds a secret (an HMAC key, a vault) that must never be written to the journal.


def redactor_spec(redactor: Redactor) -> dict[str, Any]:
    """What the journal records about a redactor: its class and, when it can be rebuilt from
    JSON alone, the keyword arguments that rebuild it."""
    cls = type(redactor)
    to_config = getattr(redactor, "to_config", None)
    config = to_config() if callable(to_config) else None
    if config is not None:
        try:
            json.dumps(config)
        except TypeError:
            config = None  # not JSON: it cannot be rebuilt elsewhere
    return {"type": f"{cls.__module__}:{cls.__qualname__}", "config": config, "label": repr(redactor)}


def redactor_from_spec(spec: dict[str, Any], *, workflow: str) -> Redactor:
    """The redactor ``redactor_spec`` described, or ``RedactionError`` saying how to redact
    instead (run the writer in a process that holds the workflow with its redactor)."""
    how = (
        f"workflow {workflow!r} redacts its values ({spec.get('label')}), and the journal says so; "
        "this process cannot rebuild that redactor"
    )
    fix = (
        "write to this run from a process that holds the workflow with its redactor: "
        "bm.Engine(db, workflows=[the_workflow], worker=False) in Python, or --module/--app with "
        "the module defining it on the command line and the server"
    )
    config = spec.get("config")
    if config is None:
        raise RedactionError(
            f"{how}, because it holds a secret (a key or a vault) kept out of the journal; {fix}"
        )
    module_name, _, qualname = str(spec.get("type", "")).partition(":")
    try:
        cls: Any = import_module(module_name)
        for part in qualname.split("."):
            cls = getattr(cls, part)
        redactor = cls(**config)
    except Exception as exc:  # any failure to rebuild means: refuse rather than write raw
        raise RedactionError(f"{how} ({type(exc).__name__}: {exc}); {fix}") from None
    if not isinstance(redactor, Redactor):
        raise RedactionError(f"{how}: {spec.get('type')} is not a Redactor; {fix}")
    return redactor
