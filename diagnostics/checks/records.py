"""Records the loader could not read: one CHECK_FAILED per subject they belong to.

A malformed value in one record (a date out of range, a number that is not one, a row that is not
an object) leaves that record out of the snapshot and fails only what depends on it: the provider
invoice, subscription or billing contract it is (or belongs to), never the whole diagnosis. A record
whose owner cannot be told is reported on the tenant, per table.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from diagnostics.catalog import finding
from diagnostics.checks.context import Context, contract_subject, pi_subject, subscription_subject
from diagnostics.model import Finding, Subject, UnreadableRecord

_MAX_LISTED = 20  # records listed per finding; the count says how many there are


def _subject(ctx: Context, record: UnreadableRecord) -> Subject:
    kind, key = record.subject_type, record.subject_id or ""
    if kind == "provider_invoice":
        found = next((pi for pi in ctx.snap.provider_invoices if pi.id == key), None)
        return pi_subject(found) if found else Subject(type=kind, id=key, name=f"provider invoice {key}")
    if kind == "subscription":
        sub = ctx.subscriptions.get(key)
        return (
            subscription_subject(sub, ctx.snap.account_names)
            if sub
            else Subject(type=kind, id=key, name=f"subscription {key}")
        )
    if kind == "billing_contract":
        contract = ctx.contracts.get(key)
        return (
            contract_subject(contract)
            if contract
            else Subject(type=kind, id=key, name=f"billing contract {key}")
        )
    return Subject(type="tenant", id=f"records:{record.table}", name=f"{record.table} records")


def _failed(ctx: Context, subject: Subject, records: Sequence[UnreadableRecord]) -> Finding:
    listed: list[dict[str, Any]] = [
        {"table": r.table, "row": r.row, "record_id": r.record_id, "reason": r.reason}
        for r in records[:_MAX_LISTED]
    ]
    first = records[0]
    return finding(
        "CHECK_FAILED",
        subject,
        ctx.period,
        f"{len(records)} record(s) of {subject.name} could not be read: {first.reason}",
        {
            "check": "record_decoding",
            "why": "a value in the record cannot be read as its column's type; the record was left out",
            "records": listed,
            "records_unreadable": len(records),
            "parts": sorted({r.part for r in records}),
        },
        [
            "Open each record listed in the evidence in Work 365 and correct the value named in its reason "
            "(or ask Work 365 support why it holds it).",
            "Until then, treat the checks of this subject as unknown, not as healthy; run the scan again after "
            "the fix.",
        ],
    )


def check_unreadable_records(ctx: Context) -> list[Finding]:
    by_subject: dict[Subject, list[UnreadableRecord]] = {}
    for record in ctx.snap.unreadable_records:
        by_subject.setdefault(_subject(ctx, record), []).append(record)
    return [_failed(ctx, subject, records) for subject, records in by_subject.items()]
