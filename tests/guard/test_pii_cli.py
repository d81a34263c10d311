"""``bandmaster pii scan|reveal`` as a real subprocess (the installed console script)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import bandmaster as bm

pytest.importorskip("presidio_analyzer", reason="needs the 'pii' extra: pip install 'bandmaster[pii]'")


def _bandmaster(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).parent / "bandmaster"
    base = {k: v for k, v in os.environ.items() if not k.startswith("BANDMASTER_")}
    base.update(COLUMNS="200", NO_COLOR="1", **(env or {}))
    return subprocess.run(
        [str(exe), *args], capture_output=True, text=True, env=base, timeout=120, check=False
    )


def test_scan_prints_the_redacted_text_and_spans_as_json() -> None:
    done = _bandmaster("pii", "scan", "Pt Margaret Okafor, MRN 00734519", "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["redacted"] == "Pt <PERSON>, MRN <MEDICAL_RECORD_NUMBER>"
    assert [(s["entity"], s["start"], s["end"]) for s in result["spans"]] == [
        ("PERSON", 3, 18),
        ("MEDICAL_RECORD_NUMBER", 24, 32),
    ]


def test_scan_rejects_a_bad_mode_with_exit_2() -> None:
    done = _bandmaster("pii", "scan", "text", "--mode", "shred")
    assert done.returncode == 2
    assert "choose one of replace, mask, hash, token" in done.stderr


def test_reveal_for_an_allowed_reviewer_and_refusal_for_others(tmp_path: Path) -> None:
    db = tmp_path / "phi.db"
    key = bm.TokenVault.generate_key()
    vault = bm.TokenVault(db, key=key)
    note = bm.RedactPII(mode="token", vault=vault).redact_text("wife Janet at 617-555-0142")
    vault.close()
    env = {"BANDMASTER_PII_KEY": key, "BANDMASTER_PII_REVIEWERS": json.dumps({"ines": "s3cret"})}

    allowed = _bandmaster(
        "pii", "reveal", note, "--db", str(db), "--reviewer", "ines", "--credential", "s3cret", env=env
    )
    assert allowed.returncode == 0, allowed.stderr
    assert allowed.stdout.strip() == "wife Janet at 617-555-0142"

    refused = _bandmaster(
        "pii", "reveal", note, "--db", str(db), "--reviewer", "ines", "--credential", "nope", env=env
    )
    assert refused.returncode == 2
    assert "may not reveal" in refused.stderr
    assert "Janet" not in refused.stdout + refused.stderr

    no_key = _bandmaster(
        "pii", "reveal", note, "--db", str(db), "--reviewer", "ines", "--credential", "s3cret"
    )
    assert no_key.returncode == 2
    assert "BANDMASTER_PII_KEY" in no_key.stderr
