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
from presidio_analyzer.predefined_recognizers import SpacyRecognizer

from bandmaster.guard.pii._words import (
    ABBREVIATIONS,
    NOT_NAMES,
    all_name_like,
    is_common_word,
    plausible_name,
    plausible_shaped_date,
)

MEDICAL_RECORD_NUMBER = "MEDICAL_RECORD_NUMBER"

_NAME = r"[A-Za-z][A-Za-z'\-]{1,}"
_CAP_NAME = r"[A-Z][a-z][A-Za-z'\-]*"  # written as a name: "Ann", "McKay", "O'Hara"
# Not "ms": in notes it is mental status ("monitor MS. Restart ...").
# Titles and roles written before a name; "md"/"ho" as in "per MD Spears", "HO Domenico".
_TITLE = r"(?:mr|mrs|miss|mister|dr|doctor|drs'?|prof|np|md|ho|rabbi|rev)(?:\.\s*|\s+)"
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

# USPS street suffixes (and their common abbreviations): a house number, one to three
# capitalised words and one of these is a street address ("551 Jasmine Courts Suite 014").
_STREET_SUFFIX = (
    r"(?:Alley|Aly|Annex|Arcade|Avenue|Ave|Bayou|Beach|Bend|Bluffs?|Bottom|Boulevard|Blvd|Branch|"
    r"Bridge|Brooks?|Burgs?|Bypass|Camp|Canyon|Cape|Causeway|Centers?|Circles?|Cir|Cliffs?|Club|"
    r"Commons?|Corners?|Course|Courts?|Ct|Coves?|Creek|Crescent|Crest|Crossing|Crossroad|Curve|Dale|"
    r"Dam|Divide|Drives?|Dr|Estates?|Expressway|Extensions?|Falls?|Ferry|Fields?|Flats?|Fords?|Forest|"
    r"Forges?|Forks?|Fort|Freeway|Gardens?|Gateway|Glens?|Greens?|Groves?|Harbors?|Haven|Heights|"
    r"Highway|Hwy|Hills?|Hollow|Inlet|Islands?|Isle|Junctions?|Keys?|Knolls?|Lakes?|Land|Landing|"
    r"Lane|Ln|Lights?|Loaf|Locks?|Lodge|Loop|Mall|Manors?|Meadows?|Mews|Mills?|Mission|Motorway|Mount|"
    r"Mountains?|Neck|Orchard|Oval|Overpass|Parks?|Parkways?|Pkwy|Pass|Passage|Path|Pike|Pines?|Place|"
    r"Pl|Plains?|Plaza|Points?|Ports?|Prairie|Radial|Ramp|Ranch|Rapids?|Rest|Ridges?|River|Roads?|Rd|"
    r"Route|Row|Rue|Run|Shoals?|Shores?|Skyway|Springs?|Spurs?|Squares?|Sq|Station|Stravenue|Stream|"
    r"Streets?|St|Summit|Terrace|Throughway|Trace|Track|Trafficway|Trail|Trailer|Tunnel|Turnpike|"
    r"Underpass|Unions?|Valleys?|Via|Viaduct|Views?|Villages?|Ville|Vista|Walks?|Wall|Ways?|Wells?)"
)


