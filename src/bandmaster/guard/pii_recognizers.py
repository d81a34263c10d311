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
from functools import cache

from presidio_analyzer import AnalysisExplanation, EntityRecognizer, RecognizerResult
from presidio_analyzer.nlp_engine import NlpArtifacts
from presidio_analyzer.predefined_recognizers import SpacyRecognizer
from spacy.lang.en.stop_words import STOP_WORDS

MEDICAL_RECORD_NUMBER = "MEDICAL_RECORD_NUMBER"

# Words that follow a title or a relative in clinical prose but are not names.
_NOT_NAMES = frozenset(STOP_WORDS) | frozenset(
    """
    aware notified called paged informed updated spoke speak spoken talked talk visit visited
    visiting here there today tonight tomorrow yesterday now later soon also still again and or but
    with pt pts patient patients family fam team staff nurse nursing md mds np rn rrt resident
    intern attending fellow service ccu micu sicu icu ed er or floor unit hospital rehab home
    office note notes order orders plan plans aware. in out up down on off at to from by of for
    states stated says said reports reported feels felt wants wanted asked asks made make came come
    comes went goes going left leaving arrived arrives present presents following follow followed
    regarding re about update updates updated call calls phone cell number tel telephone pager
    beeper page ext work mobile contact contacted mr mrs ms miss dr doctor drs pt's wife husband
    son sons daughter daughters dtr brother brothers sister sisters mother father mom dad aunt
    uncle niece nephew cousin friend friends proxy hcp spouse partner children child kids grandson
    granddaughter grandaughter is was were be been being are has have had will would could should
    may might can who which that this these those they them their he she his her him it its we our
    you your not no yes none all any some each both one two three four five first second last next
    other very well much more most less least good better best bad worse worst same new old morning
    afternoon evening night noon overnight day days week weeks month months year years am pm hrs hr
    hours hour min mins minutes time times cardiology surgery medicine neurology renal pulmonary gi
    id ortho psych social sw cm case management manager worker chaplain clergy pastor priest
    minister bp hr rr sat sats temp o2 iv po prn bid tid qid qd qhs npo
        girlfriend boyfriend neice niece nephew caseworker caregiver approx dispo desat afeb sxn sx'd
    neurosurg trach plt
    """.split()  # noqa: SIM905 (a word list reads better as text)
)

# Clinical abbreviations that look like surnames to a dictionary (not in it, short, capitalised).
_ABBREVIATIONS = frozenset(
    """
    abg abx antibx asa bipap bs bun cabg cath cbc chf ci co copd cpap cr cv cvp cxr dnr dni dvt ecg
    ekg ett gtt hct hgb ho htn icp inr ivf kcl lasix lfts mae map mgso4 mrsa neo ngt nippv nitro
    nsr ntg ogt pa pap peep pnx ppi prbc psv pvc rij rll rml rul sbp sob svo2 tf tpn uop vap vanco
    vent vs wbc npn nsg csru tsicu nsicu ctsicu pacu or micu ccu sicu echo neuro resp gu gi derm
    carevue flowsheet riss ss ent picc aline fsbs qtc huo abd ausc sx sxn sxd fx ivp
    """.split()  # noqa: SIM905
)


# Drugs and devices an ICU note capitalises like names (Webster's 2nd predates most of them).
_DRUGS = frozenset(
    """
    propofol ativan captopril nipride milrinone labetalol labetelol dopamine dopa dobutamine levophed
    levo neo neosynephrine vasopressin pitressin fentanyl morphine versed midazolam haldol lasix
    heparin insulin amiodarone lopressor metoprolol precedex droperidol permacath peg picc
    integrilin nitroglycerin nitro ntg tylenol dilaudid zosyn vanco vancomycin flagyl levaquin
    coumadin protonix pepcid reglan ativan lorazepam solumedrol synthroid digoxin diltiazem
    cardizem esmolol hydralazine isordil combivent albuterol atrovent xopenex lovenox plavix
    aspirin kcl kayexalate lactulose colace senna dulcolax ceftriaxone cefazolin cipro bactrim
    diflucan acyclovir natrecor nesiritide primacor dextrose foley swan aline cvvhd cvvhdf
    """.split()  # noqa: SIM905
)
# A word shaped like a drug name: -pril, -olol, -azole and friends.
_DRUG_SUFFIX = re.compile(
    r"(?i)(?:pril|olol|ofol|azole|mycin|cillin|statin|sartan|dipine|parin|tidine|oxacin|cycline|"
    r"semide|zepam|zolam|triptan|afil|mab|nib|vir)$"
)


