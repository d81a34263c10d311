"""The dashboard's schedules page: list, pause and resume (``runs:write``), audited."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from bandmaster.errors import BandmasterError
from bandmaster.server._schedules import desk_of
from bandmaster.server._ui import _form, _page, _render
from bandmaster.store import TokenStore

router = APIRouter(include_in_schema=False)


@router.get("/ui/schedules")
async def schedules_page(request: Request) -> HTMLResponse:
    state, session = _page(request)
    return _render(
        request,
        "schedules.html",
        session=session,
        title="Schedules",
        schedules=await desk_of(state).list(),
        can_change=session.principal.allows("runs:write"),
    )


@router.post("/ui/schedules/{name}/{action}")
async def change_schedule(request: Request, name: str, action: str) -> Response:
    state, session = _page(request, "runs:write")
    await _form(request, session)
    desk = desk_of(state)
    who = session.principal.name
    try:
        if action == "pause":
            await desk.pause(name, by=who)
        elif action == "resume":
            await desk.resume(name, by=who)
        else:
            raise BandmasterError(f"unknown action {action!r}: pause or resume")
    except BandmasterError as exc:
        return _render(request, "error.html", 404, session=session, title="Schedules", message=str(exc))
    TokenStore(state.store).audit(who, f"schedule.{action}", name, None)
    return RedirectResponse("/ui/schedules", status_code=303)
