"""A second process on the same journal and registry as the test:

    python second_process.py MODELS_YAML DB ALIAS

prints one JSON object: the hub's view of the aliases (breaker states adopted from the journal)
and the journal's model step of one call of ALIAS made here through an engine."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sys
from typing import Any

import bandmaster as bm
from bandmaster.calls import bind_store
from bandmaster.store._sqlite import SQLiteStore


@bm.workflow
async def ask_from_second_process(alias: str) -> str:
    return (await bm.call_model(alias, "from the second process")).text


async def main(models: str, db: str, alias: str) -> dict[str, Any]:
    views = bind_store(bm.Registry.load(models), SQLiteStore(db)).describe()
    registry = bm.Registry.load(models)
    async with bm.Engine(db, workflows=[ask_from_second_process], registry=registry) as engine:
        handle = await engine.start(ask_from_second_process, alias)
        text = await handle.result(timeout=30)
        step = (await handle.describe()).steps[0]
    return {
        "describe": [dataclasses.asdict(v) for v in views],
        "text": text,
        "meta": step.meta,
        "attempts": step.attempts,
    }


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(*sys.argv[1:4]))))
