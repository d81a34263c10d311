"""Loading graph YAML and validating it: every error names the file, the line and the node.

Each bad graph marks the line the error must point at with ``# <-``.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from tests.extras import needs

import bandmaster as bm
from bandmaster.graph import AIStep, End, Graph, GraphError, Human, Parallel, Router, Step
from bandmaster.graph._spec import Route

json_schema = needs("guard", "jsonschema")

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "graphs"

GOOD = """\
name: triage
input: ticket
nodes:
  classify:
    kind: ai
    model: clf
    prompt: "Classify: {ticket.text}"
    output_key: intent
    next: route
  route:
    kind: router
    routes:
      - when: intent.confidence > 0.85
        to: reply
    default: human
  reply:
    kind: ai
    model: writer
    prompt: "Reply to {ticket.text} ({intent.output})"
    next: done
  human:
    kind: human
    timeout: 10
    default: queue
    next: done
  done:
    kind: end
"""


def registry() -> bm.Registry:
    return bm.Registry(
        models={"clf": bm.CallableModel(lambda r: "x"), "writer": bm.CallableModel(lambda r: "y")}
    )


def marked_line(text: str) -> int:
    return next(number for number, line in enumerate(text.splitlines(), 1) if "# <-" in line)


def first_problem(text: str, *, with_registry: bool = False) -> GraphError:
    text = textwrap.dedent(text)
    with pytest.raises(GraphError) as caught:
        Graph.from_yaml(text, source="g.yaml").validate(registry=registry() if with_registry else None)
    return caught.value


def test_a_good_graph_loads_with_its_nodes_kinds_and_lines() -> None:
    graph = Graph.from_yaml(GOOD, source="g.yaml").validate(registry=registry())
    assert graph.name == "triage"
    assert graph.input_key == "ticket"
    assert graph.start == "classify"  # the first node by default
    assert {n: node.kind for n, node in graph.nodes.items()} == {
        "classify": "ai",
        "route": "router",
        "reply": "ai",
        "human": "human",
        "done": "end",
    }
    assert graph.line("route") == 10
    assert graph.line("route", "routes", 0, "when") == 13
    human = graph.nodes["human"]
    assert isinstance(human, Human)
    assert human.has_default
    assert human.default == "queue"
    assert graph.nodes["reply"].key == "reply"  # output_key defaults to the node id


@json_schema
def test_the_example_graphs_are_valid_against_their_registry() -> None:
    import sys

    sys.path.insert(0, str(EXAMPLES))  # models.yaml names local_models:...
    try:
        models = bm.Registry.load(EXAMPLES / "models.yaml")
        for name in ("support_pipeline", "contract_pipeline"):
            graph = Graph.load(EXAMPLES / f"{name}.yaml").validate(registry=models)
            assert graph.name == name
    finally:
        sys.path.remove(str(EXAMPLES))


BAD = {
    "unknown node in next": (
        """\
        name: g
        nodes:
          a:
            kind: ai
            model: clf
            prompt: hi
            next: nowhere  # <-
        """,
        "a",
        "next names unknown node 'nowhere' (nodes: a)",
    ),
    "unknown node in a route": (
        """\
        name: g
        nodes:
          r:
            kind: router
            routes:
              - when: "1 > 0"
                to: ghost  # <-
            default: e
          e: {kind: end}
        """,
        "r",
        "routes.0.to names unknown node 'ghost'",
    ),
    "unknown node in on_error": (
        """\
        name: g
        nodes:
          a:
            kind: ai
            model: clf
            prompt: hi
            on_error: gone  # <-
        """,
        "a",
        "on_error names unknown node 'gone'",
    ),
    "unknown step module": (
        """\
        name: g
        nodes:
          s:
            kind: step
            call: no_such_module_xyz:fn  # <-
        """,
        "s",
        "unknown step: cannot import module 'no_such_module_xyz'",
    ),
    "unknown registered step": (
        """\
        name: g
        nodes:
          s:
            kind: step
            call: not_registered  # <-
        """,
        "s",
        "unknown step: 'not_registered' is not a registered step",
    ),
    "unreachable node": (
        """\
        name: g
        nodes:
          a: {kind: ai, model: clf, prompt: hi}
          lonely:  # <-
            kind: ai
            model: clf
            prompt: hi
        """,
        "lonely",
        "unreachable: no edge leads here from the start node 'a'",
    ),
    "cycle without an exit": (
        """\
        name: g
        nodes:
          draft:  # <-
            kind: ai
            model: writer
            prompt: hi
            next: review
          review:
            kind: router
            routes:
              - when: "1 > 2"
                to: draft
            default: draft
        """,
        "draft",
        "cycle draft → review → draft has no exit",
    ),
    "condition reads a key nobody produces": (
        """\
        name: g
        input: ticket
        nodes:
          classify: {kind: ai, model: clf, prompt: "{ticket}", output_key: intent, next: r}
          r:
            kind: router
            routes:
              - when: intnet.confidence > 0.85  # <-
                to: e
            default: e
          e: {kind: end}
        """,
        "r",
        "routes.0.when reads 'intnet', which no upstream node produces",
    ),
    "prompt reads a key produced on one path only": (
        """\
        name: g
        nodes:
          r:
            kind: router
            routes:
              - {when: "input == 'a'", to: write}
            default: use
          write: {kind: ai, model: writer, prompt: "{input}", output_key: draft, next: use}
          use:
            kind: ai
            model: writer
            prompt: "Polish {draft}"  # <-
        """,
        "use",
        "prompt reads 'draft', which is not produced on every path to this node (missing when arriving "
        "from 'r'); it is written by 'write'",
    ),
    "end output reads a missing key": (
        """\
        name: g
        nodes:
          a: {kind: ai, model: clf, prompt: hi, next: e}
          e:
            kind: end
            output: [a, b]  # <-
        """,
        "e",
        "output reads 'b', which no upstream node produces",
    ),
    "invalid condition": (
        """\
        name: g
        nodes:
          r:
            kind: router
            routes:
              - when: "x.__class__ == 1"  # <-
                to: e
            default: e
          e: {kind: end}
        """,
        "r",
        "routes.0.when: attribute '__class__' is private at column 1",
    ),
    "private name in a prompt": (
        """\
        name: g
        nodes:
          a:
            kind: ai
            model: clf
            prompt: "{input.__class__}"  # <-
        """,
        "a",
        "prompt: {input.__class__} reads '__class__', a private name",
    ),
    "router with next": (
        """\
        name: g
        nodes:
          r:
            kind: router
            default: e
            next: e  # <-
          e: {kind: end}
        """,
        "r",
        "a router leaves by its routes and default, not next:",
    ),
    "parallel branch that is a human": (
        """\
        name: g
        nodes:
          p:
            kind: parallel
            branches: [a, h]  # <-
          a: {kind: ai, model: clf, prompt: hi}
          h: {kind: human}
        """,
        "p",
        "branch 'h' is a human node; branches are single ai or step nodes",
    ),
    "parallel branches writing one key": (
        """\
        name: g
        nodes:
          p:
            kind: parallel
            branches:
              - a
              - b  # <-
          a: {kind: ai, model: clf, prompt: hi, output_key: x}
          b: {kind: ai, model: clf, prompt: hi, output_key: x}
        """,
        "p",
        "branches 'a' and 'b' both write 'x'",
    ),
    "output key equal to the input key": (
        """\
        name: g
        nodes:
          a:
            kind: ai
            model: clf
            prompt: hi
            output_key: input  # <-
        """,
        "a",
        "output key 'input' is the graph's input key",
    ),
    "unknown field": (
        """\
        name: g
        nodes:
          a:
            kind: ai
            model: clf
            promt: hi  # <-
            prompt: hi
        """,
        "a",
        "unknown field 'promt'",
    ),
    "missing field": (
        """\
        name: g
        nodes:
          a:  # <-
            kind: ai
            model: clf
        """,
        "a",
        "prompt: Field required",
    ),
    "unknown kind": (
        """\
        name: g
        nodes:
          a:
            kind: robot  # <-
        """,
        "a",
        "unknown kind 'robot' (kinds: ai, step, router, parallel, map_reduce, human, end)",
    ),
    "missing kind": (
        """\
        name: g
        nodes:
          a:  # <-
            model: clf
        """,
        "a",
        "missing kind: (one of ai, step, router",
    ),
    "duplicate node id": (
        """\
        name: g
        nodes:
          a: {kind: ai, model: clf, prompt: hi}
          a: {kind: end}  # <-
        """,
        "a",
        "duplicate key 'a' (first at line 3)",
    ),
    "map prompt without its chunk": (
        """\
        name: g
        nodes:
          m:
            kind: map_reduce
            document: "{input}"
            map_model: clf
            map_prompt: "Summarise"  # <-
            reduce_prompt: "Combine {summaries}"
            context_limit: 100
        """,
        "m",
        "map_prompt must contain {chunk}",
    ),
}


@pytest.mark.parametrize("case", list(BAD))
def test_each_validation_error_names_file_line_and_node(case: str) -> None:
    text, node, message = BAD[case]
    error = first_problem(text)
    line = marked_line(textwrap.dedent(text))
    assert (error.file, error.line, error.node) == ("g.yaml", line, node), str(error)
    assert str(error).startswith(f"g.yaml:{line}: node {node!r}: "), str(error)
    assert message in str(error)
    assert isinstance(error, bm.UsageError)


def test_unknown_model_and_fallback_are_checked_against_a_registry() -> None:
    text = """\
        name: g
        nodes:
          a:
            kind: ai
            model: clff  # <-
            prompt: hi
            fallback: [writer, nope]
    """
    assert Graph.from_yaml(textwrap.dedent(text), source="g.yaml").problems() == []  # no registry: unchecked
    error = first_problem(text, with_registry=True)
    assert [(p.line, p.node) for p in error.problems] == [(5, "a"), (7, "a")]
    assert "unknown model or alias 'clff' in <registry> (models: clf, writer; aliases: none)" in str(error)
    assert "unknown fallback model 'nope'" in str(error)


def test_every_problem_is_reported_at_once() -> None:
    text = """\
        name: g
        nodes:
          a: {kind: ai, model: clf, prompt: "{missing}", next: b}
          b: {kind: ai, model: clf, prompt: hi, next: ghost}
          c: {kind: end}
    """
    error = first_problem(text)
    assert [(p.line, p.node) for p in error.problems] == [(3, "a"), (4, "b"), (5, "c")]
    assert str(error).startswith("graph 'g' has 3 problems:\n  g.yaml:3: node 'a': prompt reads 'missing'")


def test_bad_yaml_names_the_line() -> None:
    with pytest.raises(GraphError) as caught:
        Graph.from_yaml("name: g\nnodes:\n  a: {kind: ai\n  b: 1\n", source="bad.yaml")
    assert caught.value.file == "bad.yaml"
    assert caught.value.line == 4
    assert "not valid YAML" in str(caught.value)


def test_a_loop_with_a_way_out_is_valid() -> None:
    text = """\
        name: g
        nodes:
          draft: {kind: ai, model: writer, prompt: "{input}", next: review}
          review:
            kind: router
            routes:
              - {when: "len(draft.text) < 3", to: draft}
            default: done
          done: {kind: end, output: draft}
    """
    assert Graph.from_yaml(textwrap.dedent(text)).problems(registry=registry()) == []


def test_python_graphs_validate_too_and_compile_only_when_valid() -> None:
    graph = Graph(
        "py",
        [
            AIStep("classify", model="clf", prompt="{input}", output_key="intent", next="route"),
            Router("route", routes=[("intent.confidence > 0.9", "done")], default="review"),
            Step("review", call="shout", inputs={"text": "intent.text"}, next="done"),
            End("done", output=["intent"]),
        ],
        steps={"shout": str.upper},
    )
    assert graph.problems(registry=registry()) == []
    assert isinstance(graph.nodes["route"], Router)
    assert graph.nodes["route"].routes == [Route(when="intent.confidence > 0.9", to="done")]
    broken = Graph("py", [Parallel("p", branches=["a"], next="zzz"), AIStep("a", model="clf", prompt="x")])
    with pytest.raises(GraphError) as caught:
        broken.as_workflow(registry=registry())
    assert str(caught.value) == ("<graph py>: node 'p': next names unknown node 'zzz' (nodes: p, a)")
    with pytest.raises(GraphError, match="two nodes have the id 'a'"):
        Graph("py", [AIStep("a", model="clf", prompt="x"), End("a")])


# --- hostile definitions ------------------------------------------------------------------------


def test_formatting_a_gigabyte_fails_validation_at_its_line() -> None:
    text = """\
        name: wide
        input: ticket
        nodes:
          classify:
            kind: ai
            model: clf
            prompt: "{ticket.text:>999999999}"  # <-
            next: route
          route:
            kind: router
            routes:
              - when: "'%.999999999f' % classify.confidence == '1'"  # <-
                to: done
            default: done
          done: {kind: end}
        """
    error = first_problem(text)
    lines = [i for i, line in enumerate(textwrap.dedent(text).splitlines(), 1) if "# <-" in line]
    assert [(p.line, p.node) for p in error.problems] == [(lines[0], "classify"), (lines[1], "route")]
    assert "prompt: {ticket.text:>999999999}: format spec '>999999999' asks for a width of 999999999" in str(
        error.problems[0]
    )
    assert "routes.0.when: '%.999999999f' asks for a precision of 999999999" in str(error.problems[1])


BILLION_LAUGHS = "\n".join(
    [
        'a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]',
        *(f"{n}: &{n} [{', '.join(['*' + p] * 9)}]" for p, n in zip("abcdefgh", "bcdefghi", strict=True)),
    ]
)


@pytest.mark.parametrize(
    ("data", "line", "message"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe", 1, "not UTF-8 text (byte 0x89 at offset 0)"),
        (b"name: g\nnodes:\n  a: {kind: end, title: caf\xe9}\n", 3, "not UTF-8 text (byte 0xe9 at offset 42"),
        (BILLION_LAUGHS.encode(), 6, "more than 100,000 values once its aliases (*name) are expanded"),
        (b"x: " + b"[" * 5000 + b"]" * 5000, None, "nested more than 64 levels deep"),
        (b"x: " + b"[" * 100 + b"]" * 100, 1, "nested more than 64 levels deep"),
        (b"x: &a [1, *a]\n", 1, "an alias (*name) is used inside its own anchor"),
        (b"name: g\nnodes: !!python/object/apply:os.system [true]\n", 2, "tag 'tag:yaml.org,2002:python/"),
        (b"name: g\nstart: !!timestamp 2024-99-99\n", 2, "not valid YAML: month must be in 1..12"),
        (b"name: g\nnodes:\n  <<: 5\n", 3, "expected a mapping or list of mappings for merging"),
        (b"name: g\n---\nname: h\n", 2, "expected a single document"),
        (b"- a list\n", 1, "expected a mapping with name: and nodes:"),
        (b"#" * 5_000_000, None, "the file is larger than 4,194,304 bytes"),
    ],
)
def test_a_hostile_or_broken_graph_file_is_one_graph_error(
    tmp_path: Path, data: bytes, line: int | None, message: str
) -> None:
    path = tmp_path / "g.yaml"
    path.write_bytes(data)
    with pytest.raises(GraphError) as caught:
        Graph.load(path).validate()
    problem = caught.value.problems[0]
    assert (problem.file, problem.line) == (str(path), line)
    assert message in problem.message
    assert "\n" not in problem.message


def test_map_reduce_overlap_must_leave_room_for_text() -> None:
    error = first_problem(
        """\
        name: long
        nodes:
          summarise:
            kind: map_reduce
            document: "{input}"
            map_model: clf
            map_prompt: "Summarise {chunk}"
            reduce_prompt: "Combine {summaries}"
            context_limit: 100
            overlap: 100  # <-
            next: done
          done: {kind: end}
        """
    )
    assert error.node == "summarise"
    assert "overlap 100 must be smaller than context_limit 100" in str(error)


def test_banned_topics_too_nested_to_match_fail_validation() -> None:
    phrases = ", ".join("a" * n for n in range(1, 1000))
    with pytest.raises(GraphError, match="phrases that extend one another hundreds of times") as caught:
        Graph.from_yaml(
            "name: g\nnodes:\n  ask:\n    kind: ai\n    model: clf\n    prompt: hi\n"
            f"    guard:\n      banned_topics: [{phrases}]\n",
            source="g.yaml",
        )
    assert (caught.value.node, caught.value.line) == ("ask", 8)


@pytest.mark.parametrize(("field", "value"), [("temperature", ".nan"), ("timeout", ".inf")])
def test_non_finite_numbers_are_refused_at_their_line(field: str, value: str) -> None:
    error = first_problem(
        f"""\
        name: g
        nodes:
          ask:
            kind: ai
            model: clf
            prompt: hi
            {field}: {value}  # <-
            next: done
          done: {{kind: end}}
        """
    )
    assert (error.node, error.line) == ("ask", 7)
    assert f"{field}: Input should be a finite number" in str(error)


def test_yaml_text_is_held_to_the_file_limits() -> None:
    with pytest.raises(GraphError, match="the text is longer than 4,194,304 characters"):
        Graph.from_yaml("#" * 5_000_000, source="g.yaml")