@cache
def _dictionary() -> tuple[frozenset[str], frozenset[str]]:
    """``(common words, proper nouns)`` from Webster's 2nd (package ``english-words``): a word
    listed only capitalised (Anderson, Helen) is a proper noun; one listed lower-case and never
    capitalised (aware, wean) is a common word. Loaded once, on first use (~0.4 s)."""
    from english_words import get_english_words_set

    words = get_english_words_set(["web2"], lower=False, alpha=True)
    proper = frozenset(w.lower() for w in words if w[:1].isupper())
    common = frozenset(w for w in words if w.islower()) - proper
    return common | _NOT_NAMES | _ABBREVIATIONS | _DRUGS, proper


_SUFFIXES = ("'s", "s", "es", "ed", "d", "ing", "ly", "er", "ers")


def is_common_word(word: str) -> bool:
    """A dictionary word, an inflection of one (``members``, ``discouraged``: the dictionary
    lists base forms), or a hyphenated compound with one (``in-law``, ``CALLED-UPDATE``)."""
    bare = word.strip("'-.").lower()
    if len(bare) < 2 or bare.isdigit():
        return True
    if "-" in bare:
        return any(is_common_word(part) for part in bare.split("-") if part)
    common = _dictionary()[0]
    if bare in common:
        return True
    if bare.endswith("ies") and bare[:-3] + "y" in common:  # denies, replies
        return True
    for suffix in _SUFFIXES:
        if bare.endswith(suffix) and len(bare) - len(suffix) >= 3:
            base = bare[: -len(suffix)]
            # stopped -> stopp -> stop; placed -> plac -> place
            if base in common or base + "e" in common or (base[-1] == base[-2] and base[:-1] in common):
                return True
    return False


def plausible_name(span: str) -> bool:
    """Whether ``span`` can be a person's name: one to four words, not all of them common
    words, and, unless written as a name (``John Smith``), none of them common."""
    words = re.findall(r"[A-Za-z][A-Za-z'\-]+", span)  # initials (Robert V. Smith) say nothing
    if not words or len(words) > 4:
        return False
    if any(c.isdigit() for c in span) or span.islower():
        return False  # "250cc", "mA 19"; lower-case names are left to the context patterns
    if len(words) == 1 and words[0].isupper() and len(words[0]) <= 3:
        return False  # HUO, QTC: abbreviations
    if any(_DRUG_SUFFIX.search(w) for w in words):
        return False  # Captopril, Labetalol
    common = [w for w in words if is_common_word(w)]
    if len(common) == len(words):
        return False
    titled = all(w[0].isupper() and not w.isupper() for w in words)
    return titled or not common


def _all_name_like(span: str) -> bool:
    return all(w[:1].isupper() and not is_common_word(w) for w in span.split())


_MONTH_WORD = re.compile(r"(?i)\b(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\b")
# 10:30, 7pm, and 4-digit clock times on the quarter hour (1900, 0730); 1956 or 2006 stay years.
_TIME_ONLY = re.compile(
    r"(?i)^\s*(?:\d{1,2}:\d{2}\s*(?:am|pm|a|p)?|\d{1,2}\s*(?:am|pm|a|p)|[012]\d(?:00|15|30|45)(?:\s*hrs?)?)\s*$"
)


_DATE_SHAPE = re.compile(
    r"(?i)\b(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\b|\b(?:19|20)\d{2}\b|"
    r"\b\d{1,2}/\d{1,2}\b|\b\d{1,2}-\d{1,2}-\d{2,4}\b"
)


def plausible_phone(span: str) -> bool:
    """Not lab values or ranges read as phone numbers: ABG 75/58/7.39, BP 136-148/71-75,
    0330-0700."""
    if "." in span or ("/" in span and "-" in span):
        return False
    return re.fullmatch(r"\s*\d{4}\s*-\s*\d{4}\s*", span) is None


_URL_SHAPE = re.compile(
    r"(?i)://|\bwww\.|\.(?:com|org|net|edu|gov|mil|int|io|co|uk|de|fr|se|nl|it|es|ch|at|be|dk|no|fi|pl|"
    r"cz|hu|ru|jp|cn|in|au|ca|us|info|biz)\b"
)


def plausible_url(span: str) -> bool:
    """A URL has a scheme, www or a real top-level domain; ``pt.has`` (a missing space) has none."""
    return _URL_SHAPE.search(span) is not None


