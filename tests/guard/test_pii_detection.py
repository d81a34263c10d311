"""What ``bm.RedactPII`` finds: exact spans on clinical and support text written for these
tests, and recall on the first records of Presidio's public synthetic set."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import bandmaster as bm

pytest.importorskip("presidio_analyzer", reason="needs the 'pii' extra: pip install 'bandmaster[pii]'")

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared"
SYNTH = SHARED / "data" / "presidio-synth-pii" / "synth_dataset_v2.json"

NOTE = (
    "CCU NURSING PROGRESS NOTE 7P-7A\n"
    "Mr. Okafor is a 67 yo man, MRN: 00734519, DOB 04/11/1958, admitted [**2101-3-8**] with CHF.\n"
    "CV: HR 80-90 SR, SBP 110-130. Lasix 40 IV given at 2200. DR LAVELY AWARE OF K 3.2.\n"
    "SOCIAL: wife Janet called overnight, updated on plan; daughter can be reached at (617) 555-0142.\n"
    "Pager #54321 for the covering resident. Cath planned 3/12.\n"
    "Marie Munroe, RN\n"
)


def _found(text: str, redactor: bm.RedactPII | None = None) -> set[tuple[str, str]]:
    return {(span.entity, span.text) for span in (redactor or bm.RedactPII()).analyze(text)}


def test_clinical_note_spans() -> None:
    found = _found(NOTE)
    expected = {
        ("PERSON", "Okafor"),
        ("MEDICAL_RECORD_NUMBER", "00734519"),
        ("DATE_TIME", "04/11/1958"),
        ("DATE_TIME", "2101-3-8"),
        ("PERSON", "LAVELY"),
        ("PERSON", "Janet"),
        ("PHONE_NUMBER", "(617) 555-0142"),
        ("PHONE_NUMBER", "54321"),
        ("DATE_TIME", "3/12"),
        ("PERSON", "Marie Munroe"),
    }
    assert expected <= found, f"missed: {expected - found}"


def test_clinical_words_are_not_names_and_times_are_not_dates() -> None:
    found = _found(NOTE)
    texts = {text for _, text in found}
    # Common words after a title or relative, drugs and clock times stay.
    for kept in ("AWARE", "Lasix", "2200", "CCU", "overnight", "SBP 110-130", "7P-7A"):
        assert kept not in texts, f"{kept!r} should not be redacted: {found}"


def test_span_offsets_index_the_text() -> None:
    for span in bm.RedactPII().analyze(NOTE):
        assert NOTE[span.start : span.end] == span.text
        assert 0.0 < span.score <= 1.0


def test_support_ticket_with_contact_details() -> None:
    ticket = "Hi, this is Priya Raman. My card 4111 1111 1111 1111 was charged twice; mail priya@example.org"
    found = _found(ticket)
    assert ("PERSON", "Priya Raman") in found
    assert ("CREDIT_CARD", "4111 1111 1111 1111") in found
    assert ("EMAIL_ADDRESS", "priya@example.org") in found


def test_entities_limit_what_is_looked_for() -> None:
    only_phones = bm.RedactPII(["PHONE_NUMBER"])
    assert {entity for entity, _ in _found(NOTE, only_phones)} == {"PHONE_NUMBER"}


def test_allow_list_keeps_named_strings() -> None:
    text = "Seen at Lavely Clinic by Dr. Chen"
    assert _found(text, bm.RedactPII(["PERSON"], allow=["Lavely Clinic"])) == {("PERSON", "Chen")}


def test_lower_case_and_upper_case_notes() -> None:
    assert ("PERSON", "vasquez") in _found("pt seen by dr vasquez this am, plan to diurese")
    assert ("PERSON", "RIZZO") in _found("PLAN: DR RIZZO IN TO TALK WITH PT AND FAMILY")
    assert ("PERSON", "Saeed") in _found("NSICU team called and Drs Ferullo and Saeed in to see pt.")


@pytest.mark.skipif(not SYNTH.exists(), reason=f"shared dataset not present at {SYNTH}")
def test_recall_on_the_first_presidio_synthetic_records() -> None:
    records = json.loads(SYNTH.read_text())[:60]
    redactor = bm.RedactPII()
    scored = {"PERSON": "PERSON", "PHONE_NUMBER": "PHONE_NUMBER", "EMAIL_ADDRESS": "EMAIL_ADDRESS"}
    gold = found = 0
    for record in records:
        predicted = redactor.analyze(record["full_text"])
        for span in record["spans"]:
            ours = scored.get(span["entity_type"])
            if ours is None:
                continue
            gold += 1
            found += any(
                p.entity == ours and p.start < span["end_position"] and span["start_position"] < p.end
                for p in predicted
            )
    assert gold >= 20
    # en_core_web_sm tags many foreign names as organisations; 0.71 measured, 0.65 required.
    assert found / gold >= 0.65, f"recall {found}/{gold}"


# People name themselves, in every way a support ticket does; the surnames are English words
# too ("Cross", "Hall", "Price", "Banks"), which the NER model and the dictionary both let pass.
@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("This is Rose Cross, you can call me at (555) 201-3344.", "Rose Cross"),
        ("Hello, This is Grace Hall, my portal is locked.", "Grace Hall"),
        ("Hi, this is Mark Price calling about my bill.", "Mark Price"),
        ("I'm Faith Banks and I need a refill.", "Faith Banks"),
        ("I am Hope Walker, the patient.", "Hope Walker"),
        ("my name is dawn wood and i was charged twice", "dawn wood"),
        ("Patient name: Joy Stone. Please call.", "Joy Stone"),
        ("Mark Price here, the app crashes on upload.", "Mark Price"),
        ("The refund never came.\nRegards,\nGrace Hall", "Grace Hall"),
        ("Please close my account. Thanks, Faith Banks", "Faith Banks"),
        ("The link does not open.\n-- Hope Walker", "Hope Walker"),
    ],
)
def test_self_introductions_and_signatures_are_names(text: str, name: str) -> None:
    assert bm.RedactPII().redact_text(text).count(name.split()[-1]) == 0, _found(text)
    assert ("PERSON", name) in _found(text)


@pytest.mark.parametrize(
    "text",
    [
        "This is the third time I was charged.",
        "I am unable to log in since the update.",
        "i'm writing for my mother, she is in the hospital",
        "Regards",
        "Thanks. Please help.",
        "THIS IS URGENT, PATIENT IN PAIN",
    ],
)
def test_what_only_looks_like_an_introduction_is_left_alone(text: str) -> None:
    assert not any(entity == "PERSON" for entity, _ in _found(text)), _found(text)
