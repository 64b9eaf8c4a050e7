"""The living note (monitor.md): one Dataverse annotation per subject, in words a billing admin reads
in the Work 365 timeline. Pure: the notifier stores and writes what these functions return.

The note's id is a uuid5 of the subject, so every write is an upsert of the same note; its content
hash (without the time of the last check) decides whether it is written at all, so an unchanged
day rewrites nothing.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from diagnostics.lifecycle import Entry, SubjectAlerts
from diagnostics.model import SEVERITY_RANK, Finding, Subject
from diagnostics.runbooks import runbook_url

# The namespace of the notes' ids: fixed forever, or every subject would get a second note.
NOTE_NAMESPACE = uuid.UUID("6f2b3c9e-5d1a-4e8f-9b7c-0a1d2e3f4a5b")
SUBJECT_PREFIX = "Usage-invoice diagnosis"
MAX_TEXT = 90_000  # annotation.notetext holds 100,000 characters by default
_MAX_BLOCK = 3_000  # one finding's part of the note
_MAX_LINES = 12  # evidence lines per finding; the report holds the rest

# Where a subject's note is kept: the Dataverse table (default name) of its record.
NOTE_TABLE = {
    "provider_invoice": "work365_providerinvoice",
    "expected_provider_invoice": "work365_provider",
    "billing_contract": "work365_billingcontract",
    "subscription": "work365_subscription",
}
_CURRENCY_KEYS = ("currency", "currency_code", "iso_currency_code")
_AMOUNT_WORDS = ("amount", "cost", "total", "difference", "charges", "tolerance")


def note_record(subject: Subject) -> tuple[str, str] | None:
    """(table, record id) the subject's note is on; None for the tool's own (tenant) findings."""
    table = NOTE_TABLE.get(subject.type)
    if table is None:
        return None
    record = subject.id.split(":", 1)[0] if subject.type == "expected_provider_invoice" else subject.id
    try:
        return table, str(uuid.UUID(record))
    except ValueError:
        return None  # not a record id: nowhere to put a note


def note_id(subject: Subject) -> str:
    """The note's id: derived from the subject alone, so retries and duplicates upsert one note."""
    return str(uuid.uuid5(NOTE_NAMESPACE, f"{subject.type}:{subject.id}"))


# --- evidence in words ---------------------------------------------------------------------------


def _words(key: str) -> str:
    text = key.replace("_", " ").strip()
    return text[:1].upper() + text[1:]


def _amount(value: Any, currency: str | None) -> str:
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return str(value)
    text = f"{number:,.2f}"
    return f"{text} {currency}" if currency else text


def _scalar(key: str, value: Any, currency: str | None) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if any(word in key for word in _AMOUNT_WORDS) and isinstance(value, int | float | str | Decimal):
        return _amount(value, currency)
    if isinstance(value, Mapping):
        # A nested record: its facts in words, ids left out (the record links carry them).
        return ", ".join(
            f"{_words(k)}: {_scalar(k, v, currency)}"
            for k, v in value.items()
            if v is not None and k != "id" and not k.endswith("_id")
        )
    if isinstance(value, list | tuple):
        return "; ".join(_scalar(key, v, currency) for v in value)
    return str(value)


_SHOWN_CANDIDATES = 3
_VERDICTS = {
    "confident": "best match",
    "ambiguous": "ambiguous, choose one",
    "uncertain": "possible matches",
}


def _candidate_words(ref: Mapping[str, Any]) -> str:
    """The CRM accounts that might be the customer, best first: `best match: Tailspin Toys (95%,
    same name …)`; the verdict says whether auto-fix could apply the first one."""
    candidates = [c for c in ref.get("candidates") or [] if isinstance(c, Mapping)]
    if not candidates:
        return "no CRM account looks like this customer"
    shown = [
        f"{c.get('account') or '?'} ({round(float(c.get('confidence') or 0) * 100)}%"
        + (f", {'; '.join(str(r) for r in c.get('reasons') or [])}" if c.get("reasons") else "")
        + ")"
        for c in candidates[:_SHOWN_CANDIDATES]
    ]
    more = len(candidates) - _SHOWN_CANDIDATES
    tail = f" and {more} more" if more > 0 else ""
    return f"{_VERDICTS.get(str(ref.get('match')), 'candidates')}: {' | '.join(shown)}{tail}"


