"""``bm.RedactPII``: find PII/PHI with Microsoft Presidio (spaCy English model) plus clinical
recognizers, and rewrite it. Also the journal's redactor: ``@bm.workflow(redact=bm.RedactPII())``
or ``bm.Engine(..., redact=bm.RedactPII())`` keep every value unredacted off the disk.

Modes: ``replace`` (``<PERSON>``), ``mask`` (``**********``), ``hash`` (``<PERSON:9f86d081884c7d65>``,
an HMAC keyed by ``key``: stable per key, so records still link) and ``token``
(``<PERSON_1f3a9c2e07bd>``, reversible by authorised reviewers through a ``bm.TokenVault``).
"""

from __future__ import annotations

import hashlib
import hmac
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args

from bandmaster.guard.pii._engine import require_pii_extra

require_pii_extra()  # before the imports below, so a missing extra names the install command

from presidio_analyzer import RecognizerResult as AnalyzerResult  # noqa: E402
from presidio_analyzer.nlp_engine import NlpArtifacts  # noqa: E402
from presidio_anonymizer.entities import OperatorConfig  # noqa: E402
from presidio_anonymizer.entities import RecognizerResult as AnonymizerResult  # noqa: E402

from bandmaster.errors import RedactionError, UsageError  # noqa: E402
from bandmaster.guard.pii._engine import analyzer, anonymizer  # noqa: E402
from bandmaster.guard.pii._recognizers import MEDICAL_RECORD_NUMBER, ClinicalRecognizer  # noqa: E402
from bandmaster.guard.pii._words import plausible_date, plausible_phone, plausible_url  # noqa: E402
from bandmaster.guard.pii.vault import TokenVault  # noqa: E402

Mode = Literal["replace", "mask", "hash", "token"]
MODES: tuple[str, ...] = get_args(Mode)

# Presidio's predefined entities plus ours; checked at construction, without loading spaCy.
KNOWN_ENTITIES = frozenset(
    {
        "CREDIT_CARD", "CRYPTO", "DATE_TIME", "EMAIL_ADDRESS", "IBAN_CODE", "IP_ADDRESS",
        "LOCATION", "MAC_ADDRESS", "MEDICAL_LICENSE", "NRP", "ORGANIZATION", "PERSON", "PHONE_NUMBER",
        "UK_NHS", "URL", "US_BANK_NUMBER", "US_DRIVER_LICENSE", "US_ITIN", "US_PASSPORT", "US_SSN",
        "UUID", MEDICAL_RECORD_NUMBER, *ClinicalRecognizer.ENTITIES,
    }
)  # fmt: skip

DEFAULT_ENTITIES: tuple[str, ...] = (
    "PERSON", "DATE_TIME", "PHONE_NUMBER", "EMAIL_ADDRESS", "MEDICAL_RECORD_NUMBER", "US_SSN",
    "CREDIT_CARD", "IBAN_CODE", "IP_ADDRESS", "LOCATION", "US_DRIVER_LICENSE", "US_PASSPORT",
    "MEDICAL_LICENSE", "UK_NHS", "URL",
)  # fmt: skip
"""What ``RedactPII()`` looks for: the HIPAA-style identifiers; ORGANIZATION and NRP are left
out (hospital and drug names would be caught too)."""


@dataclass(frozen=True, slots=True)
class PIISpan:
    """One detected entity: ``text[start:end]`` is of type ``entity`` with confidence ``score``."""

    entity: str
    start: int
    end: int
    score: float
    text: str


