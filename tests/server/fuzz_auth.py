"""The API's bearer scheme for schemathesis, shared by the fuzz tests of both backends.

With the scheme satisfied, schemathesis knows each case is authenticated; otherwise it counts a
case without the header as invalid data, which would then be sent with the test's token and
accepted. Cases are made before a server has a token, so they carry a placeholder that
``with_token`` replaces; a case made invalid on purpose keeps its broken header."""

from __future__ import annotations

from typing import Any

import schemathesis

PLACEHOLDER = "set-by-the-test"


class BearerPlaceholder:
    def get(self, case: schemathesis.Case[Any], context: Any) -> str:
        return PLACEHOLDER

    def set(self, case: schemathesis.Case[Any], data: str, context: Any) -> None:
        case.headers = {**(case.headers or {}), "Authorization": data}


def authenticated(schema: Any) -> Any:
    """``schema`` with its cases carrying the placeholder token."""
    schema.auth()(BearerPlaceholder)
    return schema


def with_token(case: schemathesis.Case[Any], secret: str) -> None:
    """Put the real token into a case that carries the placeholder."""
    if case.headers and case.headers.get("Authorization") == PLACEHOLDER:
        case.headers["Authorization"] = f"Bearer {secret}"