def plausible_date(span: str) -> bool:
    """Dates, not times or relative words: HIPAA's identifiers are dates (``3/8``, ``March 8``);
    ``today``, ``overnight`` and ``1900`` (a clock time in a nursing note) identify nobody."""
    if not (any(c.isdigit() for c in span) or _MONTH_WORD.search(span)):
        return False
    return not _TIME_ONLY.match(span)


_NAME = r"[A-Za-z][A-Za-z'\-]{1,}"
# Not "ms": in notes it is mental status ("monitor MS. Restart ...").
_TITLE = r"(?:mr|mrs|miss|mister|dr|doctor|drs'?|prof|np)(?:\.\s*|\s+)"
_RELATIVE = (
    r"(?:wife|husband|spouse|partner|son|sons|daughter|daughters|dtr|dau|brother|sister|mother|father|"
    r"mom|dad|aunt|uncle|niece|nephew|cousin|friend|fiance|fiancee|grandson|granddaughter|"
    r"grandaughter|grandchild|sibling|proxy|hcp|in-law|dtr-in-law|son-in-law|daughter-in-law|"
    r"girlfriend|boyfriend|neighbor|neighbour|guardian|"
    # people around the patient whose names nurses write down
    r"caseworker|caregiver|case\s+manager|social\s+worker|resident|intern|chaplain|interpreter|pcp)\b"
)
# Not PT, PA, OT: in upper-case notes those are the patient, a PA line, and so on.
_CREDENTIAL = r"(?:RN|RRT|CRT|MD|NP|PA-C|LPN|CRNA|PhD|MSW|LICSW|BSN|SRN|RNC)"

# After the first name word: an optional second one (not "and"), then "and <name>" (Drs Ferullo
# and Saeed, daughters sarah and margie). Inside a lookahead, so a rejected word is not consumed.
_MORE_NAMES = rf"(?:\s+(?!(?:and|&)\b)(?P<n2>{_NAME}))?(?:\s+(?:and|&)\s+(?:{_TITLE})?(?P<n3>{_NAME}))?"

_MONTH = r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\.?"


@dataclass(frozen=True, slots=True)
class _Pattern:
    name: str
    entity: str
    regex: re.Pattern[str]
    score: float
    # The groups n1, n2, n3 are name words. "strong" context (a title) drops only the words of
    # _NOT_NAMES (Dr. Frost is a name); "weak" context drops every dictionary word too.
    names: str | None = None


