"""map_reduce: chunks within the context limit, a hierarchical reduce, a failing chunk retried
and fallen back alone, bounded concurrency, and durable replay inside a workflow."""

from __future__ import annotations

import asyncio
import itertools
import re
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

import bandmaster as bm
from bandmaster.graph._chunking import ApproxTokenizer, default_tokenizer
from bandmaster.graph._mapreduce import MapReduceResult, map_reduce

TOKENS = ApproxTokenizer()
FILLER_TEXT = "the parties agree that notice must be given in writing before the term ends"
FILLER = FILLER_TEXT.split()
MAP_PROMPT = "Part {index} of {count}. List the facts:\n{chunk}"
REDUCE_PROMPT = "Merge these fact lists (level {level}):\n{summaries}"
MAP_LIMIT = 200
REDUCE_LIMIT = 60
NO_WAIT = bm.Retry(attempts=2, initial=0.0)


def make_document(facts: int = 40) -> str:
    return "\n\n".join(
        f"Fact {i}: " + " ".join(FILLER[: 6 + i % 7]) + ". " + " ".join(FILLER[i % 5 :]) + "."
        for i in range(1, facts + 1)
    )


def numbers(text: str) -> set[int]:
    """Fact numbers in ``facts 1-4,7`` lists."""
    found: set[int] = set()
    for listing in re.findall(r"facts ([\d,\-]+)", text):
        for part in listing.split(","):
            low, _, high = part.partition("-")
            found.update(range(int(low), int(high or low) + 1))
    return found


def compact(values: set[int]) -> str:
    runs: list[list[int]] = []
    for value in sorted(values):
        if runs and value == runs[-1][1] + 1:
            runs[-1][1] = value
        else:
            runs.append([value, value])
    return "facts " + ",".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


# --- scripted models --------------------------------------------------------------------------

CALLS: Counter[tuple[str, int]] = Counter()  # (model, chunk index or reduce level)
PROMPTS: list[tuple[str, str]] = []
FAIL_ONCE: set[int] = set()
FAIL_ALWAYS: set[int] = set()
STATE: dict[str, Any] = {}


@pytest.fixture(autouse=True)
def reset() -> None:
    CALLS.clear()
    PROMPTS.clear()
    FAIL_ONCE.clear()
    FAIL_ALWAYS.clear()
    STATE.clear()


def part(prompt: str) -> int:
    match = re.match(r"Part (\d+) of", prompt)
    assert match, prompt
    return int(match.group(1))


def answer(model: str, prompt: str) -> dict[str, Any]:
    facts = {int(n) for n in re.findall(r"Fact (\d+):", prompt)}
    return {
        "output": compact(facts),
        "usage": {"input_tokens": TOKENS.count(prompt), "output_tokens": 3},
        "cost": 0.001,
        "model": model,
    }


def summarise(req: bm.ModelRequest) -> dict[str, Any]:
    prompt = req.text()
    index = part(prompt)
    PROMPTS.append(("summariser", prompt))
    CALLS["summariser", index] += 1
    if index in FAIL_ALWAYS or (index in FAIL_ONCE and CALLS["summariser", index] == 1):
        raise bm.ProviderUnavailable(f"summariser is down for part {index}")
    return answer("summariser", prompt)


def backup(req: bm.ModelRequest) -> dict[str, Any]:
    prompt = req.text()
    PROMPTS.append(("backup", prompt))
    CALLS["backup", part(prompt)] += 1
    return answer("backup", prompt)


def combine(req: bm.ModelRequest) -> dict[str, Any]:
    prompt = req.text()
    PROMPTS.append(("combiner", prompt))
    level = int(re.search(r"level (\d+)", prompt).group(1))  # type: ignore[union-attr]
    CALLS["combiner", level] += 1
    return {"output": compact(numbers(prompt)), "cost": 0.002, "model": "combiner"}


SUMMARISER = bm.CallableModel(summarise, name="summariser")
BACKUP = bm.CallableModel(backup, name="backup")
COMBINER = bm.CallableModel(combine, name="combiner")


async def summarise_facts(document: str, **options: Any) -> MapReduceResult:
    return await map_reduce(
        document,
        map_model=SUMMARISER,
        reduce_model=COMBINER,
        map_prompt=MAP_PROMPT,
        reduce_prompt=REDUCE_PROMPT,
        context_limit=MAP_LIMIT,
        reduce_context_limit=REDUCE_LIMIT,
        tokenizer=TOKENS,
        **{"retry": NO_WAIT, "fallback": [BACKUP], **options},
    )


def map_calls(model: str) -> dict[int, int]:
    return {index: n for (name, index), n in sorted(CALLS.items()) if name == model}


