"""Guards as data: what lets ``call_model(guard=[...])`` run in another process.

A backend that calls models in worker processes (Temporal activities) cannot send guard
objects; it sends each guard as ``{"type": "module:Class", "config": {...}}`` and the worker
rebuilds it with ``Class(**config)``, so the constructor validates the config there too.
``config`` comes from ``Guard.to_config()``: the built-in guards implement it; a custom guard
travels when its class is defined at module level and implements it as well.

Config values are JSON, or references to module-level objects (a pydantic model class, a
classifier function, a ``@bm.step``), written ``{"$ref": "module:qualname"}`` and imported
by the worker. Anything else is a ``UsageError`` that says what to change.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Sequence
from typing import Any

from bandmaster._moved import import_module
from bandmaster.errors import UsageError
from bandmaster.guard._base import Guard

__all__ = ["guard_from_data", "guards_as_data", "guards_from_data"]

REF = "$ref"


def guards_as_data(guards: Sequence[Guard]) -> list[dict[str, Any]]:
    """``guards`` as JSON data that ``guards_from_data`` rebuilds in another process."""
    return [_guard_data(guard) for guard in guards]


def guards_from_data(data: Sequence[dict[str, Any]]) -> tuple[Guard, ...]:
    """The guards ``guards_as_data`` described, rebuilt once per distinct description (a
    ``JsonSchema`` compiles its validator when built)."""
    return _rebuilt(json.dumps(list(data), sort_keys=True))


@functools.lru_cache(maxsize=256)
def _rebuilt(text: str) -> tuple[Guard, ...]:
    return tuple(guard_from_data(item) for item in json.loads(text))


def guard_from_data(data: dict[str, Any]) -> Guard:
    """One guard rebuilt from its data; ``UsageError`` when the data does not describe one."""
    if not isinstance(data, dict) or not isinstance(data.get("type"), str):
        raise UsageError(
            f"{data!r} does not describe a guard: expected {{'type': 'module:Class', 'config': {{}}}}"
        )
    cls = _import(data["type"], what="guard class")
    if not (isinstance(cls, type) and issubclass(cls, Guard)):
        raise UsageError(f"{data['type']} is not a bm.Guard subclass in this worker's code")
    config = data.get("config") or {}
    if not isinstance(config, dict):
        raise UsageError(f"the config of guard {data['type']} must be a dict, not {type(config).__name__}")
    try:
        return cls(**{key: _decode(value) for key, value in config.items()})
    except TypeError as exc:
        raise UsageError(
            f"guard {data['type']} cannot be rebuilt from its to_config() {config!r}: {exc}; "
            "to_config() must return the keyword arguments of its class's constructor"
        ) from None


def _guard_data(guard: Guard) -> dict[str, Any]:
    cls = type(guard)
    config = guard.to_config()
    if config is None:
        raise UsageError(
            f"guard {guard!r} cannot travel to a worker process: give {cls.__qualname__} a to_config() "
            "method returning the keyword arguments that rebuild it (JSON values, pydantic model "
            "classes or module-level functions), and define the class at module level"
        )
    where = f"guard {cls.__qualname__}"
    return {
        "type": _ref(cls, what=where),
        "config": {key: _encode(value, what=f"{where}, config {key!r}") for key, value in config.items()},
    }


def _encode(value: Any, *, what: str) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple):
        return [_encode(item, what=what) for item in value]
    if isinstance(value, dict):
        if REF in value:
            raise UsageError(f"{what}: a dict key {REF!r} is reserved for references")
        if not all(isinstance(key, str) for key in value):
            raise UsageError(f"{what}: dict keys must be strings to travel as JSON")
        return {key: _encode(item, what=what) for key, item in value.items()}
    if isinstance(value, type) or callable(value):
        return {REF: _ref(value, what=what)}
    raise UsageError(
        f"{what}: {type(value).__name__} values cannot travel to a worker process; use JSON values, "
        "classes or module-level functions"
    )


def _decode(value: Any) -> Any:
    if isinstance(value, list):
        return [_decode(item) for item in value]
    if isinstance(value, dict):
        if set(value) == {REF}:
            return _import(value[REF], what="reference")
        return {key: _decode(item) for key, item in value.items()}
    return value


def _ref(obj: Any, *, what: str) -> str:
    module, qualname = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
    if not module or not qualname or "<locals>" in qualname or "<lambda>" in qualname:
        raise UsageError(
            f"{what}: {obj!r} is not defined at module level, so a worker process cannot import it; "
            "define it at the top level of a module deployed to every worker"
        )
    found = _lookup(sys.modules.get(module), qualname)
    if found is not None and found is not obj:  # checked only where the module is loaded
        raise UsageError(f"{what}: {module}:{qualname} names another object than {obj!r}")
    return f"{module}:{qualname}"


def _lookup(obj: Any, qualname: str) -> Any:
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
    return obj


def _import(ref: str, *, what: str) -> Any:
    module_name, sep, qualname = ref.partition(":")
    if not sep or not module_name or not qualname:
        raise UsageError(f"{what} {ref!r} is not 'module:qualname'")
    try:
        module = sys.modules.get(module_name) or import_module(module_name)
    except ImportError as exc:
        raise UsageError(
            f"{what} {ref}: cannot import {module_name!r} ({exc}); deploy the same code to every worker"
        ) from None
    found = _lookup(module, qualname)
    if found is None:
        raise UsageError(
            f"{what} {ref}: {module_name!r} has no {qualname!r}; deploy the same code to every worker"
        )
    return found
