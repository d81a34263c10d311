"""PII/PHI detection quality and speed of ``bm.RedactPII``, and the journal cost of redaction.

    .venv/bin/python benchmarks/bench_pii.py /work/shared/data [--limit N] [--hook-runs N]

Datasets (read from DATA_DIR, never copied into the repo):

* ``presidio-synth-pii/synth_dataset_v2.json``: Presidio's synthetic evaluation sentences.
* ``physionet-deid-nursing-notes/deid_gold_notes_with_spans.jsonl.gz``: real ICU nursing notes
  with gold PHI spans (GPL; stays in DATA_DIR).
* the support-triage example's bundled tickets (in the repo): gold spans where each ticket's
  ``phi`` values occur, typed by their shape.

Scoring is span overlap per entity type: a gold span is found when a prediction of the mapped
type overlaps it; a prediction is correct when it overlaps a gold span of its type. Gold types
with no counterpart in ours are listed as "not scored". The last section times a 10-step
workflow with and without a redactor (the hot path must not slow down without one).
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import re
import statistics
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

import bandmaster as bm

# Dataset label -> our entity type (None: no counterpart, not scored).
SYNTH_LABELS: dict[str, str | None] = {
    "PERSON": "PERSON",
    "STREET_ADDRESS": "LOCATION",
    "GPE": "LOCATION",
    "ZIP_CODE": None,  # Presidio has no zip recognizer
    "ORGANIZATION": None,  # not redacted by default (hospital/drug names)
    "TITLE": None,
    "NRP": None,
    "DOMAIN_NAME": "URL",
    "DATE_TIME": "DATE_TIME",
    "PHONE_NUMBER": "PHONE_NUMBER",
    "EMAIL_ADDRESS": "EMAIL_ADDRESS",
    "CREDIT_CARD": "CREDIT_CARD",
    "IBAN_CODE": "IBAN_CODE",
    "US_SSN": "US_SSN",
    "IP_ADDRESS": "IP_ADDRESS",
    "US_DRIVER_LICENSE": "US_DRIVER_LICENSE",
    "AGE": None,  # no age recognizer (HIPAA only counts ages over 89)
}
NURSING_LABELS: dict[str, str | None] = {
    "HCPName": "PERSON",
    "PTName": "PERSON",
    "PTNameInitial": "PERSON",
    "RelativeProxyName": "PERSON",
    "Date": "DATE_TIME",
    "DateYear": "DATE_TIME",
    "Phone": "PHONE_NUMBER",
    "Location": "LOCATION",
    "Age": None,
    "Other": None,
}
# How results are grouped in the table: our type -> row name.
ROW = {"PERSON": "names", "DATE_TIME": "dates", "PHONE_NUMBER": "phones"}

Span = tuple[int, int, str]  # start, end, our entity type


def load_synth(folder: Path, limit: int | None) -> list[tuple[str, list[Span]]]:
    records = json.loads((folder / "synth_dataset_v2.json").read_text())[:limit]
    out = []
    for rec in records:
        spans = [
            (
                s["start_position"],
                s["end_position"],
                SYNTH_LABELS.get(s["entity_type"]) or "-" + s["entity_type"],
            )
            for s in rec["spans"]
        ]
        out.append((rec["full_text"], spans))
    return out


def load_nursing(folder: Path, limit: int | None) -> list[tuple[str, list[Span]]]:
    out = []
    with gzip.open(folder / "deid_gold_notes_with_spans.jsonl.gz", "rt") as f:
        for line in f:
            note = json.loads(line)
            spans = [
                (s["start"], s["end"], NURSING_LABELS.get(s["type"]) or "-" + s["type"])
                for s in note["spans"]
            ]
            out.append((note["text"], spans))
            if limit is not None and len(out) >= limit:
                break
    return out


TICKETS_DIR = Path(__file__).resolve().parents[1] / "examples" / "support_triage"


def _ticket_type(value: str) -> str:
    """The type of an identifier the ticket generator planted, from its shape."""
    shapes = [
        (r"MRN \d+", "MEDICAL_RECORD_NUMBER"),
        (r"\d{3}-\d{2}-\d{4}", "US_SSN"),
        (r"\(\d{3}\) \d{3}-\d{4}", "PHONE_NUMBER"),
        (r"\d{2}/\d{2}/\d{4}", "DATE_TIME"),
        (r"\S+@\S+", "EMAIL_ADDRESS"),
        (r"\d+ .*", "LOCATION"),  # a street address
    ]
    return next((kind for shape, kind in shapes if re.fullmatch(shape, value)), "PERSON")


def load_tickets(folder: Path, limit: int | None) -> list[tuple[str, list[Span]]]:
    """The support-triage example's bundled tickets and training tickets (every text and
    history line), with gold spans where the generator's ``phi`` values occur."""
    out: list[tuple[str, list[Span]]] = []
    for name in ("tickets.jsonl", "train.jsonl"):
        for line in (folder / name).read_text().splitlines():
            row = json.loads(line)
            for text in [row["text"], *row["history"]]:
                spans = [
                    (found.start(), found.end(), _ticket_type(value))
                    for value in row["phi"]
                    for found in re.finditer(re.escape(value), text)
                ]
                out.append((text, spans))
    return out[:limit]


