"""A run's terms (priority, tenant, budget) on every backend: given to ``start``, validated,
kept with the run (describe, list, ``--tenant`` filter), part of an idempotent start's
request, and in context (``current_terms()``) while the run's steps and model calls run."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
import wf_conformance as wfs
from conformance_support import registry
from test_backend_api import until

import bandmaster as bm
from bandmaster.engine.backend import Backend

pytestmark = pytest.mark.timeout(90)

TERMS = {"priority": 7, "tenant": "acme", "budget_usd": 0.05}


async def test_steps_and_model_calls_see_the_terms_start_was_given(backend: Backend) -> None:
    handle = await backend.start(wfs.terms_seen, False, **TERMS)  # type: ignore[arg-type]
    seen = await handle.result(timeout=60)
    assert seen == {"before": TERMS, "step": TERMS, "model": TERMS}
    info = await backend.describe(handle.id)
    assert (info.priority, info.tenant, info.budget_usd) == (7, "acme", 0.05)
    assert info.terms == bm.engine.RunTerms(7, "acme", 0.05)


async def test_a_run_without_terms_sees_the_defaults(backend: Backend) -> None:
    handle = await backend.start(wfs.terms_seen, False)
    default = {"priority": 0, "tenant": None, "budget_usd": None}
    assert await handle.result(timeout=60) == {"before": default, "step": default, "model": default}
    info = await backend.describe(handle.id)
    assert info.terms.default


async def test_list_shows_the_terms_and_filters_by_tenant(backend: Backend) -> None:
    mine = f"t-{uuid.uuid4().hex[:8]}"
    a = await backend.start(wfs.echo, "a", tenant=mine, priority=3)
    b = await backend.start(wfs.echo, "b", tenant="other")
    await a.result(timeout=60)
    await b.result(timeout=60)
    listed = await backend.list(tenant=mine)
    assert [(r.id, r.tenant, r.priority) for r in listed] == [(a.id, mine, 3)]
    everything = {r.id: r for r in await backend.list(limit=1000)}
    assert everything[b.id].tenant == "other"
    assert everything[b.id].priority == 0


@pytest.mark.parametrize(
    ("terms", "message"),
    [
        ({"priority": "high"}, "priority must be an integer"),
        ({"priority": 1.5}, "priority must be an integer"),
        ({"tenant": "a/b"}, "tenant 'a/b' is not a valid name"),
        ({"budget_usd": -1}, "budget_usd must be a finite number"),
    ],
)
async def test_bad_terms_are_refused_and_nothing_is_started(
    backend: Backend, terms: dict[str, object], message: str
) -> None:
    run_id = f"bad-{uuid.uuid4().hex[:8]}"
    with pytest.raises(bm.InvalidInput, match=message):
        await backend.start(wfs.echo, "x", run_id=run_id, **terms)  # type: ignore[arg-type]
    with pytest.raises(bm.RunNotFound):
        await backend.describe(run_id)


async def test_an_idempotent_start_with_other_terms_is_another_request(backend: Backend) -> None:
    run_id = f"idem-{uuid.uuid4().hex[:8]}"
    first = await backend.start(wfs.echo, "x", run_id=run_id, priority=2, tenant="acme")
    again = await backend.start(wfs.echo, "x", run_id=run_id, priority=2, tenant="acme")
    assert first.created
    assert not again.created
    with pytest.raises(bm.IdempotencyConflict, match="other terms"):
        await backend.start(wfs.echo, "x", run_id=run_id, priority=3, tenant="acme")
    with pytest.raises(bm.IdempotencyConflict, match="other terms"):
        await backend.start(wfs.echo, "x", run_id=run_id, priority=2)
    assert await first.result(timeout=60) == "X"


async def test_a_resumed_run_gets_its_terms_from_the_journal(tmp_path: Path) -> None:
    """Embedded: a run suspended in one engine and resumed by another (a fresh process's
    view: nothing in memory) still runs its steps and model calls under its terms."""
    db = tmp_path / "journal.db"
    async with bm.Engine(db, workflows=wfs.WORKFLOWS, poll_interval=0.02, registry=registry()) as first:
        handle = await first.start(wfs.terms_seen, True, **TERMS)  # type: ignore[arg-type]
        await until(first, handle.id, "waiting", "running")
        await asyncio.sleep(0.2)
    async with bm.Engine(db, workflows=wfs.WORKFLOWS, poll_interval=0.02, registry=registry()) as second:
        await second.signal(handle.id, "go", None)
        seen = await second.result(handle.id, timeout=30)
        info = await second.describe(handle.id)
    assert seen == {"before": TERMS, "step": TERMS, "model": TERMS}
    assert info.claims >= 2  # it was resumed, not run through once


async def test_stats_per_tenant(backend: Backend) -> None:
    """Runs, failures, model calls and cost per tenant (terms_model costs $0.001 a call)."""
    acme, globex = f"acme-{uuid.uuid4().hex[:6]}", f"globex-{uuid.uuid4().hex[:6]}"
    handles = [await backend.start(wfs.terms_seen, False, tenant=acme) for _ in range(2)]
    handles.append(await backend.start(wfs.terms_seen, False, tenant=globex))
    handles.append(await backend.start(wfs.terms_seen, False))  # no tenant: not listed
    for handle in handles:
        await handle.result(timeout=60)
    stats = await backend.stats()
    tenants = {t.tenant: t for t in stats.tenants}
    assert set(tenants) >= {acme, globex}
    assert (tenants[acme].runs, tenants[acme].failed, tenants[acme].model_calls) == (2, 0, 2)
    assert tenants[acme].cost == pytest.approx(0.002)
    assert (tenants[globex].runs, tenants[globex].model_calls) == (1, 1)
    assert tenants[globex].cost == pytest.approx(0.001)


def test_bm_run_takes_the_terms(tmp_path: Path) -> None:
    """``bm.run`` (one run in a fresh event loop) passes the terms like ``start``."""
    seen = bm.run(wfs.terms_in_workflow, db=tmp_path / "j.db", priority=2, tenant="solo", budget_usd=1.0)
    assert seen == {"priority": 2, "tenant": "solo", "budget_usd": 1.0}