# --- the scenario ---------------------------------------------------------------------


async def test_map_reduce_over_a_document_larger_than_the_context_limit_with_one_chunk_failing() -> None:
    document = make_document()
    assert TOKENS.count(document) > 5 * MAP_LIMIT
    FAIL_ONCE.add(2)  # a transient error: the retry answers
    FAIL_ALWAYS.add(4)  # the primary is down for this chunk: the fallback answers

    result = await summarise_facts(document)

    assert result.output == "facts 1-40"  # every fact reached the final answer
    assert result.chunks >= 5
    assert result.levels >= 2  # the map outputs did not fit one reduce call
    chunks = result.chunks
    # Only chunk 2 was called twice (its retry), only chunk 4 reached the fallback.
    assert map_calls("summariser") == {i: 2 if i in (2, 4) else 1 for i in range(1, chunks + 1)}
    assert map_calls("backup") == {4: 1}
    assert result.map_models == ["backup" if i == 4 else "summariser" for i in range(1, chunks + 1)]
    assert all(out.startswith("facts ") for out in result.map_outputs)
    # Every request fit its model's window.
    for model, prompt in PROMPTS:
        assert TOKENS.count(prompt) <= (REDUCE_LIMIT if model == "combiner" else MAP_LIMIT)
    reduce_calls = sum(n for (name, _), n in CALLS.items() if name == "combiner")
    assert CALLS["combiner", result.levels] == 1  # the last level is one call
    assert result.calls == chunks + reduce_calls
    assert result.cost == pytest.approx(0.001 * chunks + 0.002 * reduce_calls)
    assert result.usage.output_tokens == 3 * chunks
    assert result.usage.input_tokens > TOKENS.count(document)  # overlap and prompts on top


async def test_chunks_overlap_and_cover_the_document() -> None:
    result = await summarise_facts(make_document(), overlap=60)  # a paragraph is at most 49
    seen = [numbers(out) for out in result.map_outputs]
    assert set().union(*seen) == set(range(1, 41))
    assert all(a & b for a, b in itertools.pairwise(seen))  # neighbours share a fact


async def test_a_document_that_fits_is_one_map_and_one_reduce() -> None:
    result = await summarise_facts(make_document(facts=2))
    assert (result.chunks, result.levels, result.calls) == (1, 1, 2)
    assert result.output == "facts 1-2"


async def test_a_chunk_that_fails_everywhere_fails_the_map_after_every_chunk_ran() -> None:
    FAIL_ALWAYS.add(3)

    def broken(req: bm.ModelRequest) -> str:
        CALLS["broken", part(req.text())] += 1
        raise bm.InvalidRequest("content filter")

    with pytest.raises(bm.FallbacksExhausted) as info:
        await summarise_facts(make_document(), fallback=[bm.CallableModel(broken, name="broken")])
    assert "map_reduce: chunk 3 of" in "\n".join(info.value.__notes__)
    called = map_calls("summariser")
    assert len(called) >= 5
    assert all(called[i] == 1 for i in called if i != 3)
    assert map_calls("broken") == {3: 1}
    assert map_calls("combiner") == {}  # no reduce over a partial map


async def test_a_reduce_that_does_not_shrink_is_stopped_with_advice() -> None:
    def echo(req: bm.ModelRequest) -> str:
        return "Merged: " + req.text()

    with pytest.raises(bm.UsageError, match="still do not fit one reduce call"):
        await map_reduce(
            make_document(),
            map_model=SUMMARISER,
            reduce_model=bm.CallableModel(echo, name="echo"),
            map_prompt=MAP_PROMPT,
            reduce_prompt=REDUCE_PROMPT,
            context_limit=MAP_LIMIT,
            reduce_context_limit=REDUCE_LIMIT,
            tokenizer=TOKENS,
        )


async def test_collapse_prompt_is_used_for_intermediate_levels_and_prompts_may_be_functions() -> None:
    final: list[str] = []

    def finish(fields: Mapping[str, Any]) -> str:
        final.append(fields["summaries"])
        return "Final answer (level {}):\n{}".format(fields["level"], fields["summaries"])

    result = await map_reduce(
        make_document(),
        map_model=SUMMARISER,
        reduce_model=COMBINER,
        map_prompt=lambda f: MAP_PROMPT.format(**f),
        reduce_prompt=finish,
        collapse_prompt="Collapse (level {level}):\n{summaries}",
        context_limit=MAP_LIMIT,
        reduce_context_limit=REDUCE_LIMIT,
        tokenizer=TOKENS,
    )
    reduce_prompts = [p for model, p in PROMPTS if model == "combiner"]
    assert result.levels >= 2
    assert all(p.startswith("Collapse") for p in reduce_prompts[:-1])
    assert reduce_prompts[-1].startswith("Final answer")
    assert len(final) == 2  # once to measure the template, once for the call
    assert result.output == "facts 1-40"


