"""``POST /hooks/{name}``: start a run from a signed inbound webhook (``bandmaster.triggers._hooks``).

No API token: the Standard Webhooks signature is the authentication (401 without a valid one),
checked on the raw body before it is parsed. The ``webhook-id`` header names the run, so the
sender's retries of one delivery start one run (200 ``created: false`` after the first).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Request, Response
from pydantic import BaseModel, Field

from bandmaster.server._api import start_keyed
from bandmaster.server._deps import state_of
from bandmaster.server._errors import EVERY_REQUEST, ApiError, documented, shorter

router = APIRouter(responses=documented(*EVERY_REQUEST), tags=["hooks"])
HeaderText = Annotated[str | None, Header(max_length=1000)]


class HookAccepted(BaseModel):
    run_id: str = Field(description="{hook}:{webhook-id}: the same for every retry of a delivery")
    workflow: str
    created: bool = Field(description="false when this delivery had already started its run")


@router.post(
    "/hooks/{name}",
    operation_id="receiveHook",
    status_code=202,
    response_model=HookAccepted,
    responses=documented(400, 401, 404, 409, 503),
)
async def receive(
    name: str,
    request: Request,
    response: Response,
    webhook_id: HeaderText = None,
    webhook_timestamp: HeaderText = None,
    webhook_signature: HeaderText = None,
) -> HookAccepted:
    """Verify the delivery (signature over id, timestamp and body; timestamp within the hook's
    tolerance), map the JSON body to the hook's workflow input, and start the run once."""
    state = state_of(request)
    hook = state.hooks.get(name)
    if hook is None:
        known = ", ".join(sorted(state.hooks)) or "none configured (bandmaster server --hooks FILE)"
        raise ApiError(404, "unknown_hook", f"no hook {shorter(name)} on this server (known: {known})")
    body = await request.body()
    delivery = hook.verify(body, request.headers)  # InvalidSignature: 401
    run_id = hook.run_id(delivery)  # an id that is not a run id: InvalidInput, 422
    value = hook.input_of(body)
    # A reused webhook-id with another body: IdempotencyConflict, 409.
    _, _, created = await start_keyed(state.backend, hook.workflow, value, run_id)
    if not created:
        response.status_code = 200
    return HookAccepted(run_id=run_id, workflow=hook.workflow, created=created)
