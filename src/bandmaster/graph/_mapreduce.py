"""Map-reduce over a document longer than a model's context window.

Chunk by tokens (with overlap, within the context limit), map every chunk with its own
``bm.call_model`` (a separately journaled step with its own retries, fallbacks and breaker),
then reduce the map outputs, hierarchically while they are still too long for one call::

    result = await map_reduce(
        contract,
        map_model="fast", reduce_model="smart",
        map_prompt="Summarise the obligations in this part of a contract:\\n\\n{chunk}",
        reduce_prompt="From these summaries, list the risky clauses:\\n\\n{summaries}",
        context_limit=8000, max_tokens=500,
    )

Durability: every model call gets its journal sequence number in document order, whatever
order the calls finish in, so a workflow replaying after a crash gets the finished chunks
back from the journal and calls models only for the rest.
"""

from __future__ import annotations

import asyncio
import string
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict

from bandmaster.calls import call_model
from bandmaster.errors import InvalidInput, UsageError
from bandmaster.format_limits import format_spec_problem
from bandmaster.graph._chunking import Tokenizer, chunk_text, default_tokenizer
from bandmaster.models import Model, ModelResponse, Registry, Usage

__all__ = ["MapReduceResult", "Prompt", "map_reduce"]

Prompt = str | Callable[[Mapping[str, Any]], str]
"""A ``str.format`` template, or a function of the fields (for templates of your own syntax)."""

MAP_FIELDS = frozenset({"chunk", "index", "count"})
REDUCE_FIELDS = frozenset({"summaries", "level"})
CALL_OPTIONS = frozenset(
    {
        "system",
        "temperature",
        "max_tokens",
        "json_schema",
        "stop",
        "timeout",
        "retry",
        "fallback",
        "breaker",
        "cache_ttl",
    }
)
"""The ``bm.call_model`` options ``map_reduce`` passes on to every call it makes."""


class MapReduceResult(BaseModel):
    """What ``map_reduce`` returns (a pydantic model, so a workflow may return it as is).

    ``output`` and ``text`` are the final reduce call's; ``levels`` counts reduce rounds (1
    when the map outputs fit one call); ``map_outputs`` and ``map_models`` give each chunk's
    output and the model that answered it (a fallback shows here); ``calls``, ``cost`` and
    ``usage`` add up every call, map and reduce (answers from the response cache cost nothing)."""

    model_config = ConfigDict(frozen=True)

    output: Any = None
    text: str = ""
    chunks: int
    levels: int
    calls: int
    map_outputs: list[str]
    map_models: list[str]
    cost: float = 0.0
    usage: Usage = Usage()


