"""``call_model``'s ``retry=`` and ``breaker=`` as data, for the model-call activity.

A model call's policy runs inside its activity, as on the embedded engine (bandmaster owns
model-call retries; Temporal tries the activity once). ``bm.Retry`` and ``bm.Breaker`` are
plain values, so they travel as their fields; ``retry_on`` travels as exception class
references (``module:qualname``), or not at all when it is the default. A predicate cannot
travel: a ``UsageError`` says what to write instead.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any

from bandmaster.errors import UsageError
from bandmaster.policies import DEFAULT_RETRY_ON, Breaker, Retry

__all__ = ["breaker_as_data", "breaker_from_data", "retry_as_data", "retry_from_data"]


def retry_as_data(retry: Retry, *, target: str) -> dict[str, Any]:
    data = {f.name: getattr(retry, f.name) for f in dataclasses.fields(retry) if f.name != "retry_on"}
    if retry.retry_on != DEFAULT_RETRY_ON:
        if not isinstance(retry.retry_on, tuple):
            raise UsageError(
                f"call_model({target!r}, retry=bm.Retry(retry_on=<predicate>)): on the Temporal backend "
                "the call runs in a worker process and a predicate cannot travel there; give retry_on "
                "exception types, or set retry in the alias policy of models.yaml"
            )
        refs = []
        for cls in retry.retry_on:
            if "<locals>" in cls.__qualname__:
                raise UsageError(
                    f"call_model({target!r}, retry=...): retry_on type {cls.__qualname__} is defined in "
                    "a function; define it at module level so worker processes can import it"
                )
            refs.append(f"{cls.__module__}:{cls.__qualname__}")
        data["retry_on"] = refs
    return data


def retry_from_data(data: dict[str, Any]) -> Retry:
    fields = dict(data)
    if "retry_on" in fields:
        fields["retry_on"] = tuple(_exception_type(ref) for ref in fields["retry_on"])
    return Retry(**fields)


def breaker_as_data(breaker: Breaker) -> dict[str, Any]:
    return dataclasses.asdict(breaker)


def breaker_from_data(data: dict[str, Any]) -> Breaker:
    return Breaker(**data)


def _exception_type(ref: str) -> type[BaseException]:
    module_name, _, qualname = ref.partition(":")
    try:
        found: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise UsageError(f"retry_on type {ref}: cannot import {module_name!r} ({exc})") from None
    for part in qualname.split("."):
        found = getattr(found, part, None)
    if not (isinstance(found, type) and issubclass(found, BaseException)):
        raise UsageError(f"retry_on type {ref} is not an exception class in this worker's code")
    return found
