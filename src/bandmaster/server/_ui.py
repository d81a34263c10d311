"""The web dashboard: server-rendered pages for operators and reviewers.

Log in with an API token; the session lives in the journal (only a hash of the cookie is
stored) and the cookie is HttpOnly, SameSite=Strict and Secure. Every form carries the
session's synchroniser CSRF token, and a POST without the right one is refused with 403.
"""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from bandmaster._types import TERMINAL_STATUSES
from bandmaster.engine.backend import AliasState
from bandmaster.engine.stats_report import cost_text
from bandmaster.errors import (
    AlreadyDecided,
    BandmasterError,
    InvalidInput,
    NoModelRegistry,
    NotAuthorized,
    NotSupported,
    RunNotFound,
)
from bandmaster.observe.stats import Stats, StepStats
from bandmaster.server._auth import Session, close_session, csrf_matches, open_session, session_of, verify
from bandmaster.server._deps import ServerState, admit, state_of
from bandmaster.server._errors import ApiError, scrubbed, shorter
from bandmaster.server._exposure import shown_run
from bandmaster.server._journal import run_costs
from bandmaster.server._limits import MAX_OFFSET
from bandmaster.server._svg import bars, gantt
from bandmaster.store import TokenStore

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=Path(__file__).parent / "templates")


def usd(value: float | None) -> str:
    """Model costs are often fractions of a cent: keep three significant digits."""
    if not value:
        return "\u2013"  # an en dash: no cost recorded
    return f"${value:.2f}" if value >= 0.01 else f"${value:.3g}"


templates.env.filters["usd"] = usd
templates.env.filters["cost_text"] = cost_text  # a sum with calls of unknown price: "at least $x"

COOKIE = "bm_session"
LOGIN_CSRF = "bm_login_csrf"


class Refused(Exception):
    """A page request that must end with another response (login redirect, 403 page)."""

    def __init__(self, response: Response) -> None:
        self.response = response


def _render(request: Request, template: str, code: int = 200, **context: Any) -> HTMLResponse:
    for key in ("message", "error"):  # texts of errors, which may name the journal's path
        if isinstance(context.get(key), str):
            context[key] = scrubbed(request, context[key])
    return templates.TemplateResponse(request, template, context, status_code=code)


def _session(request: Request) -> Session | None:
    cookie = request.cookies.get(COOKIE)
    return session_of(state_of(request).store, cookie) if cookie else None


def _page(request: Request, scope: str = "runs:read") -> tuple[ServerState, Session]:
    session = _session(request)
    if session is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise Refused(RedirectResponse(f"/login?next={quote(target, safe='/')}", status_code=303))
    state = state_of(request)
    principal = session.principal
    if not principal.allows(scope):
        raise Refused(
            _render(
                request,
                "error.html",
                403,
                session=session,
                title="Not allowed",
                message=f"Your token ({principal.name}) lacks the {scope!r} scope; ask an admin "
                f"for a token with --scope {scope}.",
            )
        )
    try:
        admit(state, principal, scope)  # the same rate limit as the token's API calls
    except ApiError as exc:  # scope was checked above, so this is the rate limit
        response = _render(
            request, "error.html", exc.status, session=session, title="Slow down", message=exc.message
        )
        response.headers.update(exc.headers or {})
        raise Refused(response) from exc
    return state, session


async def _form(request: Request, session: Session) -> dict[str, str]:
    """The posted form, after its CSRF token was checked against the session's."""
    form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
    if not csrf_matches(session.csrf, form.get("csrf_token")):
        raise Refused(
            _render(
                request,
                "error.html",
                403,
                session=session,
                title="Form refused",
                message="This form has no valid CSRF token (it expired, or it was sent from another "
                "site). Reload the page and submit it again.",
            )
        )
    return form


def install(app: FastAPI) -> None:
    @app.exception_handler(Refused)
    async def refused(request: Request, exc: Refused) -> Response:
        return exc.response


# --- login ---------------------------------------------------------------------------------


