"""Runbook step 1: has the provider invoice for the period been pulled, and is it in Partner Center?"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

from diagnostics.catalog import finding
from diagnostics.checks.context import Context, expected_subject, iso
from diagnostics.model import Finding, PartnerCenterInvoice, Provider
from diagnostics.periods import period_of, period_start

_RAISE_TICKET = (
    "Wait until Microsoft publishes the invoice; Microsoft's availability SLA is the 8th of the month.",
    "If it is still absent in Partner Center (Billing → Invoices), raise a ticket with Microsoft support.",
    "Once it arrives and Work 365 has imported its usage, generate the usage invoices of contracts "
    "whose invoice date has passed (Billing Contract → Generate Invoice, current billing cycle).",
)
_SYNC_BY_HAND = (
    "Work 365 → Admin Hub → Integrations → Partner Center → Verify Connectivity; if it fails, redo the "
    "admin and user consent with the dedicated integration account (Billing admin role, MFA).",
    "Work 365 → Provider Invoices → Sync Provider Invoice: choose the Microsoft provider and this "
    "invoice, then Submit.",
    "If the invoice still does not appear in Work 365 within a day, contact Work 365 support.",
)
_CHECK_BY_HAND = (
    "Open Partner Center → Billing → Invoices and look for the invoice of this billing period.",
    "If it is there, Work 365 did not pull it: Work 365 → Provider Invoices → Sync Provider Invoice, "
    "choose the provider and the invoice, Submit; if that fails, contact Work 365 support.",
    "If it is not there, Microsoft is late: raise a ticket with Microsoft support.",
    "To let the tool check Partner Center itself, set DIAG_PARTNER_CENTER_TENANT_ID, "
    "DIAG_PARTNER_CENTER_CLIENT_ID and DIAG_PARTNER_CENTER_CLIENT_SECRET.",
)


def _is_one_time(inv: PartnerCenterInvoice) -> bool:
    return (inv.invoice_type or "").casefold() == "onetime"


def usage_invoices(invoices: Iterable[PartnerCenterInvoice]) -> list[PartnerCenterInvoice]:
    """The invoices that may carry a period's Azure usage.

    Azure plan usage is billed on the one-time (new-commerce, "G…") invoice. A partner that has
    one-time invoices at all is waiting for that one: a legacy recurring invoice covering the same
    dates does not carry the usage. Only partners with no one-time invoices are matched on any.
    Credit notes and other documents never carry it.
    """
    documents = [inv for inv in invoices if (inv.document_type or "Invoice").casefold() == "invoice"]
    if any(_is_one_time(inv) for inv in documents):
        return [inv for inv in documents if _is_one_time(inv)]
    return documents


def _partner_center_invoice(ctx: Context, period: str) -> PartnerCenterInvoice | None:
    """Partner Center's invoice that bills `period`'s usage (see `usage_invoices`)."""
    matches = sorted(
        (
            inv
            for inv in usage_invoices(ctx.snap.partner_center.invoices)
            if inv.period_start is not None and period_of(inv.period_start.date()) == period
        ),
        key=lambda inv: (inv.period_inferred, inv.id),
    )
    return matches[0] if matches else None


def _unknown_period(ctx: Context, period: str) -> list[str]:
    """Invoices that could bill `period` but whose billing period Partner Center did not give."""
    begins = period_start(period)
    return [
        inv.id
        for inv in usage_invoices(ctx.snap.partner_center.invoices)
        if inv.period_start is None and (inv.invoice_date is None or inv.invoice_date.date() >= begins)
    ]


def _missing(ctx: Context, provider: Provider, period: str) -> Finding:
    subject = expected_subject(provider, period)
    due = ctx.due_date(provider, period)
    evidence: dict[str, object] = {
        "provider_id": provider.id,
        "provider": provider.name,
        "invoice_day": ctx.invoice_day(provider),
        "due_date": iso(due),
        "today": iso(ctx.today),
        "partner_center": ctx.snap.partner_center.state,
    }
    if ctx.today < due:
        return finding(
            "PI_NOT_YET_DUE",
            subject,
            period,
            f"{provider.name} invoice for {period} is not due until {due.isoformat()}",
            evidence,
            ["Nothing to do yet: the tool checks again after the invoice day."],
        )
    view = ctx.snap.partner_center
    if view.state != "ok":
        evidence["partner_center_reason"] = view.reason
        return finding(
            "PI_MISSING_UNVERIFIED",
            subject,
            period,
            f"No {provider.name} invoice for {period} in Work 365, and Partner Center could not be checked",
            evidence,
            _CHECK_BY_HAND,
        )
    pc_invoice = _partner_center_invoice(ctx, period)
    unknown = _unknown_period(ctx, period) if pc_invoice is None else []
    if unknown:
        # Any of these may be the period's invoice: "Microsoft is late" cannot be concluded.
        evidence |= {
            "partner_center_invoices_without_period": unknown,
            "partner_center_reason": view.period_error,
        }
        return finding(
            "PI_MISSING_UNVERIFIED",
            subject,
            period,
            f"No {provider.name} invoice for {period} in Work 365, and Partner Center did not say which "
            "period its latest invoices bill",
            evidence,
            _CHECK_BY_HAND[:3],
        )
    if pc_invoice is None:
        evidence["partner_center_invoices_seen"] = len(view.invoices)
        return finding(
            "PI_MISSING_MICROSOFT_DELAY",
            subject,
            period,
            f"Microsoft has not published the {period} invoice: it is in neither Partner Center nor Work 365",
            evidence,
            _RAISE_TICKET,
        )
    evidence |= {
        "partner_center_invoice": pc_invoice.id,
        "partner_center_invoice_date": iso(pc_invoice.invoice_date),
        "partner_center_total": str(pc_invoice.total_charges)
        if pc_invoice.total_charges is not None
        else None,
        "currency": pc_invoice.currency_code,
    }
    if pc_invoice.period_inferred:
        evidence["partner_center_period"] = (
            "inferred from the invoice date (the list gives no billing period)"
        )
    grace = timedelta(hours=ctx.t.not_synced_grace_hours)
    published = pc_invoice.invoice_date
    if published is not None and ctx.now - published <= grace:
        # Work 365 syncs once a day: an invoice published within the grace period is expected soon.
        evidence["expected_in_work365_by"] = iso(published + grace)
        return finding(
            "PI_NOT_YET_DUE",
            subject,
            period,
            f"Partner Center published {pc_invoice.id} for {period}; Work 365's daily sync should pull it soon",
            evidence,
            ["Nothing to do yet: Work 365 syncs provider invoices once a day."],
        )
    return finding(
        "PI_MISSING_NOT_SYNCED",
        subject,
        period,
        f"Partner Center has invoice {pc_invoice.id} for {period}, but Work 365 did not pull it",
        evidence,
        _SYNC_BY_HAND,
    )


def check_invoice_pulled(ctx: Context) -> list[Finding]:
    if ctx.snap.focus_invoice_id is not None:
        return []  # diagnosing one invoice that exists: nothing is missing
    return [
        _missing(ctx, provider, ctx.period)
        for provider in ctx.automatic_providers()
        if not ctx.invoices_for(provider.id, ctx.period)
    ]