async def map_reduce(
    document: str,
    *,
    map_model: str | Model,
    reduce_model: str | Model | None = None,
    map_prompt: Prompt,
    reduce_prompt: Prompt,
    collapse_prompt: Prompt | None = None,
    context_limit: int,
    reduce_context_limit: int | None = None,
    chunk_tokens: int | None = None,
    overlap: int | None = None,
    concurrency: int = 4,
    key: str | None = None,
    registry: Registry | None = None,
    tokenizer: Tokenizer | None = None,
    separator: str = "\n\n",
    max_levels: int = 8,
    **call_options: Any,
) -> MapReduceResult:
    """Map ``map_prompt`` over the chunks of ``document``, then reduce the outputs with
    ``reduce_prompt``; return the final answer with per-chunk outputs, cost and token usage.

    Prompts are ``str.format`` templates (literal braces doubled: ``{{``): ``map_prompt`` has
    ``{chunk}`` (and may use ``{index}``, 1-based, and ``{count}``), ``reduce_prompt`` has
    ``{summaries}`` (the outputs joined by ``separator``; may use ``{level}``). A prompt may
    also be a function that takes those fields as a dict and returns the prompt text.
    ``collapse_prompt`` (default: ``reduce_prompt``) is used for the intermediate rounds of a
    hierarchical reduce: when the outputs are too long for one reduce call, they are reduced
    in groups that fit, and the groups' answers again, until one call holds them all.

    ``context_limit`` is the map model's window in tokens: the rendered prompt, the ``system``
    prompt and ``max_tokens`` (the answer) must fit it; leave a few tokens for the chat format.
    ``reduce_context_limit`` is the reduce model's (default: the same). ``chunk_tokens`` caps
    a chunk's text below what the window allows. ``overlap`` tokens of each chunk are repeated
    at the start of the next (default: a tenth of the chunk budget). ``tokenizer`` counts
    tokens (default: ``default_tokenizer()``); pin it for durable runs, since the chunks are
    cut again on replay.

    Every model call is one ``bm.call_model`` with ``key``, ``registry`` and the call options
    (``system``, ``temperature``, ``max_tokens``, ``json_schema``, ``stop``, ``timeout``,
    ``retry``, ``fallback``, ``breaker``, ``cache_ttl``), so a chunk that fails is retried and
    falls back on its own. At most ``concurrency`` calls run at once; they are numbered in the
    journal in document order. Every chunk is mapped even when one fails (so the numbering
    does not depend on timing); then the first failure, in document order, is raised. Do not
    run other journaled operations concurrently with a ``map_reduce`` in the same workflow.
    """
    unknown = set(call_options) - CALL_OPTIONS
    if unknown:
        raise UsageError(
            f"map_reduce() got unknown option(s) {sorted(unknown)}; the bm.call_model options it "
            f"passes on are: {', '.join(sorted(CALL_OPTIONS))}"
        )
    if not isinstance(document, str):
        raise InvalidInput(f"map_reduce(document=...) needs text, got {type(document).__name__}")
    if not document.strip():
        raise InvalidInput("map_reduce(document=...) is empty: there is nothing to map")
    _positive("concurrency", concurrency)
    _positive("max_levels", max_levels)
    mapper = _Template("map_prompt", map_prompt, MAP_FIELDS, required="chunk")
    reducer = _Template("reduce_prompt", reduce_prompt, REDUCE_FIELDS, required="summaries")
    collapser = (
        reducer
        if collapse_prompt is None
        else _Template("collapse_prompt", collapse_prompt, REDUCE_FIELDS, required="summaries")
    )
    tokenizer = tokenizer or default_tokenizer()
    reserved = tokenizer.count(call_options.get("system") or "") + (call_options.get("max_tokens") or 0)
    calls = _Calls(concurrency=concurrency, key=key, registry=registry, options=call_options)

    # --- map
    map_budget = _budget(
        "context_limit",
        context_limit,
        reserved + tokenizer.count(mapper.render(chunk="", index=999_999, count=999_999)),
    )
    if chunk_tokens is not None:
        _positive("chunk_tokens", chunk_tokens)
        map_budget = min(map_budget, chunk_tokens)
    if overlap is None:
        overlap = map_budget // 10
    elif isinstance(overlap, bool) or not isinstance(overlap, int) or not 0 <= overlap < map_budget:
        raise UsageError(
            f"map_reduce(overlap={overlap!r}) must be a whole number from 0 to less than the chunk "
            f"budget of {map_budget} tokens (context_limit={context_limit} less the map prompt, "
            f"the system prompt and max_tokens; or chunk_tokens)"
        )
    reduce_model = map_model if reduce_model is None else reduce_model
    reduce_limit = context_limit if reduce_context_limit is None else reduce_context_limit
    reduce_budget = _budget(  # checked before any call is made
        "context_limit" if reduce_context_limit is None else "reduce_context_limit",
        reduce_limit,
        reserved
        + max(tokenizer.count(t.render(summaries="", level=max_levels)) for t in (reducer, collapser)),
    )
    chunks = _fit(document, map_budget, overlap, tokenizer, context_limit - reserved, mapper)
    prompts = [mapper.render(chunk=c, index=i, count=len(chunks)) for i, c in enumerate(chunks, 1)]
    mapped = _raise_first(await calls.run(map_model, prompts), what="chunk")
    map_outputs = [_text(r) for r in mapped]

    # --- reduce, level by level, until one call holds everything
    items = map_outputs
    level = 0
    while True:
        level += 1
        prompts = _reduce_prompts(
            items,
            reducer,
            collapser,
            level=level,
            budget=reduce_budget,
            limit=reduce_limit - reserved,
            separator=separator,
            tokenizer=tokenizer,
        )
        reduced = _raise_first(await calls.run(reduce_model, prompts), what=f"level-{level} reduce call")
        if len(prompts) == 1:
            final = reduced[0]
            break
        outputs = [_text(r) for r in reduced]
        stuck = len(prompts) >= len(items) and _total(outputs, tokenizer) >= _total(items, tokenizer)
        if stuck or level >= max_levels:
            raise UsageError(
                f"map_reduce: after {level} reduce level(s) the {len(outputs)} partial answers "
                f"({_total(outputs, tokenizer)} tokens) still do not fit one reduce call of "
                f"{reduce_budget} tokens for {{summaries}}; ask for shorter answers (max_tokens, "
                f"a terser collapse_prompt), raise reduce_context_limit or max_levels"
            )
        items = outputs

    return MapReduceResult(
        output=final.output,
        text=final.text,
        chunks=len(chunks),
        levels=level,
        calls=len(calls.responses),
        map_outputs=map_outputs,
        map_models=[r.model for r in mapped],
        cost=sum(r.cost for r in calls.responses),
        usage=Usage(
            input_tokens=sum(r.usage.input_tokens for r in calls.responses),
            output_tokens=sum(r.usage.output_tokens for r in calls.responses),
        ),
    )