def _p(
    name: str, entity: str, pattern: str, score: float, *, names: str | None = None, flags: int = 0
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
        r"(?<![\d/:\w])(?<!\d\.)(?P<phi>(?:0?[1-9]|1[0-2])/(?:0?[1-9]|[12]\d|3[01]))(?![\d/%]|\.\d)",
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
    _p("year_apostrophe", "DATE_TIME", r"(?<![\w'])(?P<phi>\d{2})'(?!\w)", 0.5),  # "CVA 74'."
    _p(
        "history_year",
        "DATE_TIME",
        r"\b(?:in|since|of|s/p|cabg(?:\s*x\s*\d)?|mi|cva|ptca|redo|pacer|dx|dx'd|diagnosed|surgery|"
        r"stent|avr|mvr|ablation)\s+'?(?P<phi>(?:19|20)\d{2}s?)\b(?!\s*(?:%|mg|cc|ml|kg|min|hr|x\b))",
        0.5,
        flags=_I,
    ),
    # "CABG 81, redo 84": two-digit years, only right after a procedure or diagnosis.
    _p(
        "history_short_year",
        "DATE_TIME",
        r"\b(?:s/p|cabg(?:\s*x\s*\d)?|mi|nqwmi|cva|ptca|redo|pacer|dx'd|diagnosed|stent|avr|mvr|ablation|"
        r"repair|resection|cholecystectomy|appy|turp|tah)\s+'?(?P<phi>\d{2})\b(?!\s*(?:%|mg|cc|ml|kg|min|hr|x\b|'s))",
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
    # International and odd groupings ("Phone: 60-56-85-91", "655 437 108 office"): only next
    # to a label, and with at least 7 digits (checked in find_clinical).
    _p(
        "labelled_phone",
        "PHONE_NUMBER",
        r"\b(?:phone|mobile|mob|tel|telephone|fax|desk|cell|cellphone|call\s+me\s+(?:on|at)|answering\s+at|"
        r"reached\s+at|reach\s+me\s+at|messages\s+to|registered)\s*(?:#|no\.?|number)?\s*[:#]?\s*"
        r"(?P<phi>\+?\(?\d[\d \t().\-]{5,17}\d(?:\s*x\d{1,5})?)",
        0.6,
        flags=_I,
    ),
    _p(
        "phone_then_label",
        "PHONE_NUMBER",
        r"(?<![\w.])(?P<phi>\+?\(?\d[\d \t().\-]{5,17}\d)[ \t]*-?(?:office|mobile|home|cell|fax|work)\b",
        0.6,
        flags=_I,
    ),
    _p(
        "pager",
        "PHONE_NUMBER",
        r"\b(?:pager|beeper|beep|page|pgr|pg|bpr|cell|tel|phone|ph|home|work|ext|#)[\s:#]*(?:no\.?|number)?[\s:#]*"
        r"(?P<phi>\d{4,5})\b",
        0.6,
        flags=_I,
    ),
    # --- names from their context --------------------------------------------------------
    _p(
        "titled_name",
        "PERSON",
        rf"\b{_TITLE}(?=(?P<n1>{_NAME}){_MORE_NAMES})",
        0.9,
        names="strong",
        flags=_I,
    ),
    _p(
        "relative_name",
        "PERSON",
        rf"\b{_RELATIVE}(?:'s)?\s*(?:[,:(\x22\-]+\s*|\s+(?:is|named|was|-)\s+)?(?:{_TITLE})?"
        rf"(?=(?P<n1>{_NAME}){_MORE_NAMES})",
        0.6,
        names="weak",
        flags=_I,
    ),
    _p(
        "signed_name",
        "PERSON",
        rf"(?<![A-Za-z0-9])(?=(?P<n1>[A-Z][A-Za-z'\-]+)(?:\s+[A-Z]\.)?(?:\s+(?P<n2>[A-Z][A-Za-z'\-]+))?"
        rf"\s*,?\s+{_CREDENTIAL}\b\s*(?:[\n/,.;)]|$))",  # a signature ends its line
        0.7,
        names="strong",
    ),
    _p(
        "signature_line",
        "PERSON",
        rf"^[ \t]*(?=(?P<n1>{_NAME})(?:\s+[a-z]\.)?\s+(?P<n2>{_NAME})\s*,?\s+{_CREDENTIAL}\b)",
        0.7,
        names="strong",
        flags=_I | re.MULTILINE,
    ),
    _p(
        "initial_signature",
        "PERSON",
        rf"(?<![A-Za-z])[a-z]\.\s*(?=(?P<n1>{_NAME})\s*,?\s+{_CREDENTIAL}\b)",
        0.7,
        names="strong",
        flags=_I,
    ),
    _p(
        "name_then_relation",
        "PERSON",
        rf"(?<![A-Za-z])(?=(?P<n1>{_NAME})(?:\s+(?P<n2>{_NAME}))?\s*\(\s*{_RELATIVE})",
        0.6,
        names="weak",
        flags=_I,
    ),
    _p(
        "initial_name",
        "PERSON",
        r"(?<![A-Za-z0-9.])[A-Z]\.\s?(?=(?P<n1>[A-Z][A-Za-z'\-]{2,}))",
        0.5,
        names="weak",
    ),
    _p(
        "reported_to",
        "PERSON",
        rf"\b(?:per|notified|paged|informed|aware|spoke\s+with|talked\s+(?:with|to)|discussed\s+with|"
        rf"seen\s+by|evaluated\s+by|reported\s+to|called|page)\s+(?:{_TITLE})?(?=(?P<n1>{_NAME}))",
        0.45,
        names="weak",
        flags=_I,
    ),
    _p(
        "name_then_verb",
        "PERSON",
        rf"(?<![A-Za-z])(?=(?P<n1>{_NAME})(?:\s+(?P<n2>{_NAME}))?\s+(?:aware|notified|called|paged|"
        rf"updated|in\s+to\s+(?:see|visit|evaluate)|visited|at\s+bedside)\b)",
        0.45,
        names="weak",
        flags=_I,
    ),
)


def _is_name(word: str, strength: str | None) -> bool:
    bare = word.strip("'-.").lower()
    if strength == "strong":
        return len(bare) >= 2 and bare not in _NOT_NAMES and bare not in _ABBREVIATIONS
    return len(bare) >= 3 and not is_common_word(word)


# A slash pair that is a setting or a score, not a date: pain 8/10, BiPAP 10/5, strength 5/5.
_NOT_A_DATE_BEFORE = re.compile(
    r"(?i)(?:pain|bipap|bi-pap|cpap|psv|ps|peep|flowby|vent|settings|strength|motor|scale|#|x)\W{0,3}$"
)
_NOT_A_DATE_AFTER = re.compile(r"(?i)^\s?(?:bipap|cpap|peep|ps\b|cm|ns\b|strength|hr\b|h2o)")
_FRACTIONS = frozenset({"1/2", "1/3", "1/4", "2/3", "3/4"})


def _setting_not_date(text: str, match: re.Match[str]) -> bool:
    start, end = match.span("phi")
    return (
        match.group("phi") in _FRACTIONS
        or _NOT_A_DATE_BEFORE.search(text[max(0, start - 12) : start]) is not None
        or _NOT_A_DATE_AFTER.match(text[end : end + 10]) is not None
    )


def find_clinical(text: str) -> Iterator[tuple[str, int, int, float, str]]:
    """``(entity, start, end, score, pattern)`` for every clinical pattern hit in ``text``."""
    for pattern in PATTERNS:
        for match in pattern.regex.finditer(text):
            if pattern.name == "month_day" and _setting_not_date(text, match):
                continue
            if pattern.name in ("labelled_phone", "phone_then_label") and (
                sum(c.isdigit() for c in match.group("phi")) < 7
            ):
                continue
            if not pattern.names:
                yield pattern.entity, match.start("phi"), match.end("phi"), pattern.score, pattern.name
                continue
            # "Dr Jones aware": the name ends at the first common word.
            if _is_name(match.group("n1"), pattern.names):
                start, end = match.span("n1")
                n2 = match.group("n2") if "n2" in pattern.regex.groupindex else None
                if n2 is not None and _is_name(n2, pattern.names):  # "dr. john bowman"
                    end = match.end("n2")
                yield pattern.entity, start, end, pattern.score, pattern.name
            n3 = match.group("n3") if "n3" in pattern.regex.groupindex else None
            if n3 is not None and _is_name(n3, "weak"):  # "Drs Ferullo and Saeed", not "and additional"
                yield pattern.entity, match.start("n3"), match.end("n3"), pattern.score, pattern.name


class ClinicalRecognizer(EntityRecognizer):
    """Presidio recognizer for ``PATTERNS``."""

    ENTITIES = (MEDICAL_RECORD_NUMBER, "DATE_TIME", "PHONE_NUMBER", "PERSON")
    NAME = "BandmasterClinicalRecognizer"

    def __init__(self) -> None:
        super().__init__(supported_entities=list(self.ENTITIES), name=self.NAME)

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
                analysis_explanation=AnalysisExplanation(self.NAME, score, pattern_name=name),
                recognition_metadata={
                    RecognizerResult.RECOGNIZER_NAME_KEY: self.NAME,
                    RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: self.id,
                },
            )
            for entity, start, end, score, name in find_clinical(text)
            if entity in wanted
        ]


