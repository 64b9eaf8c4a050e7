"""Company names as the account matcher compares them.

A name is folded (case, accents, `ß`/`æ`/`ø`…, and a second spelling with German and Nordic
letters written out, so "Müller" meets both "Muller" and "Mueller"), split into its forms (the name
itself, a trading name after "t/a", "trading as", "d/b/a", "aka", "formerly", and a bracketed
name such as the "(IBM)" of "International Business Machines (IBM)"), and each form into words:
dotted acronyms joined ("S.A." → "sa", "I.B.M." → "ibm"), `&`/`+`/"and" dropped, common
abbreviations written out ("Intl" → "international", "Mfg" → "manufacturing"), plurals made
singular, and legal forms of many countries set aside (Ltd, Inc, LLC, GmbH, AG, S.A., S.L., B.V.,
N.V., Pty Ltd, Oy, AB, A/S, SARL, S.p.A., KK, Sp. z o.o., …) but remembered, because "Contoso Ltd"
and "Contoso Inc" are usually two legal entities.

Words do not weigh the same: a generic business word ("Group", "Services", "Holdings") or a
particle ("of", "de") says little, a country or region ("UK", "Deutschland", "EMEA") tells
subsidiaries apart but is not the name itself; every other word is the name.

`search_tokens(name)` gives the few distinctive words of a name that are safe inside an OData
string literal and a Dataverse `contains()` (letters and digits only, no quote, `%` or `_`), for a
handler that narrows the CRM accounts before ranking them.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

# Weights of a word in a name (the rest weigh STRONG).
STRONG, REGION, GENERIC, PARTICLE = 1.0, 0.5, 0.35, 0.2

_TRANSLIT = str.maketrans(
    {"ß": "ss", "æ": "ae", "œ": "oe", "ø": "o", "đ": "d", "ð": "d", "þ": "th", "ł": "l", "ı": "i"}
)
# The second spelling: how German and Nordic names are written without their letters.
_WRITTEN_OUT = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ø": "oe", "å": "aa", "æ": "ae"})
_NEEDS_WRITTEN_OUT = frozenset("äöüøåæ")

# Legal forms: canonical spelling → the region whose law it belongs to ("" = several countries).
_LEGAL_REGION = {
    "ltd": "common-law",
    "plc": "common-law",
    "llp": "common-law",
    "inc": "us",
    "corp": "us",
    "llc": "us",
    "pty": "au",
    "pvt": "in",
    "gmbh": "de",
    "ag": "de-ch",
    "kg": "de",
    "ug": "de",
    "ohg": "de",
    "ev": "de",
    "sarl": "fr",
    "sas": "fr",
    "eurl": "fr",
    "sa": "",
    "sl": "es",
    "bv": "nl",
    "nv": "nl-be",
    "bvba": "be",
    "spa": "it",
    "srl": "",
    "oy": "fi",
    "ab": "se",
    "as": "nordic",
    "aps": "dk",
    "kk": "jp",
    "gk": "jp",
    "sdn bhd": "my",
    "pte": "sg",
    "ltda": "br",
    "sp z oo": "pl",
    "sro": "cz-sk",
    "kft": "hu",
    "sa de cv": "mx",
    "sab de cv": "mx",
    "dac": "ie",
    "co": "",
    "se": "",
    "lp": "",
}
# Spellings of a legal form → its canonical spelling.
_LEGAL_SPELLINGS = {
    "limited": "ltd",
    "incorporated": "inc",
    "corporation": "corp",
    "company": "co",
    "mbh": "gmbh",
    "sasu": "sas",
    "slu": "sl",
    "asa": "as",
    "oyj": "oy",
    "sprl": "bvba",
    "kabushiki kaisha": "kk",
    "株式会社": "kk",
    "有限会社": "kk",
    "合同会社": "gk",
    "pty ltd": "pty",
    "pvt ltd": "pvt",
    "private limited": "pvt",
    "pte ltd": "pte",
    "bhd": "sdn bhd",
    "sdn": "sdn bhd",
    "limited liability company": "llc",
    "proprietary limited": "pty",
    "aktiebolag": "ab",
    "publ": "ab",
    "aktiengesellschaft": "ag",
    "sociedad limitada": "sl",
    "sociedad anonima": "sa",
    "societe anonyme": "sa",
    "besloten vennootschap": "bv",
    "naamloze vennootschap": "nv",
    "designated activity company": "dac",
    "sp z o o": "sp z oo",
    "spolka z oo": "sp z oo",
    "osakeyhtio": "oy",
    "public limited company": "plc",
    "有限公司": "ltd",
    "股份有限公司": "ltd",
}
# Legal forms that are also ordinary words or initials ("AG Barr", "AB Foods"): set aside only at
# the end (or, for the few written first, at the start) of a name, never in the middle.
_AMBIGUOUS_LEGAL = frozenset(
    {"co", "ag", "sa", "sas", "sl", "bv", "nv", "spa", "srl", "oy", "ab", "as", "kk", "gk"}
)
_AMBIGUOUS_LEGAL |= frozenset({"kg", "ug", "ohg", "ev", "se", "lp", "pte", "sro", "kft", "ltda", "company"})
_AMBIGUOUS_LEGAL |= frozenset({"asa", "oyj", "aps", "mbh", "slu", "pvt", "sdn", "bhd", "eurl", "dac", "publ"})
# Legal forms of English-speaking countries, which others also use to translate theirs: a Finnish
# "Oy" or a Japanese "K.K." is often written "Ltd" or "Co., Ltd." - the same company.
ENGLISH_REGIONS = frozenset({"common-law", "us", "au", "in", "sg", "ie"})
_LEADING_LEGAL = frozenset({"pt", "ooo", "zao", "oao", "pao", "oy", "ab", "kabushiki kaisha"})
_CJK_LEGAL = ("股份有限公司", "有限公司", "株式会社", "有限会社", "合同会社")

_DROPPED = frozenset({"the", "and", "und", "u", "et"})
_PARTICLES = frozenset({"of", "for", "de", "der", "die", "das", "du", "des", "la", "le", "les", "los", "y"})
_PARTICLES |= frozenset({"e", "en", "og", "och", "ja", "il", "lo", "a"})
_PARTICLES |= frozenset({"las", "van", "von", "del", "da", "di", "do", "dos", "al", "el", "zu", "at", "in"})
# Words that say what kind of company, not which one or in what line of business ("Consulting",
# "Logistics" or "Pharma" tell sister companies apart, so they weigh in full).
_GENERIC = frozenset({"group", "holding", "international", "global", "worldwide", "service", "solution"})
_GENERIC |= frozenset({"system", "technology", "enterprise", "industry", "partner", "venture", "associate"})
_REGIONS = frozenset({"uk", "gb", "us", "usa", "eu", "emea", "apac", "europe", "european", "asia", "america"})
_REGIONS |= frozenset({"nordic", "nordics", "scandinavia", "australia", "anz", "nz", "canada", "ireland"})
_REGIONS |= frozenset({"germany", "deutschland", "france", "spain", "espana", "italy", "italia", "iberia"})
_REGIONS |= frozenset({"netherlands", "nederland", "benelux", "belgium", "belgie", "switzerland", "schweiz"})
_REGIONS |= frozenset({"suisse", "austria", "osterreich", "oesterreich", "poland", "polska", "sweden"})
_REGIONS |= frozenset({"sverige", "norway", "norge", "denmark", "danmark", "finland", "suomi", "japan"})
_REGIONS |= frozenset({"china", "india", "singapore", "hk", "mexico", "brasil", "brazil", "latam", "mea"})
_REGIONS |= frozenset({"africa", "za", "uae", "middle", "east", "north", "south", "west", "scotland"})
_REGIONS |= frozenset({"wales", "england", "britain", "british", "americas", "pacific", "dach", "cee"})

# Abbreviations written out (keys are already singular, see _singular).
_ABBREVIATIONS = {
    "intl": "international",
    "int'l": "international",
    "mfg": "manufacturing",
    "manuf": "manufacturing",
    "svc": "service",
    "srvc": "service",
    "tech": "technology",
    "lab": "laboratory",
    "labs": "laboratory",
    "ctr": "center",
    "centre": "center",
    "grp": "group",
    "hldg": "holding",
    "bro": "brother",
    "assoc": "associate",
    "natl": "national",
    "mgmt": "management",
    "sys": "system",
    "univ": "university",
    "inst": "institute",
    "dept": "department",
    "assn": "association",
    "eng": "engineering",
    "engg": "engineering",
    "pharma": "pharmaceutical",
    "chem": "chemical",
    "elec": "electric",
    "electrical": "electric",
    "mt": "mount",
    "coop": "cooperative",
    "fdn": "foundation",
    "hosp": "hospital",
    "st": "saint",
    "ste": "sainte",
}

_TRADING = re.compile(
    r"[\s,;]+(?:t/a|t\.a\.|trading as|d/b/a|d\.b\.a\.?|dba|a\.k\.a\.?|aka|also known as|formerly|"
    r"previously|operating as|o/a|now)[\s:]+"
)
_BRACKETED = re.compile(r"[(\[{]([^)\]}]*)[)\]}]?")
_BRACKET_LEAD = re.compile(
    r"^(?:t/a|trading as|d/b/a|dba|aka|a\.k\.a\.?|formerly|previously|was|now|operating as)[\s:]+"
)
# How people mark a CRM account no longer in use: "(old)", "- DO NOT USE", "[inactive]", "ZZ Contoso".
# Words such as "old" or "closed" count only bracketed or after a dash ("Old Mutual" is a company).
_RETIRED_WORDS = (
    r"old|inactive|obsolete|duplicate|dup|dupe|deleted|closed|archived?|unused|dnu|do not use|"
    r"dont use|not in use|no longer used|merged|defunct|dissolved|ceased trading|in liquidation"
)
_RETIRED = re.compile(
    rf"[(\[{{][^)\]}}]*\b(?:{_RETIRED_WORDS})\b[^)\]}}]*[)\]}}]?"  # bracketed
    rf"|\s[-–—/:]+\s*(?:[^-–—]*\s)?(?:{_RETIRED_WORDS})\b.*$"  # after a dash, to the end
    r"|\bdo not use\b|\bdon'?t use\b"  # anywhere
    r"|^\s*(?:zz+|xx+)(?=[\s\-_.:]|$)"  # a sorting prefix that sends it to the end of lists
)
_DOTTED = re.compile(r"(?<!\w)(?:\w\.\s?)+\w\b\.?")
_SLASHED = re.compile(r"(?<!\w)(\w)/(\w)(?!\w)")
_APOSTROPHES = re.compile(r"['’`´]")
_WORDS = re.compile(r"[^\W_]+")


@dataclass(frozen=True)
class NameForm:
    """One way the name is written: its words (folded) with their weights, and where it came from."""

    words: tuple[str, ...]
    weights: tuple[float, ...]
    source: str  # "name", "trading name", "bracketed name"
    text: str  # as written, for the reasons
    written: tuple[str, ...] = ()  # each word before abbreviations and plurals, for the reasons

    @property
    def compact(self) -> str:
        """The words run together: "North Wind" and "Northwind" are the same name."""
        return "".join(self.words)

    @property
    def total(self) -> float:
        return sum(self.weights)


@dataclass(frozen=True)
class ParsedName:
    """A name ready to compare: its forms (the first is the name itself) and its legal forms."""

    raw: str
    forms: tuple[NameForm, ...]
    legal: tuple[str, ...]  # canonical legal forms found, e.g. ("ltd",)
    retired: str = ""  # what marks the account as no longer in use, as written ("(old)")

    @property
    def key(self) -> str:
        """The name itself with case, accents, punctuation, legal forms and "The" set aside."""
        return " ".join(self.forms[0].words) if self.forms else ""

    @property
    def regions(self) -> frozenset[str]:
        """Whose law the legal forms belong to (forms used in several countries say nothing)."""
        return frozenset(_LEGAL_REGION[form] for form in self.legal if _LEGAL_REGION.get(form))


def fold(text: str, *, written_out: bool = False) -> str:
    """Case and accents set aside; `written_out` spells "ü" as "ue", "ø" as "oe", "å" as "aa"."""
    text = unicodedata.normalize("NFC", unicodedata.normalize("NFKC", text).casefold())
    if written_out:
        text = text.translate(_WRITTEN_OUT)
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).translate(_TRANSLIT)


def weight_of(word: str) -> float:
    if word in _REGIONS:
        return REGION
    if word in _GENERIC:
        return GENERIC
    if word in _PARTICLES:
        return PARTICLE
    return STRONG


def _singular(word: str) -> str:
    if len(word) < 4 or not word.isascii() or not word.isalpha() or not set(word[:-1]) & set("aeiouy"):
        return word  # short words, numbers and initials ("GLDS") have no plural
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def _canonical_word(word: str) -> str:
    singular = _singular(word)
    return _ABBREVIATIONS.get(word) or _ABBREVIATIONS.get(singular) or singular


def _legal_suffix(words: list[str]) -> tuple[int, str] | None:
    """The legal form ending `words`: how many words it takes and its canonical spelling."""
    for size in (4, 3, 2):
        if len(words) > size:
            tail = " ".join(words[-size:])
            canonical = _LEGAL_SPELLINGS.get(tail, tail)
            if canonical in _LEGAL_REGION and (tail in _LEGAL_REGION or tail in _LEGAL_SPELLINGS):
                return size, canonical
    if len(words) > 1:
        last = words[-1]
        canonical = _LEGAL_SPELLINGS.get(last, last)
        if canonical in _LEGAL_REGION:
            return 1, canonical
    return None


def _set_legal_aside(words: list[str]) -> tuple[list[str], list[str]]:
    """The words without their legal forms, and the forms (never every word: "AG" stays "AG")."""
    legal: list[str] = []
    while (found := _legal_suffix(words)) is not None:
        size, canonical = found
        legal.append(canonical)
        del words[-size:]
    while len(words) > 1 and words[0] in _LEADING_LEGAL:
        legal.append(_LEGAL_SPELLINGS.get(words[0], words[0]))
        del words[0]
    if len(words) > 2 and " ".join(words[:2]) in _LEADING_LEGAL:
        legal.append("kk")
        del words[:2]
    kept = []
    for i, word in enumerate(words):
        canonical = _LEGAL_SPELLINGS.get(word, word)
        unambiguous = (
            canonical in _LEGAL_REGION and word not in _AMBIGUOUS_LEGAL and canonical not in _AMBIGUOUS_LEGAL
        )
        if unambiguous and i > 0:  # never the first word: "Limited Editions" is a name
            legal.append(canonical)
        else:
            kept.append(word)
    return kept, legal


def _words(folded: str) -> tuple[list[str], list[str]]:
    text = folded
    legal: list[str] = []
    for form in _CJK_LEGAL:
        if form in text and text.replace(form, "").strip():
            legal.append(_LEGAL_SPELLINGS[form])
            text = text.replace(form, " ")
    text = _APOSTROPHES.sub("", text)
    text = _DOTTED.sub(lambda m: re.sub(r"[.\s]", "", m.group()), text)
    text = _SLASHED.sub(r"\1\2", text)
    every = _WORDS.findall(text.replace("&", " and ").replace("+", " and "))
    raw = [w for w in every if w not in _DROPPED] or every  # a name "The" is still a name
    kept, more_legal = _set_legal_aside(raw)
    return kept, legal + more_legal


def _form(text: str, folded: str, source: str) -> tuple[NameForm | None, list[str]]:
    written, legal = _words(folded)
    if not written:
        return None, legal
    words = tuple(_canonical_word(w) for w in written)
    return NameForm(words, tuple(weight_of(w) for w in words), source, text.strip(), tuple(written)), legal


def _is_qualifier(folded: str) -> bool:
    """A bracketed "(UK)", "(Pty)" or "(Holdings)" qualifies the name; "(IBM)" is another name."""
    words, _ = _words(folded)
    return all(_is_legal(w) or weight_of(_canonical_word(w)) < STRONG for w in words)


def _is_legal(word: str) -> bool:
    return _LEGAL_SPELLINGS.get(word, word) in _LEGAL_REGION


def _split(raw: str, folded: str) -> list[tuple[str, str, str]]:
    """(text as written, folded text to read, source) of each form of the name."""
    parts = _TRADING.split(folded)
    shown = re.split(_TRADING.pattern, raw, flags=re.IGNORECASE)
    if len(shown) != len(parts):
        shown = parts
    names: list[tuple[str, str, str]] = []
    bracketed_names: list[tuple[str, str, str]] = []
    for index, (text, part) in enumerate(zip(shown, parts, strict=True)):
        inline = part
        for bracketed in _BRACKETED.findall(part):
            inner = _BRACKET_LEAD.sub("", bracketed.strip())
            if inner and not _is_qualifier(inner):
                bracketed_names.append((inner, inner, "bracketed name"))
                inline = inline.replace(bracketed, " ")
        inline = _BRACKETED.sub(lambda m: f" {m.group(1)} ", inline)
        names.append(
            (_BRACKETED.sub("", text).strip() or text, inline, "name" if index == 0 else "trading name")
        )
    return names + bracketed_names


@lru_cache(maxsize=16384)
def parse_name(raw: str) -> ParsedName:
    """The forms of a name (the name itself first) and its legal forms; cached, as the same CRM
    accounts are compared with every provider account."""
    forms: list[NameForm] = []
    legal: list[str] = []
    marks = [m.group().strip() for m in _RETIRED.finditer(unicodedata.normalize("NFC", raw.casefold()))]
    name = _RETIRED.sub(" ", raw) if marks else raw
    if not _WORDS.search(name):
        name, marks = raw, []  # nothing but the mark: a name after all
    spellings = [_RETIRED.sub(" ", fold(raw)) if marks else fold(raw)]
    if _NEEDS_WRITTEN_OUT & set(unicodedata.normalize("NFC", raw.casefold())):
        spellings.append(
            _RETIRED.sub(" ", fold(raw, written_out=True)) if marks else fold(raw, written_out=True)
        )
    for spelling in spellings:
        for text, folded, source in _split(name, spelling):
            form, found = _form(text, folded, source)
            legal.extend(found)
            if form is not None and form.words not in [f.words for f in forms]:
                forms.append(form)
    forms.sort(key=lambda f: f.source != "name")  # the name itself first, stable otherwise
    return ParsedName(raw, tuple(forms), tuple(dict.fromkeys(legal)), " ".join(marks))


def normalised_name(name: str) -> str:
    """The words of a name as written, with case, accents, punctuation, legal forms and "The" set
    aside: "The O'Brien Toys Ltd." → "o brien toys". Every word is part of the written name (for a
    `contains()` search); the matcher compares `ParsedName.key`, which also writes out abbreviations
    and makes plurals singular."""
    text = _SLASHED.sub(r"\1\2", _DOTTED.sub(lambda m: re.sub(r"[.\s]", "", m.group()), fold(name)))
    words = [w for w in _WORDS.findall(text) if w not in _DROPPED]
    kept, _ = _set_legal_aside(words)
    return " ".join(kept)


def search_tokens(name: str, limit: int = 3) -> tuple[str, ...]:
    """The most distinctive words of `name` for a `contains(name, '…')` prefilter. Each is a piece
    of the name as written (case folded, accents kept, which Dataverse's case- and
    accent-insensitive collation matches), at least three characters, letters and digits only, so
    safe in an OData literal and a SQL LIKE; legal forms, generic words ("Group"), regions and
    particles left out; longest first. Empty when none is usable (then filter on the domain, or
    rank every account)."""
    written = _WORDS.findall(unicodedata.normalize("NFC", name).casefold())
    tokens = [
        w
        for w in dict.fromkeys(written)
        if len(w) >= 3
        and w not in _DROPPED
        and not _is_legal(fold(w))
        and weight_of(_canonical_word(fold(w))) == STRONG
    ]
    return tuple(sorted(tokens, key=lambda w: (-len(w), w))[:limit])