class RedactPII:
    """Detect and rewrite PII/PHI in text or in a JSON value (every string in it).

    ``entities``: which types to look for (default ``DEFAULT_ENTITIES``). ``score_threshold``:
    detections below it are ignored. ``key``: the HMAC key of ``mode="hash"``. ``vault``: the
    ``bm.TokenVault`` of ``mode="token"``. ``allow``: strings never redacted (a clinic's own
    name, a product name). The Presidio analyzer is loaded once per process, on first use.
    """

    def __init__(
        self,
        entities: Sequence[str] | None = None,
        *,
        mode: Mode = "replace",
        score_threshold: float = 0.35,
        key: str | bytes | None = None,
        vault: TokenVault | None = None,
        allow: Iterable[str] = (),
        cache_size: int = 4096,
    ) -> None:
        if mode not in MODES:
            raise UsageError(f"RedactPII(mode={mode!r}): choose one of {', '.join(MODES)}")
        if isinstance(entities, str):
            raise UsageError(f"RedactPII(entities={entities!r}): pass a list, e.g. [{entities!r}]")
        chosen = tuple(entities) if entities is not None else DEFAULT_ENTITIES
        unknown = sorted(set(chosen) - KNOWN_ENTITIES)
        if unknown or not chosen:
            raise UsageError(
                f"RedactPII(entities=...): unknown entity types {unknown or '(none given)'}; "
                f"known: {', '.join(sorted(KNOWN_ENTITIES))}"
            )
        if not 0.0 <= score_threshold <= 1.0:
            raise UsageError(f"RedactPII(score_threshold={score_threshold}): must be between 0 and 1")
        if mode == "hash" and not key:
            raise UsageError(
                'RedactPII(mode="hash") needs key=...: a secret HMAC key (anyone holding it can test '
                "guesses against the hashes, so keep it out of code and journal)"
            )
        if mode == "token" and not isinstance(vault, TokenVault):
            raise UsageError(
                'RedactPII(mode="token") needs vault=bm.TokenVault(db, key=...): the encrypted '
                "store that lets authorised reviewers reveal tokens"
            )
        self.entities = chosen
        self.mode: Mode = mode
        self.score_threshold = score_threshold
        self.vault = vault
        self.allow = frozenset(allow)
        self._key = key.encode() if isinstance(key, str) else key
        # Step outputs repeat the same strings (labels, templates): redact each once.
        self._cache: OrderedDict[str, str] = OrderedDict()
        self._cache_size = cache_size

    # --- detection ------------------------------------------------------------------------

    def analyze(self, text: str) -> list[PIISpan]:
        """The entities found in ``text``, overlaps resolved, in order of position."""
        return [
            PIISpan(r.entity_type, r.start, r.end, r.score, text[r.start : r.end])
            for r in self._results(text)
        ]

    def _results(self, text: str, nlp_artifacts: NlpArtifacts | None = None) -> list[AnonymizerResult]:
        found = analyzer().analyze(
            text,
            language="en",
            entities=list(self.entities),
            score_threshold=self.score_threshold,
            allow_list=list(self.allow) or None,
            nlp_artifacts=nlp_artifacts,
        )
        results = [
            AnonymizerResult(r.entity_type, r.start, r.end, r.score) for r in found if _plausible(r, text)
        ]
        return _resolve_overlaps(results)

    # --- rewriting ------------------------------------------------------------------------

    def redact_text(self, text: str) -> str:
        """``text`` with every detected entity rewritten according to the mode."""
        if len(text) < 2 or not any(c.isalnum() for c in text):
            return text
        cached = self._cache.get(text)
        if cached is not None:
            self._cache.move_to_end(text)
            return cached
        redacted = self._rewrite(text, self._results(text))
        self._cache[text] = redacted
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return redacted

    def redact_texts(self, texts: Sequence[str], *, batch_size: int = 64) -> list[str]:
        """``redact_text`` of each text, spaCy reading them in batches: the same results, in
        about 60% of the time, for a whole data set (a training set, say). Bypasses the cache."""
        engine = analyzer()
        unique = [t for t in dict.fromkeys(texts) if len(t) >= 2 and any(c.isalnum() for c in t)]
        redacted = {
            text: self._rewrite(text, self._results(text, nlp_artifacts))
            for text, nlp_artifacts in engine.nlp_engine.process_batch(
                unique, language="en", batch_size=batch_size
            )
        }
        return [redacted.get(text, text) for text in texts]

    def _rewrite(self, text: str, results: list[AnonymizerResult]) -> str:
        if not results:
            return text
        return anonymizer().anonymize(text, results, operators=self._operators(results)).text

    def redact(self, value: Any) -> Any:
        """A JSON value with every string in it redacted (dict keys are kept: they are field
        names). The journal hook calls this with each value before it is written."""
        if isinstance(value, str):
            return self.redact_text(value)
        if isinstance(value, list):
            return [self.redact(v) for v in value]
        if isinstance(value, dict):
            return {k: self.redact(v) for k, v in value.items()}
        if value is None or isinstance(value, bool | int | float):
            return value
        raise RedactionError(
            f"RedactPII.redact() takes JSON values (str, list, dict, numbers); got {type(value).__name__}. "
            f"Use redact_text() for text, or dump a model with .model_dump(mode='json') first."
        )

    def _operators(self, results: list[AnonymizerResult]) -> dict[str, OperatorConfig]:
        operators: dict[str, OperatorConfig] = {}
        for entity in {r.entity_type for r in results}:
            if self.mode == "replace":
                operators[entity] = OperatorConfig("replace", {"new_value": f"<{entity}>"})
            elif self.mode == "mask":
                operators[entity] = OperatorConfig(
                    "mask", {"masking_char": "*", "chars_to_mask": 10_000, "from_end": False}
                )
            else:
                operators[entity] = OperatorConfig("custom", {"lambda": self._rewriter(entity)})
        return operators

    def _rewriter(self, entity: str) -> Callable[[str], str]:
        if self.mode == "hash":
            assert self._key is not None
            key = self._key

            def hashed(original: str) -> str:
                digest = hmac.new(key, f"{entity}\x00{original}".encode(), hashlib.sha256).hexdigest()
                return f"<{entity}:{digest[:16]}>"

            return hashed
        assert self.vault is not None
        vault = self.vault
        return lambda original: vault.token(entity, original)

    def to_config(self) -> dict[str, Any] | None:
        """The keyword arguments that rebuild this redactor in another process (the journal
        records them: ``engine/redaction_policy.py``); None for ``hash`` and ``token``, whose key
        and vault are secrets that must not be written down with the data they protect."""
        if self.mode in ("hash", "token"):
            return None
        return {
            "entities": list(self.entities),
            "mode": self.mode,
            "score_threshold": self.score_threshold,
            "allow": sorted(self.allow),
        }

    def __repr__(self) -> str:
        return f"bm.RedactPII(mode={self.mode!r}, entities={len(self.entities)} types)"