class PlausibleSpacyRecognizer(SpacyRecognizer):
    """Presidio's spaCy NER without the guesses that cannot be PHI: on upper- or lower-case
    clinical notes spaCy tags phrases like ``FOLEY DRAINING`` as people, and ``today`` or ``0700``
    as dates. Filtered here, before Presidio merges overlaps, so a bad wide guess (``DAUGHTER
    JANE``) cannot swallow a good narrow detection (``JANE``)."""

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None
    ) -> list[RecognizerResult]:
        wanted = set(entities)
        asked = list(wanted | {"ORGANIZATION"}) if "PERSON" in wanted else entities
        results: list[RecognizerResult] = super().analyze(text, asked, nlp_artifacts)
        kept = []
        for result in results:
            span = text[result.start : result.end]
            if result.entity_type == "ORGANIZATION" and "ORGANIZATION" not in wanted:
                # The small English model often calls a person an organisation ("Tomomi
                # Nishiyama lives at ..."): two or three name-like words become a PERSON.
                if len(span.split()) in (2, 3) and plausible_name(span) and _all_name_like(span):
                    result.entity_type, result.score = "PERSON", 0.5
                    kept.append(result)
                continue
            if result.entity_type in ("PERSON", "LOCATION") and not plausible_name(span):
                continue  # places follow the same rule: "FOLEY DRAINING" is neither
            if result.entity_type == "DATE_TIME" and not (plausible_date(span) and _DATE_SHAPE.search(span)):
                continue  # spaCy calls doses, rates and zip codes dates ("3mcg", "86036"): keep date shapes
            kept.append(result)
        return kept


def clinical_recognizers() -> list[EntityRecognizer]:
    return [ClinicalRecognizer()]
