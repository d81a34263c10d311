"""Pydantic-aware JSON for journal values, and exceptions as journal records.

Every journaled value goes through a ``Codec`` built from the annotation of the step or
workflow, so a recorded pydantic model comes back as that model on replay. Values that cannot
be serialised raise ``InvalidInput`` before anything is written (never a silent ``None``).
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from pydantic import TypeAdapter, ValidationError
from pydantic_core import PydanticSerializationError

from bandmaster._moved import import_module
from bandmaster.errors import InvalidInput, PayloadTooLarge, ReplayTypeMismatch, StepFailed

DEFAULT_MAX_PAYLOAD = 2 * 1024 * 1024


What = str | Callable[[], str]
"""Names a value in error messages; a callable is only formatted when there is an error, which
keeps f-string work off the step path."""


def _label(what: What) -> str:
    return what if isinstance(what, str) else what()


class Codec:
    """Serialises values of one type to JSON text and validates them back."""

    __slots__ = ("_adapter", "_exact", "annotation")

    def __init__(self, annotation: Any) -> None:
        self.annotation = annotation
        self._adapter: TypeAdapter[Any] = TypeAdapter(annotation)
        # Values of exactly the annotated class (or anything, for Any) need no type check;
        # checking with warnings="error" costs ~2 µs, a third of the serialisation.
        self._exact: type | None = annotation if isinstance(annotation, type) else None

    def dump(self, value: Any, *, what: What, limit: int = DEFAULT_MAX_PAYLOAD) -> str:
        return self.encode(value, what=what, limit=limit)[1]

    def encode(self, value: Any, *, what: What, limit: int = DEFAULT_MAX_PAYLOAD) -> tuple[Any, str]:
        """``(value, json)``. A value that does not match the annotation (a dict where a
        model is declared) is validated into it first, so the live value equals the one a
        replay will see."""
        try:
            if self.annotation is Any or (self._exact is not None and type(value) is self._exact):
                data = self._adapter.dump_json(value)
            else:
                data = self._adapter.dump_json(value, warnings="error")
        except PydanticSerializationError:
            value = self.validate(value, what=what)
            data = self._dump_checked(value, what)
        except (ValueError, TypeError) as exc:
            raise self._unserialisable(value, what, exc) from exc
        if len(data) > limit:
            raise PayloadTooLarge(_label(what), len(data), limit)
        return value, data.decode()

    def _dump_checked(self, value: Any, what: What) -> bytes:
        try:
            return self._adapter.dump_json(value)
        except (PydanticSerializationError, ValueError, TypeError) as exc:
            raise self._unserialisable(value, what, exc) from exc

    @staticmethod
    def _unserialisable(value: Any, what: What, exc: Exception) -> InvalidInput:
        return InvalidInput(
            f"{_label(what)} is not JSON-serialisable ({type(value).__name__}): {exc}. Use JSON types, "
            f"dataclasses or pydantic models."
        )

    def load(self, text: str | None) -> Any:
        if text is None:
            return None
        return self._adapter.validate_json(text)

    def load_recorded(self, text: str | None, *, run_id: str, seq: int, what: str) -> Any:
        """``load`` for a value an earlier execution journaled: one that no longer fits the
        type (the code changed between crash and resume) raises ``ReplayTypeMismatch`` naming
        the run, the seq and ``what``, not a bare validation error."""
        try:
            return self.load(text)
        except ValidationError as exc:
            expected = getattr(self.annotation, "__name__", None) or repr(self.annotation)
            raise ReplayTypeMismatch(run_id, seq, what, expected, validation_summary(exc)) from None

    def to_jsonable(self, value: Any) -> Any:
        return self._adapter.dump_python(value, mode="json")

    def validate(self, value: Any, *, what: What) -> Any:
        try:
            return self._adapter.validate_python(value)
        except ValidationError as exc:
            raise InvalidInput(f"{_label(what)} is invalid: {exc}") from exc


def validation_summary(exc: ValidationError) -> str:
    """Pydantic's first error on one line, with how many there are."""
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "value"
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{where}: {first['msg']}{more}"


@lru_cache(maxsize=1024)
def codec_for(annotation: Any) -> Codec:
    """A cached codec; building a ``TypeAdapter`` costs far more than using one."""
    return Codec(annotation)


ANY = Codec(Any)


# --- exceptions ---------------------------------------------------------------------------


def error_record(exc: BaseException) -> dict[str, Any]:
    """What the journal keeps of an exception: enough to rebuild it on replay and to show it."""
    cls = type(exc)
    record: dict[str, Any] = {
        "type": f"{cls.__module__}.{cls.__qualname__}",
        "message": str(exc),
        "traceback": "".join(traceback.format_exception(exc)),
    }
    # Plain JSON values only (the worker json.dumps the record): a dataclass or model in an
    # exception must not make the run's end unrecordable.
    args = _plain(list(exc.args))
    if args is not None:
        record["args"] = args
    inner = getattr(exc, "errors", None)
    if isinstance(inner, list) and all(isinstance(e, BaseException) for e in inner):
        record["errors"] = [error_record(e) for e in inner]
    elif isinstance(inner, dict) and all(isinstance(e, BaseException) for e in inner.values()):
        record["errors_by"] = {str(k): error_record(e) for k, e in inner.items()}
    attrs = {k: v for k, v in vars(exc).items() if k != "errors" and not k.startswith("_")}
    if attrs:
        plain = _plain(attrs)
        record["attrs"] = (
            plain
            if plain is not None
            else {k: v for k, v in attrs.items() if isinstance(v, str | int | float | bool | None)}
        )
    return record


def _plain(value: Any) -> Any:
    try:
        return ANY.to_jsonable(value)
    except (PydanticSerializationError, ValueError, TypeError):
        return None


def rebuild_error(record: dict[str, Any]) -> BaseException:
    """Recreate a recorded exception as its original type where possible.

    The constructor is bypassed (``__new__`` + ``args``) because arbitrary exception classes
    take arbitrary arguments; types that cannot be found become ``StepFailed``.
    """
    type_name = record.get("type", "")
    module_name, _, qualname = type_name.rpartition(".")
    message = record.get("message", "")
    try:
        obj: Any = import_module(module_name)
        for part in qualname.split("."):
            obj = getattr(obj, part)
        if not (isinstance(obj, type) and issubclass(obj, BaseException)):
            raise TypeError(type_name)
        exc = obj.__new__(obj)
        exc.args = tuple(record.get("args", [message]))
    except Exception:
        return StepFailed(f"{type_name}: {message}", error_type=type_name)
    if "errors" in record:
        exc.errors = [rebuild_error(e) for e in record["errors"]]  # type: ignore[attr-defined]
    if "errors_by" in record:
        exc.errors = {k: rebuild_error(e) for k, e in record["errors_by"].items()}  # type: ignore[attr-defined]
    exc.__dict__.update(record.get("attrs", {}))  # what __init__ set, e.g. run_id, seq, retry_after
    return exc
