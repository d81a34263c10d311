"""No planted PHI survives the flagship demo, in any artifact it leaves.

The planted tickets carry every PHI string the example's generator wrote into the bundled
tickets and training tickets (their ``phi`` lists), and fresh ones from the generator itself
(``make_tickets.planted``) in every form it writes: names introduced as "My name is", "This
is", "Patient", "my mother", dates of birth, phones, MRNs, SSNs, addresses and e-mails. The
demo runs on them in a real process; then every artifact a user or reviewer can reach is
collected and searched for every planted value: the journal, copies of its write-ahead log
taken while the demo writes it, the HTML report, the CLI's JSON output, the runs and approvals
as the API and the dashboard show them, ``bandmaster approvals list`` and ``runs show``,
``bandmaster export`` and ``bandmaster archive`` (decompressed), the model cache (raw and
loaded: every string in the fitted models) and the redacted training text cached beside it.
PHI is planted in the training tickets too, and the search ignores case (vectorizers lowercase).
The test passes at zero hits.
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import json
import lzma
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

httpx2 = pytest.importorskip("httpx2", reason="needs bandmaster[server]")
joblib = pytest.importorskip("joblib", reason="needs bandmaster[sklearn]")

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "support_triage"
PER_TICKET = 20  # bundled PHI-bearing texts to a ticket: the demo probes tickets one at a time
FRESH = 6  # generated tickets: one of each of the generator's six PHI sentence forms
FRESH_TRAINING = 12  # generated training tickets: each PHI form twice
PLAIN_TRAINING = 300  # training tickets without PHI beside the PHI-bearing ones: enough to train on

pytest.importorskip("presidio_analyzer", reason="needs the 'pii' extra: pip install 'bandmaster[pii]'")
pytest.importorskip("faker", reason="the ticket generator needs faker (dev extra)")


@contextlib.contextmanager
def example_modules(folder: Path) -> Iterator[None]:
    """Import the example's own modules for a moment. They are dropped from ``sys.modules``
    afterwards: ``local_models`` is also the name of the graph examples' module, and a later
    test importing that name must not get this one."""
    before = set(sys.modules)
    sys.path.insert(0, str(folder))
    try:
        yield
    finally:
        sys.path.remove(str(folder))
        for name in set(sys.modules) - before:
            module_file = getattr(sys.modules[name], "__file__", None) or ""
            if module_file.startswith(str(folder)):
                del sys.modules[name]


def _planted(folder: Path) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    """A copy of the example whose tickets.jsonl holds every PHI-bearing ticket text the
    generator wrote into the bundled files (several to a ticket, so the run stays short), then
    fresh tickets from ``make_tickets.planted`` with every PHI form; and whose train.jsonl holds
    every PHI-bearing training ticket, fresh planted ones and enough plain ones to train on
    (the models are trained, and cached, on it). Returns (tickets, training tickets)."""
    shutil.copytree(
        EXAMPLE, folder, ignore=shutil.ignore_patterns("tickets.jsonl", "train.jsonl", "__pycache__")
    )
    with example_modules(folder):
        from make_tickets import planted  # type: ignore[import-not-found]
    bundled = [
        row
        for name in ("tickets.jsonl", "train.jsonl")
        for line in (EXAMPLE / name).read_text().splitlines()
        if (row := json.loads(line))["phi"]
    ]
    rows = [
        {
            **group[0],
            "id": f"B{start:04d}",
            "text": " ".join(row["text"] for row in group),
            "history": [line for row in group for line in row["history"]],
            "phi": [value for row in group for value in row["phi"]],
        }
        for start in range(0, len(bundled), PER_TICKET)
        if (group := bundled[start : start + PER_TICKET])
    ]
    rows += planted(FRESH, seed=41)
    (folder / "tickets.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    training = [json.loads(line) for line in (EXAMPLE / "train.jsonl").read_text().splitlines()]
    train_rows = [row for row in training if row["phi"]] + planted(FRESH_TRAINING, seed=43)
    train_rows += [row for row in training if not row["phi"]][:PLAIN_TRAINING]
    (folder / "train.jsonl").write_text("".join(json.dumps(row) + "\n" for row in train_rows))
    return rows, train_rows


def _cli(*args: str, cwd: Path) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "bandmaster.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert proc.returncode == 0, f"bandmaster {' '.join(args)}: {proc.stderr[-2000:]}"
    return proc.stdout + proc.stderr


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _served(work: Path, example: Path, port: int) -> Iterator[tuple[str, str]]:
    """Run the demo, then its dashboard; yield (what the CLI printed, the dashboard token)."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bandmaster.cli",
            "demo",
            "--examples",
            str(example),
            "--db",
            str(work / "demo.db"),
            "--json",
            "--html",
            str(work / "report.html"),
            "--ui",
            "--port",
            str(port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=work,
        env={**os.environ, "COLUMNS": "200", "BROWSER": "true"},
    )
    try:
        assert proc.stdout is not None
        printed: list[str] = []
        token = None
        deadline = time.monotonic() + 500
        while token is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            assert line, "the demo ended before serving the dashboard:\n" + "".join(printed)[-3000:]
            printed.append(line)
            found = re.search(r"log in with (bm_\S+);", line)
            token = found.group(1) if found else None
        assert token is not None
        yield "".join(printed), token
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
        if proc.stdout is not None:
            proc.stdout.close()


