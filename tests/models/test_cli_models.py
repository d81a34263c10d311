"""``bandmaster models list|show|set`` as a user runs them: the installed console script in a
subprocess, on a journal and a registry in tmp_path. Exit code 2 for every usage error, with a
one-line message and no traceback; every accepted change is in the history with its author."""

from __future__ import annotations

import json
import subprocess
import textwrap
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from .helpers import bandmaster_exe, subprocess_env

MODELS_YAML = """
models:
  haiku: {provider: anthropic, model: claude-haiku-4-5}
  mini: {provider: openai, model: gpt-4o-mini}
  rules: {provider: callable, function: "tests.models.fixtures_models:model_a"}
aliases:
  classification:
    versions: {production: haiku, canary: mini}
    weights: {production: 0.95, canary: 0.05}
    policy: {timeout: 2.0, fallback: [rules], breaker: {failures: 5}}
  summary:
    versions: {production: mini}
"""

Cli = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def models_yaml(tmp_path: Path) -> Path:
    path = tmp_path / "models.yaml"
    path.write_text(textwrap.dedent(MODELS_YAML).lstrip())
    return path


@pytest.fixture
def cli(tmp_path: Path, models_yaml: Path, db_path: Path) -> Cli:
    """``cli("set", "classification", ...)`` → ``bandmaster models set classification ...
    --db <journal> --models <models.yaml>`` (unless the test passes its own)."""

    def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
        argv = [bandmaster_exe(), "models", *map(str, args)]
        if "--db" not in argv:
            argv += ["--db", str(db_path)]
        if "--models" not in argv:
            argv += ["--models", str(models_yaml)]
        return subprocess.run(
            argv, capture_output=True, text=True, timeout=60, cwd=tmp_path, env=subprocess_env()
        )

    return run


def table_rows(output: str) -> list[list[str]]:
    rows = []
    for line in output.splitlines():
        cells = [cell.strip() for cell in line.split("│")]
        if len(cells) > 2 and cells[1] and cells[1] != "alias":
            rows.append(cells[1:-1])
    return rows


def show(cli: Cli, alias: str) -> dict[str, object]:
    result = cli("show", alias)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def one_line(text: str) -> str:
    return " ".join(text.split())


def test_list(cli: Cli) -> None:
    result = cli("list")
    assert result.returncode == 0, result.stderr
    assert table_rows(result.stdout) == [
        ["classification", "production", "haiku", "95.00%", "closed", "rules"],
        ["classification", "canary", "mini", "5.00%", "closed", "rules"],
        ["summary", "production", "mini", "100.00%", "closed", ""],
    ]


def test_show(cli: Cli) -> None:
    shown = show(cli, "classification")
    assert shown["alias"] == "classification"
    assert shown["versions"] == {"production": "haiku", "canary": "mini"}
    assert shown["weights"] == {"production": 0.95, "canary": 0.05}
    policy = shown["policy"]
    assert isinstance(policy, dict)
    assert policy["timeout"] == 2.0
    assert policy["fallback"] == ["rules"]
    assert policy["breaker"] == {"failures": 5, "window": 30.0, "reset": 60.0}
    assert shown["breakers"] == {"haiku": "closed", "mini": "closed", "rules": "closed"}
    assert shown["history"] == []


