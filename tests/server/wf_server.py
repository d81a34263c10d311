"""Workflows and models the test server process imports (by path)."""

from __future__ import annotations

import bandmaster as bm
from bandmaster.models import ModelResponse, Usage


def intent_small(text: str) -> ModelResponse:
    label = "billing" if "charged" in text else "general"
    return ModelResponse(
        output=label, text=label, confidence=0.9, usage=Usage(input_tokens=12, output_tokens=1)
    )


def intent_large(text: str) -> ModelResponse:
    return ModelResponse(
        output="billing", text="billing", confidence=0.99, usage=Usage(input_tokens=12, output_tokens=1)
    )


@bm.step
async def double(x: int) -> int:
    return x * 2


@bm.workflow
async def calc(x: int) -> int:
    return await double(x)


@bm.workflow
async def waiter(label: str) -> str:
    got = await bm.wait_for("go", timeout=600)
    return f"{label}:{got}"


@bm.workflow
async def slow(steps: int) -> int:
    total = 0
    for _ in range(steps):
        await bm.sleep(0.15)
        total += await double(1)
    return total


@bm.workflow
async def reviewed(text: str) -> str:
    redacted = text.replace("Mrs. Garcia", "<PERSON>")
    decision = await bm.approval(
        "phi_review", {"redacted": redacted}, timeout=600, default="send", approvers=["alice", "reviewer"]
    )
    await double(1)
    return f"{decision.action} by {decision.by}: {decision.comment}"


@bm.workflow
async def classify(text: str) -> str:
    answer = await bm.call_model("intent", text)
    return str(answer.output)


@bm.workflow
async def broken(text: str) -> str:
    raise ValueError(f"cannot handle {text}")


_TRIES: dict[str, int] = {}


@bm.step(retry=bm.Retry(attempts=3, initial=0.3, max_delay=0.3))
async def shaky(label: str) -> str:
    """Fails its first attempt (per label), then answers: a retry the run page marks."""
    _TRIES[label] = _TRIES.get(label, 0) + 1
    if _TRIES[label] == 1:
        raise ConnectionError(f"{label}: connection reset")
    return label.upper()


@bm.workflow
async def retried(label: str) -> str:
    await bm.sleep(1.5)  # time for a browser to open the page while the run runs
    return await shaky(label)


@bm.workflow(name="versioned", version="1")
async def versioned_v1(text: str) -> str:
    return f"v1:{text}"


@bm.workflow(name="versioned", version="2")
async def versioned_v2(text: str) -> str:
    return f"v2:{text}"