def _from_the_dashboard(url: str, token: str, tickets: int) -> list[str]:
    """What reviewers and operators see over HTTP: the API's runs and approvals, and the
    dashboard's approvals and run pages."""
    seen: list[str] = []
    with httpx2.Client(base_url=url, timeout=15, headers={"Authorization": f"Bearer {token}"}) as http:
        for _ in range(200):  # until uvicorn listens
            try:
                runs = http.get("/api/v1/runs", params={"limit": 500})
                break
            except httpx2.TransportError:
                time.sleep(0.1)
        assert runs.status_code == 200, runs.text
        seen.append(runs.text)
        run_ids = [run["id"] for run in runs.json()["runs"]]
        assert sum(run_id.startswith("triage-") for run_id in run_ids) == tickets
        for run_id in run_ids:
            seen.append(http.get(f"/api/v1/runs/{run_id}").text)
        approvals = http.get("/api/v1/approvals", params={"status": "all"})
        assert approvals.status_code == 200
        reviews = approvals.json()
        assert reviews, "the planted tickets should all have been flagged for review"
        assert all("<" in json.dumps(review["payload"]) for review in reviews)  # placeholders, redacted
        seen.append(approvals.text)
    with httpx2.Client(base_url=url, timeout=15) as browser:  # the dashboard, logged in
        login = browser.get("/login")
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', login.text)
        assert csrf is not None
        form = {"token": token, "csrf_token": csrf.group(1), "next": "/ui/approvals"}
        logged_in = browser.post("/login", data=form, headers={"Cookie": _cookies(login)})
        assert logged_in.status_code == 303, logged_in.text
        browser.headers["Cookie"] = _cookies(logged_in)  # Secure cookies: the client keeps none on http
        page = browser.get("/ui/approvals")
        assert page.status_code == 200
        assert "phi_review" in page.text
        seen.append(page.text)
        for run_id in run_ids:
            seen.append(browser.get(f"/ui/runs/{run_id}").text)
    return seen


def _copy_wal(wal: Path, into: Path, stop: threading.Event) -> None:
    """Copy the journal's WAL every few tenths of a second (keeping the last 20 copies): the
    frames of pages rewritten since are gone from the file by the time the demo ends."""
    number = 0
    while not stop.wait(0.3):
        with contextlib.suppress(FileNotFoundError):  # not created yet, or checkpointed away
            shutil.copy(wal, into / f"demo.db-wal.{number % 20}")
            number += 1


def _cookies(response: httpx2.Response) -> str:
    return "; ".join(header.split(";", 1)[0] for header in response.headers.get_list("set-cookie"))


# Magic bytes of the compressors joblib (and the archive) may write, and how to undo them.
DECOMPRESSORS: dict[bytes, Callable[[bytes], bytes]] = {
    b"\x1f\x8b": gzip.decompress,
    b"\x78": zlib.decompress,
    b"BZh": bz2.decompress,
    b"\xfd7zXZ": lzma.decompress,
    b"]\x00\x00": lzma.decompress,
}


def _file_text(path: Path) -> bytes:
    """The file's bytes, decompressed when compressed; for a joblib model also every string
    held anywhere in the loaded object (vocabularies, stop-word lists, class names)."""
    data = path.read_bytes()
    for magic, decompress in DECOMPRESSORS.items():
        if data.startswith(magic):
            with contextlib.suppress(Exception):  # not compressed after all: scan as it is
                data = decompress(data)
            break
    if path.suffix == ".joblib":
        with example_modules(EXAMPLE):  # the pipelines hold the example's own transformers
            data += "\n".join(_strings(joblib.load(path), set())).encode()
    return data


