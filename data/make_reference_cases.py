"""Writes data/reference-cases.jsonl: labelled cases for `python -m diagnostics references evaluate`.

    python data/make_reference_cases.py            # seed 365, the shipped file
    python data/make_reference_cases.py --seed 7 --cases 400 --out /tmp/more.jsonl

Each case is a provider account (the customer as Microsoft knows it: a name, often a domain), the
CRM accounts a handler's prefilter would bring back (they share a word with it, as a
`contains(name, …)` search returns them), and the answer: the CRM account of the same legal entity,
or null when the CRM has none. The labels follow from how a case is built, as a reviewer who knows
the customers would label them:
- a CRM account typed by a person (suffix spelled out or left off, capitals, accents dropped or
  written out, "&"/"and", "The", abbreviations, a typo, a trading or former name) is still the
  customer;
- a sister company ("Contoso Pharma" for "Contoso Foods"), the parent of a subsidiary ("Contoso
  Inc" for "Contoso UK Ltd") or a namesake in another country (a different web domain and legal
  form) is a different customer: null unless the customer's own account is there too.
Left out on purpose: namesakes with nothing to tell them apart (the same name, no domain on either
side). A reviewer tells those apart from an address or a tax number the matcher never sees; a
matcher cannot, and a labelled set cannot honestly score it on them.

The hand-written cases at the end (HAND_WRITTEN) are the hard ones met in real CRM data.
"""

from __future__ import annotations

import argparse
import json
import random
import unicodedata
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent / "reference-cases.jsonl"

# Country → (legal forms as CRM records them, ways the same form is also written, web suffix).
COUNTRIES: dict[str, tuple[list[str], dict[str, list[str]], str]] = {
    "uk": (
        ["Ltd", "Limited", "PLC"],
        {
            "Ltd": ["Limited", "Ltd.", "LTD", "ltd"],
            "Limited": ["Ltd", "Ltd."],
            "PLC": ["plc", "Public Limited Company"],
        },
        "co.uk",
    ),
    "us": (
        ["Inc.", "LLC", "Corporation"],
        {
            "Inc.": ["Inc", ", Inc.", "Incorporated", "INC"],
            "LLC": ["L.L.C.", "llc", ", LLC"],
            "Corporation": ["Corp.", "Corp", "CORPORATION"],
        },
        "com",
    ),
    "de": (
        ["GmbH", "AG", "GmbH & Co. KG"],
        {"GmbH": ["Gmbh", "GMBH", "mbH"], "AG": ["AG."], "GmbH & Co. KG": ["GmbH & Co KG", "GmbH u. Co. KG"]},
        "de",
    ),
    "fr": (
        ["SAS", "SARL", "S.A."],
        {"SAS": ["S.A.S.", "sas"], "SARL": ["S.A.R.L.", "Sarl"], "S.A.": ["SA"]},
        "fr",
    ),
    "es": (["S.L.", "S.A."], {"S.L.": ["SL", "S.L.U.", "Sociedad Limitada"], "S.A.": ["SA", "S. A."]}, "es"),
    "nl": (["B.V.", "N.V."], {"B.V.": ["BV", "B.V", "bv"], "N.V.": ["NV"]}, "nl"),
    "se": (["AB"], {"AB": ["Aktiebolag", "(publ)"]}, "se"),
    "dk": (["A/S", "ApS"], {"A/S": ["AS", "A.S."], "ApS": ["Aps", "APS"]}, "dk"),
    "fi": (["Oy", "Oyj"], {"Oy": ["OY", "Ltd"], "Oyj": ["Oy", "Plc"]}, "fi"),
    "it": (["S.p.A.", "S.r.l."], {"S.p.A.": ["SpA", "S.P.A.", "Spa"], "S.r.l.": ["Srl", "SRL"]}, "it"),
    "au": (
        ["Pty Ltd"],
        {"Pty Ltd": ["Pty. Ltd.", "Pty Limited", "PTY LTD", "Proprietary Limited"]},
        "com.au",
    ),
    "jp": (["K.K."], {"K.K.": ["KK", "Kabushiki Kaisha", "Co., Ltd."]}, "co.jp"),
    "pl": (["Sp. z o.o."], {"Sp. z o.o.": ["sp. z o. o.", "Sp. z o.o", "SP. Z O.O."]}, "pl"),
    "ie": (["Limited", "DAC"], {"Limited": ["Ltd", "Ltd."], "DAC": ["Designated Activity Company"]}, "ie"),
}

