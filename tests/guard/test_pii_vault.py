"""``bm.TokenVault``: authorised reveal, refusals, the audit trail, and key separation."""

from __future__ import annotations

from pathlib import Path

import pytest

import bandmaster as bm

pytest.importorskip("cryptography", reason="needs the 'pii' extra: pip install 'bandmaster[pii]'")

KEY = bm.TokenVault.generate_key()


@pytest.fixture
def vault(tmp_path: Path) -> bm.TokenVault:
    return bm.TokenVault(tmp_path / "j.db", key=KEY, reviewers={"ines": "s3cret", "omar": "hunter2"})


def test_same_value_same_token_and_types_are_kept_apart(vault: bm.TokenVault) -> None:
    first = vault.token("PERSON", "Adaeze Nwosu")
    assert vault.token("PERSON", "Adaeze Nwosu") == first
    assert vault.token("PERSON", "Adaeze Nwosu ") != first
    assert vault.token("LOCATION", "Adaeze Nwosu") != first
    assert first.startswith("<PERSON_")


def test_authorised_reviewer_sees_the_originals(vault: bm.TokenVault) -> None:
    text = f"{vault.token('PERSON', 'Adaeze Nwosu')} at {vault.token('PHONE_NUMBER', '617-555-0199')}"
    assert vault.reveal(text, reviewer="omar", credential="hunter2", reason="PHI review #12") == (
        "Adaeze Nwosu at 617-555-0199"
    )
    (record,) = vault.reveals()
    assert (record.reviewer, record.allowed, record.tokens, record.reason) == (
        "omar",
        True,
        2,
        "PHI review #12",
    )


@pytest.mark.parametrize(("reviewer", "credential"), [("mallory", "s3cret"), ("ines", "wrong"), ("ines", "")])
def test_unauthorised_reveal_is_refused_and_audited(
    vault: bm.TokenVault, reviewer: str, credential: str
) -> None:
    token = vault.token("PERSON", "Adaeze Nwosu")
    with pytest.raises(bm.RevealDenied, match=f"reviewer '{reviewer}' may not reveal"):
        vault.reveal(token, reviewer=reviewer, credential=credential)
    (record,) = vault.reveals()
    assert (record.reviewer, record.allowed, record.tokens) == (reviewer, False, 0)


def test_a_vault_with_another_key_cannot_decrypt(tmp_path: Path, vault: bm.TokenVault) -> None:
    token = vault.token("PERSON", "Adaeze Nwosu")
    thief = bm.TokenVault(tmp_path / "j.db", key=bm.TokenVault.generate_key(), reviewers={"x": "y"})
    assert thief.reveal(f"patient {token}", reviewer="x", credential="y") == f"patient {token}"


def test_the_mapping_survives_a_new_process_object(tmp_path: Path, vault: bm.TokenVault) -> None:
    token = vault.token("PERSON", "Adaeze Nwosu")
    vault.close()
    reopened = bm.TokenVault(tmp_path / "j.db", key=KEY, reviewers={"ines": "s3cret"})
    assert reopened.reveal(token, reviewer="ines", credential="s3cret") == "Adaeze Nwosu"


def test_unknown_tokens_are_left_in_place(vault: bm.TokenVault) -> None:
    text = "see <PERSON_000000000000> and <b>bold</b>"
    assert vault.reveal(text, reviewer="ines", credential="s3cret") == text
