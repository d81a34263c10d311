"""Rules on a model call's input and output, and the settings a guard pins.

* ``BannedTopics``: phrases (case-insensitive, whole words) and an optional classifier;
* ``MaxTokens``: a token budget for the prompt and/or the answer;
* ``RequiredFields``: keys the JSON answer must have;
* ``ModelSettings``: temperature, max_tokens and response format sent to the provider.

A hit raises ``bm.GuardViolation`` naming the rule, the direction and the offending span.
Input offsets are into ``ModelRequest.text()`` (the conversation without the system prompt,
messages joined by newlines), output offsets into ``ModelResponse.text``.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Literal

from pydantic import BaseModel

from bandmaster.errors import UsageError
from bandmaster.guard._base import Guard, OnViolation, Reask, check_direction, check_on_violation
from bandmaster.models import JsonNotFound, ModelRequest, ModelResponse, extract_json

__all__ = ["BannedTopics", "Classification", "Classifier", "MaxTokens", "ModelSettings", "RequiredFields"]

Classification = float | bool | tuple[str, float] | None
"""What a classifier returns: a score in [0, 1], a verdict, ``(label, score)``, or ``None``
(nothing found)."""
Classifier = Callable[[str], Classification | Awaitable[Classification]]


def _output_text(response: ModelResponse) -> str:
    if response.text:
        return response.text
    return response.output if isinstance(response.output, str) else ""


class BannedTopics(Guard):
    """Refuse text that mentions a banned topic.

    ``phrases`` match case-insensitively as whole words ("tax evasion" matches "Tax  Evasion."
    but not "syntax evasions"); whitespace inside a phrase matches any run of whitespace.
    ``classifier`` is any callable (sync or async) taking the text and returning a score, a
    verdict or ``(label, score)``; a score at or above ``threshold`` is a hit, and the span is
    the whole text. ``direction`` is ``"input"``, ``"output"`` or ``"both"``. An input hit is
    found before any model is called.
    """

    name = "banned_topics"

    def __init__(
        self,
        phrases: Sequence[str] = (),
        *,
        classifier: Classifier | None = None,
        threshold: float = 0.5,
        direction: str = "both",
        on_violation: OnViolation = "raise",
    ) -> None:
        if isinstance(phrases, str):
            raise UsageError("BannedTopics(phrases=...) takes a list of phrases, not one string")
        cleaned = [p.strip() for p in phrases]
        if any(not p for p in cleaned):
            raise UsageError("BannedTopics: phrases must not be empty")
        if not cleaned and classifier is None:
            raise UsageError("BannedTopics needs phrases=[...], a classifier=, or both")
        if classifier is not None and not callable(classifier):
            raise UsageError(f"BannedTopics(classifier=...) must be callable, not {classifier!r}")
        self.phrases = cleaned
        # How far back a phrase that ends in a new chunk can start (generous: runs of spaces).
        self._window = 2 * max((len(p) for p in cleaned), default=0) + 64
        self.classifier = classifier
        self.threshold = threshold
        self.direction = check_direction(direction)
        self.on_violation = check_on_violation(on_violation)
        try:
            trie = _trie_pattern(cleaned) if cleaned else ""
            # Searching lower-cased text with a case-sensitive pattern is about 3x faster than
            # IGNORECASE; the IGNORECASE pattern serves text whose lower-casing changes its length
            # (offsets would no longer point into the original).
            self._lower = re.compile(r"(?<!\w)" + trie + r"(?!\w)") if trie else None
            self._pattern = re.compile(r"(?<!\w)" + trie + r"(?!\w)", re.IGNORECASE) if trie else None
        except (RecursionError, OverflowError, re.error):  # phrases nested in each other, hundreds deep
            raise UsageError(
                f"BannedTopics: {len(cleaned)} phrases that extend one another hundreds of times "
                f"('a', 'ab', 'abc', ...) are too many to match at once; list the shortest only"
            ) from None

    def to_config(self) -> dict[str, Any]:
        return {
            "phrases": self.phrases,
            "classifier": self.classifier,
            "threshold": self.threshold,
            "direction": self.direction,
            "on_violation": self.on_violation,
        }

    async def check_input(self, request: ModelRequest) -> ModelRequest:
        if self.direction != "output":
            await self.scan(request.text(), "input")
        return request

    async def check_output(self, response: ModelResponse, request: ModelRequest) -> ModelResponse:
        if self.direction != "input":
            await self.scan(_output_text(response), "output")
        return response

    def check_partial(self, text: str, new_from: int) -> None:
        """Cut a streamed answer at the first chunk that completes a banned phrase. A match
        that touches the end of the text so far is not one yet ("tax evasion" may go on as
        "tax evasions"); the classifier judges the whole answer at the end only."""
        if self.direction == "input" or self._pattern is None:
            return
        start = max(0, new_from - self._window)
        for match in self._pattern.finditer(text, start):
            if match.end() < len(text):
                found = match.group()
                raise self.violation(
                    "output", f"mentions the banned topic {found!r}", start=match.start(), text=found
                )

    async def scan(self, text: str, direction: Literal["input", "output"]) -> None:
        if self._pattern is not None and self._lower is not None:
            lowered = text.lower()
            same = len(lowered) == len(text)
            match = self._lower.search(lowered) if same else self._pattern.search(text)
            if match is not None:
                found = text[match.start() : match.end()]  # the original's characters
                raise self.violation(
                    direction, f"mentions the banned topic {found!r}", start=match.start(), text=found
                )
        if self.classifier is not None and text:
            result = self.classifier(text)
            if inspect.isawaitable(result):
                result = await result
            label, score = _classification(result)
            if score is not None and score >= self.threshold:
                raise self.violation(
                    direction,
                    f"the classifier flagged it as {label!r} (score {score:.2f} >= {self.threshold})",
                    start=0,
                    text=text,
                )


def _trie_pattern(phrases: list[str]) -> str:
    """One regex for all phrases, factored by common prefix ("tax evasion|tax fraud" becomes
    "tax\\s+(?:evasion|fraud)"): Python's ``re`` tries alternatives one by one at every
    position, so a flat alternation of 40 phrases costs 40 tries per character. A longer
    phrase wins over its own prefix ("insider trading scheme" over "insider trading")."""
    root: dict[str, Any] = {}
    for phrase in phrases:
        node = root
        for index, word in enumerate(phrase.lower().split()):
            for unit in ([r"\s+"] if index else []) + [re.escape(ch) for ch in word]:
                node = node.setdefault(unit, {})
        node[""] = {}  # a phrase ends here

    def emit(node: dict[str, Any]) -> str:
        prefix = ""
        while len(node) == 1 and "" not in node:  # a run without branches: no recursion
            unit, node = next(iter(node.items()))
            prefix += unit
        branches = [unit + emit(child) for unit, child in node.items() if unit]
        if not branches:
            return prefix
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        if "" in node:  # the phrase may end here, or go on to a longer one (greedy: longer first)
            body = f"(?:{body})?"
        return prefix + body

    return emit(root)


def _classification(result: Any) -> tuple[str, float | None]:
    if result is None or result is False:
        return "", None
    if result is True:
        return "banned", 1.0
    if isinstance(result, int | float):
        return "banned", float(result)
    if isinstance(result, tuple) and len(result) == 2:
        return str(result[0]), float(result[1])
    raise UsageError(
        f"a BannedTopics classifier returned {result!r}; return a score, a bool, (label, score) or None"
    )


class MaxTokens(Guard):
    """A token budget. ``direction="input"``: the prompt (``ModelRequest.text()``) may hold at
    most ``limit`` tokens, checked before any model is called. ``"output"``: the request's
    ``max_tokens`` is capped at ``limit`` (the provider stops there) and a longer answer is a
    violation. ``"both"``: both. The span starts at the first token over the budget.

    Tokens are counted by ``tokenizer`` (anything with ``encode``/``decode``), by default
    ``bandmaster.models.tokenizers.default_tokenizer()``: tiktoken's cl100k_base with the extra
    ``tokens``, else an approximate counter that over-counts English (the safe side).
    """

    name = "max_tokens"

    def __init__(
        self,
        limit: int,
        *,
        direction: str = "input",
        tokenizer: Any = None,
        on_violation: OnViolation = "raise",
    ) -> None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise UsageError(f"MaxTokens(limit) must be a whole number >= 1, not {limit!r}")
        self.limit = limit
        self.direction = check_direction(direction)
        self.on_violation = check_on_violation(on_violation)
        self._tokenizer = tokenizer
        self._custom_tokenizer = tokenizer is not None
        self._bytes_bound: bool | None = None  # set with the tokenizer, on first use

    @property
    def tokenizer(self) -> Any:
        if self._bytes_bound is None:
            # Imported here: bandmaster.graph imports this module through call_model.
            from bandmaster.models.tokenizers import ApproxTokenizer, TiktokenTokenizer, default_tokenizer

            if self._tokenizer is None:
                self._tokenizer = default_tokenizer()
            # Both make at most one token per UTF-8 byte, so short text needs no encoding.
            self._bytes_bound = isinstance(self._tokenizer, TiktokenTokenizer | ApproxTokenizer)
        return self._tokenizer

    def to_config(self) -> dict[str, Any]:
        config: dict[str, Any] = {
            "limit": self.limit,
            "direction": self.direction,
            "on_violation": self.on_violation,
        }
        if self._custom_tokenizer:  # travels when it is a module-level class or function
            config["tokenizer"] = self._tokenizer
        return config

    async def check_input(self, request: ModelRequest) -> ModelRequest:
        if self.direction != "output":
            self.measure(request.text(), "input")
        if self.direction != "input" and (request.max_tokens is None or request.max_tokens > self.limit):
            request = request.model_copy(update={"max_tokens": self.limit})
        return request

    async def check_output(self, response: ModelResponse, request: ModelRequest) -> ModelResponse:
        if self.direction != "input":
            self.measure(_output_text(response), "output")
        return response

    def measure(self, text: str, direction: Literal["input", "output"]) -> None:
        tokenizer = self.tokenizer
        if self._bytes_bound and len(text.encode()) <= self.limit:
            return
        ids = tokenizer.encode(text)
        if len(ids) <= self.limit:
            return
        start = min(len(tokenizer.decode(ids[: self.limit])), len(text))
        raise self.violation(
            direction, f"{len(ids)} tokens, over the limit of {self.limit}", start=start, text=text[start:]
        )


class RequiredFields(Guard):
    """The JSON answer must have these fields, each present and not null or empty. A field is
    a key or a dotted path (``"parties.0.name"``). Put it after ``JsonSchema`` to check the
    parsed output; alone it reads JSON from the answer's text. With ``reask`` > 0 a missing
    field re-asks the model instead of failing."""

    name = "required_fields"

    def __init__(self, fields: Sequence[str], *, reask: int = 0, on_violation: OnViolation = "raise") -> None:
        if isinstance(fields, str) or not fields or not all(isinstance(f, str) and f for f in fields):
            raise UsageError("RequiredFields takes a non-empty list of field names, e.g. ['risk', 'parties']")
        self.fields = list(fields)
        self.reask = reask
        self.on_violation = check_on_violation(on_violation)

    def to_config(self) -> dict[str, Any]:
        return {"fields": self.fields, "reask": self.reask, "on_violation": self.on_violation}

    async def check_output(self, response: ModelResponse, request: ModelRequest) -> ModelResponse:
        value = response.output
        if isinstance(value, BaseModel):
            value = value.model_dump(mode="json")
        elif isinstance(value, str) or value is None:
            try:
                value = extract_json(_output_text(response))
            except JsonNotFound as exc:
                return self._refuse(f"the answer is not JSON ({exc})")
        missing = [f for f in self.fields if _empty(_lookup(value, f))]
        if missing:
            return self._refuse(f"missing or empty field(s): {', '.join(missing)}")
        return response

    def _refuse(self, detail: str) -> ModelResponse:
        if self.reask:
            raise Reask(detail)
        raise self.violation("output", detail)


_MISSING = object()


def _lookup(value: Any, path: str) -> Any:
    for part in path.split("."):
        if isinstance(value, dict):
            value = value.get(part, _MISSING)
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return _MISSING
    return value


def _empty(value: Any) -> bool:
    return value is _MISSING or value is None or value == "" or value == [] or value == {}


class ModelSettings(Guard):
    """Pin provider settings on every call it guards: ``temperature``, ``max_tokens`` and
    ``response_format`` (``"json"``: JSON mode; ``"text"``). Set fields override the call's."""

    name = "model_settings"

    def __init__(
        self,
        *,
        temperature: float | None = None,
        max_tokens: int | None = None,
        response_format: Literal["text", "json"] | None = None,
    ) -> None:
        if temperature is not None and not 0 <= temperature <= 2:
            raise UsageError(f"ModelSettings(temperature=...) must be within [0, 2], not {temperature!r}")
        if max_tokens is not None and max_tokens < 1:
            raise UsageError(f"ModelSettings(max_tokens=...) must be >= 1, not {max_tokens!r}")
        if response_format not in (None, "text", "json"):
            raise UsageError(
                f"ModelSettings(response_format=...) must be 'json' or 'text', not {response_format!r}"
            )
        self.settings = {
            k: v
            for k, v in {
                "temperature": temperature,
                "max_tokens": max_tokens,
                "response_format": response_format,
            }.items()
            if v is not None
        }

    def to_config(self) -> dict[str, Any]:
        return dict(self.settings)

    async def check_input(self, request: ModelRequest) -> ModelRequest:
        return request.model_copy(update=self.settings) if self.settings else request

    def __repr__(self) -> str:
        return "ModelSettings(" + ", ".join(f"{k}={v!r}" for k, v in self.settings.items()) + ")"
