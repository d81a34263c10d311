"""The dashboard's runs: the list (search, filters, sorting, duration and error columns) and a
run's page (timeline, steps, input and output), live over server-sent events while it runs."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse

from bandmaster._types import RUN_ORDERS, TERMINAL_STATUSES
from bandmaster.engine import RunInfo
from bandmaster.engine.stats_report import no_worker_note
from bandmaster.errors import InvalidInput, NotSupported, RunNotFound
from bandmaster.server._errors import shorter
from bandmaster.server._events import run_events
from bandmaster.server._exposure import shown_run
from bandmaster.server._journal import run_costs
from bandmaster.server._limits import MAX_OFFSET
from bandmaster.server._svg import gantt
from bandmaster.server._ui import _form, _page, _pretty, _render, reused
from bandmaster.store import TokenStore
from bandmaster.store.reading import parse_duration

router = APIRouter(include_in_schema=False)
PAGE = 50
SINCE_CHOICES = ("15m", "1h", "6h", "24h", "7d", "30d")


@dataclass(frozen=True, slots=True)
class RunFilters:
    """The runs list's query, as the page's form and links carry it."""

    q: str = ""
    status: str = ""
    workflow: str = ""
    tenant: str = ""
    since: str = ""  # a duration back from now (1h, 24h, 7d)
    after: str = ""  # ISO 8601, UTC unless it names a zone
    before: str = ""
    order: str = "newest"

    def url(self, **changes: str | int) -> str:
        """The runs list with these filters, some changed (``offset`` included when given)."""
        values = {**asdict(self), **changes}
        kept = {k: v for k, v in values.items() if v not in ("", 0, None) and (k, v) != ("order", "newest")}
        return "/ui/runs" + (f"?{urlencode(kept)}" if kept else "")

    def window(self, now: datetime) -> tuple[datetime | None, datetime | None]:
        """``(created_after, created_before)``; ``InvalidInput`` saying how to write a time."""
        after = _moment(self.after, "From") if self.after else None
        if self.since:
            back = now - timedelta(seconds=parse_duration(self.since, what="Since"))
            after = max(after, back) if after is not None else back
        return after, _moment(self.before, "To") if self.before else None


def _moment(text: str, what: str) -> datetime:
    try:
        stamp = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput(
            f"{what} {shorter(text)} is not a date and time; write it like 2026-12-06T13:00 (UTC)"
        ) from None
    return stamp if stamp.tzinfo is not None else stamp.replace(tzinfo=UTC)


def _duration(run: RunInfo, now: datetime) -> float:
    return ((run.ended_at or now) - run.created_at).total_seconds()


@router.get("/ui/runs")
async def runs_page(
    request: Request,
    q: str = "",
    status: str = "",
    workflow: str = "",
    tenant: str = "",
    since: str = "",
    after: str = "",
    before: str = "",
    order: str = "newest",
    offset: int = 0,
) -> HTMLResponse:
    state, session = _page(request)
    backend = state.backend
    caps = backend.capabilities
    filters = RunFilters(
        q=q.strip()[:200],
        status=status if status in caps.statuses else "",
        workflow=workflow.strip(),
        tenant=tenant.strip(),
        since=since.strip(),
        after=after.strip(),
        before=before.strip(),
        order=order,
    )
    offset = min(max(0, offset), MAX_OFFSET)
    # On a backend without input search (Temporal) the box finds runs by the start of their id.
    text_search = caps.supports("run_input_search")
    now = datetime.now(UTC)
    runs: list[RunInfo] = []
    more, error, code = False, "", 200
    try:
        created_after, created_before = filters.window(now)
        if order not in RUN_ORDERS:
            raise InvalidInput(f"order {shorter(order)}: use one of {', '.join(RUN_ORDERS)}")
        found = await backend.list(
            status=filters.status or None,
            workflow=filters.workflow or None,
            tenant=filters.tenant or None,
            limit=PAGE + 1,
            offset=offset,
            search=(filters.q or None) if text_search else None,
            id_prefix=None if text_search else (filters.q or None),
            created_after=created_after,
            created_before=created_before,
            order=filters.order,  # type: ignore[arg-type]  # checked above
        )
    except InvalidInput as exc:
        error, code = str(exc), 422
    except NotSupported as exc:
        error, code = str(exc), 501
    else:
        runs, more = found[:PAGE], len(found) > PAGE
    internals = state.settings.show_internals
    runs = [shown_run(r, internals=internals) for r in runs]
    unserved = await reused(state, "unserved", backend.unserved)  # their runs wait for a worker
    return _render(
        request,
        "runs.html",
        code,
        session=session,
        title="Runs",
        runs=runs,
        # Costs are summed from the server journal's steps (none there when runs live elsewhere).
        costs=run_costs(state.engine.path, [r.id for r in runs]),
        durations={r.id: _duration(r, now) for r in runs},
        ages={r.id: (now - r.created_at).total_seconds() for r in runs},
        filters=filters,
        text_search=text_search,
        can_order=caps.supports("run_ordering"),
        backend_name=caps.name,
        statuses=caps.statuses,
        since_choices=SINCE_CHOICES,
        workflows=sorted(backend.workflows),
        unserved=unserved,
        no_worker={r.id: note for r in runs if (note := no_worker_note(unserved, r))},
        offset=offset,
        more=more,
        page=PAGE,
        error=error,
        live=state.settings.refresh_seconds if not error else 0,  # the table updates, the form stays
    )


@router.get("/ui/runs/{run_id}")
async def run_page(request: Request, run_id: str) -> HTMLResponse:
    state, session = _page(request)
    try:
        info = shown_run(await state.backend.describe(run_id), internals=state.settings.show_internals)
    except RunNotFound:
        return _render(
            request,
            "error.html",
            404,
            session=session,
            title="No such run",
            message=f"No run {shorter(run_id)}.",
        )
    end = info.ended_at or datetime.now(UTC)
    approvals = await state.backend.approvals.list(status=None, run_id=run_id)
    cost = sum(float(s.meta.get("cost") or 0.0) for s in info.steps)
    unknown_costs = sum(s.meta.get("cost_known") is False for s in info.steps)
    tokens = sum(
        int(s.meta["tokens"].get("input", 0)) + int(s.meta["tokens"].get("output", 0))
        for s in info.steps
        if isinstance(s.meta.get("tokens"), dict)
    )
    finished = info.status in TERMINAL_STATUSES
    unserved = [] if finished else await reused(state, "unserved", state.backend.unserved)
    no_worker = no_worker_note(unserved, info)
    return _render(
        request,
        "run.html",
        session=session,
        title=f"Run {run_id}",
        run=info,
        chart=gantt(info.steps, info.created_at, end),
        approvals=approvals,
        cost=cost,
        unknown_costs=unknown_costs,
        tokens=tokens,
        duration=(end - info.created_at).total_seconds(),
        pretty=_pretty,
        finished=finished,
        no_worker=no_worker,
        # While it runs, live.js follows the run's events and redraws the page's regions.
        events=None if finished else f"/ui/runs/{run_id}/events",
    )


@router.get("/ui/runs/{run_id}/events")
async def run_page_events(request: Request, run_id: str) -> Response:
    """The run's server-sent events (as ``GET /api/v1/runs/{id}/events``) for the logged-in
    browser: an EventSource cannot send a bearer token, so the session cookie admits it."""
    state, _ = _page(request)
    try:
        await state.backend.describe(run_id)
    except RunNotFound:
        return Response(status_code=404)
    backend = state.backend
    capabilities = backend.capabilities
    poll = max(state.settings.poll_interval, capabilities.min_poll)
    chunks = backend.chunks if capabilities.supports("token_streaming") else None
    return StreamingResponse(
        run_events(backend, run_id, poll=poll, internals=state.settings.show_internals, chunks=chunks),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.post("/ui/runs/{run_id}/cancel")
async def cancel_run(request: Request, run_id: str) -> Response:
    state, session = _page(request, "runs:write")
    await _form(request, session)
    await state.backend.cancel(run_id)
    TokenStore(state.store).audit(session.principal.name, "run.cancel", run_id)
    return RedirectResponse(f"/ui/runs/{run_id}", status_code=303)