async def test_the_default_tokenizer_keeps_requests_within_the_limit() -> None:
    seen: list[str] = []

    def model(prompt: str) -> str:
        seen.append(prompt)
        return "ok"

    result = await map_reduce(
        make_document(),
        map_model=bm.CallableModel(model),
        map_prompt="{chunk}",
        reduce_prompt="{summaries}",
        context_limit=120,
        system="Be brief.",
        max_tokens=20,
    )
    assert result.chunks > 3
    assert max(default_tokenizer().count(p) for p in seen) <= 120 - 20 - default_tokenizer().count(
        "Be brief."
    )


# --- bounded concurrency, journal order -------------------------------------------------------


async def slow_summarise(req: bm.ModelRequest) -> dict[str, Any]:
    prompt = req.text()
    index = part(prompt)
    CALLS["slow", index] += 1
    STATE["parts"] = int(prompt.split(" of ", 1)[1].split(".", 1)[0])
    STATE["inflight"] = STATE.get("inflight", 0) + 1
    STATE["peak"] = max(STATE.get("peak", 0), STATE["inflight"])
    try:
        gate: asyncio.Event | None = STATE.get("gate")
        if gate is not None and index == 3:
            await gate.wait()  # hangs until released: a worker "crash" catches it in flight
        await asyncio.sleep(0.002 * (10 - index % 10))  # later parts finish first
        return answer("slow", prompt)
    finally:
        STATE["inflight"] -= 1


SLOW = bm.CallableModel(slow_summarise, name="slow")


@bm.workflow
async def wf_mapreduce_facts(document: str) -> MapReduceResult:
    result = await map_reduce(
        document,
        map_model=SLOW,
        reduce_model=COMBINER,
        map_prompt=MAP_PROMPT,
        reduce_prompt=REDUCE_PROMPT,
        context_limit=MAP_LIMIT,
        reduce_context_limit=REDUCE_LIMIT,
        concurrency=2,
        tokenizer=TOKENS,
    )
    await bm.wait_for("go")  # the run leaves memory here; the signal resumes it by replay
    return result


@bm.workflow
async def wf_mapreduce_failing_chunks(document: str) -> MapReduceResult:
    return await summarise_facts(document)


async def test_in_a_workflow_each_chunk_is_its_own_step_with_its_own_retries_and_fallback(
    engine: bm.Engine,
) -> None:
    FAIL_ONCE.add(2)
    FAIL_ALWAYS.add(4)
    handle = await engine.start(wf_mapreduce_failing_chunks, make_document())
    result = await handle.result(timeout=10)
    steps = model_steps(await handle.describe())
    assert [s.name for s in steps[: result.chunks]] == ["summariser"] * result.chunks
    assert len(steps) == result.calls
    assert all(s.status == "completed" for s in steps)
    retried, fallen_back = steps[1], steps[3]
    assert retried.attempts == 2
    assert retried.meta["attempt_errors"] == ["ProviderUnavailable: summariser is down for part 2"]
    assert retried.meta["fallback"] is None
    assert fallen_back.attempts == 3  # two on the primary, one on the fallback
    assert (fallen_back.meta["fallback"], fallen_back.meta["model"]) == ("backup", "backup")
    others = [s for i, s in enumerate(steps) if i not in (1, 3)]
    assert all(s.attempts == 1 and s.meta["fallback"] is None for s in others)
    assert result.output == "facts 1-40"


async def test_concurrency_is_bounded_and_outside_a_workflow_too() -> None:
    result = await map_reduce(
        make_document(),
        map_model=SLOW,
        reduce_model=COMBINER,
        map_prompt=MAP_PROMPT,
        reduce_prompt=REDUCE_PROMPT,
        context_limit=MAP_LIMIT,
        concurrency=3,
        tokenizer=TOKENS,
    )
    assert STATE["peak"] == 3
    assert result.output == "facts 1-40"


def model_steps(info: bm.RunInfo) -> list[bm.StepInfo]:
    return [s for s in info.steps if s.kind == "model"]


