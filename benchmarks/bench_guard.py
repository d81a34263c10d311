"""Guard benchmarks: what a guard set adds to ``bm.call_model``, against the same call without
guards measured in the same run.

    .venv/bin/python benchmarks/bench_guard.py [DATA_DIR] [--quick] [--json PATH]

DATA_DIR is the banking77 folder (``.../banking77`` with ``test.csv``): its real customer
messages are the prompts. Without it, a synthetic set of short messages is used.

The model is a zero-latency ``bm.CallableModel`` answering with fenced JSON in prose (what chat
models do), so every number is the guards' own cost:

1. direct: ``call_model`` outside a workflow, unguarded vs guarded with the legal-pipeline set
   (``ModelSettings``, ``BannedTopics`` with 40 phrases, ``MaxTokens(512)`` on input with
   tiktoken, ``JsonSchema(pydantic model)``, ``RequiredFields``); µs per call and the ratio.
2. journaled: the same inside a workflow of 10 calls on an embedded engine (SQLite journal),
   each call timed inside the run; median µs per call, the difference, and bytes of step meta
   per call. (Medians: a journal write now and then waits for another process's disk I/O.)
3. re-ask: a model whose first answer fails the schema, inside the workflow: the time of a call
   that needed one re-ask over a call that passed first time.

Measurements, not tests: the script exits 0 whatever the numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import itertools
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel

import bandmaster as bm
from bandmaster.models.tokenizers import default_tokenizer

CALLS_PER_RUN = 10
PHRASES = [
    *("insider trading", "tax evasion", "money laundering", "bribery", "sanctions evasion"),
    *("market manipulation", "ponzi scheme", "pump and dump", "front running", "wash trading"),
    *("structuring deposits", "shell company", "kickback", "embezzlement", "identity theft"),
    *("account takeover", "card skimming", "phishing kit", "chargeback fraud", "synthetic identity"),
    *("mule account", "crypto mixer", "terror financing", "price fixing", "bid rigging"),
    *("cartel", "extortion", "counterfeit", "smuggling", "human trafficking"),
    *("arms dealing", "drug trafficking", "gambling ring", "loan sharking", "check kiting"),
    *("forgery", "racketeering", "blackmail", "hacking tools", "stolen credentials"),
]


class Intent(BaseModel):
    intent: str
    confidence: float
    reply: str


def messages(data: Path | None, count: int) -> list[str]:
    if data is not None:
        with open(data / "test.csv", newline="") as handle:
            texts = [row["text"] for row in csv.DictReader(handle)]
    else:
        texts = [f"Message {i}: I was charged twice for my card payment, please help." for i in range(100)]
    return list(itertools.islice(itertools.cycle(texts), count))


def fenced_answer(text: str) -> str:
    body = json.dumps({"intent": "card_payment", "confidence": 0.91, "reply": f"About: {text[:40]}"})
    return f"Here is the classification:\n```json\n{body}\n```\nLet me know if you need more."


def legal_guards() -> list[bm.Guard]:
    return [
        bm.ModelSettings(temperature=0.0, max_tokens=200, response_format="json"),
        bm.BannedTopics(PHRASES),
        bm.MaxTokens(512, tokenizer=default_tokenizer()),
        bm.JsonSchema(Intent, reask=2),
        bm.RequiredFields(["intent", "reply"]),
    ]


MODEL = bm.CallableModel(fenced_answer, name="fast")
FLAKY_STATE = {"calls": 0}


def flaky_answer(text: str) -> str:
    """Every odd call answers with the wrong shape: every guarded call needs one re-ask."""
    FLAKY_STATE["calls"] += 1
    return '{"label": "card_payment"}' if FLAKY_STATE["calls"] % 2 else fenced_answer(text)


FLAKY = bm.CallableModel(flaky_answer, name="flaky")
GUARDS = legal_guards()


async def direct(texts: list[str], guarded: bool) -> list[float]:
    guard = GUARDS if guarded else None
    timings = []
    for text in texts:
        started = time.perf_counter()
        await bm.call_model(MODEL, text, guard=guard)
        timings.append(time.perf_counter() - started)
    return timings


@bm.workflow
async def classify_many(texts: list[str], mode: str) -> list[float]:
    """Seconds of each call, timed inside the run: a client's wait for the result would add the
    engine's poll interval, which is not the guards' cost (a benchmark, never replayed)."""
    model = FLAKY if mode == "reask" else MODEL
    guard = None if mode == "plain" else GUARDS
    timings = []
    for text in texts:
        started = time.perf_counter()
        await bm.call_model(model, text, guard=guard)
        timings.append(time.perf_counter() - started)
    return timings


async def journaled(db: Path, texts: list[str], modes: list[str]) -> dict[str, tuple[list[float], int]]:
    """Per-call times and meta bytes per call for each mode. The modes' runs alternate batch by
    batch, so load from other processes on the machine falls on all of them alike."""
    batches = [texts[i : i + CALLS_PER_RUN] for i in range(0, len(texts), CALLS_PER_RUN)]
    timings: dict[str, list[float]] = {mode: [] for mode in modes}
    last: dict[str, bm.RunHandle] = {}
    async with bm.Engine(db, workflows=[classify_many], poll_interval=0.01) as engine:
        for mode in modes:  # warm-up
            await (await engine.start(classify_many, batches[0], mode)).result()
        for batch in batches:
            for mode in modes:
                last[mode] = await engine.start(classify_many, batch, mode)
                timings[mode].extend(await last[mode].result())
        results = {}
        for mode in modes:
            info = await last[mode].describe()
            meta_bytes = sum(len(json.dumps(step.meta)) for step in info.steps) // max(len(info.steps), 1)
            results[mode] = (timings[mode], meta_bytes)
    return results


def us(values: list[float]) -> float:
    return statistics.median(values) * 1e6


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="?", type=Path, help="the banking77 folder (test.csv)")
    parser.add_argument("--quick", action="store_true", help="small sizes (a few seconds)")
    parser.add_argument("--json", type=Path, help="also write the numbers as JSON here")
    args = parser.parse_args()
    if args.data is not None and not (args.data / "test.csv").is_file():
        sys.exit(f"{args.data} has no test.csv; pass the banking77 folder")
    count = 300 if args.quick else 2000
    texts = messages(args.data, count)
    results: dict[str, Any] = {"messages": len(texts), "source": str(args.data or "synthetic")}

    await direct(texts[:50], True)  # warm-up: tokenizer load, schema build, code paths
    plain, guarded = await direct(texts, False), await direct(texts, True)
    results["direct"] = {"plain_us": us(plain), "guarded_us": us(guarded)}

    with tempfile.TemporaryDirectory() as tmp:
        runs = await journaled(Path(tmp) / "journal.db", texts, ["plain", "guarded", "reask"])
    results["journaled"] = {
        "plain_us": us(runs["plain"][0]),
        "guarded_us": us(runs["guarded"][0]),
        "reask_us": us(runs["reask"][0]),
        "meta_bytes": {mode: runs[mode][1] for mode in runs},
    }

    d, j = results["direct"], results["journaled"]
    print(f"prompts: {results['messages']} messages from {results['source']}")
    print(f"{'':34}{'µs/call p50':>12}{'vs plain':>10}")
    print(f"{'direct, no guards':34}{d['plain_us']:>12.1f}{'1.00x':>10}")
    print(f"{'direct, legal guard set':34}{d['guarded_us']:>12.1f}{d['guarded_us'] / d['plain_us']:>9.2f}x")
    print(f"{'journaled, no guards':34}{j['plain_us']:>12.1f}{'1.00x':>10}")
    print(
        f"{'journaled, legal guard set':34}{j['guarded_us']:>12.1f}{j['guarded_us'] / j['plain_us']:>9.2f}x"
    )
    print(
        f"{'journaled, one re-ask per call':34}{j['reask_us']:>12.1f}{j['reask_us'] / j['plain_us']:>9.2f}x"
    )
    print(
        f"guard cost per call: direct +{d['guarded_us'] - d['plain_us']:.1f} µs, "
        f"journaled +{j['guarded_us'] - j['plain_us']:.1f} µs"
    )
    print(
        f"step meta per call: {j['meta_bytes']['plain']} B plain, {j['meta_bytes']['guarded']} B guarded, "
        f"{j['meta_bytes']['reask']} B with a re-ask"
    )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
