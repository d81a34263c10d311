"""``bandmaster graph``, run as the installed console script."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.extras import needs

from bandmaster.graph import Graph

json_schema = needs("guard", "jsonschema")

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "graphs"


def bandmaster(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).parent / "bandmaster"
    env = {k: v for k, v in os.environ.items() if k not in ("BANDMASTER_DB", "BANDMASTER_MODELS")}
    env.update(COLUMNS="200", NO_COLOR="1")
    return subprocess.run(
        [str(exe) if exe.exists() else "bandmaster", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        env=env,
    )


@json_schema
def test_graph_prints_mermaid_for_a_yaml_file_and_for_a_module_attribute(tmp_path: Path) -> None:
    expected = Graph.load(EXAMPLES / "support_pipeline.yaml").to_mermaid()
    by_file = bandmaster("graph", EXAMPLES / "support_pipeline.yaml", cwd=tmp_path)
    assert (by_file.returncode, by_file.stdout, by_file.stderr) == (0, expected, "")
    by_module = bandmaster(
        "graph", f"{EXAMPLES / 'pipelines.py'}:support_pipeline", "-o", "chart.mmd", cwd=tmp_path
    )
    assert by_module.returncode == 0, by_module.stderr
    assert (tmp_path / "chart.mmd").read_text() == expected


@json_schema
def test_graph_validate_checks_models_against_the_registry(tmp_path: Path) -> None:
    ok = bandmaster(
        "graph",
        EXAMPLES / "contract_pipeline.yaml",
        "--validate",
        "--models",
        EXAMPLES / "models.yaml",
        cwd=tmp_path,
    )
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith(
        f"graph 'contract_pipeline' is valid against {EXAMPLES / 'models.yaml'}: 8 nodes"
    )
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "name: bad\n"
        "nodes:\n"
        "  ask: {kind: ai, model: gpt-9, prompt: '{input}', next: route}\n"
        "  route:\n"
        "    kind: router\n"
        "    routes: [{when: 'ask.confidence > 0.8', to: nowhere}]\n"
        "  spare: {kind: end}\n"
    )
    failed = bandmaster("graph", bad, "--validate", "--models", EXAMPLES / "models.yaml", cwd=tmp_path)
    assert failed.returncode == 2
    assert failed.stdout == ""
    lines = failed.stderr.splitlines()
    assert lines[0].startswith(f"error: {bad}:3: node 'ask': unknown model or alias 'gpt-9' in ")
    unknown = "routes.0.to names unknown node 'nowhere' (nodes: ask, route, spare)"
    assert lines[1] == f"error: {bad}:6: node 'route': {unknown}"
    assert (
        lines[2] == f"error: {bad}:7: node 'spare': unreachable: no edge leads here from the start node 'ask'"
    )
    assert lines[3] == "3 problems in graph 'bad'"


def test_graph_names_a_target_it_cannot_use(tmp_path: Path) -> None:
    result = bandmaster("graph", f"{ROOT / 'tests' / 'graph' / 'wf_graph_crash.py'}:registry", cwd=tmp_path)
    assert result.returncode == 2
    assert "expected a bandmaster.graph.Graph or a graph workflow, found Registry" in result.stderr


def test_hostile_definitions_are_one_line_errors_with_exit_code_2(tmp_path: Path) -> None:
    (tmp_path / "wide.yaml").write_text(
        "name: wide\ninput: ticket\nnodes:\n  classify:\n    kind: ai\n    model: clf\n"
        '    prompt: "{ticket.text:>999999999}"\n    next: done\n  done: {kind: end}\n'
    )
    (tmp_path / "binary.yaml").write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff")
    (tmp_path / "models.yaml").write_bytes(b"models:\n  m: {provider: callable, function: \xff}\n")
    expected = {
        ("wide.yaml",): "wide.yaml:7: node 'classify': prompt: {ticket.text:>999999999}: format spec "
        "'>999999999' asks for a width of 999999999; the limit is 1000",
        ("binary.yaml",): "binary.yaml:1: not UTF-8 text (byte 0x89 at offset 0); is it a binary file? "
        "Save it as UTF-8",
        ("wide.yaml", "--models", "models.yaml"): "models.yaml:2: not UTF-8 text (byte 0xff at offset 44)",
    }
    for args, message in expected.items():
        result = bandmaster("graph", *args, "--validate", cwd=tmp_path)
        assert result.returncode == 2, result.stderr
        assert result.stdout == ""
        first = result.stderr.splitlines()[0]
        assert first.startswith("error: "), result.stderr
        assert message in first, result.stderr
        assert "Traceback" not in result.stderr