def _reference_words(ref: Mapping[str, Any]) -> str:
    """One unresolved reference as a sentence: who it is, and what the check found about it."""
    name = ref.get("name") or ref.get("customer") or ref.get("reference") or "?"
    facts: list[str] = []
    if "provider_account_exists" in ref:
        if ref["provider_account_exists"]:
            facts.append("provider account exists")
            # The reference handler lists the provider accounts; the check gives the one's facts.
            accounts = [a for a in ref.get("provider_accounts") or [] if isinstance(a, Mapping)]
            account = accounts[0] if len(accounts) == 1 else ref
            if account.get("account_column_empty"):
                facts.append("Account column empty")
            elif account.get("account_name"):
                facts.append(f"linked to account {account['account_name']}")
            if account.get("sync_disabled"):
                facts.append("sync disabled")
        else:
            facts.append("no provider account with this id")
    if "candidates" in ref:
        facts.append(_candidate_words(ref))
        known = str(ref.get("partner_center") or "")
        if known and not known.startswith("not asked"):
            facts.append(known)
    if "subscription_exists" in ref:
        facts.append("subscription exists" if ref["subscription_exists"] else "no subscription with this id")
        if ref.get("customer"):
            facts.append(f"customer {ref['customer']}")
        if ref.get("migrated_azure_subscription_id_likely"):
            facts.append("the customer already has a usage subscription under another id (migrated Azure)")
        if ref.get("partner_center"):
            facts.append(str(ref["partner_center"]))
    if "currency_exists" in ref:  # the reference handler: whether it exists, and is active
        if ref.get("resolved"):
            facts.append("active currency exists")
        elif ref["currency_exists"]:
            facts.append("the currency exists but is inactive: activate it")
        else:
            facts.append("no currency with this ISO code: add it")
    elif "active_currency" in ref:
        facts.append(
            "active currency exists" if ref["active_currency"] else "no active currency with this ISO code"
        )
    reference = ref.get("reference")
    label = f"{name} ({reference})" if reference and reference != name else str(name)
    return f"{label} — {', '.join(facts)}" if facts else label


def change_words(change: Mapping[str, Any]) -> str:
    """One change the tool made to a Work 365 record (or, in a dry run, would make), with when and
    the value it replaced: `Changed 2026-11-12 09:00 UTC: mapped … (before: empty)`."""
    verb = "Would change" if change.get("dry_run") else "Changed"
    when = str(change.get("at") or "?").replace("T", " ").removesuffix("Z")[:16]
    previous = change.get("previous")
    before = (
        f" (before: {previous if previous not in (None, '') else 'empty'})" if "previous" in change else ""
    )
    return f"{verb} {when} UTC: {change.get('what') or change.get('kind') or '?'}{before}"


def evidence_lines(evidence: Mapping[str, Any], *, limit: int | None = _MAX_LINES) -> list[str]:
    """The evidence in words, one fact a line; record ids and empty values are left out. Cut at
    `limit` lines (the note; None: all, the HTML report)."""
    currency = next((str(evidence[k]) for k in _CURRENCY_KEYS if evidence.get(k)), None)
    lines: list[str] = []
    for key, value in evidence.items():
        if value is None or value in ([], {}) or key.endswith("_id") or key in _CURRENCY_KEYS:
            continue
        if key == "references" and isinstance(value, list):
            lines += [_reference_words(r) for r in value if isinstance(r, Mapping)]
        elif key == "changes" and isinstance(value, list):
            lines += [change_words(c) for c in value if isinstance(c, Mapping)]
        elif isinstance(value, list):
            items = [
                ", ".join(
                    f"{_words(k)}: {_scalar(k, v, currency)}"
                    for k, v in item.items()
                    if v is not None and not k.endswith("_id")
                )
                if isinstance(item, Mapping)
                else str(item)
                for item in value
            ]
            lines.append(f"{_words(key)}: {'; '.join(i for i in items if i)}")
        elif isinstance(value, Mapping):
            inner = ", ".join(
                f"{_words(k)}: {_scalar(k, v, currency)}" for k, v in value.items() if v is not None
            )
            lines.append(f"{_words(key)}: {inner}")
        else:
            lines.append(f"{_words(key)}: {_scalar(key, value, currency)}")
    if limit is not None and len(lines) > limit:
        hidden = len(lines) - limit
        lines = [*lines[:limit], f"… and {hidden} more (see the report)"]
    return lines


