"""Mermaid output: shapes per kind, labelled router edges, dotted fallback edges, fork/join."""

from __future__ import annotations

import textwrap

from bandmaster.graph import AIStep, End, Graph, Human, MapReduce, Parallel, Router, Step


def test_mermaid_of_a_graph_with_every_kind() -> None:
    graph = Graph(
        "every_kind",
        [
            Parallel("triage", branches=["intent", "tag"], next="route", on_error="end"),
            AIStep("intent", model="clf", prompt="{ticket}", fallback=["cheap"]),
            Step("tag", call="tags:tag"),
            Router(
                "route",
                routes=[
                    ("intent.confidence > 0.85", "summary"),
                    {"name": "vip", "when": 'tag == "vip"', "to": "ask"},
                ],
                default="ask",
            ),
            MapReduce(
                "summary",
                document="{ticket}",
                map_model="small",
                map_prompt="{chunk}",
                reduce_prompt="{summaries}",
                context_limit=100,
                next="end",
            ),
            Human("ask", title="Ask a person", signal="answer", timeout=300),
            End("end"),
        ],
        input="ticket",
    )
    assert graph.to_mermaid() == textwrap.dedent(
        """\
        flowchart TD
            __start__(("ticket"))
            triage{{"triage<br/>parallel"}}
            intent("intent<br/>ai: clf (fallback cheap)")
            tag["tag<br/>step: tags:tag"]
            route{"route<br/>router"}
            summary[/"summary<br/>map_reduce: small / small"/]
            ask[/"Ask a person<br/>human: signal answer, 300 s"\\]
            end_(["end"])
            __end__(("end"))
            __start__ --> triage
            triage --> intent
            intent --> route
            triage --> tag
            tag --> route
            triage -.->|"on_error"| end_
            route -->|"intent.confidence #gt; 0.85"| summary
            route -->|"vip: tag == #quot;vip#quot;"| ask
            route -->|"default"| ask
            summary --> end_
            ask --> __end__
            classDef bm_ai fill:#e0f2fe,stroke:#0369a1
            class intent bm_ai
            classDef bm_step fill:#f1f5f9,stroke:#475569
            class tag bm_step
            classDef bm_router fill:#fef9c3,stroke:#a16207
            class route bm_router
            classDef bm_parallel fill:#ede9fe,stroke:#6d28d9
            class triage bm_parallel
            classDef bm_map_reduce fill:#dcfce7,stroke:#15803d
            class summary bm_map_reduce
            classDef bm_human fill:#ffedd5,stroke:#c2410c
            class ask bm_human
            classDef bm_end fill:#f5f5f5,stroke:#404040
            class end_ bm_end
        """
    )


def test_mermaid_of_a_yaml_graph_keeps_titles_and_loops() -> None:
    graph = Graph.from_yaml(
        """
name: loop
nodes:
  draft: {kind: ai, title: "Draft <v2>", model: w, prompt: "{input}", next: check}
  check:
    kind: router
    routes: [{when: "len(draft.text) < 10", to: draft}]
    default: done
  done: {kind: end, output: draft}
"""
    )
    chart = graph.to_mermaid()
    assert '    draft("Draft #lt;v2#gt;<br/>ai: w")' in chart
    assert '    check -->|"len(draft.text) #lt; 10"| draft' in chart
    assert '    check -->|"default"| done' in chart
    assert "__end__" not in chart  # every path ends at an end node
