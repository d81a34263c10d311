"""Workflows for the approvals e2e test, imported by ``bandmaster worker`` processes by path."""

from __future__ import annotations

import bandmaster as bm


@bm.workflow
async def reviewed(timeout: float) -> str:
    decision = await bm.approval("release", {"version": "2.1"}, timeout=timeout, default="approve")
    return f"{decision.action} by {decision.by or 'default'}"
