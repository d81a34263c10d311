"""Reading JSON out of model text (tolerating Markdown fences and prose around it)."""

from __future__ import annotations

from typing import Any

from bandmaster.errors import MalformedResponse
from bandmaster.models._jsontext import JsonNotFound, extract_json


def parse_json_output(text: str, *, model: str) -> Any:
    try:
        return extract_json(text)
    except JsonNotFound as exc:
        raise MalformedResponse(
            f"model {model!r} was asked for JSON but answered {text[:120]!r}: {exc}", text=text
        ) from exc
