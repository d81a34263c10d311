"""The four rewriting modes, redaction of JSON values, and the errors for bad configurations."""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

import bandmaster as bm

pytest.importorskip("presidio_analyzer", reason="needs the 'pii' extra: pip install 'bandmaster[pii]'")

TEXT = "Mrs. Adaeze Nwosu called from 617-555-0199"


def test_replace_mode_names_the_entity_type() -> None:
    assert bm.RedactPII().redact_text(TEXT) == "Mrs. <PERSON> called from <PHONE_NUMBER>"


def test_mask_mode_hides_every_character() -> None:
    assert bm.RedactPII(mode="mask").redact_text(TEXT) == "Mrs. ************ called from ************"


def test_hash_mode_is_stable_per_key_and_differs_between_keys() -> None:
    first = bm.RedactPII(mode="hash", key="k1").redact_text(TEXT)
    again = bm.RedactPII(mode="hash", key="k1").redact_text(TEXT)
    other = bm.RedactPII(mode="hash", key="k2").redact_text(TEXT)
    assert first == again != other
    assert re.fullmatch(r"Mrs\. <PERSON:[0-9a-f]{16}> called from <PHONE_NUMBER:[0-9a-f]{16}>", first)
    assert "Nwosu" not in first


def test_token_mode_is_reversible_for_a_reviewer(tmp_path: Path) -> None:
    vault = bm.TokenVault(tmp_path / "j.db", key=bm.TokenVault.generate_key(), reviewers={"ines": "s3cret"})
    redacted = bm.RedactPII(mode="token", vault=vault).redact_text(TEXT)
    assert re.fullmatch(r"Mrs\. <PERSON_[0-9a-f]{12}> called from <PHONE_NUMBER_[0-9a-f]{12}>", redacted)
    assert vault.reveal(redacted, reviewer="ines", credential="s3cret") == TEXT


def test_redact_walks_json_values_and_keeps_keys_and_numbers() -> None:
    value = {"patient": "Adaeze Nwosu", "age_years": 71, "notes": ["call 617-555-0199", None, True]}
    assert bm.RedactPII().redact(value) == {
        "patient": "<PERSON>",
        "age_years": 71,
        "notes": ["call <PHONE_NUMBER>", None, True],
    }


def test_redact_texts_gives_what_redact_text_gives_each_text() -> None:
    texts = [
        TEXT,
        "billing question about a refund",
        "",
        "?",
        "My name is Adaeze Nwosu, date of birth 03/14/1952, MRN 4417209.",
        TEXT,  # a repeat: redacted once, returned in place
        "Reach me at adaeze.nwosu@example.org or 617-555-0199.",
    ]
    batched = bm.RedactPII().redact_texts(texts, batch_size=2)
    assert batched == [bm.RedactPII().redact_text(text) for text in texts]
    assert batched[0] == batched[5] == "Mrs. <PERSON> called from <PHONE_NUMBER>"
    assert not any("Nwosu" in text or "617-555" in text for text in batched)


def test_text_without_pii_is_unchanged() -> None:
    assert bm.RedactPII().redact_text("billing question about a refund") == "billing question about a refund"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mode": "scramble"}, "choose one of replace, mask, hash, token"),
        ({"mode": "hash"}, "needs key="),
        ({"mode": "token"}, "needs vault="),
        ({"entities": ["PERSON", "SHOE_SIZE"]}, "unknown entity types \\['SHOE_SIZE'\\]"),
        ({"entities": "PERSON"}, "pass a list"),
        ({"score_threshold": 1.5}, "between 0 and 1"),
    ],
)
def test_bad_configurations_say_what_to_fix(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(bm.UsageError, match=message):
        bm.RedactPII(**kwargs)  # type: ignore[arg-type]


def test_the_vault_key_must_be_a_fernet_key(tmp_path: Path) -> None:
    with pytest.raises(bm.UsageError, match="generate_key"):
        bm.TokenVault(tmp_path / "j.db", key="not-a-key")


def test_stored_token_mapping_holds_no_plaintext(tmp_path: Path) -> None:
    db = tmp_path / "j.db"
    vault = bm.TokenVault(db, key=bm.TokenVault.generate_key())
    bm.RedactPII(mode="token", vault=vault).redact_text(TEXT)
    vault.close()
    rows = sqlite3.connect(db).execute("SELECT token, entity, ciphertext FROM pii_tokens").fetchall()
    assert {entity for _, entity, _ in rows} == {"PERSON", "PHONE_NUMBER"}
    raw = b"".join(Path(f"{db}{s}").read_bytes() for s in ("", "-wal") if Path(f"{db}{s}").exists())
    for plaintext in ("Adaeze", "Nwosu", "617-555-0199", "5550199"):
        assert plaintext.encode() not in raw


def test_importing_without_the_extra_names_the_install_command() -> None:
    # A fresh interpreter where presidio_analyzer cannot be found.
    code = (
        "import importlib.util, sys\n"
        "real = importlib.util.find_spec\n"
        "hide = lambda name, *a: None if name == 'presidio_analyzer' else real(name, *a)\n"
        "importlib.util.find_spec = hide\n"
        "try:\n"
        "    import bandmaster.guard.pii\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "pip install 'bandmaster[pii]'" in out
    assert "presidio_analyzer" in out
