"""Workflows whose names, inputs, outputs, errors, signals and approvals carry text that a
terminal library could take for markup, emoji codes, escapes or format specs."""

from __future__ import annotations

from typing import Any

import bandmaster as bm

HOSTILE = (
    "[/etc/app] [bold]x[/] [ship] [link=https://evil.example]click[/link] :smile: "
    "\x1b[31mred\x1b[0m %s {0} %(name)s"
)
LONG = "v" * 400 + "-END"


@bm.step(name="echo [bold]step[/]")
async def echo(text: str) -> str:
    return text


@bm.workflow(name="wf [bold]x[/] :smile:")
async def hostile(text: str) -> dict[str, str]:
    return {"said": await echo(text), "long": LONG}


@bm.step(name="boom [/etc/app]")
async def boom(text: str) -> None:
    raise ValueError(f"{text} {LONG}")


@bm.workflow(name="fails [/etc/app]")
async def crash(text: str) -> None:
    await boom(text)


@bm.workflow(name="waits [ship]")
async def reviewed(text: str) -> str:
    decision = await bm.approval("review [/etc/app] :smile:", {"text": text})
    return decision.action


@bm.workflow(name="signalled [link=x]")
async def signalled(text: str) -> Any:
    return await bm.wait_for("go [/etc/app]")
