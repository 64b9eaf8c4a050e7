"""Runbook step 3: did the usage arrive after the billing contract had already invoiced?

Work 365 bills usage in arrears, on each billing contract's invoice date, from the usage summaries
that exist at that moment. Usage synced later waits for the next cycle, or for someone to generate
the invoice again by hand ([S1] 5th-vs-8th example, [S18]).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from diagnostics.catalog import finding
from diagnostics.checks.context import Context, contract_subject, iso
from diagnostics.model import BillingContract, Finding, Provider, ScheduleStatus, UsageGroup
from diagnostics.periods import day_in_following_month, start_of_day
from diagnostics.text import money


def invoice_runs(
    ctx: Context, contract: BillingContract, period: str | None = None
) -> list[tuple[datetime, dict[str, Any]]]:
    """When the contract generated invoices since the period (default: the one under review) closed:
    schedule run dates, else the created-on of its invoices."""
    since = start_of_day(day_in_following_month(period or ctx.period, 1))
    runs: list[tuple[datetime, dict[str, Any]]] = []
    seen_invoices: set[str] = set()
    for schedule in ctx.schedules_by_contract.get(contract.id, []):
        invoice = ctx.customer_invoices.get(schedule.invoice_id or "")
        moment = schedule.run_date or (invoice.created_on if invoice else None)
        if moment is None or (schedule.status is not ScheduleStatus.INVOICED and invoice is None):
            continue
        if since <= moment <= ctx.now:
            runs.append((moment, {"billing_schedule_id": schedule.id, "invoice_id": schedule.invoice_id}))
            if schedule.invoice_id:
                seen_invoices.add(schedule.invoice_id)
    for invoice in ctx.invoices_by_contract.get(contract.id, []):
        if invoice.id not in seen_invoices and since <= invoice.created_on <= ctx.now:
            runs.append((invoice.created_on, {"invoice_id": invoice.id, "invoice_number": invoice.number}))
    return sorted(runs, key=lambda run: run[0])


def _uninvoiced(usage: list[UsageGroup]) -> list[UsageGroup]:
    """The groups with usage on no invoice that is not archived (what the next run should bill)."""
    return [g for g in usage if g.pending.rows]


def _late_usage(ctx: Context, contract: BillingContract) -> Finding | None:
    late: list[UsageGroup] = []
    subs: list[dict[str, Any]] = []
    for sub in ctx.usage_subscriptions_on(contract):
        pending = _uninvoiced(ctx.reviewed_usage_by_subscription.get(sub.id, []))
        if pending:
            late.extend(pending)
            rows = sum(g.pending.rows for g in pending)
            subs.append({"subscription_id": sub.id, "subscription": sub.name, "usage_summaries": rows})
    if not late:
        return None
    synced_at = min(g.pending.first_synced for g in late if g.pending.first_synced is not None)
    earlier = [run for run in invoice_runs(ctx, contract) if run[0] < synced_at]
    if not earlier:
        return None
    ran_at, run = earlier[-1]
    cost = sum((g.pending.cost for g in late), Decimal(0))
    currency = ctx.currency_of_groups(late)
    evidence = {
        "billing_contract_id": contract.id,
        "invoice_ran_at": iso(ran_at),
        **run,
        "usage_synced_at": iso(synced_at),
        "subscriptions": subs,
        "uninvoiced_usage_summaries": sum(g.pending.rows for g in late),
        "uninvoiced_cost": str(cost),
        "currency": currency,
    }
    return finding(
        "USAGE_SYNCED_AFTER_CONTRACT_INVOICE",
        contract_subject(contract),
        ctx.period,
        f"{contract.name or contract.id} invoiced on {ran_at.date().isoformat()}, before the {ctx.period} usage "
        f"({money(cost, currency)}) arrived on {synced_at.date().isoformat()}",
        evidence,
        [
            "Generate the invoice again, by hand, for the current billing cycle: Billing Contract → Generate "
            "Invoice (if the cycle's invoice already exists, delete it first so the usage becomes billable, or "
            "use bulk generate with 'replace the existing invoice').",
            "To stop this recurring, move the usage subscriptions to their own billing contract (monthly, "
            "arrears) whose start date is at least 7 days after the provider's invoice day (e.g. the 15th).",
        ],
    )


def _usage_providers(ctx: Context, contract: BillingContract) -> list[Provider]:
    ids = {s.provider_id for s in ctx.usage_subscriptions_on(contract)}
    own = [
        ctx.providers[i] for i in ids if i in ctx.providers and ctx.providers[i] in ctx.automatic_providers()
    ]
    return own or ctx.automatic_providers()


def contract_invoice_date(contract: BillingContract) -> date | None:
    """The next date the contract invoices: Next Invoice Date (else Start Date) shifted by the offset."""
    anchor = contract.next_invoice_date or contract.start_date
    if anchor is None:
        return None
    return anchor + timedelta(days=contract.billing_offset or 0)


def _too_early(ctx: Context, contract: BillingContract) -> Finding | None:
    invoice_date = contract_invoice_date(contract)
    providers = _usage_providers(ctx, contract)
    if invoice_date is None or not providers:
        return None
    provider_day = max(ctx.invoice_day(p) for p in providers)
    earliest_safe = provider_day + ctx.t.contract_gap_days
    if invoice_date.day >= earliest_safe:
        return None
    return finding(
        "CONTRACT_INVOICE_DATE_TOO_EARLY",
        contract_subject(contract),
        ctx.period,
        f"{contract.name or contract.id} invoices on day {invoice_date.day}, too soon after the provider's "
        f"invoice day ({provider_day}) for usage to be there",
        {
            "billing_contract_id": contract.id,
            "invoice_day": invoice_date.day,
            "next_invoice_date": iso(invoice_date),
            "billing_offset": contract.billing_offset,
            "provider_invoice_day": provider_day,
            "minimum_gap_days": ctx.t.contract_gap_days,
            "earliest_safe_day": earliest_safe,
            "usage_subscriptions": [s.id for s in ctx.usage_subscriptions_on(contract)],
        },
        [
            f"Create a billing contract for the usage subscriptions alone (monthly, arrears) whose start date is "
            f"on or after day {earliest_safe} of the month, and move the usage subscriptions to it.",
            "Until then, generate the usage invoice by hand after the provider invoice is Active with usage.",
        ],
    )


def _at_risk(ctx: Context, contract: BillingContract) -> Finding | None:
    invoice_date = contract_invoice_date(contract)
    if invoice_date is None:
        return None
    days_until = (invoice_date - ctx.today).days
    if not 0 <= days_until <= ctx.t.at_risk_days:
        return None
    not_ready = []
    for provider in _usage_providers(ctx, contract):
        invoices = ctx.invoices_for(provider.id, ctx.period)
        if not any(ctx.is_active_with_usage(pi) for pi in invoices):
            not_ready.append(
                {
                    "provider": provider.name,
                    "provider_invoices": [{"id": pi.id, "status": pi.status_label} for pi in invoices],
                }
            )
    if not not_ready:
        return None
    return finding(
        "USAGE_AT_RISK_NEXT_INVOICE",
        contract_subject(contract),
        ctx.period,
        f"{contract.name or contract.id} invoices in {days_until} day(s), and the {ctx.period} usage is not ready",
        {
            "billing_contract_id": contract.id,
            "next_invoice_date": iso(invoice_date),
            "days_until_invoice": days_until,
            "not_ready": not_ready,
        },
        [
            "The coming invoice will not include this usage. After the provider invoice is Active with usage, "
            "generate the usage invoice by hand for the current billing cycle.",
        ],
    )


def check_contract_timing(ctx: Context) -> list[Finding]:
    out: list[Finding] = []
    for contract in ctx.usage_contracts():
        if not contract.active:
            continue
        for rule in (_late_usage, _too_early, _at_risk):
            result = rule(ctx, contract)
            if result is not None:
                out.append(result)
    return out
