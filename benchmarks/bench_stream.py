"""Time to first token through ``bm.stream_model`` against the raw ``openai`` SDK, on the same
scripted streaming server (``tests/models/scripted_server.py``, a separate process speaking the
OpenAI chat-completions SSE format), in one run.

    .venv/bin/python benchmarks/bench_stream.py [--rounds N] [--quick] [--json PATH]

Each round makes one streamed request per variant, in an order rotated every round:

* ``raw``: ``AsyncOpenAI.chat.completions.create(stream=True)``, iterated to the first chunk
  with text;
* ``bm (workflow)``: ``bm.stream_model`` inside a ``@bm.workflow`` on an embedded engine (a
  journaled call: replay lookup, step hooks, chunk relay, publisher for observers), timed
  inside the workflow from the call to the first chunk;
* ``bm (no workflow)``: ``bm.stream_model`` outside any workflow (policies, no journal).

TTFT is measured from the start of the request to the first text chunk in the caller's hands.
Medians and p90 per variant; "added" is the bandmaster median minus the raw median. Target:
at most 1 ms added.

Then the cost per chunk of relaying a stream inside a workflow, with the chunks published for
observers (``stream_chunks``) and without (a workflow with an identity ``redact=``, which
publishes nothing): an in-process model streaming 2,000 ready chunks, runs alternated.
Measurements, not tests: the script exits 0 whatever the numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import openai

import bandmaster as bm
from bandmaster.models import ModelChunk
from bandmaster.models.openai_compat import OpenAIModel

ROOT = Path(__file__).resolve().parents[1]
SCRIPTED_SERVER = ROOT / "tests" / "models" / "scripted_server.py"
MODEL = "gpt-4o-mini"
PIECES = [f"word{i} " for i in range(20)]
TARGET_MS = 1.0


def start_server() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, str(SCRIPTED_SERVER), "--port", "0"], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    port = int(proc.stdout.readline().split()[1])
    url = f"http://127.0.0.1:{port}"
    body = json.dumps({"models": {MODEL: {"default": {"kind": "ok", "chunks": PIECES}}}}).encode()
    request = urllib.request.Request(
        url + "/control", data=body, headers={"Content-Type": "application/json"}
    )
    urllib.request.urlopen(request, timeout=10).close()
    return proc, url


async def raw_ttft(client: openai.AsyncOpenAI) -> float:
    started = time.perf_counter()
    first = 0.0
    events = await client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "hello"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    async with events:
        async for event in events:
            if not first and event.choices and event.choices[0].delta.content:
                first = time.perf_counter() - started
    return first


async def bm_ttft(model: OpenAIModel) -> float:
    started = time.perf_counter()
    first = 0.0
    async for chunk in bm.stream_model(model, "hello", retry=bm.Retry(attempts=1)):
        if not first and chunk.text:
            first = time.perf_counter() - started
    return first


MODEL_FOR_WORKFLOW: dict[str, OpenAIModel] = {}


@bm.workflow
async def ttft_in_workflow() -> float:
    return await bm_ttft(MODEL_FOR_WORKFLOW["model"])


class Ready:
    """An in-process model whose chunks are all ready: the relay's own cost, no network."""

    name = "ready"
    chunks = 2000

    async def request(self, req: bm.ModelRequest) -> bm.ModelResponse:
        text = "x " * self.chunks
        return bm.ModelResponse(output=text, text=text, model=self.name)

    async def stream(self, req: bm.ModelRequest) -> AsyncIterator[ModelChunk]:
        for _ in range(self.chunks):
            yield ModelChunk("x ")
        yield ModelChunk(response=await self.request(req))


class Identity:
    def redact(self, value: Any) -> Any:
        return value


async def drain() -> int:
    count = 0
    async for _ in bm.stream_model(Ready(), "go"):
        count += 1
    return count


@bm.workflow
async def relay_published() -> int:
    return await drain()