def _plausible(result: AnalyzerResult, text: str) -> bool:
    """Presidio's pattern recognizers read clock times (``10:00``) as dates and lab values
    (``ABG 75/58/7.39``) as phone numbers; clinical notes are full of both."""
    span = text[result.start : result.end]
    if result.entity_type == "DATE_TIME":
        return plausible_date(span)
    if result.entity_type == "PHONE_NUMBER":
        return plausible_phone(span)
    if result.entity_type == "URL":
        # "placed.ch|eck": a sentence run into the next word is cut mid-word, a URL is not.
        cut = result.end < len(text) and text[result.end].isalpha()
        return plausible_url(span) and not cut and ".." not in span
    return True


# Which type names a merged span: the more specific identifier wins (a name the small spaCy
# model also called a place stays a name).
_PRIORITY = {
    "MEDICAL_RECORD_NUMBER": 0, "US_SSN": 0, "CREDIT_CARD": 0, "IBAN_CODE": 0, "EMAIL_ADDRESS": 1,
    "PERSON": 2, "PHONE_NUMBER": 3, "DATE_TIME": 4, "LOCATION": 6, "URL": 7,
}  # fmt: skip


def _resolve_overlaps(results: list[AnonymizerResult]) -> list[AnonymizerResult]:
    """Merge overlapping detections into one span (so no fragment is left behind), typed by the
    highest-priority type among them."""
    ordered = sorted(results, key=lambda r: (r.start, -(r.end - r.start)))
    kept: list[AnonymizerResult] = []
    for result in ordered:
        if kept and result.start < kept[-1].end:
            last = kept[-1]
            better = _PRIORITY.get(result.entity_type, 5) < _PRIORITY.get(last.entity_type, 5)
            kept[-1] = AnonymizerResult(
                result.entity_type if better else last.entity_type,
                last.start,
                max(last.end, result.end),
                max(last.score, result.score),
            )
            continue
        kept.append(result)
    return kept


__all__ = ["KNOWN_ENTITIES", "PIISpan", "RedactPII"]