@router.get("/login")
async def login_page(request: Request, next: str = "/ui/runs") -> HTMLResponse:
    csrf = secrets.token_urlsafe(32)
    response = _render(request, "login.html", session=None, title="Log in", csrf=csrf, next=_safe_next(next))
    _set_cookie(request, response, LOGIN_CSRF, csrf, max_age=1800)
    return response


@router.post("/login")
async def login(request: Request) -> Response:
    state = state_of(request)
    form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
    expected = request.cookies.get(LOGIN_CSRF)
    if not expected or not csrf_matches(expected, form.get("csrf_token")):
        return _render(
            request,
            "error.html",
            403,
            session=None,
            title="Form refused",
            message="The login form has no valid CSRF token. Open the login page again and retry.",
        )
    principal = verify(state.store, form.get("token", "").strip())
    if principal is None:
        csrf = secrets.token_urlsafe(32)
        response = _render(
            request,
            "login.html",
            401,
            session=None,
            title="Log in",
            csrf=csrf,
            next=_safe_next(form.get("next", "")),
            error="That token is unknown or revoked. Paste the secret printed by `bandmaster tokens create`.",
        )
        _set_cookie(request, response, LOGIN_CSRF, csrf, max_age=1800)
        return response
    cookie, _ = open_session(state.store, principal, state.settings.session_ttl)
    TokenStore(state.store).audit(principal.name, "session.login", principal.token_id)
    redirect = RedirectResponse(_safe_next(form.get("next", "")), status_code=303)
    _set_cookie(request, redirect, COOKIE, cookie, max_age=int(state.settings.session_ttl))
    redirect.delete_cookie(LOGIN_CSRF)
    return redirect


@router.post("/logout")
async def logout(request: Request) -> Response:
    state, session = _page(request)
    await _form(request, session)
    close_session(state.store, request.cookies.get(COOKIE, ""))
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE)
    return response


def _safe_next(target: str) -> str:
    # Only our own pages: an open redirect would let a link send a fresh login elsewhere.
    return target if target.startswith("/ui/") and "//" not in target else "/ui/runs"


def _set_cookie(request: Request, response: Response, name: str, value: str, *, max_age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        httponly=True,
        samesite="strict",
        secure=state_of(request).settings.secure_cookies,
        path="/",
    )


# --- runs ----------------------------------------------------------------------------------


def _age(stamp: datetime) -> str:
    seconds = (datetime.now(UTC) - stamp).total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit}"
    return f"{seconds:.0f}s"


@router.get("/ui/runs")
async def runs_page(request: Request, status: str = "", workflow: str = "", offset: int = 0) -> HTMLResponse:
    state, session = _page(request)
    statuses = state.backend.capabilities.statuses
    chosen = status if status in statuses else None
    limit = 50
    offset = min(max(0, offset), MAX_OFFSET)
    runs = await state.backend.list(status=chosen, workflow=workflow or None, limit=limit + 1, offset=offset)
    # Costs are summed from the server journal's steps (none there when runs live elsewhere).
    costs = run_costs(state.engine.path, [r.id for r in runs[:limit]])
    return _render(
        request,
        "runs.html",
        session=session,
        title="Runs",
        runs=runs[:limit],
        costs=costs,
        age=_age,
        statuses=statuses,
        status=chosen or "",
        workflow=workflow,
        workflows=sorted(state.backend.workflows),
        offset=offset,
        more=len(runs) > limit,
        limit=limit,
        live=state.settings.refresh_seconds,  # live.js updates the table: the filter form keeps its text
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
        pretty=_pretty,
        finished=finished,
        refresh=0 if finished else state.settings.refresh_seconds,
    )


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, default=str)[:20_000]


@router.post("/ui/runs/{run_id}/cancel")
async def cancel_run(request: Request, run_id: str) -> Response:
    state, session = _page(request, "runs:write")
    await _form(request, session)
    await state.backend.cancel(run_id)
    TokenStore(state.store).audit(session.principal.name, "run.cancel", run_id)
    return RedirectResponse(f"/ui/runs/{run_id}", status_code=303)


