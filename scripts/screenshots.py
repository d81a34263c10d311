"""Take the README's dashboard screenshots: a demo journal made here, a real ``bandmaster
server`` process over it, and Debian's headless Chromium driven by Playwright.

    .venv/bin/python scripts/screenshots.py            # writes docs/img/*.png

The demo: support tickets triaged by a model alias with a canary (some tickets fail, some
retry once, one waits for a reviewer), a weight change, and a run still running, so that
every page has something to show. Nothing outside a temporary folder is touched but docs/img.
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import httpx2
from playwright.sync_api import Page, sync_playwright

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]

DEMO = '''
"""Demo workflows for the dashboard screenshots (scripts/screenshots.py)."""

import asyncio

import bandmaster as bm
from bandmaster.models import ModelResponse, Usage

TRIES: dict[str, int] = {}


def small(text: str) -> ModelResponse:
    label = "billing" if "charged" in text or "invoice" in text else "general"
    return ModelResponse(output=label, text=label, usage=Usage(input_tokens=42, output_tokens=2))


def large(text: str) -> ModelResponse:
    return ModelResponse(output="billing", text="billing", usage=Usage(input_tokens=42, output_tokens=2))


@bm.step(retry=bm.Retry(attempts=3, initial=0.2, max_delay=0.3))
async def lookup_customer(ticket: str) -> str:
    TRIES[ticket] = TRIES.get(ticket, 0) + 1
    await asyncio.sleep(0.05)
    if "retry" in ticket and TRIES[ticket] == 1:
        raise ConnectionError("CRM timed out")
    return "customer-" + str(len(ticket))


@bm.workflow
async def triage(ticket: str) -> str:
    customer = await lookup_customer(ticket)
    if "crash" in ticket:
        raise ValueError(f"cannot parse ticket: {ticket[:40]}")
    answer = await bm.call_model("intent", ticket)
    await bm.sleep(0.05 if "slow" not in ticket else 20)
    return f"{customer}: {answer.output}"


@bm.workflow
async def refund(ticket: str) -> str:
    decision = await bm.approval(
        "refund_review", {"ticket": ticket, "amount_usd": 129.0}, timeout=7500, default="deny",
        approvers=["ops", "finance"],
    )
    return f"{decision.action} by {decision.by}"
'''

MODELS = """
models:
  intent-small: {provider: callable, function: "demo:small", price: {input: 0.15, output: 0.6}}
  intent-large: {provider: callable, function: "demo:large", price: {input: 3.0, output: 15.0}}
aliases:
  intent:
    versions: {production: intent-small, canary: intent-large}
    weights: {production: 0.9, canary: 0.1}
"""

TICKETS = [
    "I was charged twice for my March invoice",
    "The app shows a blank page after login",
    "retry: please update my billing address",
    "crash <b>report</b> attached, ticket T-88",
    "Where can I download last year's invoices?",
    "retry: my card was charged but the order is missing",
    "Cancel my subscription please",
    "crash while exporting CSV",
    "Change the invoice email to accounts@example.com",
    "Password reset mail never arrives",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def bandmaster(*args: str, cwd: Path) -> str:
    return subprocess.run(
        [sys.executable, "-m", "bandmaster.cli", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout.strip()


def seed(url: str, token: str) -> dict[str, str]:
    """Runs for every page: finished, failed, retried, waiting for approval, still running."""
    started: dict[str, str] = {}
    with httpx2.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=15) as http:

        def start(workflow: str, ticket: str, **terms: object) -> str:
            body = {"workflow": workflow, "input": ticket, **terms}
            answer = http.post("/api/v1/runs", json=body)
            answer.raise_for_status()
            return str(answer.json()["id"])

        for n, ticket in enumerate(TICKETS * 3):
            started[f"t{n}"] = start("triage", ticket, tenant=("acme", "globex", "initech")[n % 3])
            time.sleep(0.6)  # spread over the stats page's window
        started["retried"] = start("triage", "retry: the invoice PDF is empty", tenant="acme")
        started["refund"] = start("refund", "Refund order 4411, the parcel never arrived")
        start("refund", "Refund the duplicate charge on invoice 2291")
        started["slow"] = start("triage", "slow: escalate the outage report", tenant="globex")
        http.put("/api/v1/models/intent", json={"weights": {"production": 0.8, "canary": 0.2}})
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # wait for the quick ones to end
            runs = http.get("/api/v1/runs", params={"limit": 100}).json()["runs"]
            if sum(r["status"] in ("completed", "failed") for r in runs) >= len(TICKETS) * 3:
                break
            time.sleep(0.2)
    return started


def capture(url: str, token: str, started: dict[str, str], out: Path) -> None:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        page: Page = browser.new_page(base_url=url, viewport={"width": 1280, "height": 860})
        page.goto("/login")
        page.get_by_label("API token").fill(token)
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url("**/ui/runs")

        def shot(path: str, name: str, full: bool = False) -> None:
            page.goto(path)
            page.wait_for_load_state("networkidle")
            page.screenshot(path=str(out / f"{name}.png"), full_page=full)
            print(f"docs/img/{name}.png  {path}")

        shot("/ui/runs", "runs")
        shot("/ui/runs?q=invoice&status=failed", "runs-search")
        shot(f"/ui/runs/{started['retried']}", "run", full=True)
        shot(f"/ui/runs/{started['slow']}", "run-live")
        shot("/ui/stats?since=30s", "stats", full=True)
        shot("/ui/models", "models", full=True)
        shot("/ui/approvals", "approvals")
        browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img", help="where the PNGs go")
    options = parser.parse_args()
    options.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bm-screens-") as folder:
        tmp = Path(folder)
        (tmp / "demo.py").write_text(textwrap.dedent(DEMO))
        (tmp / "models.yaml").write_text(MODELS)
        db = tmp / "demo.db"
        token = bandmaster("tokens", "create", "ops", "--scope", "admin", "--db", str(db), cwd=tmp)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bandmaster.cli",
                "server",
                "--db",
                str(db),
                "--port",
                str(port),
                "--workers",
                "20",
                "--models",
                "models.yaml",
                "demo.py",
            ],
            cwd=tmp,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if httpx2.get(f"{url}/healthz", timeout=1).status_code == 200:
                        break
                except httpx2.TransportError:
                    pass
                if server.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("the demo server did not start")
                time.sleep(0.2)
            capture(url, token, seed(url, token), options.out)
        finally:
            server.terminate()
            server.wait(timeout=10)


if __name__ == "__main__":
    main()
