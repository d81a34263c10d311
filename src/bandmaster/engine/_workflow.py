"""``@bm.workflow``: a durable async function."""

from __future__ import annotations

import functools
import inspect
import json
import re
from collections.abc import Awaitable, Callable
from typing import Any, Generic, ParamSpec, TypeVar, get_type_hints, overload

from bandmaster.engine._context import direct_call
from bandmaster.engine._redaction import Redactor
from bandmaster.engine._serde import Codec, codec_for
from bandmaster.errors import InvalidInput, UsageError

P = ParamSpec("P")
R = TypeVar("R")


class Workflow(Generic[P, R]):
    """A workflow definition. Calling it directly runs the function without a journal (steps
    just run), which keeps workflows unit-testable; ``engine.start`` runs it durably."""

    def __init__(
        self,
        fn: Callable[P, Awaitable[R]],
        *,
        name: str | None = None,
        version: str | None = None,
        redact: Redactor | None = None,
    ) -> None:
        if not inspect.iscoroutinefunction(fn):
            raise UsageError(f"@bm.workflow needs an async function; {fn.__qualname__} is not")
        self.signature = inspect.signature(fn)
        for param in self.signature.parameters.values():
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                raise UsageError(
                    f"workflow {fn.__qualname__}: *args/**kwargs cannot be journaled; name each parameter"
                )
        self.fn = fn
        self.name = name or fn.__name__
        self.version = _checked_version(self.name, version)
        if redact is not None and not isinstance(redact, Redactor):
            raise UsageError(
                f"workflow {fn.__qualname__}: redact={redact!r} has no redact(value) method; "
                f"pass bm.RedactPII(...) or another bandmaster Redactor"
            )
        self.redact = redact
        self._input: Codec | None = None
        self._output: Codec | None = None
        functools.update_wrapper(self, fn)

    def _resolve(self) -> None:
        hints = get_type_hints(self.fn)
        params = [hints.get(p, Any) for p in self.signature.parameters]
        self._input = codec_for(tuple[tuple(params)] if params else tuple[()])  # type: ignore[misc]
        self._output = codec_for(hints.get("return", Any))

    @property
    def input_codec(self) -> Codec:
        if self._input is None:
            self._resolve()
        assert self._input is not None
        return self._input

    @property
    def output_codec(self) -> Codec:
        if self._output is None:
            self._resolve()
        assert self._output is not None
        return self._output

    def encode_input(self, args: tuple[Any, ...], kwargs: dict[str, Any], *, limit: int) -> str:
        try:
            bound = self.signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise InvalidInput(f"workflow {self.name!r}: {exc}") from exc
        bound.apply_defaults()
        values = tuple(bound.arguments.values())
        return self.input_codec.dump(values, what=f"input of workflow {self.name!r}", limit=limit)

    def decode_input(self, text: str | None, *, run_id: str | None = None) -> tuple[Any, ...]:
        """The recorded input as arguments (``run_id``, when given, is named in the error of
        an input the code's signature no longer accepts)."""
        raw = json.loads(text or "[]")
        if isinstance(raw, list) and len(raw) < len(self.signature.parameters):
            # Started by name from a client without the code: fill in the defaults here.
            bound = self.signature.bind_partial(*raw)
            bound.apply_defaults()
            raw = list(bound.arguments.values())
        run = f" (run {run_id})" if run_id is not None else ""
        return tuple(self.input_codec.validate(raw, what=f"input of workflow {self.name!r}{run}"))

    def input_from_json(self, value: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """Map a JSON value (CLI, HTTP) onto the parameters: the whole value for a
        one-parameter workflow, else an object of keyword arguments or an array."""
        count = len(self.signature.parameters)
        if count == 1:
            return (value,), {}
        if isinstance(value, dict):
            return (), value
        if isinstance(value, list):
            return tuple(value), {}
        if count == 0 and value is None:
            return (), {}
        raise InvalidInput(
            f"workflow {self.name!r} takes {count} parameters "
            f"({', '.join(self.signature.parameters)}); pass a JSON object or array"
        )

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> Awaitable[R]:
        return self._direct(*args, **kwargs)

    async def _direct(self, *args: Any, **kwargs: Any) -> R:
        token = direct_call.set(True)
        try:
            return await self.fn(*args, **kwargs)
        finally:
            direct_call.reset(token)

    def __repr__(self) -> str:
        return f"<bm.workflow {self.name}>"


@overload
def workflow(fn: Callable[P, Awaitable[R]], /) -> Workflow[P, R]: ...


@overload
def workflow(
    *, name: str | None = None, version: str | None = None, redact: Redactor | None = None
) -> Callable[[Callable[P, Awaitable[R]]], Workflow[P, R]]: ...


def workflow(
    fn: Callable[P, Awaitable[R]] | None = None,
    /,
    *,
    name: str | None = None,
    version: str | None = None,
    redact: Redactor | None = None,
) -> Workflow[P, R] | Callable[[Callable[P, Awaitable[R]]], Workflow[P, R]]:
    """Make an async function a durable workflow: ``@bm.workflow`` or
    ``@bm.workflow(name="triage", version="2")``. ``redact`` (e.g. ``bm.RedactPII()``) rewrites
    the input, every step output and every signal payload of its runs before they are journaled;
    the workflow code sees the redacted values."""

    def decorate(f: Callable[P, Awaitable[R]]) -> Workflow[P, R]:
        return Workflow(f, name=name, version=version, redact=redact)

    return decorate(fn) if fn is not None else decorate


_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,63}")


def _checked_version(name: str, version: str | None) -> str | None:
    if version is None or (isinstance(version, str) and _VERSION.fullmatch(version)):
        return version
    raise UsageError(
        f"workflow {name!r}: version={version!r} is not a version; use up to 64 letters, digits, "
        "'.', '_', '+' or '-', starting with a letter or digit, e.g. version=\"2\" or \"2024-06-01\""
    )


def redactor_for(wf: Workflow[..., Any] | None, default: Redactor | None) -> Redactor | None:
    """The redactor of a workflow's runs: its own, else the engine's."""
    if wf is not None and wf.redact is not None:
        return wf.redact
    return default