# Evidence that only stamps when the check ran: the note's last line says that, and a stamp in the
# body would make every day's check a change to write.
_CLOCK_KEYS = frozenset({"today", "looked_up_at"})
# What the reference look-up adds to the check's words for the same finding (Entry.lookup).
_LOOKUP_KEYS = ("references", "changes", "auto_fix")
LOOKUP_HEADING = "What the reference look-up found:"
_STEPS_HEADING = "What to do:"


# Day counters of findings that can stay open for weeks: the note keeps the date each counts from
# (already in the evidence) and leaves the count out, or every day that passes would be a change to
# write. The report keeps them. Bounded countdowns stay in the titles, as they matter and end:
# USAGE_PULL_PENDING/USAGE_PULL_WINDOW_CLOSING's whole days left (their severity changes with them)
# and USAGE_AT_RISK_NEXT_INVOICE's days to the invoice (a few at most); but `days_left` to a tenth
# of a day would differ between the morning's check and the afternoon's re-check: the evidence's
# `pull_window_ends` says when. Open-ended findings' titles give dates (diagnostics/checks/status.py).
_COUNTER_KEYS = frozenset({"days_late", "days_since_found", "days_left"})


def _undated(evidence: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in evidence.items() if k not in _CLOCK_KEYS and k not in _COUNTER_KEYS}


def _cut(text: str) -> str:
    return text if len(text) <= _MAX_BLOCK else text[: _MAX_BLOCK - 1] + "…"


def finding_block(finding: Finding) -> str:
    """One finding as the note shows it, below its heading: evidence, steps, runbook."""
    lines = [finding.title]
    evidence = evidence_lines(_undated(finding.evidence))
    if evidence:
        lines.append("What the check saw:")
        lines += [f"  - {line}" for line in evidence]
    if finding.remediation:
        lines.append("What to do:")
        lines += [f"  {n}. {step}" for n, step in enumerate(finding.remediation, start=1)]
    lines.append(f"Runbook: {runbook_url(finding.runbook)}")
    return _cut("\n".join(lines))


def lookup_block(finding: Finding) -> str:
    """What the reference look-up found about a finding the check reported: each reference with its
    candidates, and the changes auto-fix made. Shown inside the check's block (`render_note`)."""
    evidence = {k: finding.evidence[k] for k in _LOOKUP_KEYS if k in finding.evidence}
    lines = evidence_lines(evidence)
    if not lines:
        return ""
    return _cut("\n".join([LOOKUP_HEADING, *(f"  - {line}" for line in lines)]))


def next_step(finding: Finding) -> str:
    return (
        finding.remediation[0] if finding.remediation else f"See the runbook: {runbook_url(finding.runbook)}"
    )


def blocks_of(findings: Sequence[Finding], *, lookup: bool = False) -> dict[str, tuple[str, str]]:
    """Each finding's part of the note and its next step; `lookup`: the reference look-up's part."""
    block = lookup_block if lookup else finding_block
    return {f.dedup_key: (block(f), next_step(f)) for f in findings}


def _entry_lines(entry: Entry) -> list[str]:
    """The check's block, with what the look-up found placed before the steps."""
    lines = (entry.block or entry.title).splitlines()
    if entry.lookup:
        at = lines.index(_STEPS_HEADING) if _STEPS_HEADING in lines else len(lines)
        lines[at:at] = entry.lookup.splitlines()
    return lines


# --- the note --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NoteContent:
    subject_line: str
    text: str
    content_hash: str  # of the text without the time of the last check


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def _noted(entry: Entry) -> bool:
    """What a note tells of: what alerts, and what a person silenced (marked); not info or muted."""
    return entry.alerting or entry.silenced_until is not None


