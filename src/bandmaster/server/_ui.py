"""The web dashboard: server-rendered pages for operators and reviewers.

Log in with an API token; the session lives in the journal (only a hash of the cookie is
stored) and the cookie is HttpOnly, SameSite=Strict and Secure. Every form carries the
session's synchroniser CSRF token, and a POST without the right one is refused with 403.
"""

from __future__ import annotations

import json
import math
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast
from urllib.parse import quote

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from bandmaster.engine import Approval
from bandmaster.engine.backend import AliasState
from bandmaster.errors import (
    AlreadyDecided,
    BandmasterError,
    NoModelRegistry,
    NotAuthorized,
    NotSupported,
)
from bandmaster.observe.stats import Stats, StepStats
from bandmaster.server import _format as fmt
from bandmaster.server._auth import Session, close_session, csrf_matches, open_session, session_of, verify
from bandmaster.server._deps import ServerState, admit, state_of
from bandmaster.server._errors import ApiError, scrubbed
from bandmaster.store import TokenStore

T = TypeVar("T")

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=Path(__file__).parent / "templates")


def short_type(name: object) -> str:
    """An error's type as journaled (``builtins.ValueError``) without the builtins module."""
    return str(name or "").removeprefix("builtins.")


for _name in ("usd", "seconds", "count", "percent", "plain", "time_left", "human", "cost_text"):
    templates.env.filters[_name] = getattr(fmt, _name)
templates.env.filters["short_type"] = short_type

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
    await _form_checked(request, session, form)
    return form


async def _form_checked(request: Request, session: Session, form: dict[str, str]) -> None:
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


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, default=str)[:20_000]


# --- approvals -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ApprovalFilters:
    """The approvals page's query: which workflow, which approval, only those I may decide."""

    workflow: str = ""
    name: str = ""
    mine: bool = False

    def keep(self, approval: Approval, principal: str) -> bool:
        return (not self.workflow or approval.workflow == self.workflow) and (
            not self.mine or not approval.approvers or principal in approval.approvers
        )


@router.get("/ui/approvals")
async def approvals_page(
    request: Request, workflow: str = "", name: str = "", mine: str = ""
) -> HTMLResponse:
    state, session = _page(request)
    filters = ApprovalFilters(workflow.strip(), name.strip(), mine == "1")
    return await _approvals_with(request, state, session, "", 200, filters=filters)


@router.post("/ui/approvals/{run_id}/decide")
async def decide(request: Request, run_id: str) -> Response:
    state, session = _page(request, "approvals:decide")
    form = await _form(request, session)
    action = form.get("action", "")
    if action not in ("approve", "override"):
        return await _approvals_with(request, state, session, f"Unknown action {action!r}.", 422)
    try:
        await _decide_one(
            state, session, run_id, action, form.get("comment") or None, form.get("name") or None
        )
    except (NotAuthorized, AlreadyDecided) as exc:
        code = 403 if isinstance(exc, NotAuthorized) else 409
        return await _approvals_with(request, state, session, str(exc), code)
    except BandmasterError as exc:
        return await _approvals_with(request, state, session, str(exc), 400)
    return RedirectResponse(f"/ui/runs/{run_id}", status_code=303)


MAX_BULK = 200


@router.post("/ui/approvals/bulk")
async def decide_many(request: Request) -> Response:
    """Decide every ticked approval with one action and comment; each is decided (and audited)
    on its own, so one refused or already decided does not stop the others."""
    state, session = _page(request, "approvals:decide")
    form = await request.form()
    fields = {k: v for k, v in form.items() if isinstance(v, str)}
    await _form_checked(request, session, fields)
    action = fields.get("action", "")
    picked = [v for v in form.getlist("pick") if isinstance(v, str)][:MAX_BULK]
    if action not in ("approve", "override"):
        return await _approvals_with(request, state, session, f"Unknown action {action!r}.", 422)
    if not picked:
        return await _approvals_with(
            request, state, session, "Tick the approvals to decide first, then press the button again.", 422
        )
    done, refused = 0, []
    for item in picked:
        try:
            run_id, name = _pick(item)
        except ValueError:
            refused.append(f"{item[:80]!r} is not an approval of this page")
            continue
        try:
            await _decide_one(state, session, run_id, action, fields.get("comment") or None, name or None)
            done += 1
        except BandmasterError as exc:
            refused.append(f"{run_id}: {exc}")
    note = f"{action.capitalize()}d {done} of {len(picked)}."
    if refused:
        note += " Not decided: " + "; ".join(refused[:10]) + (" ..." if len(refused) > 10 else "")
    return await _approvals_with(
        request, state, session, note if refused else "", 409 if refused and not done else 200, notice=note
    )


def _pick(item: str) -> tuple[str, str]:
    """A ticked box's value: the JSON ``[run_id, approval name]`` the page wrote."""
    value = json.loads(item)
    if not (isinstance(value, list) and len(value) == 2 and all(isinstance(v, str) for v in value)):
        raise ValueError(item)
    return value[0], value[1]


async def _decide_one(
    state: ServerState, session: Session, run_id: str, action: str, comment: str | None, name: str | None
) -> None:
    """Decide as the session's principal; audit the decision, or the refusal and why."""
    try:
        await state.backend.approvals.decide(
            run_id, action, by=session.principal.name, comment=comment, name=name
        )
    except (NotAuthorized, AlreadyDecided) as exc:
        why = {"action": action, "why": type(exc).__name__}
        TokenStore(state.store).audit(session.principal.name, "approval.refused", run_id, why)
        raise
    TokenStore(state.store).audit(session.principal.name, "approval.decide", run_id, {"action": action})


