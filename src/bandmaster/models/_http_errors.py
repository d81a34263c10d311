"""One mapping from provider failures to bandmaster's error tree, for every provider."""

from __future__ import annotations

from bandmaster.errors import (
    AuthenticationFailed,
    InvalidRequest,
    ProviderUnavailable,
    RateLimited,
    StepError,
)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds form; HTTP dates are rare here)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def error_for_status(
    status: int,
    message: str,
    *,
    provider: str,
    retry_after: str | None = None,
    api_key_env: str | None = None,
) -> StepError:
    """429 → RateLimited, 5xx → ProviderUnavailable, 401/403 → AuthenticationFailed,
    other 4xx → InvalidRequest (not retried)."""
    if status == 429:
        return RateLimited(
            f"{provider}: rate limited (429): {message}", retry_after=parse_retry_after(retry_after)
        )
    if status in (401, 403):
        hint = f"; check the API key in ${api_key_env}" if api_key_env else ""
        return AuthenticationFailed(f"{provider}: credentials rejected ({status}): {message}{hint}")
    if status >= 500 or status == 408:
        return ProviderUnavailable(f"{provider}: unavailable ({status}): {message}")
    return InvalidRequest(f"{provider}: request rejected ({status}): {message}")
