"""``budgets:`` in models.yaml: how a run's budget is enforced, and each tenant's daily budget.

    budgets:
      runs: {on_exceed: fail}          # a run started with budget_usd=... (default: fail)
      tenants:
        acme: {usd_per_day: 20, on_exceed: downgrade, downgrade_to: small}
        beta: {usd_per_day: 5, on_exceed: approve, approve_timeout: 3600}

A tenant's day is the UTC calendar day: its spend starts again from 0 at 00:00 UTC.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

OnExceed = Literal["fail", "downgrade", "approve"]

DEFAULT_APPROVE_TIMEOUT = 3600.0
"""Seconds a budget approval waits for a person before it counts as rejected."""


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)


class ExceedSpec(_Spec):
    """What happens to a model call that would take the budget over its limit."""

    on_exceed: OnExceed = "fail"
    downgrade_to: str | None = None  # an alias or model: where a downgraded call goes
    approve_timeout: float = Field(default=DEFAULT_APPROVE_TIMEOUT, gt=0)

    @model_validator(mode="after")
    def _downgrade_needs_target(self) -> ExceedSpec:
        if self.on_exceed == "downgrade" and not self.downgrade_to:
            raise ValueError(
                "downgrade_to: on_exceed: downgrade needs downgrade_to: <a cheaper alias or model>"
            )
        return self


class RunBudgets(ExceedSpec):
    """How ``start(..., budget_usd=X)`` is enforced (the limit comes with each run)."""


class TenantBudget(ExceedSpec):
    usd_per_day: float = Field(ge=0, description="USD a tenant may spend per UTC calendar day")


class BudgetsSpec(_Spec):
    runs: RunBudgets = Field(default_factory=RunBudgets)
    tenants: dict[str, TenantBudget] = Field(default_factory=dict)

    def targets(self) -> dict[str, str]:
        """Where each rule downgrades to (its config path → the alias or model)."""
        named = {"budgets.runs.downgrade_to": self.runs.downgrade_to}
        named.update({f"budgets.tenants.{t}.downgrade_to": b.downgrade_to for t, b in self.tenants.items()})
        return {path: target for path, target in named.items() if target}
