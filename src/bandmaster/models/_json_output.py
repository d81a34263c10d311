"""Reading JSON out of model text (tolerating Markdown fences)."""

from __future__ import annotations

import json
import re
from typing import Any

from bandmaster.errors import MalformedResponse

_FENCE = re.compile(r"^\s*```(?:json)?\s*\n?(.*?)\n?\s*```\s*$", re.DOTALL)


def parse_json_output(text: str, *, model: str) -> Any:
    match = _FENCE.match(text)
    body = match.group(1) if match else text
    try:
        return json.loads(body)
    except json.JSONDecodeError as exc:
        raise MalformedResponse(
            f"model {model!r} was asked for JSON but answered {text[:120]!r}: {exc}"
        ) from exc