def _shown(entry: Entry) -> bool:
    """In the note's open findings."""
    return entry.open and _noted(entry)


def _told_unchecked(entry: Entry) -> bool:
    """In the note's NO LONGER CHECKED part: a finding it showed open that no check covers now."""
    return entry.unchecked and _noted(entry)


def _heading(n: int, entry: Entry) -> str:
    mark = entry.severity.upper()
    if entry.silenced_until is not None:
        mark += f", silenced until {entry.silenced_until.isoformat()}"
    return f"{n}. [{mark}] {entry.code} — since {_when(entry.first_seen)}"


def _unchecked_line(entry: Entry) -> str:
    assert entry.unchecked_at is not None
    return (
        f"Last seen {_when(entry.last_seen)}. The monitor stopped checking it {_when(entry.unchecked_at)}: "
        "no daily check covers this record any more. It is not known to be fixed; a diagnosis of the "
        "record checks it now."
    )


def _subject_line(shown: Sequence[Entry], unchecked: Sequence[Entry]) -> str:
    alerting = [e for e in shown if e.silenced_until is None]
    if alerting:
        return f"{SUBJECT_PREFIX}: {len(alerting)} open ({alerting[0].severity})"
    if unchecked:
        worst = min(unchecked, key=lambda e: SEVERITY_RANK.get(e.severity, 9)).severity
        return f"{SUBJECT_PREFIX}: no longer checked ({len(unchecked)} open when last seen, {worst})"
    if shown:
        return f"{SUBJECT_PREFIX}: all clear ({len(shown)} silenced)"
    return f"{SUBJECT_PREFIX}: all clear"


def render_note(state: SubjectAlerts, *, checked_at: datetime) -> NoteContent | None:
    """The note of a subject; None when it has nothing to say (never had an open finding)."""

    def worst_first(e: Entry) -> tuple[bool, int, str, str]:
        return (e.silenced_until is not None, SEVERITY_RANK.get(e.severity, 9), e.code, e.dedup_key)

    shown = sorted((e for e in state.entries.values() if _shown(e)), key=worst_first)
    unchecked = sorted((e for e in state.entries.values() if _told_unchecked(e)), key=worst_first)
    resolved = sorted(
        (
            e
            for e in state.entries.values()
            if not e.open and e.resolved_at is not None and (e.alerting or e.silenced_until)
        ),
        key=lambda e: (e.resolved_at, e.dedup_key),
    )
    if not shown and not resolved and not unchecked:
        return None
    subject_line = _subject_line(shown, unchecked)
    lines = [f"{state.subject.name}", ""]
    if shown:
        lines.append("OPEN FINDINGS (worst first)")
        for n, entry in enumerate(shown, start=1):
            lines.append(_heading(n, entry))
            lines += [f"   {line}" for line in _entry_lines(entry)]
            lines.append("")
    elif state.all_clear_since is not None and not unchecked:
        lines += [f"All clear since {_when(state.all_clear_since)}.", ""]
    if unchecked:
        lines.append("NO LONGER CHECKED (as last seen)")
        for n, entry in enumerate(unchecked, start=1):
            lines.append(_heading(n, entry))
            lines += [f"   {line}" for line in [*_entry_lines(entry), _unchecked_line(entry)]]
            lines.append("")
    if resolved:
        lines.append("RESOLVED")
        lines += [
            f"- {e.title} ({e.code}) — resolved {_when(e.resolved_at)}" for e in resolved if e.resolved_at
        ]
        lines.append("")
    body = "\n".join(lines)
    if len(body) > MAX_TEXT:
        body = body[: MAX_TEXT - 60] + "\n… (cut: the report holds the rest)\n"
    content_hash = hashlib.sha256(f"{subject_line}\n{body}".encode()).hexdigest()
    footer = (
        f"Last change seen by the check at {_when(checked_at)}. The monitor checks every day and "
        "rewrites this note only when something changes."
    )
    return NoteContent(subject_line, f"{body}\n{footer}", content_hash)
