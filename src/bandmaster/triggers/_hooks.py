"""Inbound webhooks: ``POST /hooks/{name}`` signed in the Standard Webhooks format
(https://www.standardwebhooks.com; verified by the ``standardwebhooks`` package), each mapped
to one workflow. The ``webhook-id`` header names the run (``{hook}:{webhook-id}``), so a
delivery retried by the sender never starts a second run.

Hooks are configured in YAML; secrets come from the environment, never from the file::

    hooks:
      tickets:
        workflow: triage
        secret_env: TICKETS_WEBHOOK_SECRET   # whsec_... (base64), as the sender shows it
        input: data                          # optional: the body's key holding the input
        tolerance: 300                       # optional: seconds of clock skew/replay window
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bandmaster._types import URL_NAME
from bandmaster.engine import check_run_id
from bandmaster.errors import InvalidInput, InvalidSignature, UsageError

MAX_TOLERANCE = 300.0  # the standardwebhooks verifier's own window: a hook may only narrow it


@dataclass(frozen=True, slots=True)
class InboundHook:
    name: str
    workflow: str
    secret: str = field(repr=False)
    input_key: str | None = None
    tolerance: float = MAX_TOLERANCE

    def __post_init__(self) -> None:
        if not URL_NAME.fullmatch(self.name) or ":" in self.name:
            raise UsageError(
                f"hook name {self.name!r}: letters, digits and - _ . ~ @ + = (it is a URL path segment "
                "and starts the run ids of its runs)"
            )
        if not 0 < self.tolerance <= MAX_TOLERANCE:
            raise UsageError(f"hook {self.name!r}: tolerance {self.tolerance!r}; give 1-300 seconds")
        try:
            _verifier(self.secret)
        except Exception as exc:  # the package raises bare exceptions for a bad secret
            raise UsageError(
                f"hook {self.name!r}: the secret is not a Standard Webhooks secret (whsec_ and base64): {exc}"
            ) from None

    def verify(self, body: bytes, headers: Mapping[str, str], *, now: float | None = None) -> str:
        """Check the signature and timestamp; return the webhook id (``InvalidSignature`` if not)."""
        from standardwebhooks.webhooks import WebhookVerificationError

        lowered = {k.lower(): v for k, v in headers.items()}
        stamp = lowered.get("webhook-timestamp", "")
        try:
            age = abs((now if now is not None else time.time()) - float(stamp))
        except ValueError:
            raise InvalidSignature("webhook-timestamp is missing or not a Unix time") from None
        if not age <= self.tolerance:  # also refuses NaN
            raise InvalidSignature(
                f"webhook-timestamp is {age:.0f}s from now, outside the {self.tolerance:.0f}s window "
                "(a replayed delivery, or the sender's clock is off)"
            )
        try:
            _verifier(self.secret).verify(body, lowered, json_parse=False)
        except WebhookVerificationError as exc:
            raise InvalidSignature(f"webhook signature refused: {exc}") from None
        return lowered["webhook-id"]

    def run_id(self, webhook_id: str) -> str:
        return check_run_id(f"{self.name}:{webhook_id}")

    def input_of(self, body: bytes) -> Any:
        """The workflow input the body carries (``InvalidInput`` for bad JSON or a missing key)."""
        try:
            value = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InvalidInput(f"the body of hook {self.name!r} is not JSON: {exc}") from None
        if self.input_key is None:
            return value
        if not isinstance(value, dict) or self.input_key not in value:
            raise InvalidInput(f"the body of hook {self.name!r} has no {self.input_key!r} key (its input)")
        return value[self.input_key]


def _verifier(secret: str) -> Any:
    from standardwebhooks.webhooks import Webhook

    return Webhook(secret)


def load_hooks(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> dict[str, InboundHook]:
    """The ``hooks:`` of a triggers YAML file, with their secrets read from ``env``."""
    environ = os.environ if env is None else env
    where = Path(path)
    try:
        data = yaml.safe_load(where.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise UsageError(f"cannot read hooks from {where}: {exc}") from None
    section = data.get("hooks") if isinstance(data, dict) else None
    if not isinstance(section, dict):
        raise UsageError(f"{where}: no `hooks:` mapping (name: {{workflow: ..., secret_env: ...}})")
    hooks: dict[str, InboundHook] = {}
    for name, spec in section.items():
        if not isinstance(spec, dict) or not isinstance(spec.get("workflow"), str):
            raise UsageError(f"{where}: hook {name!r} needs `workflow: NAME`")
        unknown = set(spec) - {"workflow", "secret_env", "input", "tolerance"}
        if unknown:
            raise UsageError(f"{where}: hook {name!r} has unknown keys {sorted(unknown)}")
        variable = spec.get("secret_env")
        secret = environ.get(variable) if isinstance(variable, str) else None
        if not secret:
            raise UsageError(
                f"{where}: hook {name!r} needs `secret_env: VARIABLE`, an environment variable holding "
                f"its whsec_ secret ({variable!r} is not set)"
            )
        hooks[str(name)] = InboundHook(
            str(name),
            spec["workflow"],
            secret,
            spec.get("input"),
            float(spec.get("tolerance", MAX_TOLERANCE)),
        )
    return hooks