# The customers: a name core and the country it is registered in.
CORES: list[tuple[str, str]] = [
    ("Contoso", "uk"),
    ("Fabrikam", "us"),
    ("Northwind Traders", "uk"),
    ("Tailspin Toys", "us"),
    ("Wingtip Toys", "uk"),
    ("Fourth Coffee", "us"),
    ("Woodgrove", "uk"),
    ("Margie's Travel", "us"),
    ("O'Brien Plumbing", "ie"),
    ("Smith & Jones", "uk"),
    ("Blackwood Analytics", "uk"),
    ("Harrow Fields Logistics", "uk"),
    ("Kestrel Design", "uk"),
    ("Thames Valley Print", "uk"),
    ("Adventure Works Cycles", "us"),
    ("Alpine Ski House", "us"),
    ("Blue Yonder Airlines", "us"),
    ("Coho Winery", "us"),
    ("Lamna Healthcare", "us"),
    ("Proseware", "us"),
    ("Litware", "us"),
    ("Trey Research", "us"),
    ("Humongous Insurance", "us"),
    ("Wide World Importers", "us"),
    ("Relecloud", "us"),
    ("VanArsdel", "us"),
    ("Lucerne Publishing", "us"),
    ("Graphic Design Institute", "us"),
    ("City Power & Light", "us"),
    ("Consolidated Messenger", "us"),
    ("Southridge Video", "us"),
    ("Best For You Organics", "us"),
    ("First Up Consultants", "us"),
    ("Great Lakes Data Systems", "us"),
    ("Pinnacle Health Partners", "us"),
    ("Müller Maschinenbau", "de"),
    ("Schäfer Logistik", "de"),
    ("Weiß & Söhne", "de"),
    ("Grünwald Software", "de"),
    ("Köhler Elektrotechnik", "de"),
    ("Bergmann Industrietechnik", "de"),
    ("Hoffmann Medizintechnik", "de"),
    ("Société Générale de Transport", "fr"),
    ("Boulangerie Lefèvre", "fr"),
    ("Électricité Durand", "fr"),
    ("Atelier Bérénice", "fr"),
    ("García y Asociados", "es"),
    ("Construcciones Peña", "es"),
    ("Muñoz Logística", "es"),
    ("Van der Berg Logistiek", "nl"),
    ("De Vries Bouw", "nl"),
    ("Brouwerij Het Anker", "nl"),
    ("Håkansson Bygg", "se"),
    ("Åkerlund Konsult", "se"),
    ("Nordström Data", "se"),
    ("Nordisk Ventil", "dk"),
    ("Søndergaard Transport", "dk"),
    ("Møller Rådgivning", "dk"),
    ("Pohjola Metsä", "fi"),
    ("Järvinen Tekniikka", "fi"),
    ("Rossi Costruzioni", "it"),
    ("Ferretti Moda", "it"),
    ("Bianchi Alimentari", "it"),
    ("Kookaburra Analytics", "au"),
    ("Southern Cross Freight", "au"),
    ("Blue Gum Software", "au"),
    ("Nakamura Seiki", "jp"),
    ("Sakura Denki", "jp"),
    ("Kowalski Budownictwo", "pl"),
    ("Wiśniewski Transport", "pl"),
    ("Zielińska Consulting", "pl"),
    ("Shannon Valley Foods", "ie"),
    ("Liffey Digital", "ie"),
]
# What a sister company or a namesake is called after the shared word.
INDUSTRIES = [
    "Pharma",
    "Foods",
    "Logistics",
    "Energy",
    "Capital",
    "Properties",
    "Healthcare",
    "Digital",
    "Retail",
    "Engineering",
    "Media",
    "Legal",
    "Marine",
    "Security",
    "Consulting",
]
ABBREVIATIONS = {
    "International": "Intl",
    "Services": "Svcs",
    "Manufacturing": "Mfg",
    "Company": "Co.",
    "Brothers": "Bros.",
    "Systems": "Sys.",
    "Technologies": "Tech",
    "Laboratories": "Labs",
    "Centre": "Center",
    "and": "&",
    "&": "and",
}
TRADING_NAMES = ["Cafe", "Online", "Direct", "Studio", "Express", "Outlet", "Kitchen", "Lab"]
SUBSIDIARY_REGIONS = [
    ("UK", "uk"),
    ("Deutschland", "de"),
    ("France", "fr"),
    ("Nordics", "se"),
    ("Australia", "au"),
]
# Former names (rebrands): the CRM still has the old name, the website is the same.
FORMER_NAMES = [
    "Skyline Cloud Services",
    "Redwood Partners",
    "Meridian Group",
    "Bluewater Holdings",
    "Summit Works",
]


