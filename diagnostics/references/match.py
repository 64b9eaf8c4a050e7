"""Which CRM account is the provider's customer: candidates ranked with a confidence and the reason.

The seam (agreed; fields may be added with defaults): `Party`, `Candidate`, `Proposal`, `rank` and
`choose`. The reference-resolution handler and `python -m diagnostics references evaluate` both call
these, so what is measured is what runs.

This first version matches only names that are equal once case, accents, punctuation and legal
suffixes are set aside, and equal web domains; fuzzy matching comes next.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

# Auto-fix applies a proposal only at or above this confidence (DIAG_AUTOFIX_MIN_CONFIDENCE).
DEFAULT_THRESHOLD = 0.9

_LEGAL = frozenset({"ltd", "limited", "inc", "incorporated", "llc", "gmbh", "ag", "sa", "bv", "plc", "corp"})


@dataclass(frozen=True)
class Party:
    """The customer as the provider knows it (errors.csv, the provider account, Partner Center)."""

    name: str
    domain: str | None = None


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


def normalised_name(name: str) -> str:
    """Case, accents, punctuation and legal suffixes set aside."""
    plain = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().casefold()
    words = re.sub(r"[^a-z0-9]+", " ", plain).split()
    return " ".join(w for w in words if w not in _LEGAL)


def domain_of(value: str | None) -> str | None:
    """`https://www.contoso.com/about` → `contoso.com`; None for nothing usable."""
    if not value:
        return None
    host = re.sub(r"^[a-z]+://", "", value.strip().casefold()).split("/")[0].split(":")[0]
    host = host.removeprefix("www.")
    return host if "." in host else None


def rank(party: Party, candidates: Sequence[Candidate]) -> list[Proposal]:
    """The plausible candidates, best first (ties by name, then id, so the order is stable)."""
    wanted_name, wanted_domain = normalised_name(party.name), domain_of(party.domain)
    proposals = []
    for candidate in candidates:
        reasons: list[str] = []
        confidence = 0.0
        if wanted_domain and domain_of(candidate.website) == wanted_domain:
            confidence, reasons = 0.95, [f"same web domain {wanted_domain}"]
        if wanted_name and normalised_name(candidate.name) == wanted_name:
            confidence = max(confidence, 0.95)
            reasons.append("same name once case, accents, punctuation and legal suffixes are set aside")
        if confidence > 0:
            proposals.append(Proposal(candidate, confidence, tuple(reasons)))
    return sorted(proposals, key=lambda p: (-p.confidence, p.candidate.name, p.candidate.id))


def choose(proposals: Sequence[Proposal], threshold: float = DEFAULT_THRESHOLD) -> Proposal | None:
    """What auto-fix would apply: the best proposal when it reaches the threshold and no other does
    (two confident candidates are ambiguous, and an ambiguous match is never applied)."""
    confident = [p for p in proposals if p.confidence >= threshold]
    return confident[0] if len(confident) == 1 else None