def _overlaps(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def evaluate(
    redactor: bm.RedactPII, docs: Iterable[tuple[str, list[Span]]]
) -> tuple[dict[str, list[int]], float, int]:
    """Per type: [gold, gold found, predicted, predicted correct]; seconds; documents."""
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    elapsed, n = 0.0, 0
    for text, gold in docs:
        started = time.perf_counter()
        predicted = [(p.start, p.end, p.entity) for p in redactor.analyze(text)]
        elapsed += time.perf_counter() - started
        n += 1
        for start, end, kind in gold:
            c = counts[kind]
            c[0] += 1
            c[1] += any(k == kind and _overlaps((start, end), (s, e)) for s, e, k in predicted)
        for start, end, kind in predicted:
            c = counts[kind]
            c[2] += 1
            c[3] += any(k == kind and _overlaps((start, end), (s, e)) for s, e, k in gold)
    return counts, elapsed, n


def print_table(title: str, counts: dict[str, list[int]], elapsed: float, docs: int) -> None:
    print(
        f"\n## {title}: {docs} documents, {docs / elapsed:.1f} docs/s ({elapsed / docs * 1000:.1f} ms each)"
    )
    print(f"| {'entity':<22} | {'gold':>5} | {'pred':>5} | precision | recall |   F1  |")
    print(f"|{'-' * 24}|{'-' * 7}|{'-' * 7}|-----------|--------|-------|")
    scored = sorted(k for k in counts if not k.startswith("-"))
    for kind in scored:
        gold, found, pred, correct = counts[kind]
        precision = correct / pred if pred else float("nan")
        recall = found / gold if gold else float("nan")
        f1 = (
            2 * precision * recall / (precision + recall)
            if pred and gold and precision + recall
            else float("nan")
        )
        label = f"{kind} ({ROW[kind]})" if kind in ROW else kind
        print(f"| {label:<22} | {gold:>5} | {pred:>5} | {precision:>9.3f} | {recall:>6.3f} | {f1:>5.3f} |")
    skipped = {k[1:]: counts[k][0] for k in counts if k.startswith("-")}
    if skipped:
        print(
            "not scored (no counterpart in ours): "
            + ", ".join(f"{k} {v}" for k, v in sorted(skipped.items()))
        )


# --- journal cost of the redaction hook ---------------------------------------------------


@bm.step
async def _echo(text: str) -> str:
    return text


def _chain(redact: bm.RedactPII | None) -> bm.Workflow[[str], str]:
    @bm.workflow(name=f"chain_{'redacted' if redact else 'plain'}", redact=redact)
    async def chain(text: str) -> str:
        for _ in range(10):
            text = await _echo(text)
        return text

    return chain


async def _time_chain(db: Path, wf: bm.Workflow[[str], str], text: str, runs: int) -> float:
    async with bm.Engine(db, workflows=[wf]) as engine:
        await (await engine.start(wf, text)).result()  # warm-up
        started = time.perf_counter()
        for _ in range(runs):
            await (await engine.start(wf, text)).result()
        return (time.perf_counter() - started) / runs / 10


def bench_hook(runs: int) -> None:
    text = "Pt Mr. John Baker, DOB 03/04/1956, call daughter Mary at 617-555-0134 re: discharge"
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        # The baseline twice, interleaved, so machine noise shows next to the difference.
        plain = [asyncio.run(_time_chain(base / f"plain{i}.db", _chain(None), text, runs)) for i in range(2)]
        redactor = bm.RedactPII()
        redacted = asyncio.run(_time_chain(base / "red.db", _chain(redactor), text, runs))
    base_us = statistics.mean(plain) * 1e6
    print(f"\n## Journal redaction hook: 10-step chain, {runs} runs each")
    print(f"no redactor:   {plain[0] * 1e6:8.1f} / {plain[1] * 1e6:8.1f} µs per step (two baseline runs)")
    print(f"RedactPII():   {redacted * 1e6:8.1f} µs per step  ({redacted * 1e6 / base_us:.1f}x the baseline;")
    print("               the output repeats, so most steps hit the redactor's text cache)")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "data_dir", type=Path, help="folder holding presidio-synth-pii/ and physionet-deid-nursing-notes/"
    )
    parser.add_argument("--limit", type=int, default=None, help="documents per dataset (default: all)")
    parser.add_argument("--hook-runs", type=int, default=50, help="workflow runs per hook timing")
    parser.add_argument("--only", choices=["synth", "nursing", "tickets", "hook"], default=None)
    args = parser.parse_args()

    redactor = bm.RedactPII()
    started = time.perf_counter()
    redactor.analyze("warm up: load spaCy and Presidio")
    print(f"analyzer load: {time.perf_counter() - started:.1f} s (once per process)")
    if args.only in (None, "synth"):
        counts, elapsed, n = evaluate(redactor, load_synth(args.data_dir / "presidio-synth-pii", args.limit))
        print_table("presidio-synth-pii", counts, elapsed, n)
    if args.only in (None, "nursing"):
        docs = load_nursing(args.data_dir / "physionet-deid-nursing-notes", args.limit)
        counts, elapsed, n = evaluate(redactor, docs)
        print_table("physionet-deid-nursing-notes", counts, elapsed, n)
    if args.only in (None, "tickets"):
        counts, elapsed, n = evaluate(redactor, load_tickets(TICKETS_DIR, args.limit))
        print_table("support-triage tickets (bundled + training)", counts, elapsed, n)
    if args.only in (None, "hook"):
        bench_hook(args.hook_runs)


if __name__ == "__main__":
    main()