@dataclass
class Company:
    core: str
    country: str
    form: str
    domain: str
    trading: str | None = None

    @property
    def legal_name(self) -> str:
        return _join(self.core, self.form)


@dataclass
class Case:
    kind: str
    provider: dict[str, Any]
    candidates: list[dict[str, Any]]
    answer: str | None
    linked: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "provider": self.provider, "candidates": self.candidates}
        if self.linked:
            out["linked"] = self.linked
        out["answer"] = self.answer
        return out


def _join(core: str, form: str) -> str:
    return f"{core}{form}" if form.startswith(",") else f"{core} {form}".strip()


def _ascii(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))


def _written_out(text: str) -> str:
    table = str.maketrans(
        {"ä": "ae", "ö": "oe", "ü": "ue", "Ä": "Ae", "Ö": "Oe", "Ü": "Ue", "ß": "ss", "ø": "oe"}
    )
    return text.translate(table).replace("å", "aa").replace("Å", "Aa")


def _slug(core: str) -> str:
    return "".join(c for c in _ascii(_written_out(core)).casefold() if c.isalnum())


class Generator:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)  # noqa: S311  (reproducible test data, not secrets)

    def id(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def company(self, core: str, country: str) -> Company:
        forms, _, suffix = COUNTRIES[country]
        domain = f"{_slug(core)}.{suffix}" if self.rng.random() < 0.8 else f"{_slug(core)}.com"
        return Company(core, country, self.rng.choice(forms), domain)

    # How a person types the customer into the CRM, or how the tenant was named.
    def written(self, company: Company, *, allow_typo: bool = False) -> str:
        rng = self.rng
        core = company.core
        _, spellings, _ = COUNTRIES[company.country]
        form = company.form
        roll = rng.random()
        if roll < 0.25:
            form = rng.choice(spellings.get(form, [form]))
        elif roll < 0.4:
            form = ""
        if any(not c.isascii() for c in core) and rng.random() < 0.5:
            core = rng.choice([_ascii(core), _written_out(core)])
        if rng.random() < 0.15:
            words = core.split()
            core = " ".join(ABBREVIATIONS.get(w, w) for w in words)
        if "'" in core and rng.random() < 0.4:
            core = core.replace("'", "")
        if allow_typo:
            core = self.typo(core)
        name = _join(core, form)
        case = rng.random()
        if case < 0.1:
            name = name.upper()
        elif case < 0.15:
            name = "The " + name
        return name

    def typo(self, core: str) -> str:
        words = core.split()
        longest = max(range(len(words)), key=lambda i: len(words[i]))
        word = words[longest]
        at = self.rng.randrange(1, len(word) - 1)
        how = self.rng.choice(["drop", "double", "swap"])
        if how == "drop":
            word = word[:at] + word[at + 1 :]
        elif how == "double":
            word = word[:at] + word[at] + word[at:]
        else:
            word = word[: at - 1] + word[at] + word[at - 1] + word[at + 1 :]
        words[longest] = word
        return " ".join(words)

    def website(self, domain: str) -> str | None:
        roll = self.rng.random()
        if roll < 0.4:
            return None
        return self.rng.choice(
            [
                f"https://www.{domain}",
                f"www.{domain}",
                domain,
                f"http://{domain}/en/",
                f"https://{domain}/",
                f"info@{domain}",  # a mail address typed into the website field
                f"https://shop.{domain}",
            ]
        )

    def provider_domain(self, company: Company) -> str | None:
        roll = self.rng.random()
        if roll < 0.45:
            return company.domain
        if roll < 0.75:
            extra = self.rng.choice(["", "", "ltd", "inc", "365", "uk", "group", "corp"])
            return f"{_slug(company.core)}{extra}.onmicrosoft.com"
        return None

    def candidate(self, name: str, website: str | None) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id(), "name": name}
        if website is not None:
            out["website"] = website
        return out

    def decoys(self, company: Company, count: int, universe: list[Company]) -> list[dict[str, Any]]:
        """What a `contains(name, …)` prefilter also brings back: accounts sharing a word with the
        customer (sister companies, namesakes) and a few unrelated ones."""
        out = []
        first = company.core.split()[0]
        for _ in range(count):
            roll = self.rng.random()
            if roll < 0.5:
                industry = self.rng.choice([i for i in INDUSTRIES if i not in company.core])
                other_country = self.rng.choice(list(COUNTRIES))
                if self.rng.random() < 0.3:  # a sister company on the group's website
                    sister = self.company(f"{company.core} {industry}", other_country)
                    sister.domain = company.domain
                else:  # another company sharing a word of the name
                    sister = self.company(f"{first} {industry}", other_country)
                out.append(self.candidate(self.written(sister), self.website(sister.domain)))
            else:
                other = self.rng.choice([c for c in universe if c.core != company.core])
                out.append(self.candidate(self.written(other), self.website(other.domain)))
        return out

    def case(self, kind: str, company: Company, universe: list[Company]) -> Case:
        decoys = self.decoys(company, self.rng.randint(0, 5), universe)
        party: dict[str, Any] = {"name": company.legal_name}
        domain = self.provider_domain(company)
        if domain:
            party["domain"] = domain
        if self.rng.random() < 0.2:
            party["name"] = company.legal_name.upper()  # how some tenants were registered
        right: dict[str, Any] | None = self.candidate(self.written(company), self.website(company.domain))
        case = Case(kind, party, decoys, right["id"] if right else None)
        right = getattr(self, "_" + kind.replace("-", "_"), self._same_entity)(case, company, right)
        case.candidates = [*decoys, *([right] if right is not None else [])]
        self.rng.shuffle(case.candidates)
        return case

    # Each kind turns the customer's own CRM account (`right`) and the case into what it tests.
    def _same_entity(self, case: Case, company: Company, right: dict[str, Any]) -> dict[str, Any] | None:
        return right

    def _typo(self, case: Case, company: Company, right: dict[str, Any]) -> dict[str, Any] | None:
        right["name"] = self.written(company, allow_typo=True)
        return right

    def _trading(self, case: Case, company: Company, right: dict[str, Any]) -> dict[str, Any] | None:
        trading = f"{company.core.split()[0]} {self.rng.choice(TRADING_NAMES)}"
        if self.rng.random() < 0.5:
            case.provider["name"] = f"{company.legal_name} t/a {trading}"
            right["name"] = trading
        else:
            right["name"] = f"{self.written(company)} t/a {trading}"
            case.provider["name"] = trading
        return right

    def _initials(self, case: Case, company: Company, right: dict[str, Any]) -> dict[str, Any] | None:
        initials = "".join(w[0] for w in company.core.replace("&", "").split()).upper()
        right["name"] = f"{initials} {company.form}".strip()
        if self.rng.random() < 0.5:
            case.provider["name"], right["name"] = right["name"], company.legal_name
        return right

    def _linked(self, case: Case, company: Company, right: dict[str, Any]) -> dict[str, Any] | None:
        suffix = self.rng.choice(["HQ", "Head Office", "Billing", "Main"])
        right["name"] = f"{company.core.split()[0]} - {suffix}"
        case.linked = [right["id"]]
        return right

    def _rebrand(self, case: Case, company: Company, right: dict[str, Any]) -> dict[str, Any] | None:
        right["name"] = f"{self.rng.choice(FORMER_NAMES)} {company.form}".strip()
        right["website"] = f"https://www.{company.domain}"
        case.provider["domain"] = company.domain
        return right

    def _sister_present(self, case: Case, company: Company, right: dict[str, Any]) -> dict[str, Any] | None:
        industry = self.rng.choice([i for i in INDUSTRIES if i not in company.core])
        sister = Company(f"{company.core} {industry}", company.country, company.form, company.domain)
        case.candidates.append(self.candidate(self.written(sister), self.website(sister.domain)))
        return right

    def _subsidiary(self, case: Case, company: Company, right: dict[str, Any]) -> dict[str, Any] | None:
        region, country = self.rng.choice(SUBSIDIARY_REGIONS)
        form = self.rng.choice(COUNTRIES[country][0])  # the subsidiary's one legal form
        case.provider["name"] = f"{company.core} {region} {form}"
        case.provider["domain"] = company.domain
        case.answer = None  # only the parent is in the CRM ...
        if self.rng.random() < 0.4:  # ... unless the subsidiary is there too
            sub = self.candidate(f"{company.core} ({region}) {form}", self.website(company.domain))
            case.candidates.append(sub)
            case.answer = sub["id"]
        return right

    def _namesake(self, case: Case, company: Company, right: dict[str, Any]) -> dict[str, Any] | None:
        suffix = COUNTRIES[company.country][2]
        other = self.rng.choice([c for c in COUNTRIES if COUNTRIES[c][2] != suffix])
        namesake = self.company(company.core, other)
        namesake.domain = f"{_slug(company.core)}-{other}.{COUNTRIES[other][2]}"
        case.provider["domain"] = company.domain
        case.answer = None
        return self.candidate(namesake.legal_name, f"https://www.{namesake.domain}")

    def _branch_label(self, case: Case, company: Company, right: dict[str, Any]) -> dict[str, Any] | None:
        # How some partners name accounts: the customer, then where or what for.
        label = self.rng.choice(["- London", "- Head Office", "- EMEA", "(Azure)", "- CSP", "(Main Account)"])
        right["name"] = f"{self.written(company)} {label}"
        return right

    def _absent(self, case: Case, company: Company, right: dict[str, Any]) -> dict[str, Any] | None:
        case.answer = None
        return None


