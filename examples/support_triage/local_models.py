"""The three local intent models of the support triage, trained from data at set-up and cached.

small   word counts over a 150-word vocabulary, naive Bayes: microseconds, often unsure
medium  word uni- and bigram TF-IDF, logistic regression (trained by SGD: seconds on Banking77)
large   word + character n-gram TF-IDF plus a domain lexicon (what a large model knows about
        billing, care, IT and accounts before it sees any ticket), logistic regression: the best
        local model, standing in for a hosted LLM when none is configured

Each is a scikit-learn pipeline with ``predict_proba``, so bandmaster's ``SklearnModel`` serves it
with the predicted probability as confidence. Fitted pipelines are cached under
``.bandmaster/models/`` keyed by a hash of the training data, so later runs load in milliseconds.
Nothing is downloaded. The texts given to ``train`` must already be redacted (``build_models``
does it): a vocabulary keeps every word it is fitted on, and the cache keeps the vocabulary.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import joblib
import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
from sklearn.linear_model import SGDClassifier
from sklearn.naive_bayes import MultinomialNB
from sklearn.pipeline import FeatureUnion, Pipeline

TIERS = ("small", "medium", "large")
# Nominal per-call prices (USD) of comparable hosted models, so cost reports are meaningful;
# the local models cost nothing to run here.
PRICES = {"small": 0.00002, "medium": 0.0002, "large": 0.002}


# Prior knowledge, written once and not fitted: word stems a general model associates with each
# queue. This is what lets the large model place wordings it never saw in training.
LEXICON: dict[str, tuple[str, ...]] = {
    "billing": (
        "bill",
        "charg",
        "invoice",
        "refund",
        "pay",
        "copay",
        "balance",
        "statement",
        "insur",
        "claim",
        "deductible",
        "fee",
        "cost",
        "price",
        "receipt",
        "collection",
        "owe",
        "debt",
        "reimburs",
        "overcharg",
        "hsa",
        "fsa",
        "coverage",
        "covered",
        "premium",
        "paid",
        "money",
    ),
    "clinical": (
        "pain",
        "fever",
        "dose",
        "medic",
        "prescri",
        "symptom",
        "rash",
        "cough",
        "blood",
        "test",
        "result",
        "lab",
        "surgery",
        "stitch",
        "wound",
        "swell",
        "breath",
        "dizz",
        "nause",
        "pill",
        "tablet",
        "antibiotic",
        "refill",
        "pharmac",
        "allerg",
        "infect",
        "temperature",
        "sick",
        "hurt",
        "ache",
        "bleed",
        "vomit",
        "pressure",
        "heart",
        "doctor",
        "nurse",
        "tylenol",
    ),
    "technical": (
        "portal",
        "app",
        "login",
        "log",
        "password",
        "error",
        "crash",
        "website",
        "site",
        "page",
        "browser",
        "safari",
        "chrome",
        "download",
        "upload",
        "pdf",
        "button",
        "screen",
        "link",
        "load",
        "spin",
        "blank",
        "bug",
        "update",
        "notification",
        "code",
        "session",
        "locked",
        "sync",
        "phone",
        "video",
        "server",
        "install",
        "reset",
    ),
    "account": (
        "address",
        "email",
        "account",
        "profile",
        "name",
        "phone",
        "number",
        "contact",
        "proxy",
        "access",
        "dependent",
        "merge",
        "duplicate",
        "close",
        "delete",
        "opt",
        "preference",
        "emergency",
        "spouse",
        "husband",
        "wife",
        "daughter",
        "son",
        "guardian",
        "registered",
        "moved",
        "marketing",
        "remind",
        "record",
        "consent",
    ),
}


class LexiconFeatures(BaseEstimator, TransformerMixin):  # type: ignore[misc]
    """Share of a text's words that start with each queue's stems: four columns, not fitted."""

    def fit(self, texts: Sequence[str], labels: Any = None) -> LexiconFeatures:
        return self

    def transform(self, texts: Sequence[str]) -> np.ndarray:
        rows = []
        for text in texts:
            words = [w.strip(".,!?'\"()-:;$") for w in text.lower().split()]
            words = [w for w in words if w]
            hits = [
                sum(any(w.startswith(stem) for stem in stems) for w in words) for stems in LEXICON.values()
            ]
            rows.append([h / max(1, len(words)) * 10 for h in hits])
        return np.asarray(rows, dtype=float)


def _linear(alpha: float) -> SGDClassifier:
    # Logistic loss for probabilities; SGD trains in seconds where lbfgs took minutes on the
    # 77 classes of Banking77.
    return SGDClassifier(loss="log_loss", alpha=alpha, max_iter=20, tol=None, random_state=0)


def make_pipeline(tier: str) -> Pipeline:
    if tier == "small":
        features: Any = CountVectorizer(max_features=150, binary=True, stop_words="english")
        return Pipeline([("features", features), ("model", MultinomialNB(alpha=1.0))])
    if tier == "medium":
        features = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)
        return Pipeline([("features", features), ("model", _linear(alpha=2e-5))])
    if tier == "large":
        features = FeatureUnion(
            [
                ("words", TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)),
                (
                    "chars",
                    TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), min_df=2, sublinear_tf=True),
                ),
                ("lexicon", LexiconFeatures()),
            ]
        )
        return Pipeline([("features", features), ("model", _linear(alpha=1e-5))])
    raise ValueError(f"unknown tier {tier!r}; expected one of {TIERS}")


def _fingerprint(texts: Sequence[str], labels: Sequence[str]) -> str:
    digest = hashlib.sha256(json.dumps([list(texts), list(labels)]).encode())
    return digest.hexdigest()[:16]


# Caches named ``<tier>-<key>.joblib`` were trained on unredacted tickets: their vocabularies
# hold the names in them. Removed on sight; ``build_models`` now trains on redacted text only.
UNREDACTED_CACHE = re.compile(rf"(?:{'|'.join(TIERS)})-[0-9a-f]{{16}}\.joblib")


def _remove_unredacted(cache_dir: Path) -> None:
    if cache_dir.is_dir():
        for path in cache_dir.iterdir():
            if UNREDACTED_CACHE.fullmatch(path.name):
                path.unlink(missing_ok=True)


def train(
    texts: Sequence[str],
    labels: Sequence[str],
    *,
    cache_dir: Path | None = None,
    tiers: Sequence[str] = TIERS,
) -> dict[str, Pipeline]:
    """Fit (or load from the cache) one pipeline per tier on these examples."""
    key = _fingerprint(texts, labels)
    if cache_dir is not None:
        _remove_unredacted(cache_dir)
    fitted: dict[str, Pipeline] = {}
    for tier in tiers:
        path = cache_dir / f"{tier}-redacted-{key}.joblib" if cache_dir else None
        if path is not None and path.is_file():
            fitted[tier] = joblib.load(path)
            continue
        pipeline = make_pipeline(tier).fit(list(texts), list(labels))
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            joblib.dump(pipeline, path)
        fitted[tier] = pipeline
    return fitted