@bm.workflow(redact=Identity())
async def relay_unpublished() -> int:
    return await drain()


async def per_chunk(runs: int) -> dict[str, float]:
    samples: dict[str, list[float]] = {"published": [], "not published": []}
    workflows = {"published": relay_published, "not published": relay_unpublished}
    with tempfile.TemporaryDirectory() as tmp:
        async with bm.Engine(Path(tmp) / "relay.db", workflows=list(workflows.values())) as engine:
            for trial in range(runs + 3):
                for name, wf in workflows.items():
                    started = time.perf_counter()
                    await (await engine.start(wf)).result()
                    if trial >= 3:
                        samples[name].append((time.perf_counter() - started) / Ready.chunks)
    return {name: statistics.median(values) * 1e6 for name, values in samples.items()}


def summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "median_ms": statistics.median(ordered) * 1000,
        "p90_ms": ordered[int(0.9 * (len(ordered) - 1))] * 1000,
    }


async def measure(url: str, rounds: int, warmup: int) -> dict[str, list[float]]:
    client = openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="bench", max_retries=0)
    model = OpenAIModel(MODEL, base_url=f"{url}/v1", api_key="bench")
    MODEL_FOR_WORKFLOW["model"] = model
    samples: dict[str, list[float]] = {"raw": [], "bm (workflow)": [], "bm (no workflow)": []}
    with tempfile.TemporaryDirectory() as tmp:
        async with bm.Engine(Path(tmp) / "bench.db", workflows=[ttft_in_workflow]) as engine:

            async def in_workflow() -> float:
                return float(await (await engine.start(ttft_in_workflow)).result())

            variants: dict[str, Callable[[], Awaitable[float]]] = {
                "raw": lambda: raw_ttft(client),
                "bm (workflow)": in_workflow,
                "bm (no workflow)": lambda: bm_ttft(model),
            }
            names = list(variants)
            for round_ in range(warmup + rounds):
                shift = round_ % len(names)
                for name in names[shift:] + names[:shift]:  # rotated: no variant always goes first
                    value = await variants[name]()
                    if round_ >= warmup:
                        samples[name].append(value)
    await client.close()
    await model.aclose()
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--quick", action="store_true", help="40 rounds")
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args()
    rounds = 40 if args.quick else args.rounds
    proc, url = start_server()
    try:
        samples = asyncio.run(measure(url, rounds, warmup=10))
    finally:
        proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
    results = {name: summary(values) for name, values in samples.items()}
    raw = results["raw"]["median_ms"]
    print(f"time to first token, {rounds} rounds (rotated), scripted OpenAI SSE server on 127.0.0.1")
    print(f"{'variant':<18} {'median ms':>10} {'p90 ms':>10} {'added ms':>10} {'ratio':>7}")
    for name, numbers in results.items():
        added = numbers["median_ms"] - raw
        numbers["added_ms"] = added
        numbers["ratio"] = numbers["median_ms"] / raw if raw else float("nan")
        print(
            f"{name:<18} {numbers['median_ms']:>10.3f} {numbers['p90_ms']:>10.3f} "
            f"{added:>+10.3f} {numbers['ratio']:>7.2f}"
        )
    worst = max(results["bm (workflow)"]["added_ms"], results["bm (no workflow)"]["added_ms"])
    verdict = "met" if worst <= TARGET_MS else "MISSED"
    print(f"target: <= {TARGET_MS} ms added (median) -> {verdict} (worst {worst:+.3f} ms)")
    relay = asyncio.run(per_chunk(5 if args.quick else 20))
    print(f"relay per chunk in a workflow, {Ready.chunks} ready chunks, median of runs:")
    for name, micros in relay.items():
        print(f"  {name:<14} {micros:8.2f} µs")
    print(f"  publishing adds {relay['published'] - relay['not published']:+.2f} µs per chunk")
    if args.json:
        out = {"rounds": rounds, "results": results, "relay_us_per_chunk": relay}
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
