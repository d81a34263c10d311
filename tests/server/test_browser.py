"""The dashboard in a real headless Chromium (Debian's, driven by Playwright): log in with a
token, override a pending approval with a comment, watch the run finish; CSRF-less posts are
refused; the pages fit a phone. Screenshots go to test-artifacts/ (ignored by git)."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, expect, sync_playwright

import bandmaster as bm
from bandmaster.server._format import seconds

from .conftest import Server

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert Path(CHROMIUM).exists(), "Debian chromium is missing: run scripts/bootstrap.sh --dev"
    playwright: Playwright = sync_playwright().start()
    try:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield launched
        launched.close()
    finally:
        playwright.stop()


@pytest.fixture
def context(browser: Browser, server: Server) -> Iterator[BrowserContext]:
    ctx = browser.new_context(base_url=server.url, viewport={"width": 1280, "height": 900})
    ctx.set_default_timeout(15_000)
    yield ctx
    ctx.close()


def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def login(page: Page, token: str, target: str = "/ui/runs") -> None:
    page.goto(target)
    expect(page).to_have_url(re.compile(r"/login"))
    page.get_by_label("API token").fill(token)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(re.escape(target)))


def start(server: Server, workflow: str, value: object) -> str:
    with server.client("writer") as http:
        response = http.post("/api/v1/runs", json={"workflow": workflow, "input": value})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def test_override_an_approval_and_watch_the_run_finish(context: BrowserContext, server: Server) -> None:
    run_id = start(server, "reviewed", "Mrs. Garcia asks about her invoice")
    server.wait_status(run_id, {"waiting"})
    page = context.new_page()
    login(page, server.tokens["alice"], "/ui/approvals")
    cookie = next(c for c in context.cookies() if c["name"] == "bm_session")
    assert cookie["httpOnly"]
    assert cookie["sameSite"] == "Strict"
    assert cookie["secure"]

    card = page.locator(f"section[id^='approval-{run_id}-']")
    expect(card).to_contain_text("<PERSON> asks about her invoice")  # the payload, as journaled
    expect(card).to_contain_text("alice, reviewer")  # who is asked
    expect(card).to_contain_text(re.compile(r"send\s+in (9|10) min( \d+ s)?"))  # default, time left
    shot(page, "approvals")
    card.get_by_label("Comment").fill("not PHI, a billing question")
    card.get_by_role("button", name="Override").click()

    expect(page).to_have_url(re.compile(f"/ui/runs/{run_id}$"))
    expect(page.locator("#run-status")).to_have_text("completed", timeout=20_000)
    expect(page.locator("#run-output")).to_contain_text("override by alice: not PHI, a billing question")
    expect(page.locator("svg.gantt")).to_be_visible()
    shot(page, "run-detail")
    page.goto("/ui/approvals")
    expect(page.get_by_role("table")).to_contain_text("not PHI, a billing question")


def test_form_posts_without_the_csrf_token_are_refused(context: BrowserContext, server: Server) -> None:
    run_id = start(server, "reviewed", "Mrs. Garcia again")
    server.wait_status(run_id, {"waiting"})
    page = context.new_page()
    login(page, server.tokens["alice"])
    missing = context.request.post(f"/ui/approvals/{run_id}/decide", form={"action": "approve"})
    assert missing.status == 403
    assert "CSRF" in missing.text()
    forged = context.request.post(
        f"/ui/approvals/{run_id}/decide", form={"action": "approve", "csrf_token": "forged"}
    )
    assert forged.status == 403
    with server.client("reader") as http:
        pending = http.get("/api/v1/approvals").json()
    assert any(a["run_id"] == run_id for a in pending)  # nothing was decided
    logout = context.request.post("/logout", form={})
    assert logout.status == 403
    with server.client("alice") as http:  # leave no waiting run behind for other tests
        http.post(f"/api/v1/runs/{run_id}/cancel")


def test_login_refuses_a_wrong_or_revoked_token(context: BrowserContext, server: Server) -> None:
    page = context.new_page()
    page.goto("/login")
    page.get_by_label("API token").fill(server.tokens["revoked"])
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_contain_text("unknown or revoked")
    page.goto("/ui/runs")
    expect(page).to_have_url(re.compile(r"/login"))


def test_change_weights_with_a_confirmation_step(context: BrowserContext, server: Server) -> None:
    page = context.new_page()
    login(page, server.tokens["alice"], "/ui/models")
    expect(page.get_by_role("table", name="Live numbers of intent")).to_contain_text("production")
    page.get_by_label("Weight of production").fill("0.6")
    page.get_by_label("Weight of canary").fill("0.3")
    page.get_by_role("button", name="Review weight change").click()
    expect(page.get_by_role("alert")).to_contain_text("must sum to 1, and they sum to 0.9")
    page.get_by_label("Weight of production").fill("0.7")
    page.get_by_label("Weight of canary").fill("0.3")
    page.get_by_role("button", name="Review weight change").click()
    expect(page.get_by_role("heading", name="Confirm intent")).to_be_visible()
    with server.client("reader") as http:  # nothing changes before the confirmation
        assert next(a for a in http.get("/api/v1/models").json() if a["alias"] == "intent")["weights"][
            "canary"
        ] in (0.0, 0)
    page.get_by_role("button", name="Confirm change").click()
    expect(page).to_have_url(re.compile(r"/ui/models$"))
    expect(page.get_by_label("Weight of canary")).to_have_value("0.3")
    history = page.get_by_role("table", name="Change history of intent")
    expect(history.locator("tbody tr").first).to_contain_text("alice")
    expect(history.locator("tbody tr").first).to_contain_text("canary 30 %")
    with server.client("alice") as http:
        history = http.get("/api/v1/models/intent").json()["history"]
        assert history[0]["changed_by"] == "alice"
        http.put("/api/v1/models/intent", json={"weights": {"production": 1.0, "canary": 0.0}})


def test_pages_fit_a_phone_and_have_labels(browser: Browser, server: Server) -> None:
    run_id = start(server, "classify", "I was charged twice")
    server.wait_status(run_id, {"completed"})
    ctx = browser.new_context(base_url=server.url, viewport={"width": 375, "height": 740}, is_mobile=True)
    try:
        page = ctx.new_page()
        login(page, server.tokens["reader"])
        for path, name in (
            (f"/ui/runs/{run_id}", "phone-run"),
            ("/ui/stats", "phone-stats"),
            ("/ui/runs", "phone-runs"),
        ):
            page.goto(path)
            expect(page.get_by_role("heading", level=1)).to_be_visible()
            overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 1, f"{path} scrolls sideways by {overflow}px on a phone"
            shot(page, name)
        page.goto("/ui/stats")
        expect(page.locator("svg.bars").first).to_be_visible()
        # a reader sees approvals but cannot decide them
        page.goto("/ui/models")
        expect(page.get_by_role("button", name="Review weight change")).to_have_count(0)
    finally:
        ctx.close()


def test_stats_page_shows_the_numbers_of_the_stats_api(context: BrowserContext, server: Server) -> None:
    server.wait_status(start(server, "classify", "I was charged twice"), {"completed"})
    with server.client("reader") as http:
        stats = http.get("/api/v1/stats", params={"workflow": "classify"}).json()
    step = next(s for s in stats["step_stats"] if s["name"] == "intent")
    model = stats["models"][0]
    page = context.new_page()
    login(page, server.tokens["reader"], "/ui/stats?workflow=classify")
    steps = page.get_by_role("table", name="Per step")
    row = steps.get_by_role("row").filter(has=page.get_by_role("cell", name="intent", exact=True))
    expect(row).to_contain_text(seconds(step["p50"]))  # the dashboard's one number format
    expect(row).to_contain_text(seconds(step["p99"]))
    expect(row.get_by_role("cell", name=str(step["calls"]), exact=True)).to_be_visible()
    models = page.get_by_role("table", name="Per model (the version that answered)")
    model_row = models.get_by_role("row").filter(
        has=page.get_by_role("cell", name=model["model"], exact=True)
    )
    expect(model_row.filter(has_text=f"{model['input_tokens']} / {model['output_tokens']}")).to_have_count(1)
    expect(page.get_by_role("img", name="cost per model (USD)")).to_contain_text(model["model"])
    expect(page.get_by_role("img", name="cost per step (USD)")).to_contain_text("intent")
    expect(page.get_by_text(f"completed {stats['workflows'][0]['by_status']['completed']}")).to_be_visible()
    expect(page.get_by_label("Runs of the last")).to_have_value("24h")  # the page's default window
    page.get_by_label("Runs of the last").fill("yesterday")
    page.get_by_role("button", name="Show").click()
    expect(page.get_by_role("alert")).to_contain_text("not a duration")


def test_api_docs_render_without_any_external_request(context: BrowserContext, server: Server) -> None:
    requested: list[str] = []
    page = context.new_page()
    page.on("request", lambda request: requested.append(request.url))
    page.goto("/docs")
    expect(page.get_by_text("/api/v1/runs/{run_id}/events")).to_be_visible()
    login(page, server.tokens["reader"])  # the dashboard's own assets, too
    outside = [url for url in requested if not url.startswith(server.url)]
    assert outside == [], f"pages fetched from elsewhere: {outside}"


def test_approvals_update_live_and_keep_a_comment_being_typed(
    context: BrowserContext, server: Server
) -> None:
    first = start(server, "reviewed", "Mrs. Garcia, first of two")
    server.wait_status(first, {"waiting"})
    page = context.new_page()
    login(page, server.tokens["alice"], "/ui/approvals")
    page.evaluate("window.notReloaded = true")  # a reload would drop this
    card = page.locator(f"section[id^='approval-{first}-']")
    comment = card.get_by_label("Comment")
    comment.click()
    comment.type("checked the invoice, no PHI")  # typing as a person does, when the update lands

    second = start(server, "reviewed", "Mrs. Garcia, second of two")
    server.wait_status(second, {"waiting"})
    expect(page.locator(f"section[id^='approval-{second}-']")).to_be_visible(timeout=20_000)
    assert page.evaluate("window.notReloaded") is True
    expect(comment).to_have_value("checked the invoice, no PHI")
    expect(comment).to_be_focused()
    shot(page, "approvals-live")

    with server.client("alice") as http:  # decided elsewhere: the untouched card goes away
        decided = http.post(
            f"/api/v1/approvals/{second}/decision", json={"action": "approve", "comment": "ok"}
        )
        assert decided.status_code == 200, decided.text
    expect(page.locator(f"section[id^='approval-{second}-']")).to_have_count(0, timeout=20_000)
    expect(page.locator("#decided")).to_contain_text(second)
    with server.client("alice") as http:  # ... and the one with a comment in it stays, marked
        decided = http.post(f"/api/v1/approvals/{first}/decision", json={"action": "override"})
        assert decided.status_code == 200, decided.text
    expect(card.get_by_role("status")).to_contain_text("no longer pending", timeout=20_000)
    expect(comment).to_have_value("checked the invoice, no PHI")
    expect(card.get_by_role("button", name="Approve")).to_be_disabled()
    assert page.evaluate("window.notReloaded") is True


def test_the_runs_filter_keeps_its_text_while_the_table_updates(
    context: BrowserContext, server: Server
) -> None:
    page = context.new_page()
    login(page, server.tokens["reader"], "/ui/runs")
    page.evaluate("window.notReloaded = true")
    field = page.get_by_label("Search id or input")
    field.click()
    field.type("cla")
    run_id = start(server, "calc", 4)
    expect(page.locator("#runs-rows")).to_contain_text(run_id, timeout=20_000)
    expect(field).to_have_value("cla")
    assert page.evaluate("window.notReloaded") is True


MARKUP = "<img src=x onerror=window.pwned=1><b>bold</b><script>window.pwned=2</script>"
EXPONENT = re.compile(r"\b\d+(\.\d+)?[eE][+-]\d+\b")  # 2e-05, 1.72e+03: never on a page


def test_runs_list_searches_filters_sorts_and_shows_markup_as_text(
    context: BrowserContext, server: Server
) -> None:
    tag = f"tag{int(time.time() * 1000)}"
    failed = start(server, "broken", f"{tag} {MARKUP}")
    server.wait_status(failed, {"failed"})
    page = context.new_page()
    login(page, server.tokens["reader"], "/ui/runs")
    page.get_by_label("Search id or input").fill(tag)
    page.get_by_label("Status").select_option("failed")
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(rf"q={tag}.*status=failed"))
    rows = page.locator("#runs-rows tr")
    expect(rows).to_have_count(1)
    row = rows.first
    expect(row).to_contain_text(failed)
    expect(row).to_contain_text("ValueError: cannot handle")
    expect(row).to_contain_text("<img src=x")  # the user's text, as text
    expect(row.locator("td").nth(6)).to_have_text(re.compile(r"^\d+(\.\d+)? (ms|s)$"))  # duration
    shot(page, "runs-search")
    page.get_by_role("link", name=re.compile("^Duration")).click()
    expect(page).to_have_url(re.compile(r"order=longest"))
    expect(page.locator("#runs-rows tr")).to_have_count(1)  # the filters stay applied
    page.get_by_role("link", name=failed).click()
    expect(page.locator("#run-input")).to_contain_text(MARKUP)
    expect(page.locator(".error[role=alert]")).to_contain_text("<b>bold</b>")
    expect(page.locator("main img, main b, main script")).to_have_count(0)  # nothing became markup
    assert page.evaluate("window.pwned") is None
    assert not EXPONENT.search(page.locator("main").inner_text())


def test_run_page_follows_the_run_live_and_marks_the_retry(context: BrowserContext, server: Server) -> None:
    run_id = start(server, "retried", f"live{int(time.time() * 1000)}")
    page = context.new_page()
    login(page, server.tokens["reader"], f"/ui/runs/{run_id}")
    expect(page.locator("#run-status")).to_have_text(re.compile("queued|running|waiting"))
    assert page.locator("main[data-events]").count() == 1
    page.evaluate("window.notReloaded = true")
    expect(page.locator("#run-status")).to_have_text("completed", timeout=20_000)
    assert page.evaluate("window.notReloaded") is True  # the events redrew it, no reload
    chart = page.locator("svg.gantt")
    expect(chart.locator("rect.failed-attempt")).to_have_count(1)  # the first attempt, in red
    expect(chart.locator("line.retry")).to_have_count(1)  # and where the second began
    expect(page.locator("#run-steps")).to_contain_text("attempt 1 failed: ConnectionError")
    axis = [t for t in chart.locator("text.axis").all_text_contents() if t != "0"]
    assert axis, "the timeline has no axis"
    assert all(re.fullmatch(r"\d+(\.\d+)? (ms|s)", t) for t in axis), axis
    failed_x = float(chart.locator("rect.failed-attempt").get_attribute("x") or 0)
    retry_x = float(chart.locator("line.retry").get_attribute("x1") or 0)
    assert retry_x > failed_x  # the retry after the failure and its 0.3 s wait, not evenly spread
    shot(page, "run-live-retried")


def test_stats_charts_over_time_link_to_their_runs(context: BrowserContext, server: Server) -> None:
    server.wait_status(start(server, "broken", "for the failure chart"), {"failed"})
    page = context.new_page()
    login(page, server.tokens["reader"], "/ui/stats")
    latency = page.get_by_role("img", name=re.compile("^Run latency over time"))
    expect(latency).to_contain_text("p50")  # the legend
    expect(latency).to_contain_text("p95")
    expect(page.get_by_role("img", name="Runs and failures over time")).to_contain_text("failed")
    assert not EXPONENT.search(page.locator("main").inner_text())
    slices = page.get_by_role("table", name="Per slice of the window")
    last = slices.locator("tbody tr").last
    failed = int(last.locator("td").nth(2).inner_text().replace(",", ""))
    assert failed >= 1
    last.locator("td").nth(2).get_by_role("link").click()
    expect(page).to_have_url(re.compile(r"/ui/runs\?.*status=failed.*after=.*before="))
    expect(page.locator("#runs-rows tr")).to_have_count(failed)  # the runs behind the number
    expect(page.locator("#runs-rows .badge").first).to_have_text("failed")


def test_approvals_filter_and_decide_in_bulk(context: BrowserContext, server: Server) -> None:
    runs = [start(server, "reviewed", f"bulk {n}") for n in range(2)]
    for run_id in runs:
        server.wait_status(run_id, {"waiting"})
    page = context.new_page()
    login(page, server.tokens["alice"], "/ui/approvals?workflow=reviewed&mine=1")
    for run_id in runs:
        page.locator(f"section[id^='approval-{run_id}-'] input.pick-one").check()
    page.get_by_label("Comment for the ticked approvals").fill("batch <i>ok</i>")
    shot(page, "approvals-bulk")
    page.get_by_role("button", name="Approve ticked").click()
    expect(page.get_by_role("status").filter(has_text="Approved 2 of 2")).to_be_visible()
    for run_id in runs:
        server.wait_status(run_id, {"completed"})
    expect(page.locator("#decided")).to_contain_text("batch <i>ok</i>")
    with server.client("alice") as http:
        audit = http.get("/api/v1/audit").json()
    decided = {a["target"] for a in audit if a["action"] == "approval.decide"}
    assert set(runs) <= decided  # each decided and audited on its own


def test_model_numbers_update_live(context: BrowserContext, server: Server) -> None:
    page = context.new_page()
    login(page, server.tokens["reader"], "/ui/models")
    live = page.get_by_role("table", name="Live numbers of intent")
    production = live.get_by_role("row").filter(has=page.get_by_role("cell", name="production", exact=True))
    before = int(production.locator("td").nth(4).inner_text().replace(",", ""))
    page.evaluate("window.notReloaded = true")
    server.wait_status(start(server, "classify", "I was charged twice"), {"completed"})
    expect(production.locator("td").nth(4)).to_have_text(f"{before + 1:,}", timeout=20_000)
    assert page.evaluate("window.notReloaded") is True
    expect(page.locator("#live-intent")).to_contain_text(re.compile(r"p50 \d+(\.\d+)? (ms|s)"))


def test_runs_of_a_version_nobody_hosts_say_so(context: BrowserContext, server: Server) -> None:
    """Last in this module: the run it leaves waits for a worker for good."""

    async def orphan() -> str:
        @bm.workflow(name="orphaned", version="9")
        async def orphaned(text: str) -> str:
            return text

        async with bm.Engine(server.db, worker=False) as client:
            return (await client.start(orphaned, "<b>nobody hosts me</b>")).id

    with ThreadPoolExecutor(1) as thread:  # Playwright's sync API holds this thread's event loop
        run_id = thread.submit(asyncio.run, orphan()).result()
    page = context.new_page()
    login(page, server.tokens["reader"], "/ui/runs?workflow=orphaned")
    expect(page.locator(".no-worker").first).to_contain_text("no worker for orphaned@9")
    row = page.locator("#runs-rows tr")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("orphaned@9")
    expect(row).to_contain_text("queued no worker for orphaned@9")
    page.get_by_role("link", name=run_id).click()
    expect(page.locator("#run-facts")).to_contain_text("no worker for orphaned@9: it waits until a worker")
    page.goto(f"{server.url}/ui/stats")
    banner = page.locator(".no-worker").filter(has_text="orphaned@9")
    expect(banner).to_contain_text("1 unfinished run wait")
    shot(page, "stats-no-worker")