class _Template:
    """A prompt checked up front: a template may use only its own fields (no attribute or
    index lookups, the classic format-string escape); a function is called with the fields."""

    def __init__(self, name: str, prompt: Prompt, allowed: frozenset[str], *, required: str) -> None:
        self.name = name
        self.prompt = prompt
        if callable(prompt):
            return
        if not isinstance(prompt, str):
            raise UsageError(
                f"map_reduce({name}=...) must be a str.format template or a function, "
                f"got {type(prompt).__name__}"
            )
        try:
            fields = [(f, spec) for _, f, spec, _ in string.Formatter().parse(prompt) if f is not None]
        except ValueError as exc:
            raise UsageError(f"map_reduce({name}=...): {exc}; write literal braces as {{{{ and }}}}") from exc
        names = {f for f, _ in fields}
        bad = sorted(f for f in names if f not in allowed) + [f for f, spec in fields if spec and "{" in spec]
        if bad:
            raise UsageError(
                f"map_reduce({name}=...) uses {bad} but may only use "
                f"{', '.join('{' + f + '}' for f in sorted(allowed))}; write literal braces as {{{{ and }}}}"
            )
        if required not in names:
            raise UsageError(f"map_reduce({name}=...) must contain {{{required}}}: {prompt[:60]!r}")
        for field, spec in fields:
            # The fields' types are known (text or a number), so a spec is checked here in full.
            sample: Any = "" if field in ("chunk", "summaries") else 0
            problem = format_spec_problem(spec, sample) if spec else None
            if problem is None and spec:
                try:
                    format(sample, spec)
                except ValueError as exc:
                    problem = str(exc)
            if problem is not None:
                raise UsageError(f"map_reduce({name}=...): {{{field}:{spec}}}: {problem}")

    def render(self, **fields: Any) -> str:
        if isinstance(self.prompt, str):
            return self.prompt.format(**fields)
        text = self.prompt(fields)
        if not isinstance(text, str):
            raise UsageError(
                f"map_reduce({self.name}=...) returned {type(text).__name__}, not the prompt text"
            )
        return text


class _Calls:
    """Runs model calls with bounded concurrency, numbered in the journal in list order.

    ``bm.call_model`` takes its sequence number synchronously, in the first step of its
    coroutine. The loop below takes a slot, *then* starts the next call's task; tasks take
    their first step in the order they were created, so call k is numbered before call k+1
    however the earlier calls finish. Only this loop ever waits for a slot.
    """

    def __init__(
        self, *, concurrency: int, key: str | None, registry: Registry | None, options: dict[str, Any]
    ) -> None:
        self.concurrency = concurrency
        self.key = key
        self.registry = registry
        self.options = options
        self.responses: list[ModelResponse] = []

    async def run(self, target: str | Model, prompts: Sequence[str]) -> list[ModelResponse | Exception]:
        slots = asyncio.Semaphore(self.concurrency)

        async def one(prompt: str) -> ModelResponse | Exception:
            try:
                return await call_model(target, prompt, key=self.key, registry=self.registry, **self.options)
            except Exception as exc:  # reported after every call settled; BaseExceptions propagate
                return exc
            finally:
                slots.release()

        tasks: list[asyncio.Task[ModelResponse | Exception]] = []
        try:
            for prompt in prompts:
                await slots.acquire()
                if any(t.done() and (t.cancelled() or t.exception() is not None) for t in tasks):
                    break  # a call was cancelled or lost the run: start no more
                tasks.append(asyncio.create_task(one(prompt)))
            outcomes = list(await asyncio.gather(*tasks))
        finally:
            pending = [t for t in tasks if not t.done()]
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
        self.responses.extend(o for o in outcomes if isinstance(o, ModelResponse))
        return outcomes


