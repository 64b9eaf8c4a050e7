"""The month of each provider invoice, as dates the HTML report draws on a timeline.

Pure: read from the same snapshot the checks used (no request of its own), so what the picture
shows is what the findings were judged on. Carried on the report as the optional field
`timelines` (findings.md allows added fields).
"""

from __future__ import annotations

from datetime import timedelta

from diagnostics.checks.context import Context, expected_subject, invoice_period, pi_subject
from diagnostics.checks.timing import contract_invoice_date, invoice_runs
from diagnostics.model import (
    BillingContract,
    ContractTimeline,
    InvoiceTimeline,
    ProviderInvoice,
    ProviderKind,
)
from diagnostics.periods import day_in_following_month, period_end

# A timeline with more contracts than this would be unreadable: the rest are counted, not drawn.
MAX_CONTRACTS = 8
# A tenant with more invoices than this in one report gets the first ones drawn (worst state first
# is the findings list's job; the timelines follow the snapshot's order).
MAX_TIMELINES = 40


def _contract_timeline(ctx: Context, contract: BillingContract, period: str) -> ContractTimeline:
    return ContractTimeline(
        id=contract.id,
        name=contract.name or contract.id,
        invoiced_at=tuple(moment for moment, _ in invoice_runs(ctx, contract, period)),
        next_invoice_date=contract_invoice_date(contract),
    )


def _contracts_of(ctx: Context, pi: ProviderInvoice) -> list[BillingContract]:
    """The usage contracts this invoice's usage is billed on: those holding a subscription with usage
    on it, else (no usage yet) those holding a usage subscription of its provider."""
    usage_subs = ctx.usage_subscription_ids(pi.id)
    ids = {
        s.contract_id
        for s in ctx.usage_subscriptions
        if s.contract_id is not None
        and (s.id in usage_subs or (s.provider_id and s.provider_id == pi.provider_id))
    }
    return _active(ctx, ids)


def _active(ctx: Context, ids: set[str]) -> list[BillingContract]:
    # An inactive contract invoices nothing (the timing checks skip it too).
    found = (ctx.contracts[i] for i in ids if i in ctx.contracts)
    return sorted((c for c in found if c.active), key=lambda c: c.name or c.id)


def _currency(ctx: Context, pi: ProviderInvoice) -> str | None:
    return next((c.iso_code for c in ctx.snap.currencies if c.id == pi.currency_id), None)


def _invoice_timeline(ctx: Context, pi: ProviderInvoice, period: str) -> InvoiceTimeline:
    provider = ctx.provider_of(pi)
    usage = ctx.usage_totals(pi)
    contracts = _contracts_of(ctx, pi)
    automatic = provider is not None and provider.kind is ProviderKind.AUTOMATIC_USAGE
    return InvoiceTimeline(
        subject=pi_subject(pi),
        provider=provider.name if provider else None,
        period=period,
        period_end=pi.period_end or period_end(period),
        invoice_day=ctx.due_date(provider, period),
        usage_file_day=day_in_following_month(period, ctx.t.usage_file_day),
        created_on=pi.created_on,
        status=pi.status_label or pi.status.value,
        usage_first_synced=usage.first_synced,
        usage_last_synced=usage.last_synced,
        has_usage=ctx.has_usage(pi),
        pull_window_end=pi.created_on + timedelta(days=ctx.t.pull_window_days) if automatic else None,
        total_amount=pi.total_amount,
        currency=_currency(ctx, pi),
        contracts=tuple(_contract_timeline(ctx, c, period) for c in contracts[:MAX_CONTRACTS]),
        more_contracts=max(0, len(contracts) - MAX_CONTRACTS),
    )


def _missing_timelines(ctx: Context) -> list[InvoiceTimeline]:
    """Automatic providers with no invoice for the period: the dates it was due by, nothing landed."""
    if "provider_invoices" in ctx.snap.failures or ctx.snap.focus_invoice_id is not None:
        return []
    out = []
    for provider in ctx.automatic_providers():
        if ctx.invoices_for(provider.id, ctx.period):
            continue
        subs_contracts = {
            s.contract_id
            for s in ctx.usage_subscriptions
            if s.provider_id == provider.id and s.contract_id is not None
        }
        contracts = _active(ctx, subs_contracts)
        out.append(
            InvoiceTimeline(
                subject=expected_subject(provider, ctx.period),
                provider=provider.name,
                period=ctx.period,
                period_end=period_end(ctx.period),
                invoice_day=ctx.due_date(provider, ctx.period),
                usage_file_day=day_in_following_month(ctx.period, ctx.t.usage_file_day),
                contracts=tuple(_contract_timeline(ctx, c, ctx.period) for c in contracts[:MAX_CONTRACTS]),
                more_contracts=max(0, len(contracts) - MAX_CONTRACTS),
            )
        )
    return out


def timelines(ctx: Context) -> tuple[InvoiceTimeline, ...]:
    """One timeline per reviewed provider invoice, and per expected invoice that has not landed."""
    found = [
        _invoice_timeline(ctx, pi, invoice_period(pi) or ctx.period)
        for pi in sorted(ctx.reviewed_invoices, key=lambda pi: (pi.name, pi.id))
    ]
    return tuple([*found, *_missing_timelines(ctx)][:MAX_TIMELINES])
