"""Recognizers for health data that Presidio lacks: medical record numbers, dates in clinical
notation (``DOB 03/04/1956``, ``[**2101-3-8**]``, ``3/8``, ``MI '92``), names after titles,
relatives and before credentials (``Dr. Lange``, ``wife Janet``, ``Marie Munroe, RN``), and
phone, pager and extension numbers as clinicians write them.

Clinical notes are often all upper-case or all lower-case, where spaCy's NER sees no names; so
names are found from their context, and a candidate word is dropped when it is a common English
or clinical word (``DR JONES AWARE`` gives ``JONES``, not ``AWARE``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from presidio_analyzer import AnalysisExplanation, EntityRecognizer, RecognizerResult
from presidio_analyzer.nlp_engine import NlpArtifacts
from spacy.lang.en.stop_words import STOP_WORDS

MEDICAL_RECORD_NUMBER = "MEDICAL_RECORD_NUMBER"

# Words that follow a title or a relative in clinical prose but are not names.
_NOT_NAMES = frozenset(STOP_WORDS) | frozenset(
    [
        "aware",
        "notified",
        "called",
        "paged",
        "informed",
        "updated",
        "spoke",
        "speak",
        "spoken",
        "talked",
        "talk",
        "visit",
        "visited",
        "visiting",
        "here",
        "there",
        "today",
        "tonight",
        "tomorrow",
        "yesterday",
        "now",
        "later",
        "soon",
        "also",
        "still",
        "again",
        "and",
        "or",
        "but",
        "with",
        "pt",
        "pts",
        "patient",
        "patients",
        "family",
        "fam",
        "team",
        "staff",
        "nurse",
        "nursing",
        "md",
        "mds",
        "np",
        "rn",
        "rrt",
        "resident",
        "intern",
        "attending",
        "fellow",
        "service",
        "ccu",
        "micu",
        "sicu",
        "icu",
        "ed",
        "er",
        "or",
        "floor",
        "unit",
        "hospital",
        "rehab",
        "home",
        "office",
        "note",
        "notes",
        "order",
        "orders",
        "plan",
        "plans",
        "aware.",
        "in",
        "out",
        "up",
        "down",
        "on",
        "off",
        "at",
        "to",
        "from",
        "by",
        "of",
        "for",
        "states",
        "stated",
        "says",
        "said",
        "reports",
        "reported",
        "feels",
        "felt",
        "wants",
        "wanted",
        "asked",
        "asks",
        "made",
        "make",
        "came",
        "come",
        "comes",
        "went",
        "goes",
        "going",
        "left",
        "leaving",
        "arrived",
        "arrives",
        "present",
        "presents",
        "following",
        "follow",
        "followed",
        "regarding",
        "re",
        "about",
        "update",
        "updates",
        "updated",
        "call",
        "calls",
        "phone",
        "cell",
        "number",
        "tel",
        "telephone",
        "pager",
        "beeper",
        "page",
        "ext",
        "work",
        "mobile",
        "contact",
        "contacted",
        "mr",
        "mrs",
        "ms",
        "miss",
        "dr",
        "doctor",
        "drs",
        "pt's",
        "wife",
        "husband",
        "son",
        "sons",
        "daughter",
        "daughters",
        "dtr",
        "brother",
        "brothers",
        "sister",
        "sisters",
        "mother",
        "father",
        "mom",
        "dad",
        "aunt",
        "uncle",
        "niece",
        "nephew",
        "cousin",
        "friend",
        "friends",
        "proxy",
        "hcp",
        "spouse",
        "partner",
        "children",
        "child",
        "kids",
        "grandson",
        "granddaughter",
        "grandaughter",
        "is",
        "was",
        "were",
        "be",
        "been",
        "being",
        "are",
        "has",
        "have",
        "had",
        "will",
        "would",
        "could",
        "should",
        "may",
        "might",
        "can",
        "who",
        "which",
        "that",
        "this",
        "these",
        "those",
        "they",
        "them",
        "their",
        "he",
        "she",
        "his",
        "her",
        "him",
        "it",
        "its",
        "we",
        "our",
        "you",
        "your",
        "not",
        "no",
        "yes",
        "none",
        "all",
        "any",
        "some",
        "each",
        "both",
        "one",
        "two",
        "three",
        "four",
        "five",
        "first",
        "second",
        "last",
        "next",
        "other",
        "very",
        "well",
        "much",
        "more",
        "most",
        "less",
        "least",
        "good",
        "better",
        "best",
        "bad",
        "worse",
        "worst",
        "same",
        "new",
        "old",
        "morning",
        "afternoon",
        "evening",
        "night",
        "noon",
        "overnight",
        "day",
        "days",
        "week",
        "weeks",
        "month",
        "months",
        "year",
        "years",
        "am",
        "pm",
        "hrs",
        "hr",
        "hours",
        "hour",
        "min",
        "mins",
        "minutes",
        "time",
        "times",
        "cardiology",
        "surgery",
        "medicine",
        "neurology",
        "renal",
        "pulmonary",
        "gi",
        "id",
        "ortho",
        "psych",
        "social",
        "sw",
        "cm",
        "case",
        "management",
        "manager",
        "worker",
        "chaplain",
        "clergy",
        "pastor",
        "priest",
        "minister",
        "bp",
        "hr",
        "rr",
        "sat",
        "sats",
        "temp",
        "o2",
        "iv",
        "po",
        "prn",
        "bid",
        "tid",
        "qid",
        "qd",
        "qhs",
        "npo",
    ]
)

_NAME = r"[A-Za-z][A-Za-z'\-]{1,}"
_TITLE = r"(?:(?:mr|mrs|ms|miss|mister|dr|doctor|drs|prof)\.?|pt\.)"
_RELATIVE = (
    r"(?:wife|husband|spouse|partner|son|sons|daughter|daughters|dtr|dau|brother|sister|mother|father|"
    r"mom|dad|aunt|uncle|niece|nephew|cousin|friend|fiance|fiancee|grandson|granddaughter|"
    r"grandaughter|grandchild|sibling|proxy|hcp|in-law|dtr-in-law|son-in-law|daughter-in-law|"
    r"girlfriend|boyfriend|neighbor|neighbour|guardian)"
)
_CREDENTIAL = r"(?:RN|RRT|MD|NP|PA|PA-C|SN|LPN|CRNA|PhD|MSW|LICSW|PT|OT|DO)"

_MONTH = r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\.?"


@dataclass(frozen=True, slots=True)
class _Pattern:
    name: str
    entity: str
    regex: re.Pattern[str]
    score: float
    names: bool = False  # the groups are name words: drop common words, keep the rest


def _p(
    name: str, entity: str, pattern: str, score: float, *, names: bool = False, flags: int = 0
) -> _Pattern:
    return _Pattern(name, entity, re.compile(pattern, flags), score, names)


_I = re.IGNORECASE
PATTERNS: tuple[_Pattern, ...] = (
    # --- medical record numbers ---------------------------------------------------------
    _p(
        "mrn",
        MEDICAL_RECORD_NUMBER,
        r"\b(?:MRN|MR\s?#|med(?:ical)?\s+rec(?:ord)?\.?\s*(?:no\.?|number|#)?|unit\s+(?:no\.?|number)|"
        r"hospital\s+(?:no\.?|number)|chart\s+(?:no\.?|number|#))\s*[:#.]?\s*(?P<phi>[A-Z]{0,3}-?\d[\d-]{3,11}\d)\b",
        0.95,
        flags=_I,
    ),
    # --- dates ----------------------------------------------------------------------------
    _p(
        "dob",
        "DATE_TIME",
        r"\b(?:DOB|D\.O\.B\.?|date\s+of\s+birth|birth\s*date|born(?:\s+on)?)\s*[:#]?\s*"
        rf"(?P<phi>\d{{1,2}}[/.-]\d{{1,2}}[/.-]\d{{2,4}}|\d{{4}}-\d{{1,2}}-\d{{1,2}}|{_MONTH}\s+\d{{1,2}},?\s+\d{{4}})",
        0.95,
        flags=_I,
    ),
    _p("deid_bracket_date", "DATE_TIME", r"\[\*\*(?P<phi>\d{2,4}-\d{1,2}(?:-\d{1,4})?)\*\*\]", 0.95),
    _p("iso_date", "DATE_TIME", r"\b(?P<phi>(?:19|20)\d{2}-\d{1,2}-\d{1,2})\b", 0.85),
    _p(
        "full_date",
        "DATE_TIME",
        r"(?<![\d/.])(?P<phi>(?:0?[1-9]|1[0-2])[/-](?:0?[1-9]|[12]\d|3[01])[/-](?:\d{4}|\d{2}))(?![\d/])",
        0.8,
    ),
    # 3/8, 11/23: month/day as nurses write it. Ratios like 1/2 collide; precision is measured.
    _p(
        "month_day",
        "DATE_TIME",
        r"(?<![\d/.:\w])(?P<phi>(?:0?[1-9]|1[0-2])/(?:0?[1-9]|[12]\d|3[01]))(?![\d/%]|\.\d)",
        0.6,
    ),
    _p("month_year", "DATE_TIME", r"(?<![\d/.])(?P<phi>(?:0?[1-9]|1[0-2])/(?:19|20)?\d{2})(?![\d/])", 0.45),
    _p(
        "month_name_day",
        "DATE_TIME",
        rf"\b(?P<phi>{_MONTH}\s+\d{{1,2}}(?:st|nd|rd|th)?(?:,?\s+\d{{4}})?)\b",
        0.7,
        flags=_I,
    ),
    _p("day_ordinal", "DATE_TIME", r"\b(?P<phi>\d{1,2}(?:st|nd|rd|th))\b(?=\s*(?:,|of\b))", 0.5, flags=_I),
    _p("apostrophe_year", "DATE_TIME", r"(?<![\w'])'(?P<phi>\d{2})\b", 0.6),
    _p(
        "history_year",
        "DATE_TIME",
        r"\b(?:in|since|of|s/p|cabg(?:\s*x\s*\d)?|mi|cva|ptca|redo|pacer|dx|dx'd|diagnosed|surgery|"
        r"stent|avr|mvr|ablation)\s+'?(?P<phi>(?:19|20)\d{2}s?|\d{2})\b(?!\s*(?:%|mg|cc|ml|kg|min|hr|x\b))",
        0.5,
        flags=_I,
    ),
    # --- phone, pager and extension numbers --------------------------------------------
    _p(
        "phone",
        "PHONE_NUMBER",
        r"(?<![\d.])(?P<phi>\(?\d{3}\)?[\s./-]{0,3}\d{3}[\s./-]{0,3}\d{4,5})(?![\d.]\d)",
        0.7,
    ),
    _p("phone_local", "PHONE_NUMBER", r"(?<![\d./-])(?P<phi>\d{3}-\d{4})(?![\d-])", 0.5),
    _p(
        "pager",
        "PHONE_NUMBER",
        r"\b(?:pager|beeper|beep|page|pgr|bpr|cell|tel|phone|ph|home|work|ext|x|#)\s*(?:#|no\.?|number)?\s*[:#]?\s*"
        r"(?P<phi>\d{4,5})\b",
        0.6,
        flags=_I,
    ),
    # --- names from their context --------------------------------------------------------
    _p(
        "titled_name",
        "PERSON",
        rf"\b{_TITLE}\s+(?P<n1>{_NAME})(?:\s+(?P<n2>{_NAME}))?",
        0.85,
        names=True,
        flags=_I,
    ),
    _p(
        "relative_name",
        "PERSON",
        rf"\b{_RELATIVE}(?:'s)?\s*(?:[,:(\-]+\s*|\s+(?:is|named|was|-)\s+)?(?:{_TITLE}\s+)?"
        rf"(?P<n1>{_NAME})(?:\s+(?P<n2>{_NAME}))?",
        0.6,
        names=True,
        flags=_I,
    ),
    _p(
        "signed_name",
        "PERSON",
        rf"(?P<n1>[A-Z][A-Za-z'\-]+)(?:\s+[A-Z]\.)?(?:\s+(?P<n2>[A-Z][A-Za-z'\-]+))?\s*,?\s+{_CREDENTIAL}\b",
        0.7,
        names=True,
    ),
    _p(
        "initial_name",
        "PERSON",
        r"(?<![A-Za-z])[A-Z]\.\s?(?P<n1>[A-Z][A-Za-z'\-]{2,})",
        0.5,
        names=True,
    ),
    _p(
        "reported_to",
        "PERSON",
        rf"\b(?:per|notified|paged|informed|aware|spoke\s+with|talked\s+(?:with|to)|discussed\s+with|"
        rf"seen\s+by|evaluated\s+by|reported\s+to|called)\s+(?:{_TITLE}\s+)?(?P<n1>{_NAME})",
        0.45,
        names=True,
        flags=_I,
    ),
)


def _is_name(word: str) -> bool:
    bare = word.strip("'-").lower()
    return len(bare) >= 2 and bare not in _NOT_NAMES and not bare.isdigit()


def find_clinical(text: str) -> Iterator[tuple[str, int, int, float, str]]:
    """``(entity, start, end, score, pattern)`` for every clinical pattern hit in ``text``."""
    for pattern in PATTERNS:
        for match in pattern.regex.finditer(text):
            if not pattern.names:
                yield pattern.entity, match.start("phi"), match.end("phi"), pattern.score, pattern.name
                continue
            start = end = -1
            for group in ("n1", "n2"):
                if group not in pattern.regex.groupindex or match.group(group) is None:
                    continue
                if not _is_name(match.group(group)):
                    break  # "Dr Jones aware": the name ends at the first common word
                if start < 0:
                    start = match.start(group)
                end = match.end(group)
            if start >= 0:
                yield pattern.entity, start, end, pattern.score, pattern.name


class ClinicalRecognizer(EntityRecognizer):
    """Presidio recognizer for ``PATTERNS``."""

    ENTITIES = (MEDICAL_RECORD_NUMBER, "DATE_TIME", "PHONE_NUMBER", "PERSON")

    def __init__(self) -> None:
        super().__init__(supported_entities=list(self.ENTITIES), name="BandmasterClinicalRecognizer")

    def load(self) -> None:
        """Nothing to load: the patterns are compiled at import."""

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None
    ) -> list[RecognizerResult]:
        wanted = set(entities)
        return [
            RecognizerResult(
                entity,
                start,
                end,
                score,
                analysis_explanation=AnalysisExplanation(self.name, score, pattern_name=name),
                recognition_metadata={
                    RecognizerResult.RECOGNIZER_NAME_KEY: self.name,
                    RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: self.id,
                },
            )
            for entity, start, end, score, name in find_clinical(text)
            if entity in wanted
        ]


def clinical_recognizers() -> list[EntityRecognizer]:
    return [ClinicalRecognizer()]
