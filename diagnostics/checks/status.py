"""Runbook step 4: what state is the provider invoice in, and is the usage-pull window running out?"""

from __future__ import annotations

import math
import re
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from diagnostics.catalog import finding
from diagnostics.checks.context import Context, iso, pi_subject
from diagnostics.model import Finding, PIStatus, ProviderInvoice, ProviderKind
from diagnostics.periods import day_in_following_month
from diagnostics.text import cut, money

_CHECKSUM = re.compile(r"check\s*-?\s*sum", re.IGNORECASE)
# The difference as Work 365 writes it, e.g. "Checksum failed. Difference: -1329.7525" ([S8]).
_DIFFERENCE = re.compile(r"difference\D{0,20}?(-?\s?\d[\d,]*(?:\.\d+)?)", re.IGNORECASE)
_ANY_NUMBER = re.compile(r"(-?\d[\d,]*\.\d+|-?\d[\d,]*)")


def parse_checksum_difference(message: str | None) -> Decimal | None:
    """The difference quoted in a checksum message, or None when it names none."""
    if not message:
        return None
    match = _DIFFERENCE.search(message) or _ANY_NUMBER.search(message)
    if match is None:
        return None
    try:
        return Decimal(match.group(1).replace(",", "").replace(" ", ""))
    except InvalidOperation:
        return None


def override_tolerance(difference: Decimal) -> int:
    """What to enter as Override Tolerance: the absolute difference rounded up (−1329.7525 → 1330)."""
    return math.ceil(abs(difference))


def _base_evidence(ctx: Context, pi: ProviderInvoice) -> dict[str, Any]:
    return {
        "provider_invoice_id": pi.id,
        "invoice_number": pi.invoice_number,
        "status": pi.status_label,
        "created_on": iso(pi.created_on),
        "usage_summaries": ctx.usage_totals(pi).rows,
    }


def _pull_window(ctx: Context, pi: ProviderInvoice) -> Finding:
    age = ctx.now - pi.created_on
    window = timedelta(days=ctx.t.pull_window_days)
    ends = pi.created_on + window
    evidence = _base_evidence(ctx, pi) | {
        "pull_window_days": ctx.t.pull_window_days,
        "pull_window_ends": iso(ends),
    }
    subject = pi_subject(pi)
    if age >= window:
        evidence["days_since_found"] = age.days
        return finding(
            "USAGE_PULL_WINDOW_EXPIRED",
            subject,
            ctx.period,
            f"Work 365 stopped trying to pull usage for {pi.invoice_number or pi.name}: "
            # The date, not a count of days: the title stays the same while the finding is open
            # (a living note rewritten every day with nothing new is noise).
            f"found on {pi.created_on.date().isoformat()}, still no usage",
            evidence,
            [
                "Work 365 will not pull this usage by itself any more.",
                "Delete this provider invoice in Work 365 (local only) and run Provider Invoices → Sync Provider "
                "Invoice for it, so that the usage is pulled again.",
                "If the usage still does not arrive, contact Work 365 support with the invoice number.",
                "Then generate the usage invoices of contracts whose invoice date has passed, by hand.",
            ],
        )
    days_left = (ends - ctx.now) / timedelta(days=1)
    evidence["days_left"] = round(days_left, 1)
    if days_left <= ctx.t.pull_window_warn_days:
        return finding(
            "USAGE_PULL_WINDOW_CLOSING",
            subject,
            ctx.period,
            f"Usage for {pi.invoice_number or pi.name} not pulled yet; {math.ceil(days_left)} day(s) left",
            evidence,
            [
                "Check Partner Center: is the daily rated usage for the period complete?",
                "If the window closes without usage, delete the provider invoice and sync it again "
                "(Provider Invoices → Sync Provider Invoice); contact Work 365 support if that fails.",
            ],
        )
    return finding(
        "USAGE_PULL_PENDING",
        subject,
        ctx.period,
        f"Work 365 is still pulling usage for {pi.invoice_number or pi.name} ({math.floor(days_left)} days left)",
        evidence,
        ["Nothing to do yet: Work 365 retries daily; the tool re-checks every day until the window closes."],
    )