@dataclass(frozen=True, slots=True)
class _Pattern:
    name: str
    entity: str
    regex: re.Pattern[str]
    score: float
    # The groups n1, n2, n3 are name words. "strong" context (a title) drops only the words of
    # NOT_NAMES (Dr. Frost is a name); "weak" context drops every dictionary word too.
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
    # --- street addresses -------------------------------------------------------------------
    _p(
        "street_address",
        "LOCATION",
        rf"(?<![\w/.-])(?P<phi>\d{{1,6}}\s+(?:[A-Z][a-z]+\s+){{1,3}}{_STREET_SUFFIX}\b\.?"
        r"(?:,?\s+(?:Apt|Apartment|Suite|Ste|Unit|#)\.?\s*[A-Za-z0-9-]+)?)",
        0.7,
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
        rf"\b{_TITLE}(?:(?P<init>[A-Z])(?:\.\s*|\s+))?(?=(?P<n1>{_NAME}){_MORE_NAMES})",  # Dr. L. Ruuska
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
    # People name themselves: "This is Ann Lee, ...", "I'm Ann Lee", "my name is ann lee", "Ann
    # Lee here". After "this is" or "I'm" only capitalised words (those also open "this is the
    # third time"); after "my name is" and labels, which say outright that a name follows, any
    # word but a stop word ("my name is on the account").
    _p(
        "self_introduction",
        "PERSON",
        rf"(?<![A-Za-z])(?i:this\s+is|i'?m|i\s+am|speaking\s+with)\s+"
        rf"(?=(?P<n1>{_CAP_NAME})(?:\s+[A-Z]\.)?(?:\s+(?P<n2>{_CAP_NAME}))?)",
        0.6,
        names="weak",
    ),
    _p(
        "stated_name",
        "PERSON",
        rf"\b(?:my\s+name\s+is|my\s+name'?s|name\s+is|(?:patient|pt|full|caller'?s?)\s+name\s*[:\-]|"
        rf"name\s*:|signed\s*:?|(?:i\s+am|i'?m)\s+called)\s*"
        rf"(?=(?P<n1>{_NAME})(?:\s+[a-z]\.)?(?:\s+(?P<n2>{_NAME}))?)",
        0.85,
        names="strong",
        flags=_I,
    ),
    _p(
        "name_here",
        "PERSON",
        # First and last name both: "Transferred here", "Spanish speaking" are no one.
        rf"(?<![A-Za-z])(?=(?P<n1>{_CAP_NAME})\s+(?P<n2>{_CAP_NAME})\s+(?:here|calling|writing)\b)",
        0.5,
        names="weak",
    ),
    # A closing and a name on their own: "Regards, Ann Lee", "Thanks,\nAnn", "-- Ann Lee".
    _p(
        "closing_signature",
        "PERSON",
        rf"(?:(?i:regards|thanks|thank\s+you|sincerely|cheers|best|best\s+wishes|warmly|respectfully|"
        rf"yours(?:\s+truly)?)\s*[,.!]?|^\s*--+|^\s*-)[ \t]*\n?[ \t]*"
        rf"(?=(?P<n1>{_CAP_NAME})(?:\s+[A-Z]\.)?(?:\s+(?P<n2>{_CAP_NAME}))?\s*[.!]?\s*$)",
        0.6,
        names="weak",
        flags=re.MULTILINE,
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
        r"(?<![A-Za-z0-9.])(?P<init>[A-Z])\.\s?(?=(?P<n1>[A-Z][A-Za-z'\-]{2,}))",
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


def _is_name(word: str, strength: str | None, *, mixed_case: bool = False) -> bool:
    bare = word.strip("'-.").lower()
    if strength == "strong":
        return len(bare) >= 2 and bare not in NOT_NAMES and bare not in ABBREVIATIONS
    if len(bare) < 3:
        return False
    # In mixed-case text a capitalised word where a name is expected ("my mother Holly Berger")
    # is a name even when it is also an English word; in all-caps or all-lower text it is not.
    capitalised = word[:1].isupper() and word[1:].islower()
    if mixed_case and capitalised and bare not in NOT_NAMES and bare not in ABBREVIATIONS:
        return True
    return not is_common_word(word)


def _mixed_case(text: str) -> bool:
    letters = [c for c in text if c.isalpha()]
    upper = sum(c.isupper() for c in letters)
    return bool(letters) and 0.02 < upper / len(letters) < 0.5


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
    mixed = _mixed_case(text)
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
            if _is_name(match.group("n1"), pattern.names, mixed_case=mixed):
                start, end = match.span("n1")
                if "init" in pattern.regex.groupindex and match.group("init") is not None:
                    start = match.start("init")  # the initial is part of the name: "E. Welsh"
                n2 = match.group("n2") if "n2" in pattern.regex.groupindex else None
                if n2 is not None and _is_name(n2, pattern.names, mixed_case=mixed):  # "dr. john bowman"
                    end = match.end("n2")
                yield pattern.entity, start, end, pattern.score, pattern.name
            n3 = match.group("n3") if "n3" in pattern.regex.groupindex else None
            if n3 is not None and _is_name(n3, "weak"):  # "Drs Ferullo and Saeed", not "and additional"
                yield pattern.entity, match.start("n3"), match.end("n3"), pattern.score, pattern.name


class ClinicalRecognizer(EntityRecognizer):
    """Presidio recognizer for ``PATTERNS``."""

    ENTITIES = (MEDICAL_RECORD_NUMBER, "DATE_TIME", "PHONE_NUMBER", "PERSON", "LOCATION")
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
                if len(span.split()) in (2, 3) and plausible_name(span) and all_name_like(span):
                    result.entity_type, result.score = "PERSON", 0.5
                    kept.append(result)
                continue
            if result.entity_type in ("PERSON", "LOCATION") and not plausible_name(span):
                continue  # places follow the same rule: "FOLEY DRAINING" is neither
            if result.entity_type == "DATE_TIME" and not plausible_shaped_date(span):
                continue  # spaCy calls doses, rates and zip codes dates ("3mcg", "86036"): keep date shapes
            kept.append(result)
        return kept


def clinical_recognizers() -> list[EntityRecognizer]:
    return [ClinicalRecognizer()]
