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


def finding_block(finding: Finding) -> str:
    """One finding as the note shows it, below its heading: evidence, steps, runbook."""
    lines = [finding.title]
    evidence = evidence_lines(finding.evidence)
    if evidence:
        lines.append("What the check saw:")
        lines += [f"  - {line}" for line in evidence]
    if finding.remediation:
        lines.append("What to do:")
        lines += [f"  {n}. {step}" for n, step in enumerate(finding.remediation, start=1)]
    lines.append(f"Runbook: {runbook_url(finding.runbook)}")
    text = "\n".join(lines)
    return text if len(text) <= _MAX_BLOCK else text[: _MAX_BLOCK - 1] + "…"


def next_step(finding: Finding) -> str:
    return (
        finding.remediation[0] if finding.remediation else f"See the runbook: {runbook_url(finding.runbook)}"
    )


def blocks_of(findings: Sequence[Finding]) -> dict[str, tuple[str, str]]:
    return {f.dedup_key: (finding_block(f), next_step(f)) for f in findings}


# --- the note --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NoteContent:
    subject_line: str
    text: str
    content_hash: str  # of the text without the time of the last check


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def _shown(entry: Entry) -> bool:
    """In the note: what alerts, and what a person silenced (marked); not info or muted findings."""
    return entry.open and (entry.alerting or entry.silenced_until is not None)


def render_note(state: SubjectAlerts, *, checked_at: datetime) -> NoteContent | None:
    """The note of a subject; None when it has nothing to say (never had an open finding)."""
    shown = sorted(
        (e for e in state.entries.values() if _shown(e)),
        key=lambda e: (e.silenced_until is not None, SEVERITY_RANK.get(e.severity, 9), e.code, e.dedup_key),
    )
    resolved = sorted(
        (
            e
            for e in state.entries.values()
            if not e.open and e.resolved_at is not None and (e.alerting or e.silenced_until)
        ),
        key=lambda e: (e.resolved_at, e.dedup_key),
    )
    if not shown and not resolved:
        return None
    alerting = [e for e in shown if e.silenced_until is None]
    if alerting:
        subject_line = f"{SUBJECT_PREFIX}: {len(alerting)} open ({alerting[0].severity})"
    elif shown:
        subject_line = f"{SUBJECT_PREFIX}: all clear ({len(shown)} silenced)"
    else:
        subject_line = f"{SUBJECT_PREFIX}: all clear"
    lines = [f"{state.subject.name}", ""]
    if shown:
        lines.append("OPEN FINDINGS (worst first)")
        for n, entry in enumerate(shown, start=1):
            mark = entry.severity.upper()
            if entry.silenced_until is not None:
                mark += f", silenced until {entry.silenced_until.isoformat()}"
            lines.append(f"{n}. [{mark}] {entry.code} — since {_when(entry.first_seen)}")
            lines += [f"   {line}" for line in (entry.block or entry.title).splitlines()]
            lines.append("")
    elif state.all_clear_since is not None:
        lines += [f"All clear since {_when(state.all_clear_since)}.", ""]
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