async def test_journal_has_a_step_per_chunk_and_reduce_and_replay_calls_no_model(
    db_path: Path, until_status: Any
) -> None:
    async with bm.Engine(db_path, poll_interval=0.02, lease=2.0) as first:
        handle = await first.start(wf_mapreduce_facts, make_document())
        info = await until_status(first, handle.id, "waiting")
    assert STATE["peak"] == 2
    steps = model_steps(info)
    maps = [s for s in steps if s.name == "slow"]
    reduces = [s for s in steps if s.name == "combiner"]
    assert len(maps) == len(map_calls("slow")) >= 5
    assert steps == maps + reduces  # every map before the reduces
    assert len(reduces) >= 3  # a hierarchical reduce: several groups, then the final call
    # Numbered in document order although later parts finished first.
    assert [part(s.meta["request"]["input"]) for s in maps] == list(range(1, len(maps) + 1))
    assert [s.seq for s in steps] == list(range(1, len(steps) + 1))
    before = CALLS.copy()

    async with bm.Engine(db_path, workflows=[wf_mapreduce_facts], poll_interval=0.02, lease=2.0) as second:
        await second.signal(handle.id, "go")
        result: MapReduceResult = await second.result(handle.id, timeout=10)
        assert (await second.describe(handle.id)).claims == 2  # really resumed elsewhere, by replay
    assert before == CALLS  # the replay called no model
    assert result.output == "facts 1-40"
    assert result.calls == len(steps)
    assert result.levels >= 2


async def test_a_crash_in_the_middle_of_the_map_reruns_only_the_unfinished_chunk(
    db_path: Path, until_status: Any
) -> None:
    STATE["gate"] = asyncio.Event()
    first = bm.Engine(db_path, poll_interval=0.02, lease=2.0)
    await first.open()
    try:
        handle = await first.start(wf_mapreduce_facts, make_document())
        for _ in range(1000):  # until every chunk but the hung one is journaled
            done = [s for s in model_steps(await handle.describe()) if s.status == "completed"]
            if "parts" in STATE and len(done) == STATE["parts"] - 1:
                break
            await asyncio.sleep(0.01)
        else:
            raise AssertionError(f"the map did not progress: {map_calls('slow')}")
    finally:
        await first.close(grace=0.05)  # part 3 is cut off in flight
    assert CALLS["slow", 3] == 1
    before = map_calls("slow")

    STATE["gate"].set()
    async with bm.Engine(db_path, workflows=[wf_mapreduce_facts], poll_interval=0.02, lease=2.0) as second:
        await until_status(second, handle.id, "waiting")
        await second.signal(handle.id, "go")
        result: MapReduceResult = await second.result(handle.id, timeout=10)
    assert map_calls("slow") == {**before, 3: 2}  # only the unfinished chunk ran again
    assert result.output == "facts 1-40"


# --- usage errors -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"map_prompt": "Summarise this."}, r"map_prompt=\.\.\.\) must contain \{chunk\}"),
        ({"map_prompt": "{chunk.__class__}"}, r"uses \['chunk.__class__'\] but may only use"),
        ({"map_prompt": "{chunk} {0}"}, r"uses \['0'\]"),
        ({"map_prompt": "{chunk} {"}, "literal braces"),
        ({"reduce_prompt": "{chunk}"}, r"reduce_prompt=\.\.\.\) uses \['chunk'\]"),
        ({"collapse_prompt": "no field"}, r"collapse_prompt=\.\.\.\) must contain \{summaries\}"),
        ({"context_limit": 5}, "leaves no room for text"),
        ({"reduce_context_limit": 8}, r"reduce_context_limit=8\) leaves no room"),
        ({"overlap": 500}, r"overlap=500\) must be a whole number from 0 to less than the chunk budget"),
        ({"chunk_tokens": 20, "overlap": 20}, "overlap=20"),
        ({"concurrency": 0}, r"concurrency=0"),
        ({"max_levels": 0}, r"max_levels=0"),
        ({"temprature": 0.2}, r"unknown option\(s\) \['temprature'\]"),
        ({"document": "  \n "}, "is empty"),
        ({"map_prompt": "{chunk:>999999999}"}, r"\{chunk:>999999999\}: format spec '>999999999' asks"),
        ({"map_prompt": "{chunk} {index:.5}"}, r"\{index:.5\}: Precision not allowed in integer format"),
        ({"reduce_prompt": "{summaries} {level:0999999999}"}, "asks for a width of 0999999999"),
    ],
)
async def test_bad_arguments_are_usage_errors_before_any_call(changes: dict[str, Any], message: str) -> None:
    arguments: dict[str, Any] = {
        "document": make_document(),
        "map_model": SUMMARISER,
        "reduce_model": COMBINER,
        "map_prompt": MAP_PROMPT,
        "reduce_prompt": REDUCE_PROMPT,
        "context_limit": MAP_LIMIT,
        "tokenizer": TOKENS,
        **changes,
    }
    document = arguments.pop("document")
    with pytest.raises(bm.UsageError, match=message):
        await map_reduce(document, **arguments)
    assert not CALLS