async def _approvals_with(
    request: Request,
    state: ServerState,
    session: Session,
    error: str,
    status: int,
    *,
    filters: ApprovalFilters | None = None,
    notice: str = "",
) -> HTMLResponse:
    filters = filters or ApprovalFilters()
    desk = state.backend.approvals
    who = session.principal.name
    pending = [
        a for a in await desk.list(status="pending", name=filters.name or None) if filters.keep(a, who)
    ]
    decided = (await desk.list(status="decided", name=filters.name or None, limit=1000))[::-1]
    decided = [a for a in decided if filters.keep(a, who)][:20]
    return _render(
        request,
        "approvals.html",
        status,
        session=session,
        title="Approvals",
        error=error,
        notice=notice,
        pending=pending,
        decided=decided,
        filters=filters,
        workflows=sorted(state.backend.workflows),
        now=time.time(),
        can_decide=session.principal.allows("approvals:decide"),
        pretty=_pretty,
        live=state.settings.refresh_seconds,  # live.js updates the list: a comment being typed stays
    )


# --- models --------------------------------------------------------------------------------


@router.get("/ui/models")
async def models_page(request: Request) -> HTMLResponse:
    state, session = _page(request)
    return await _models(request, state, session)


LIVE_WINDOW = "1h"
"""The window of the models page's live per-model numbers."""


@dataclass(frozen=True, slots=True)
class ModelLive:
    """One served version of an alias over ``LIVE_WINDOW``: calls, failures, cost."""

    label: str
    model: str
    calls: int
    failures: int
    cost: float

    @property
    def error_rate(self) -> float | None:
        return self.failures / self.calls if self.calls else None


async def _models(
    request: Request, state: ServerState, session: Session, error: str = "", status: int = 200
) -> HTMLResponse:
    try:
        desk = state.backend.models
        views, has_registry = await desk.describe(), True
        history = {v.alias: (await desk.history(v.alias))[:10] for v in views}
    except NoModelRegistry:
        views, has_registry, history = [], False, {}
    except NotSupported as exc:
        return _render(request, "error.html", 501, session=session, title="Models", message=str(exc))
    live, latency, live_note = await _live_numbers(state, views)
    return _render(
        request,
        "models.html",
        status,
        session=session,
        title="Models",
        has_registry=has_registry,
        views=views,
        history=history,
        live_rows=live,
        latency=latency,
        live_note=live_note,
        live_window=LIVE_WINDOW,
        now=time.time(),
        can_admin=session.principal.allows("models:admin"),
        error=error,
        live=state.settings.refresh_seconds,  # the numbers update; the weight fields are left alone
    )


async def reused(state: ServerState, key: str, read: Callable[[], Awaitable[T]]) -> T:
    """``read()``, reused for ``STATS_REUSE`` seconds on a backend whose reads are history
    fetches (Temporal rebuilds up to 500 runs per stats call), so that open pages refreshing
    every few seconds do not each rescan the cluster."""
    reuse = STATS_REUSE if state.backend.capabilities.min_poll > 0 else 0.0
    kept = state.recent.get(key)
    now = time.monotonic()
    if kept is not None and now - kept[0] < reuse:
        return cast(T, kept[1])
    found = await read()
    state.recent[key] = (now, found)
    return found


async def live_stats(state: ServerState) -> Stats:
    """``stats(since=LIVE_WINDOW)``, reused (``reused``) on a backend whose reads are costly."""
    return await reused(state, "models.stats", lambda: state.backend.stats(since=LIVE_WINDOW))


STATS_REUSE = 30.0


async def _live_numbers(
    state: ServerState, views: list[AliasState]
) -> tuple[dict[str, list[ModelLive]], dict[str, StepStats], str]:
    """Per alias: each version's calls, failures and cost, and the alias's latency (its model
    steps, which are named after the alias) over ``LIVE_WINDOW``; or why there are none."""
    if not views:
        return {}, {}, ""
    try:
        found = await live_stats(state)
    except NotSupported as exc:
        return {}, {}, str(exc)
    rows: dict[str, list[ModelLive]] = {}
    for view in views:
        for label, model in view.versions.items():
            served = [m for m in found.models if m.alias == view.alias and m.model == model]
            rows.setdefault(view.alias, []).append(
                ModelLive(
                    label,
                    model,
                    sum(m.calls for m in served),
                    sum(m.failures for m in served),
                    sum(m.cost for m in served),
                )
            )
    latency = {s.name: s for s in found.step_stats if s.kind == "model"}
    return rows, latency, ""


async def _alias(state: ServerState, alias: str) -> AliasState | None:
    return next((v for v in await state.backend.models.describe() if v.alias == alias), None)


def _check_weights(view: AliasState, weights: dict[str, float]) -> None:
    """What the registry checks when the change is applied, said before the confirmation:
    known labels, finite shares from 0 to 1 that sum to 1."""
    unknown = sorted(set(weights) - set(view.versions))
    if unknown:
        raise ValueError(f"{view.alias} has no version {', '.join(map(repr, unknown))}")
    for label, weight in weights.items():
        if not (math.isfinite(weight) and 0.0 <= weight <= 1.0):
            raise ValueError(
                f"weight of {label!r} is {weight!r}: give a share from 0 to 1 (0.25 is a quarter)"
            )
    total = sum(weights.values())
    if abs(total - 1.0) > 1e-6:
        shares = ", ".join(f"{label} {fmt.plain(w)}" for label, w in weights.items())
        raise ValueError(
            f"the weights of {view.alias} must sum to 1, and they sum to {fmt.plain(total, 6)} "
            f"({shares}); change them so that they do"
        )


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
        _check_weights(view, weights)  # the registry checks again when the change is applied
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
