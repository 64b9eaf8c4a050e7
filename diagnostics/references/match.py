"""Which CRM account is the provider's customer: candidates ranked with a confidence and the reason.

The seam (agreed; fields may be added with defaults): `Party`, `Candidate`, `Proposal`, `rank` and
`choose`. The reference-resolution handler and `python -m diagnostics references evaluate` both call
these, so what is measured is what runs.

How a candidate is scored. Each piece of evidence adds to the log-odds that the candidate is the
customer, from a sceptical prior (a CRM account picked at random is not the customer):
- the names (`names.py`): the same once case, accents, punctuation, "&"/"and", legal forms and
  "The" are set aside; the same apart from spacing; one the initials of the other ("IBM" /
  "International Business Machines"); or alike word by word (rapidfuzz's `ratio` per word, words
  weighted so "Group" or "UK" count less than the name itself), through trading and bracketed
  names too;
- the domains (`domains.py`): the provider's domain and the account's website the same registrable
  domain (strong), the same name under another suffix (contoso.com / contoso.co.uk), or different
  (against); a Microsoft initial domain's tenant name ("contoso" of contoso.onmicrosoft.com) or the
  provider's domain spelling the account's name (for); mail domains such as gmail.com say nothing;
- `Party.linked_account_ids`: another provider account of the same customer is already mapped to
  the candidate (strong);
- against: legal forms of different countries ("Ltd" / "Inc", "GmbH" / "AG" — usually two legal
  entities of one group), names that share a word but differ by a distinguishing one
  ("Contoso Pharma" / "Contoso Foods", "Contoso UK" / "Contoso"), and an account whose name marks
  it as no longer in use ("Contoso Ltd (old)", "ZZ Contoso - DO NOT USE"): each caps the confidence
  at `DIFFERENT_ENTITY_CAP` (scaled, so such candidates keep their order), below any threshold,
  unless a linked account vouches for the candidate.
The confidence is the logistic of that sum: an estimate of the chance the candidate is right. The
weights are set from what each signal means, not fitted to cases; `references evaluate` prints how
often the top proposal is right per confidence band, so the calibration can be checked on real data.

`choose` (what auto-fix applies) takes the best proposal only when it reaches the threshold and is
clearly ahead: the runner-up is below the threshold and at least `DEFAULT_MARGIN` behind. Two
plausible accounts (CRM duplicates, a parent and its subsidiary) are left to a person.

Cost: one pass over the candidates, a handful of rapidfuzz calls each (a few per word pair of two
short names), names parsed once and cached, so a few thousand candidates rank in well under a
second. To narrow the CRM accounts first, a handler can filter with `contains(name, '…')` on
`search_tokens(party.name)` (distinctive words, safe inside an OData literal and a LIKE) and
`contains(websiteurl, '…')` on `search_label(party.domain)` (the domain's name, or the tenant's
name of a contoso.onmicrosoft.com; none for a mail domain), then rank what comes back.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from rapidfuzz.distance import Indel

from diagnostics.references.domains import (
    host_of,
    is_shared,
    name_label,
    registrable,
    search_label,
    tenant_name,
)
from diagnostics.references.names import (
    ENGLISH_REGIONS,
    PARTICLE,
    REGION,
    STRONG,
    NameForm,
    ParsedName,
    normalised_name,
    parse_name,
    search_tokens,
)

__all__ = [
    "DEFAULT_MARGIN",
    "DEFAULT_THRESHOLD",
    "Candidate",
    "Party",
    "Proposal",
    "choose",
    "domain_of",
    "normalised_name",
    "rank",
    "search_label",
    "search_tokens",
]

# Auto-fix applies a proposal only at or above this confidence (DIAG_AUTOFIX_MIN_CONFIDENCE).
DEFAULT_THRESHOLD = 0.9
# ... and only when the runner-up is at least this far behind (and itself below the threshold).
DEFAULT_MARGIN = 0.1
# Names that differ by a distinguishing word, or legal forms of different countries: more often a
# sister company, a parent or a subsidiary than the customer itself; below the lowest threshold
# DIAG_AUTOFIX_MIN_CONFIDENCE accepts (0.5), so never applied, whatever the partner sets.
DIFFERENT_ENTITY_CAP = 0.45
# Proposals below this are not worth a person's time and are left out of the ranking.
MIN_SHOWN = 0.1

# Log-odds of each piece of evidence (see the module docstring).
_PRIOR = -2.5
_NAME_SAME = 5.44  # the same name and nothing else: 95 %
_NAME_SPACING = 4.6
_NAME_INITIALS = 2.3
_NAME_CONTAINED = 1.5
_NAME_FLOOR, _NAME_CEILING = -1.5, 4.5
_OTHER_FORM = -0.4  # matched through a trading or bracketed name, not the name itself
_SAME_DOMAIN = 4.3
_SAME_DOMAIN_NAME = 2.0
_DIFFERENT_DOMAIN = -1.5
_TENANT_NAME = 2.0
_DOMAIN_SPELLS_NAME = 1.0
_LINKED = 6.0
_LEGAL_CONFLICT = -1.0
_WORD_ALIKE = 0.8  # two words below this similarity are different words
# What a company adds to its name in a domain or tenant name: "contosoltd", "contoso365", "contoso-uk".
_LABEL_EXTRAS = frozenset(
    {"ltd", "limited", "inc", "llc", "corp", "co", "plc", "gmbh", "ag", "sa", "bv", "ab", "as", "oy", "the"}
) | frozenset(
    {"group", "grp", "uk", "us", "usa", "de", "eu", "online", "hq", "global", "intl", "it", "365", "tenant"}
)


@dataclass(frozen=True)
class Party:
    """The customer as the provider knows it (errors.csv, the provider account, Partner Center).

    `linked_account_ids`: the CRM accounts other provider accounts of the same customer (the same
    provider-specific id, or the same domain at another provider) are already mapped to."""

    name: str
    domain: str | None = None
    linked_account_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class Candidate:
    """A CRM account that might be the customer."""

    id: str
    name: str
    website: str | None = None


@dataclass(frozen=True)
class Proposal:
    """A candidate with how sure we are (0..1) and why, in words a billing administrator reads."""

    candidate: Candidate
    confidence: float
    reasons: tuple[str, ...]


def domain_of(value: str | None) -> str | None:
    """`https://www.contoso.com/about` → `contoso.com`; None for nothing usable."""
    return host_of(value)


@dataclass(frozen=True)
class _NameMatch:
    log_odds: float
    reason: str
    differing: tuple[str, ...] = ()  # distinguishing words only one name has, when they share one


@dataclass(frozen=True)
class _Evidence:
    log_odds: float
    reasons: tuple[str, ...]
    capped: bool = False


def _word_similarity(a: str, b: str) -> float:
    if a == b:
        return 1.0
    if min(len(a), len(b)) < 4 or a.isdigit() or b.isdigit():
        return 0.0  # "uk"/"us", "2000"/"2001": short words and numbers match exactly or not at all
    return Indel.normalized_similarity(a, b)


def _aligned(a: NameForm, b: NameForm) -> tuple[float, set[int], set[int], bool]:
    """Word-by-word alignment (each word at most once, best pairs first): the weighted share of
    both names that matched (0..1), the matched word indexes of each, and whether a name word matched."""
    # Each word as written and as read ("Margie's" is "margies" and "margy"): a typo in one
    # spelling ("Margeis") is still alike in the other.
    written_a, written_b = a.written or a.words, b.written or b.words
    pairs = [
        (similarity, i, j)
        for i, wa in enumerate(a.words)
        for j, wb in enumerate(b.words)
        if (similarity := max(_word_similarity(wa, wb), _word_similarity(written_a[i], written_b[j])))
        >= _WORD_ALIKE
    ]
    pairs.sort(key=lambda p: (-p[0], p[1], p[2]))
    used_a: set[int] = set()
    used_b: set[int] = set()
    matched = 0.0
    core = False
    for similarity, i, j in pairs:
        if i in used_a or j in used_b:
            continue
        used_a.add(i)
        used_b.add(j)
        matched += similarity * (a.weights[i] + b.weights[j])
        core = core or max(a.weights[i], b.weights[j]) >= STRONG
    return matched / (a.total + b.total), used_a, used_b, core


def _initials_of(short: NameForm, long: NameForm) -> bool:
    """Whether the one word `short` has that `long` lacks is the initials of the words only `long`
    has ("IBM" / "International Business Machines", "IBM UK" / "International Business Machines UK")."""
    shared = set(short.words) & set(long.words)
    rest_short = [w for w in short.words if w not in shared]
    rest_long = [(w, weight) for w, weight in zip(long.words, long.weights, strict=True) if w not in shared]
    if len(rest_short) != 1 or len(rest_long) < 2 or not 2 <= len(rest_short[0]) <= 6:
        return False
    with_particles = "".join(w[0] for w, _ in rest_long)
    without = "".join(w[0] for w, weight in rest_long if weight > PARTICLE)
    return rest_short[0] in (with_particles, without)


def _shown(form: NameForm, whose: str) -> str:
    return f"{whose} {form.source} “{form.text}”" if form.source != "name" else ""


def _compare_forms(party: NameForm, candidate: NameForm) -> _NameMatch | None:
    via = " and ".join(s for s in (_shown(party, "the provider's"), _shown(candidate, "the account's")) if s)
    adjust = _OTHER_FORM if via else 0.0
    through = f" (through {via})" if via else ""
    if party.words == candidate.words or sorted(party.words) == sorted(candidate.words):
        return _NameMatch(
            _NAME_SAME + adjust,
            f"same name once case, accents, punctuation and legal forms are set aside{through}",
        )
    if party.compact == candidate.compact:
        return _NameMatch(_NAME_SPACING + adjust, f"same name apart from spacing{through}")
    for short, long in ((party, candidate), (candidate, party)):
        if _initials_of(short, long):
            return _NameMatch(_NAME_INITIALS + adjust, f"“{short.text}” is the initials of “{long.text}”")
    share, used_p, used_c, core = _aligned(party, candidate)
    if share <= 0:
        return None
    log_odds = min(_NAME_CEILING, max(_NAME_FLOOR, 2.5 + (share - 0.85) * 16.7))
    differing: tuple[str, ...] = ()
    if core:
        differing = tuple(
            form.written[i]
            for form, used in ((party, used_p), (candidate, used_c))
            for i, weight in enumerate(form.weights)
            if i not in used and weight >= REGION
        )
        if len(used_p) == len(party.words) or len(used_c) == len(candidate.words):
            # Every word of one name is in the other ("Northwind" / "Northwind Traders"): a
            # plausible shortening, worth a look, though the extra word may be another company.
            log_odds = max(log_odds, _NAME_CONTAINED)
    log_odds += adjust
    return _NameMatch(log_odds, f"names {round(share * 100)}% alike{through}", differing)


def _name_evidence(party: ParsedName, candidate: ParsedName) -> _NameMatch | None:
    best: _NameMatch | None = None
    for party_form in party.forms:
        for candidate_form in candidate.forms:
            found = _compare_forms(party_form, candidate_form)
            if found is not None and (best is None or found.log_odds > best.log_odds):
                best = found
    return best


def _spells(label: str, name: ParsedName) -> bool:
    """Whether a domain or tenant name spells the name: "contoso", "contoso-ltd", "contosouk"."""
    label = label.replace("-", "")
    for form in name.forms:
        for compact in (form.compact, "".join(form.written)):
            if len(compact) >= 3 and compact.isascii() and label.startswith(compact):
                rest = label.removeprefix(compact)
                if not rest or rest in _LABEL_EXTRAS or rest.isdigit():
                    return True
    return False


def _domain_evidence(party_host: str | None, website: str | None, name: ParsedName) -> _Evidence:
    if party_host is None or is_shared(party_host):
        return _Evidence(0.0, ())
    account_host = host_of(website)
    if account_host is not None and is_shared(account_host):
        account_host = None
    tenant = tenant_name(party_host)
    if tenant is not None:
        account_tenant = tenant_name(account_host) if account_host else None
        if account_tenant == tenant or (
            account_host and not account_tenant and name_label(account_host) == tenant
        ):
            return _Evidence(
                _TENANT_NAME, (f"the Microsoft tenant name “{tenant}” is the account's website's",)
            )
        if _spells(tenant, name):
            return _Evidence(
                _TENANT_NAME, (f"the Microsoft tenant name “{tenant}” spells the account's name",)
            )
        return _Evidence(0.0, ())
    if account_host is not None and tenant_name(account_host) is None:
        ours, theirs = registrable(party_host), registrable(account_host)
        if ours == theirs:
            return _Evidence(_SAME_DOMAIN, (f"same web domain {ours}",))
        if name_label(party_host) == name_label(account_host):
            label = name_label(party_host)
            return _Evidence(
                _SAME_DOMAIN_NAME, (f"the web domains {ours} and {theirs} share the name “{label}”",)
            )
        return _Evidence(_DIFFERENT_DOMAIN, (f"different web domains ({ours} and the account's {theirs})",))
    if _spells(name_label(party_host), name):
        return _Evidence(
            _DOMAIN_SPELLS_NAME,
            (f"the provider's domain {registrable(party_host)} spells the account's name",),
        )
    return _Evidence(0.0, ())


def _legal_evidence(party: ParsedName, candidate: ParsedName) -> _Evidence:
    ours, theirs = party.regions, candidate.regions
    english = {bool(ours & ENGLISH_REGIONS), bool(theirs & ENGLISH_REGIONS)}
    if ours and theirs and not ours & theirs and len(english) == 1:  # "Ltd" translates "Oy"; not "Inc"
        return _Evidence(
            _LEGAL_CONFLICT,
            (
                f"different legal forms ({', '.join(party.legal)} / {', '.join(candidate.legal)}): usually two legal entities",
            ),
            capped=True,
        )
    return _Evidence(0.0, ())


@lru_cache(maxsize=4096)
def _party_host(domain: str | None) -> str | None:
    return host_of(domain)


def _score(party: Party, parsed: ParsedName, candidate: Candidate) -> Proposal | None:
    name = parse_name(candidate.name)
    log_odds = _PRIOR
    reasons: list[str] = []
    linked = candidate.id in party.linked_account_ids
    if linked:
        log_odds += _LINKED
        reasons.append("another provider account of this customer is already mapped to this account")
    capped = False
    match = _name_evidence(parsed, name)
    if match is not None:
        log_odds += match.log_odds
        reasons.append(match.reason)
        if match.differing:
            capped = True
            reasons.append("but the names differ by " + ", ".join(f"“{w}”" for w in match.differing))
    else:
        log_odds += _NAME_FLOOR
    if name.retired:
        capped = True
        reasons.append(f"but the account's name marks it as no longer in use (“{name.retired}”)")
    for evidence in (
        _domain_evidence(_party_host(party.domain), candidate.website, name),
        _legal_evidence(parsed, name),
    ):
        log_odds += evidence.log_odds
        reasons.extend(evidence.reasons)
        capped = capped or evidence.capped
    confidence = 1.0 / (1.0 + math.exp(-log_odds))
    if capped and not linked:
        confidence *= DIFFERENT_ENTITY_CAP  # below the cap, in the same order as before
    return Proposal(candidate, confidence, tuple(reasons)) if confidence >= MIN_SHOWN else None


def _order(proposal: Proposal) -> tuple[float, str, str, str]:
    c = proposal.candidate
    return (-proposal.confidence, c.name, c.id, c.website or "")


def rank(party: Party, candidates: Sequence[Candidate]) -> list[Proposal]:
    """The plausible candidates (confidence ≥ `MIN_SHOWN`), best first, one per candidate id; ties
    by name, id and website, so the order never depends on the order of `candidates`."""
    parsed = parse_name(party.name)
    best: dict[str, Proposal] = {}
    for candidate in candidates:
        proposal = _score(party, parsed, candidate)
        if proposal is None:
            continue
        kept = best.get(candidate.id)
        if kept is None or _order(proposal) < _order(kept):
            best[candidate.id] = proposal
    return sorted(best.values(), key=_order)


def choose(
    proposals: Sequence[Proposal], threshold: float = DEFAULT_THRESHOLD, margin: float = DEFAULT_MARGIN
) -> Proposal | None:
    """What auto-fix would apply: the best proposal when it reaches `threshold` and is clearly
    ahead (the next candidate below the threshold and at least `margin` behind); else None, for a
    person to decide."""
    ordered = sorted(proposals, key=_order)
    if not ordered or ordered[0].confidence < threshold:
        return None
    best = ordered[0]
    runner_up = next((p for p in ordered[1:] if p.candidate.id != best.candidate.id), None)
    if runner_up is not None and (
        runner_up.confidence >= threshold or best.confidence - runner_up.confidence < margin
    ):
        return None
    return best
