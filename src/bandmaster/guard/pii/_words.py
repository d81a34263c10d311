"""Which words and spans can be PHI at all: the dictionary and plausibility checks that keep
the clinical recognizers and spaCy's guesses from redacting ``FOLEY DRAINING``, ``Propofol``,
``0700`` or ``ABG 75/58/7.39``. Webster's 2nd (package ``english-words``) tells common words
from proper nouns; curated lists add clinical abbreviations and drug names it predates."""

from __future__ import annotations

import re
from functools import cache

from spacy.lang.en.stop_words import STOP_WORDS

# Words that follow a title or a relative in clinical prose but are not names.
NOT_NAMES = frozenset(STOP_WORDS) | frozenset(
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
ABBREVIATIONS = frozenset(
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
    return common | NOT_NAMES | ABBREVIATIONS | _DRUGS, proper


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


def all_name_like(span: str) -> bool:
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


# Top-level domains that are not also English words run into a sentence ("weak.no", "today.at").
_URL_SHAPE = re.compile(
    r"(?i)://|\bwww\.|\.(?:com|org|net|edu|gov|mil|int|io|co\.uk|uk|de|fr|se|nl|es|ch|dk|fi|pl|"
    r"cz|hu|ru|jp|cn|au|ca|info|biz)\b"
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


def plausible_shaped_date(span: str) -> bool:
    """A date that also looks like one: spaCy calls doses, rates and zip codes dates."""
    return plausible_date(span) and _DATE_SHAPE.search(span) is not None
