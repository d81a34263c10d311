"""JSON request bodies read as standard JSON: ``NaN``, ``Infinity`` and ``-Infinity`` refused.

Python's ``json.loads`` (which Starlette uses) accepts those three words, and reads ``1e400``
as infinity. A weight of ``NaN``
passes every comparison, a workflow input of ``Infinity`` is journaled as ``null``, and a
response holding one cannot be encoded: the API refuses them before any route sees them, with
the same 422 as any other malformed body.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute


class _StrictJsonRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()

            def refuse(word: str) -> Any:
                text = body.decode("utf-8", errors="replace")
                raise json.JSONDecodeError(
                    f"{word} is not a finite number (JSON has no NaN or infinities); send a finite number",
                    text,
                    max(text.find(word), 0),
                )

            def finite(word: str) -> float:
                number = float(word)
                return number if math.isfinite(number) else refuse(word)  # 1e400 reads as infinity

            try:
                parsed = json.loads(body, parse_constant=refuse, parse_float=finite)
                # A lone surrogate (an unpaired "\ud800") cannot be stored or answered as UTF-8.
                json.dumps(parsed, ensure_ascii=False).encode()
            except json.JSONDecodeError:
                raise
            except UnicodeError as exc:
                raise _malformed(
                    body, "holds text that is not UTF-8 (or a lone \\ud800-\\udfff escape)"
                ) from exc
            except ValueError as exc:  # Python's limit of 4300 digits on an integer
                raise _malformed(body, f"holds a number Python cannot read ({exc})") from exc
            except RecursionError as exc:
                raise _malformed(body, "nests arrays or objects too deeply") from exc
            self._json = parsed
        return self._json


def _malformed(body: bytes, why: str) -> json.JSONDecodeError:
    """FastAPI answers a ``JSONDecodeError`` as the one 422, any other error as a bare 400."""
    return json.JSONDecodeError(
        f"the body {why}; send standard JSON in UTF-8", body.decode(errors="replace"), 0
    )


class StrictJsonRoute(APIRoute):
    """An API route whose JSON body is parsed as standard JSON (FastAPI's custom-route hook)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict(request: Request) -> Response:
            return await handler(_StrictJsonRequest(request.scope, request.receive))

        return strict