def _checksum(ctx: Context, pi: ProviderInvoice) -> Finding:
    difference = parse_checksum_difference(pi.message)
    period = ctx.period
    usage_file_day = day_in_following_month(period, ctx.t.usage_file_day)
    early = ctx.today < usage_file_day
    evidence = _base_evidence(ctx, pi) | {
        "message": pi.message,
        "difference": str(difference) if difference is not None else None,
        "currency": ctx.currency_of(pi),
        "override_tolerance": override_tolerance(difference) if difference is not None else None,
        "usage_file_day": iso(usage_file_day),
        "likely_causes": [
            "additional country tax added by Microsoft",
            "a Microsoft credit or adjustment",
            "marketplace or reserved-instance items missing from the daily rated file (G-series invoice)",
            "rounding or currency noise",
        ],
    }
    if early:
        steps = [
            "Nothing to do yet: before the usage-file day Microsoft's daily rated file is often incomplete, and "
            "Work 365 retries the next day.",
            f"If the checksum still fails on {usage_file_day.isoformat()}, follow the steps of this runbook page.",
        ]
    else:
        tolerance = evidence["override_tolerance"]
        steps = [
            "Find the cause of the difference: compare it with Microsoft's tax, credits, and the reserved-"
            "instance and marketplace lines of Partner Center's monthly summary file for this invoice.",
            "Tax: add the tax configuration on the Provider record, then re-import the invoice.",
            "Credit, reserved instances or marketplace: Work 365 → Provider Invoices → Sync Provider Invoice → "
            f"choose this invoice, tick Override Tolerance and enter {tolerance or 'the difference rounded up'} "
            "(positive, rounded up), Submit.",
            "Small rounding noise: set a small Usage Mismatch Tolerance (Admin Hub → Integrations → Partner "
            "Center → Settings → Edit).",
        ]
    return finding(
        "PI_CHECKSUM_MISMATCH",
        pi_subject(pi),
        period,
        f"Checksum failed on {pi.invoice_number or pi.name}"
        + (f": difference {money(difference, ctx.currency_of(pi))}" if difference is not None else ""),
        evidence,
        steps,
        severity="warning" if early else "error",
    )


def _error_status(ctx: Context, pi: ProviderInvoice) -> Finding:
    if pi.message and _CHECKSUM.search(pi.message):
        return _checksum(ctx, pi)
    return finding(
        "PI_IMPORT_ERROR",
        pi_subject(pi),
        ctx.period,
        f"Import of {pi.invoice_number or pi.name} failed: {cut((pi.message or 'no message').splitlines()[0], 120)}",
        _base_evidence(ctx, pi) | {"message": pi.message},
        [
            "Open the provider invoice and read its message and notes.",
            "Fix the cause it names, then delete the invoice and sync it again "
            "(Provider Invoices → Sync Provider Invoice).",
            "If the message does not explain it, contact Work 365 support with the invoice number.",
        ],
    )


def _status_of(ctx: Context, pi: ProviderInvoice) -> list[Finding]:
    kind = ctx.kind_of(pi)
    has_usage = ctx.has_usage(pi)
    subject = pi_subject(pi)
    out: list[Finding] = []
    if pi.status is PIStatus.ERROR:
        out.append(_error_status(ctx, pi))
    if not has_usage and kind is ProviderKind.AUTOMATIC_USAGE:
        # Computed whatever else is wrong: a root cause (unresolved references, checksum, $0
        # placeholder) mutes it in the engine, and the muted finding stays in the report.
        out.append(_pull_window(ctx, pi))
        return out
    if pi.status is PIStatus.POPULATING and has_usage:
        if kind is ProviderKind.MANUAL:
            return [
                finding(
                    "PI_MANUAL_NOT_ACTIVATED",
                    subject,
                    ctx.period,
                    f"Manual provider invoice {pi.invoice_number or pi.name} has usage but is still Populating",
                    _base_evidence(ctx, pi),
                    [
                        "Open the provider invoice and set its Status Reason to Active: manual invoices stay "
                        "Populating until someone does, and usage on a Populating invoice is never billed.",
                        "Then generate the usage invoices of contracts whose invoice date has passed.",
                    ],
                )
            ]
        arrived = ctx.usage_totals(pi).last_synced or pi.created_on
        if ctx.now - arrived > timedelta(days=ctx.t.stuck_populating_days):
            return [
                finding(
                    "PI_STUCK_POPULATING",
                    subject,
                    ctx.period,
                    f"{pi.invoice_number or pi.name} is still Populating after its usage arrived on "
                    f"{arrived.date().isoformat()}",
                    _base_evidence(ctx, pi) | {"usage_arrived_at": iso(arrived)},
                    [
                        "Azure billing needs the invoice Active Usage or Active. Check Work 365's background "
                        "jobs for a failed import (INFERRED: the cause is not documented).",
                        "Delete the provider invoice and sync it again (Provider Invoices → Sync Provider Invoice).",
                        "If it sticks again, contact Work 365 support.",
                    ],
                )
            ]
        return []
    return out


def _unknown_status(ctx: Context, pi: ProviderInvoice) -> Finding:
    return finding(
        "CHECK_FAILED",
        pi_subject(pi),
        ctx.period,
        f"Status reason {pi.status_label!r} of {pi.invoice_number or pi.name} is not in the status-label map",
        {"check": "provider_invoice_state", "status_label": pi.status_label, "provider_invoice_id": pi.id},
        [
            "Run `python -m diagnostics schema verify` and add the label as a synonym under "
            "labels → work365_providerinvoice.statuscode in the schema-map file.",
        ],
    )


def check_invoice_state(ctx: Context) -> list[Finding]:
    out: list[Finding] = []
    for pi in ctx.reviewed_invoices:
        if pi.status is PIStatus.UNKNOWN:
            out.append(_unknown_status(ctx, pi))
            continue
        out.extend(_status_of(ctx, pi))
    return out
