"""Versions of one workflow, ``order``, for the patch tests on both backends: each engine of a
test hosts one of them, as a deploy replaces the code under the runs."""

from __future__ import annotations

import bandmaster as bm


@bm.step
async def first(order: str) -> str:
    return f"first {order}"


@bm.step
async def extra(order: str) -> str:
    return f"extra {order}"


@bm.step
async def last(order: str) -> str:
    return f"last {order}"


@bm.workflow(name="order")
async def v1(order: str) -> list[str]:
    done = [await first(order)]
    await bm.wait_for("go")
    done.append(await last(order))
    return done


@bm.workflow(name="order")
async def v2(order: str) -> list[str]:
    done = [await first(order)]
    if bm.patched("extra-check"):
        done.append(await extra(order))
    await bm.wait_for("go")
    done.append(await last(order))
    return done


@bm.workflow(name="order")
async def v3(order: str) -> list[str]:
    done = [await first(order)]
    bm.deprecate_patch("extra-check")  # where bm.patched was: Temporal matches the position
    done.append(await extra(order))
    await bm.wait_for("go")
    done.append(await last(order))
    return done


@bm.workflow(name="order")
async def v2_after_wait(order: str) -> list[str]:
    done = [await first(order)]
    await bm.wait_for("go")
    if bm.patched("extra-check"):
        done.append(await extra(order))
    done.append(await last(order))
    return done