def _raise_first(outcomes: list[ModelResponse | Exception], *, what: str) -> list[ModelResponse]:
    for number, outcome in enumerate(outcomes, 1):
        if isinstance(outcome, Exception):
            outcome.add_note(
                f"map_reduce: {what} {number} of {len(outcomes)} failed after its retries and "
                f"fallbacks; the others finished (in a workflow they are journaled)"
            )
            raise outcome
    return outcomes  # type: ignore[return-value]  # no Exception left


def _text(response: ModelResponse) -> str:
    if response.text:
        return response.text
    return "" if response.output is None else str(response.output)


def _total(texts: Sequence[str], tokenizer: Tokenizer) -> int:
    return sum(tokenizer.count(t) for t in texts)


def _positive(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UsageError(f"map_reduce({name}={value!r}): must be a whole number, at least 1")


def _budget(name: str, limit: int, used: int) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise UsageError(f"map_reduce({name}={limit!r}): give the model's context window in tokens")
    budget = limit - used
    if budget < 1:
        raise UsageError(
            f"map_reduce({name}={limit}) leaves no room for text: the prompt template, system "
            f"prompt and max_tokens already take {used} tokens"
        )
    return budget


def _fit(
    document: str, budget: int, overlap: int, tokenizer: Tokenizer, limit: int, template: _Template
) -> list[str]:
    """Chunks whose rendered prompts fit ``limit``: token counts are nearly additive, so a
    chunk that fits its budget may still tip the whole prompt over by a token or two."""
    while True:
        chunks = chunk_text(
            document, max_tokens=budget, overlap=min(overlap, budget - 1), tokenizer=tokenizer
        )
        over = max(
            tokenizer.count(template.render(chunk=c, index=i, count=len(chunks))) - limit
            for i, c in enumerate(chunks, 1)
        )
        if over <= 0:
            return chunks
        if budget - over < 1:
            raise UsageError(f"map_reduce: no chunk fits a context_limit of {limit} with this prompt")
        budget -= over


def _reduce_prompts(
    items: Sequence[str],
    reducer: _Template,
    collapser: _Template,
    *,
    level: int,
    budget: int,
    limit: int,
    separator: str,
    tokenizer: Tokenizer,
) -> list[str]:
    """One prompt per group of items that fits: the final ``reducer`` when one group holds
    them all, else ``collapser`` per group. Like ``_fit``, tightens the budget if a rendered
    prompt tips over ``limit``."""
    while True:
        groups = _group(items, budget, separator, tokenizer)
        template = reducer if len(groups) == 1 else collapser
        prompts = [template.render(summaries=g, level=level) for g in groups]
        over = max(tokenizer.count(p) for p in prompts) - limit
        if over <= 0:
            return prompts
        if budget - over < 1:
            raise UsageError(f"map_reduce: no reduce call fits a context limit of {limit} with this prompt")
        budget -= over


def _group(items: Sequence[str], budget: int, separator: str, tokenizer: Tokenizer) -> list[str]:
    """Consecutive items joined by ``separator`` into groups of at most ``budget`` tokens; an
    item over the budget on its own is cut into chunks first (it becomes several items)."""
    pieces: list[str] = []
    for item in items:
        if tokenizer.count(item) <= budget:
            pieces.append(item)
        else:
            pieces.extend(chunk_text(item, max_tokens=budget, overlap=0, tokenizer=tokenizer))
    gap = tokenizer.count(separator)
    groups: list[list[str]] = []
    used = 0
    for piece in pieces:
        size = tokenizer.count(piece)
        if groups and used + gap + size <= budget:
            groups[-1].append(piece)
            used += gap + size
        else:
            groups.append([piece])
            used = size
    joined: list[str] = []
    for group in groups:
        while group:  # counts of joined text are only nearly additive: split a group that tips over
            take = len(group)
            while take > 1 and tokenizer.count(separator.join(group[:take])) > budget:
                take -= 1
            joined.append(separator.join(group[:take]))
            group = group[take:]
    return joined
