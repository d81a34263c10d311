"""Server settings, resolved once at the edge (CLI flags or ``create_app(settings=...)``)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ServerSettings(BaseModel):
    """Limits and session options of ``bandmaster server``."""

    model_config = ConfigDict(frozen=True)

    max_body: int = Field(1_000_000, gt=0, description="Largest request body in bytes (413 above)")
    max_headers: int = Field(16_384, gt=0, description="Largest total of request headers in bytes (431)")
    rate_limit: float = Field(50.0, gt=0, description="Requests/s per token unless the token sets its own")
    burst_seconds: float = Field(2.0, gt=0, description="A bucket holds rate_limit * burst_seconds requests")
    session_ttl: float = Field(8 * 3600, gt=0, description="Seconds a browser session lasts")
    secure_cookies: bool = Field(
        True,
        description="Mark the session cookie Secure (browsers accept it on "
        "http://127.0.0.1 and localhost; put TLS in front elsewhere)",
    )
    poll_interval: float = Field(0.1, gt=0, description="Seconds between journal reads of an event stream")
    processes: int = Field(
        1, ge=1, description="Server processes sharing the port; each keeps 1/N of every token's rate"
    )
    refresh_seconds: int = Field(
        5, ge=0, description="Seconds between updates of the runs, run and approvals pages (0: off)"
    )
    show_internals: bool = Field(
        False,
        description="Show clients run tracebacks (with the server's file paths) and lease owners "
        "(worker host and pid); off: a runs:read token sees error type and message only",
    )