KINDS = [
    ("same-entity", 44),
    ("sister-present", 10),
    ("absent", 12),
    ("subsidiary", 7),
    ("trading", 6),
    ("initials", 4),
    ("linked", 5),
    ("rebrand", 3),
    ("namesake", 4),
    ("typo", 5),
    ("branch-label", 4),
]


def generated(seed: int, count: int) -> list[Case]:
    gen = Generator(seed)
    universe = [gen.company(core, country) for core, country in CORES]
    kinds = [k for k, _ in KINDS]
    weights = [w for _, w in KINDS]
    cases = []
    for _ in range(count):
        kind = gen.rng.choices(kinds, weights)[0]
        company = gen.rng.choice(universe)
        if kind == "initials" and len(company.core.replace("&", "").split()) < 3:
            kind = "same-entity"  # two-letter initials are nobody's name
        cases.append(gen.case(kind, company, universe))
    return cases


def _c(id_: str, name: str, website: str | None = None) -> dict[str, Any]:
    return {"id": id_, "name": name, **({"website": website} if website else {})}


# Hard cases met in real CRM data, written by hand (ids are short for reading).
HAND_WRITTEN: list[dict[str, Any]] = [
    {
        "kind": "hard",
        "provider": {"name": "Contoso Ltd"},
        "candidates": [_c("h1a", "Contoso Pharma Ltd"), _c("h1b", "Contoso Foods Ltd")],
        "answer": None,
    },
    {
        "kind": "hard",
        "provider": {"name": "Contoso Pharma Ltd", "domain": "contoso.com"},
        "candidates": [
            _c("h2a", "Contoso Ltd", "https://www.contoso.com"),
            _c("h2b", "Contoso Pharma Limited"),
        ],
        "answer": "h2b",
    },
    {
        "kind": "hard",
        "provider": {"name": "Fabrikam, Inc."},
        "candidates": [
            _c("h3a", "Fabrikam Inc"),
            _c("h3b", "Fabrikam Fiber"),
            _c("h3c", "Fabrikam Residences"),
        ],
        "answer": "h3a",
    },
    {
        "kind": "hard",
        "provider": {"name": "Müller GmbH", "domain": "mueller-gmbh.de"},
        "candidates": [_c("h4a", "Mueller GmbH", "www.mueller-gmbh.de"), _c("h4b", "Müller Logistik GmbH")],
        "answer": "h4a",
    },
    {
        "kind": "hard",
        "provider": {"name": "MUELLER GMBH"},
        "candidates": [_c("h5a", "Müller GmbH")],
        "answer": "h5a",
    },
    {
        "kind": "hard",
        "provider": {"name": "International Business Machines Corporation", "domain": "ibm.com"},
        "candidates": [_c("h6a", "IBM", "https://www.ibm.com"), _c("h6b", "IBX Business Systems")],
        "answer": "h6a",
    },
    {
        "kind": "hard",
        "provider": {"name": "IBM United Kingdom Limited", "domain": "uk.ibm.com"},
        "candidates": [_c("h7a", "IBM Corporation", "https://www.ibm.com")],
        "answer": None,
    },
    {
        "kind": "hard",
        "provider": {"name": "Contoso Ltd t/a Contoso Coffee", "domain": "contosocoffee.onmicrosoft.com"},
        "candidates": [_c("h8a", "Contoso Coffee"), _c("h8b", "Contoso Foods Ltd")],
        "answer": "h8a",
    },
    {
        "kind": "hard",
        "provider": {"name": "Northwind Traders"},
        "candidates": [_c("h9a", "Northwind Traders Ltd"), _c("h9b", "Northwind Traders Limited")],
        "linked": ["h9b"],
        "answer": "h9b",
    },
    {
        "kind": "hard",
        "provider": {"name": "Alpine Ski House", "domain": "gmail.com"},
        "candidates": [
            _c("h10a", "Alpine Ski House", "gmail.com"),
            _c("h10b", "Alpine Ski Rentals", "gmail.com"),
        ],
        "answer": "h10a",
    },
    {
        "kind": "hard",
        "provider": {"name": "Phoenix Consulting Ltd", "domain": "phoenix-consulting.co.uk"},
        "candidates": [_c("h11a", "Phoenix Consulting Pty Ltd", "https://phoenixconsulting.com.au")],
        "answer": None,
    },
    {
        "kind": "hard",
        "provider": {"name": "The Phone Company", "domain": "thephoneco.com"},
        "candidates": [_c("h12a", "Phone Company", "thephoneco.com"), _c("h12b", "The Phone Shop")],
        "answer": "h12a",
    },
    {
        "kind": "hard",
        "provider": {"name": "Smith & Jones LLP"},
        "candidates": [
            _c("h13a", "Smith and Jones"),
            _c("h13b", "Smith & Sons Ltd"),
            _c("h13c", "Jones & Co"),
        ],
        "answer": "h13a",
    },
    {
        "kind": "hard",
        "provider": {"name": "A. Datum Corporation", "domain": "adatum.com"},
        "candidates": [_c("h14a", "Adatum Corp", "https://adatum.com"), _c("h14b", "Datum Logistics")],
        "answer": "h14a",
    },
    {
        "kind": "hard",
        "provider": {"name": "Wide World Importers", "domain": "wideworldimporters.onmicrosoft.com"},
        "candidates": [_c("h15a", "Wide World Imports Ltd"), _c("h15b", "Wide World Travel")],
        "answer": "h15a",
    },
    {
        "kind": "hard",
        "provider": {"name": "Contoso UK Ltd", "domain": "contoso.com"},
        "candidates": [_c("h16a", "Contoso Inc.", "www.contoso.com"), _c("h16b", "Contoso (UK) Limited")],
        "answer": "h16b",
    },
    {
        "kind": "hard",
        "provider": {"name": "Société Générale de Transport S.A."},
        "candidates": [
            _c("h18a", "Societe Generale de Transport"),
            _c("h18b", "Société Générale de Logistique"),
        ],
        "answer": "h18a",
    },
    {
        "kind": "hard",
        "provider": {"name": "Fabrikam GmbH"},
        "candidates": [_c("h19a", "Fabrikam AG")],
        "answer": None,
    },
    {
        "kind": "hard",
        "provider": {"name": "Lucerne Publishing", "domain": "lucernepublishing.com"},
        "candidates": [_c("h20a", "Lucerne Publishing", "https://www.lucerne-press.com")],
        "answer": None,
    },
    {
        "kind": "hard",
        "provider": {"name": "Tailspin Toys", "domain": "tailspintoys.com"},
        "candidates": [_c("h21a", "TT Holdings", "https://tailspintoys.com"), _c("h21b", "Toys R Fun")],
        "answer": "h21a",
    },
    {
        "kind": "hard",
        "provider": {"name": "Nakamura Seiki Co., Ltd.", "domain": "nakamura-seiki.co.jp"},
        "candidates": [
            _c("h22a", "中村精機株式会社", "https://www.nakamura-seiki.co.jp"),
            _c("h22b", "Nakamura Trading"),
        ],
        "answer": "h22a",
    },
    {
        "kind": "hard",
        "provider": {"name": "Coho Winery"},
        "candidates": [_c("h23a", "Coho Vineyard"), _c("h23b", "Coho Brewery")],
        "answer": None,
    },
    {
        "kind": "hard",
        "provider": {"name": "NorthWind Traders"},
        "candidates": [_c("h24a", "Northwindtraders"), _c("h24b", "North Wind Logistics")],
        "answer": "h24a",
    },
    {
        "kind": "hard",
        "provider": {"name": "Grünwald Software GmbH", "domain": "gruenwald.onmicrosoft.com"},
        "candidates": [_c("h26a", "Gruenwald Software"), _c("h26b", "Grünwald Bau GmbH")],
        "answer": "h26a",
    },
    {
        "kind": "hard",
        "provider": {"name": "Trey Research Inc."},
        "candidates": [_c("h27a", "Trey Research (formerly Contoso Labs)"), _c("h27b", "Contoso Labs")],
        "answer": "h27a",
    },
    {
        "kind": "hard",
        "provider": {"name": "Humongous Insurance", "domain": "humongousinsurance.com"},
        "candidates": [_c("h28a", "Humongus Insurance", "humongousinsurance.com")],
        "answer": "h28a",
    },
    {
        "kind": "hard",
        "provider": {"name": "Consolidated Messenger"},
        "candidates": [_c("h29a", "Consolidated Messenger Services LLC"), _c("h29b", "Consolidated Freight")],
        "answer": "h29a",
    },
    {
        "kind": "hard",
        "provider": {"name": "Blue Yonder Airlines", "domain": "blueyonder.onmicrosoft.com"},
        "candidates": [
            _c("h30a", "Blue Yonder Airlines"),
            _c("h30b", "Blue Yonder Software", "https://blueyonder.com"),
        ],
        "answer": "h30a",
    },
    {
        "kind": "hard",
        "provider": {"name": "Litware"},
        "candidates": [],
        "answer": None,
    },
    {
        "kind": "hard",
        "provider": {"name": "Kowalski Sp. z o.o.", "domain": "kowalski.pl"},
        "candidates": [_c("h32a", "KOWALSKI SP Z O O", "kowalski.pl"), _c("h32b", "Kowalski i Syn")],
        "answer": "h32a",
    },
    {
        "kind": "hard",
        "provider": {"name": "Relecloud"},
        "candidates": [_c("h33a", "Relecloud Ltd")],
        "linked": ["h33x"],  # linked to an account the prefilter did not bring back
        "answer": "h33a",
    },
    {
        "kind": "hard",
        "provider": {"name": "Southridge Video Inc"},
        "candidates": [_c("h34a", "Southridge Cinema Inc"), _c("h34b", "Southridge Audio Inc")],
        "answer": None,
    },
    {
        "kind": "hard",
        "provider": {"name": "Munson's Pickles and Preserves Farm"},
        "candidates": [_c("h35a", "Munsons Pickles & Preserves Farm"), _c("h35b", "Munson Farms")],
        "answer": "h35a",
    },
    {
        "kind": "hard",
        "provider": {"name": "Contoso Ltd"},
        "candidates": [_c("h36a", "Contoso Ltd (old)"), _c("h36b", "Contoso Limited")],
        "answer": "h36b",
    },
    {
        "kind": "hard",
        "provider": {"name": "Fabrikam Inc.", "domain": "fabrikam.com"},
        "candidates": [_c("h37a", "ZZ Fabrikam Inc - DO NOT USE", "fabrikam.com")],
        "answer": None,  # its only account is retired: a person reactivates it or creates one
    },
    {
        "kind": "hard",
        "provider": {"name": "St. John's Hospital Trust"},
        "candidates": [_c("h38a", "Saint Johns Hospital Trust"), _c("h38b", "St Mary's Hospital Trust")],
        "answer": "h38a",
    },
]


def main() -> None:
    parser = argparse.ArgumentParser(description="Write the labelled account-matching cases.")
    parser.add_argument("--seed", type=int, default=365)
    parser.add_argument(
        "--cases", type=int, default=260, help="generated cases (the hand-written ones come on top)"
    )
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    lines = [json.dumps(case.as_json(), ensure_ascii=False) for case in generated(args.seed, args.cases)]
    lines += [json.dumps(case, ensure_ascii=False) for case in HAND_WRITTEN]
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"{len(lines)} cases written to {args.out}")


if __name__ == "__main__":
    main()