# --- approvals -----------------------------------------------------------------------------


@router.get("/ui/approvals")
async def approvals_page(request: Request) -> HTMLResponse:
    state, session = _page(request)
    return await _approvals_with(request, state, session, "", 200)


@router.post("/ui/approvals/{run_id}/decide")
async def decide(request: Request, run_id: str) -> Response:
    state, session = _page(request, "approvals:decide")
    form = await _form(request, session)
    action = form.get("action", "")
    if action not in ("approve", "override"):
        return await _approvals_with(request, state, session, f"Unknown action {action!r}.", 422)
    try:
        await state.backend.approvals.decide(
            run_id,
            action,
            by=session.principal.name,
            comment=form.get("comment") or None,
            name=form.get("name") or None,
        )
    except (NotAuthorized, AlreadyDecided) as exc:
        code = 403 if isinstance(exc, NotAuthorized) else 409
        why = {"action": action, "why": type(exc).__name__}
        TokenStore(state.store).audit(session.principal.name, "approval.refused", run_id, why)
        return await _approvals_with(request, state, session, str(exc), code)
    except BandmasterError as exc:
        return await _approvals_with(request, state, session, str(exc), 400)
    TokenStore(state.store).audit(session.principal.name, "approval.decide", run_id, {"action": action})
    return RedirectResponse(f"/ui/runs/{run_id}", status_code=303)


async def _approvals_with(
    request: Request, state: ServerState, session: Session, error: str, status: int
) -> HTMLResponse:
    pending = await state.backend.approvals.list(status="pending")
    decided = (await state.backend.approvals.list(status="decided", limit=1000))[-20:][::-1]
    return _render(
        request,
        "approvals.html",
        status,
        session=session,
        title="Approvals",
        error=error,
        pending=pending,
        decided=decided,
        can_decide=session.principal.allows("approvals:decide"),
        pretty=_pretty,
        live=state.settings.refresh_seconds,  # live.js updates the list: a comment being typed stays
    )


# --- models --------------------------------------------------------------------------------


@router.get("/ui/models")
async def models_page(request: Request) -> HTMLResponse:
    state, session = _page(request)
    return await _models(request, state, session)


async def _models(
    request: Request, state: ServerState, session: Session, error: str = "", status: int = 200
) -> HTMLResponse:
    try:
        desk = state.backend.models
        views, has_registry = await desk.describe(), True
        history = {v.alias: (await desk.history(v.alias))[:5] for v in views}
    except NoModelRegistry:
        views, has_registry, history = [], False, {}
    except NotSupported as exc:
        return _render(request, "error.html", 501, session=session, title="Models", message=str(exc))
    return _render(
        request,
        "models.html",
        status,
        session=session,
        title="Models",
        has_registry=has_registry,
        views=views,
        history=history,
        can_admin=session.principal.allows("models:admin"),
        error=error,
    )


async def _alias(state: ServerState, alias: str) -> AliasState | None:
    return next((v for v in await state.backend.models.describe() if v.alias == alias), None)


def _check_labels(view: AliasState, weights: dict[str, float]) -> None:
    unknown = sorted(set(weights) - set(view.versions))
    if unknown:
        raise ValueError(f"{view.alias} has no version {', '.join(map(repr, unknown))}")


def _weights(form: dict[str, str]) -> dict[str, float]:
    weights = {}
    for key, value in form.items():
        if key.startswith("weight."):
            try:
                weights[key.removeprefix("weight.")] = float(value)
            except ValueError:
                raise ValueError(
                    f"weight of {key.removeprefix('weight.')!r} is {value!r}, not a number"
                ) from None
    return weights


