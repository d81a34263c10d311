"""The example graphs as workflows, for ``bandmaster run`` and ``bandmaster worker``.

    bandmaster run examples/graphs/pipelines.py:support_pipeline --db graphs.db \
        --input '{"id": "T-1", "text": "I was charged twice for my last invoice"}'
    bandmaster run examples/graphs/pipelines.py:contract_pipeline --db graphs.db \
        --input @examples/graphs/contract.json
    bandmaster graph examples/graphs/pipelines.py:support_pipeline        # Mermaid

A ticket with PHI or an unclear intent, and a risky contract, wait for a person; from another
shell: ``bandmaster runs list --db graphs.db --status waiting``, then
``bandmaster signal RUN_ID review '{"action": "reply", "agent": "ann"}' --db graphs.db``
(``legal_review '{"approved": true}'`` for a contract). Nobody answering is fine too: the
support pipeline queues the ticket after 5 minutes, the contract report goes out unapproved
after a day.

The graphs are validated against ``models.yaml`` here, at import, before any run starts.
"""

from __future__ import annotations

from pathlib import Path

import bandmaster as bm
from bandmaster.graph import Graph

HERE = Path(__file__).resolve().parent
registry = bm.Registry.load(HERE / "models.yaml")

support_pipeline = Graph.load(HERE / "support_pipeline.yaml").as_workflow(registry=registry)
contract_pipeline = Graph.load(HERE / "contract_pipeline.yaml").as_workflow(registry=registry)