def _strings(value: object, seen: set[int]) -> Iterator[str]:
    """Every string reachable from ``value``: dict keys and values, sequences, numpy arrays and
    object attributes (a fitted vectorizer keeps its vocabulary and the terms it cut off)."""
    if isinstance(value, str | bytes):
        yield value if isinstance(value, str) else value.decode(errors="replace")
        return
    if id(value) in seen:
        return
    seen.add(id(value))
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "OUS":
            yield from _strings(value.ravel().tolist(), seen)
        return
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(key, seen)
            yield from _strings(item, seen)
        return
    if isinstance(value, list | tuple | set | frozenset):
        for item in value:
            yield from _strings(item, seen)
        return
    if hasattr(value, "__dict__"):
        yield from _strings(vars(value), seen)


@pytest.mark.timeout(900)
def test_no_planted_phi_reaches_any_artifact_of_the_demo(tmp_path: Path) -> None:
    example, work = tmp_path / "support_triage", tmp_path / "work"
    work.mkdir()
    rows, train_rows = _planted(example)
    planted = sorted({str(value).lower() for row in [*rows, *train_rows] for value in row["phi"]})  # type: ignore[attr-defined]
    assert len(planted) > 600

    outputs: list[str] = []
    port = _free_port()
    snapshots = work / "snapshot"  # the write-ahead log while the demo writes it
    snapshots.mkdir()
    stop = threading.Event()
    copier = threading.Thread(target=_copy_wal, args=(work / "demo.db-wal", snapshots, stop))
    copier.start()
    served = _served(work, example, port)
    try:
        printed, token = next(served)
        stop.set()
        outputs.append(printed)
        outputs += _from_the_dashboard(f"http://127.0.0.1:{port}", token, len(rows))
    finally:
        stop.set()
        copier.join()
        served.close()
    assert list(snapshots.glob("demo.db-wal.*")), "no copy of the WAL was taken while the demo ran"

    db = str(work / "demo.db")
    outputs.append(_cli("approvals", "list", "--status", "all", "--json", "--db", db, cwd=work))
    for row in rows[:6]:
        outputs.append(_cli("runs", "show", f"triage-{row['id']}", "--json", "--db", db, cwd=work))
    _cli("export", "--to", str(work / "export.jsonl"), "--db", db, cwd=work)
    _cli("export", "--to", str(work / "export.jsonl.gz"), "--db", db, cwd=work)
    _cli("archive", "--older-than", "1s", "--to", str(work / "archive"), "--db", db, cwd=work)
    archived = list((work / "archive").glob("*.gz"))
    assert archived, "the archive wrote no file"

    artifacts = {str(path.relative_to(work)): _file_text(path) for path in work.rglob("*") if path.is_file()}
    artifacts |= {f"output {number}": text.encode() for number, text in enumerate(outputs)}
    assert {"report.html", "export.jsonl", "export.jsonl.gz", "demo.db"} <= set(artifacts)
    assert len(list((work / "models").glob("*.joblib"))) == 3, "the demo cached no models to scan"
    # Case-insensitive: a vectorizer lowercases what it learns ("jane doe").
    hits = {
        name: found
        for name, data in artifacts.items()
        if (found := [value for value in planted if value.encode() in data.lower()])
    }
    assert hits == {}, f"planted PHI found in {len(hits)} artifacts: {hits}"


def test_model_caches_trained_on_unredacted_text_are_removed(tmp_path: Path) -> None:
    """Caches in the naming used before training text was redacted hold names in their
    vocabularies: the next training run deletes them, and leaves other files alone."""
    legacy = [tmp_path / f"{tier}-0123456789abcdef.joblib" for tier in ("small", "medium", "large")]
    for path in legacy:
        path.write_bytes(b"a vocabulary with jane doe in it")
    other = tmp_path / "compliance-0123456789abcdef.joblib"  # the contract review's: not ours
    other.write_bytes(b"kept")
    texts = ["refund my bill", "my chest hurts", "the portal crashed", "change my address"] * 3
    labels = ["billing", "clinical", "technical", "account"] * 3
    with example_modules(EXAMPLE):  # pickling the pipelines needs the module importable
        from local_models import train  # type: ignore[import-not-found]

        train(texts, labels, cache_dir=tmp_path, tiers=("small",))
    assert not any(path.exists() for path in legacy)
    assert other.read_bytes() == b"kept"
    assert [path.name.split("-")[:2] for path in tmp_path.glob("small-*")] == [["small", "redacted"]]