@router.post("/ui/models/{alias}/review")
async def review_weights(request: Request, alias: str) -> HTMLResponse:
    """Step one of a change: show old and new weights and ask for confirmation."""
    state, session = _page(request, "models:admin")
    form = await _form(request, session)
    try:
        view = await _alias(state, alias)
    except (NoModelRegistry, NotSupported) as exc:
        return await _models(request, state, session, str(exc), 501 if isinstance(exc, NotSupported) else 404)
    if view is None:
        return await _models(request, state, session, f"No alias {alias!r} in the registry.", 404)
    try:
        weights = _weights(form)
        _check_labels(view, weights)  # the full checks run when the change is applied
    except ValueError as exc:
        return await _models(request, state, session, str(exc), 422)
    return _render(
        request, "models_confirm.html", session=session, title=f"Confirm {alias}", view=view, weights=weights
    )


@router.post("/ui/models/{alias}/apply")
async def apply_weights(request: Request, alias: str) -> Response:
    """Step two: apply the confirmed weights (audited with the principal)."""
    state, session = _page(request, "models:admin")
    form = await _form(request, session)
    try:
        weights = _weights(form)
        await state.backend.models.switch(alias, weights=weights, by=session.principal.name)
    except NotSupported as exc:
        return await _models(request, state, session, str(exc), 501)
    except NoModelRegistry:
        return await _models(request, state, session, "This server has no model registry.", 404)
    except (ValueError, BandmasterError) as exc:
        return await _models(request, state, session, str(exc), 422)
    TokenStore(state.store).audit(session.principal.name, "models.set", alias, {"weights": weights})
    return RedirectResponse("/ui/models", status_code=303)


# --- stats ---------------------------------------------------------------------------------

DEFAULT_SINCE = "24h"


@router.get("/ui/stats")
async def stats_page(request: Request, workflow: str = "", since: str = DEFAULT_SINCE) -> HTMLResponse:
    """``since`` defaults to a day: the whole of a big journal takes seconds (README, Statistics);
    an empty value asks for it all the same."""
    state, session = _page(request)
    try:
        found = await state.backend.stats(workflow=workflow or None, since=since.strip() or None)
    except NotSupported as exc:
        return _render(request, "error.html", 501, session=session, title="Stats", message=str(exc))
    except InvalidInput as exc:
        return _render(request, "error.html", 422, session=session, title="Bad filter", message=str(exc))
    steps = found.step_stats
    return _render(
        request,
        "stats.html",
        session=session,
        title="Stats",
        stats=found,
        runs_by_status=_runs_by_status(found),
        total_cost=sum(w.cost for w in found.workflows),
        workflow=workflow,
        since=since,
        workflows=sorted(state.backend.workflows),
        p50=bars("p50 latency per step (ms)", [(_label(s), (s.p50 or 0.0) * 1000) for s in steps], " ms"),
        p99=bars("p99 latency per step (ms)", [(_label(s), (s.p99 or 0.0) * 1000) for s in steps], " ms"),
        failures=bars("failure rate per step", [(_label(s), s.failure_rate) for s in steps]),
        fallbacks=bars(
            "fallback rate per model step", [(s.name, s.fallback_rate) for s in steps if s.kind == "model"]
        ),
        costs=bars("cost per model (USD)", _cost_per_model(found), " $"),
        step_costs=bars("cost per step (USD)", [(s.name, s.cost) for s in steps if s.kind == "model"], " $"),
    )


def _label(step: StepStats) -> str:
    """An approval is journaled as two kinds under one name: tell their bars apart."""
    return step.name if step.kind in ("step", "model") else f"{step.name} ({step.kind})"


def _runs_by_status(stats: Stats) -> dict[str, int]:
    counts: dict[str, int] = {}
    for wf in stats.workflows:
        for status, count in wf.by_status.items():
            counts[status] = counts.get(status, 0) + count
    return dict(sorted(counts.items()))


def _cost_per_model(stats: Stats) -> list[tuple[str, float]]:
    """One bar per model: ``Stats.models`` splits a model by the alias and version that served it."""
    costs: dict[str, float] = {}
    for m in stats.models:
        costs[m.model] = costs.get(m.model, 0.0) + m.cost
    return sorted(costs.items(), key=lambda item: -item[1])