def test_set_records_history_with_the_principal(cli: Cli) -> None:
    result = cli(
        "set", "classification", "--weights", "production=0.5,canary=0.5", "--by", "alice@example.com"
    )
    assert result.returncode == 0, result.stderr
    assert one_line(result.stdout) == "classification: production=haiku (50%), canary=mini (50%)"

    result = cli(
        "set",
        "classification",
        "--versions",
        "production=mini,canary=rules",
        "--weights",
        "production=0,canary=1",
        "--by",
        "bob",
    )
    assert result.returncode == 0, result.stderr
    assert one_line(result.stdout) == "classification: production=mini (0%), canary=rules (100%)"

    result = cli("set", "summary", "--versions", "production=haiku")
    assert result.returncode == 0, result.stderr

    shown = show(cli, "classification")
    assert shown["versions"] == {"production": "mini", "canary": "rules"}
    assert shown["weights"] == {"production": 0.0, "canary": 1.0}
    history = shown["history"]
    assert isinstance(history, list)
    assert [entry["changed_by"] for entry in history] == ["bob", "alice@example.com"], "newest first"
    assert history[1]["spec"]["weights"] == {"production": 0.5, "canary": 0.5}
    assert history[0]["spec"]["versions"] == {"production": "mini", "canary": "rules"}
    assert history[0]["changed_at"] >= history[1]["changed_at"] > 0
    assert history[0]["spec"]["policy"]["fallback"] == ["rules"], "the policy is kept"

    summary_history = show(cli, "summary")["history"]
    assert isinstance(summary_history, list)
    assert [e["changed_by"] for e in summary_history] == [None]

    assert table_rows(cli("list").stdout) == [
        ["classification", "production", "mini", "0.00%", "closed", "rules"],
        ["classification", "canary", "rules", "100.00%", "closed", "rules"],
        ["summary", "production", "haiku", "100.00%", "closed", ""],
    ]


INVALID = [
    pytest.param(("set", "classification"), "give --versions and/or --weights", id="nothing"),
    pytest.param(
        ("set", "classification", "--weights", "production=abc,canary=1"),
        "--weights: could not convert string to float: 'abc'",
        id="weight-not-a-number",
    ),
    pytest.param(
        ("set", "classification", "--weights", "production"),
        "--weights: expected label=value[,label=value], got 'production'",
        id="weight-without-value",
    ),
    pytest.param(
        ("set", "classification", "--weights", "production=0.5,canary=0.2"),
        "weights: must sum to 1, got 0.7",
        id="weights-sum",
    ),
    pytest.param(
        ("set", "classification", "--weights", "production=1,canary=nan"),
        "--weights: canary=nan is not a finite number; give a share from 0 to 1",
        id="weight-nan",
    ),
    pytest.param(
        ("set", "classification", "--weights", "production=-inf,canary=inf"),
        "--weights: production=-inf is not a finite number",
        id="weight-infinite",
    ),
    pytest.param(
        ("set", "classification", "--weights", "production=2,canary=-1"),
        "weights: must not be negative",
        id="weight-above-1",
    ),
    pytest.param(
        ("set", "a/b", "--versions", "production=mini"),
        "a new alias name 'a/b' is not 1-200 characters from A-Z a-z 0-9",
        id="alias-not-one-url-segment",
    ),
    pytest.param(
        ("set", "classification", "--weights", "production=0.5,shadow=0.5"),
        "weights: name versions that do not exist: ['shadow']",
        id="weights-unknown-label",
    ),
    pytest.param(
        ("set", "classification", "--versions", "production=gpt-9"),
        "version 'production' names unknown model 'gpt-9'",
        id="unknown-model",
    ),
    pytest.param(
        ("set", "nope", "--weights", "production=1"),
        "no alias 'nope'; give versions to create it",
        id="unknown-alias",
    ),
    pytest.param(("show", "nope"), "no alias 'nope'", id="show-unknown-alias"),
    pytest.param(
        ("list", "--models", "missing.yaml"), "model registry missing.yaml does not exist", id="no-registry"
    ),
]


def test_usage_errors_exit_2_and_change_nothing(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "broken.yaml").write_text("models:\n  a: {provider: openia}\n")
    cases = [(p.values[0], p.values[1]) for p in INVALID] + [
        (("list", "--models", "broken.yaml"), "broken.yaml: models.a.provider: Input should be")
    ]
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda case: cli(*case[0]), cases))
    for (args, message), result in zip(cases, results, strict=True):
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert "Traceback" not in result.stderr, result.stderr
        assert message in one_line(result.stderr), (args, result.stderr)
        assert one_line(result.stderr).startswith("error:"), result.stderr
    shown = show(cli, "classification")
    assert shown["weights"] == {"production": 0.95, "canary": 0.05}
    assert shown["history"] == []
