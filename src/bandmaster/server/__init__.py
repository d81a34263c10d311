"""``bandmaster server``: the HTTP API, the web dashboard and access control.

Needs the ``server`` extra: ``pip install 'bandmaster[server]'``.
"""

from __future__ import annotations

try:
    import fastapi  # noqa: F401
    import jinja2  # noqa: F401
    import prometheus_client  # noqa: F401
    import uvicorn  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        f"bandmaster.server needs the server extra ({exc.name} is missing): pip install 'bandmaster[server]'"
    ) from exc

from bandmaster.server._app import create_app
from bandmaster.server._auth import SCOPES, IssuedToken, Principal, create_token, revoke_token
from bandmaster.server._settings import ServerSettings

__all__ = [
    "SCOPES",
    "IssuedToken",
    "Principal",
    "ServerSettings",
    "create_app",
    "create_token",
    "revoke_token",
]
