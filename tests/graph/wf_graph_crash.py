"""A graph workflow for the crash-recovery test, executed by ``bandmaster worker`` subprocesses
(``bandmaster worker tests/graph/wf_graph_crash.py``: the worker finds ``wf`` in the module).

Every model and step appends ``pid:name`` to the file named by ``$BM_GRAPH_LOG`` (one write on
an ``O_APPEND`` descriptor) when it runs, so the test can tell which process ran what, and how
often. ``enrich`` sleeps ``ticket.delay`` seconds: the test kills the worker while it does.
"""

from __future__ import annotations

import asyncio
import os

import bandmaster as bm
from bandmaster.graph import Graph

LOG_ENV = "BM_GRAPH_LOG"

GRAPH = """
name: graph_crash
input: ticket
nodes:
  triage:
    kind: parallel
    branches: [classify, scan]
    next: enrich
  classify: {kind: ai, model: classifier, prompt: "Classify: {ticket.text}", output_key: intent}
  scan: {kind: ai, model: phi, prompt: "PHI? {ticket.text}", output_key: phi}
  enrich:
    kind: step
    call: enrich
    inputs: {text: ticket.text, delay: ticket.delay}
    next: route
  route:
    kind: router
    routes:
      - {name: confident, when: "intent.confidence > 0.85 and not phi.output", to: reply}
    default: escalate
  reply:
    kind: ai
    model: writer
    prompt: "Reply to {enrich} about {intent.output}"
    next: done
  done:
    kind: end
    output: [intent, enrich, reply]
  escalate:
    kind: end
    output: [intent, enrich]
"""


def log(name: str) -> None:
    fd = os.open(os.environ[LOG_ENV], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{os.getpid()}:{name}\n".encode())
    finally:
        os.close(fd)


def model(name: str, answer: object, confidence: float | None = None) -> bm.CallableModel:
    def answer_prompt(prompt: str) -> bm.ModelResponse:
        log(name)
        return bm.ModelResponse(output=answer, text=str(answer), confidence=confidence)

    return bm.CallableModel(answer_prompt, name=name)


async def enrich(text: str, delay: float) -> str:
    log("enrich")
    await asyncio.sleep(delay)
    return text.upper()


registry = bm.Registry(
    models={
        "classifier": model("classifier", "billing", 0.93),
        "phi": model("phi", False, 0.99),
        "writer": model("writer", "Dear customer, refunded."),
    }
)
graph = Graph.from_yaml(GRAPH, source=__file__, steps={"enrich": enrich})
wf = graph.as_workflow(registry=registry)
