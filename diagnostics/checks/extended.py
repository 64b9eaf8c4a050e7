"""Further causes of missing or wrong usage invoices, from Work 365's own documentation
(findings.md section 5; scenarios 3, 4, 24, 25, 29, 31, 35, 36, 38 of work365-scenarios.md)."""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta
from decimal import Decimal
from typing import Any

from diagnostics.catalog import finding
from diagnostics.checks.context import (
    Context,
    contract_subject,
    expected_subject,
    iso,
    pi_subject,
    subscription_subject,
)
from diagnostics.model import BillingSchedule, Finding, PIStatus, ScheduleStatus, Subscription, UsageGroup
from diagnostics.periods import add_months
from diagnostics.text import cut, money

_REGENERATE = (
    "Generate the usage invoice again, by hand, for the affected billing cycle (Billing Contract → Generate "
    "Invoice; delete the cycle's existing invoice first so the usage becomes billable again)."
)


def check_zero_placeholder(ctx: Context) -> list[Finding]:
    out = []
    for pi in ctx.reviewed_invoices:
        if pi.status is not PIStatus.ACTIVE or (pi.usage_total or Decimal(0)) != 0 or ctx.has_usage(pi):
            continue
        if ctx.parsed_notes(pi).has_errors_file:
            continue
        previous = [
            p
            for p in ctx.invoices_for(pi.provider_id, add_months(ctx.period, -1))
            if (p.usage_total or 0) > 0
        ]
        if not previous:
            continue
        out.append(
            finding(
                "PI_ZERO_PLACEHOLDER",
                pi_subject(pi),
                ctx.period,
                f"{pi.invoice_number or pi.name} was imported as a $0 placeholder: Active with no usage",
                {
                    "provider_invoice_id": pi.id,
                    "usage_total": str(pi.usage_total if pi.usage_total is not None else Decimal(0)),
                    "currency": ctx.currency_of(pi),
                    "usage_summaries": 0,
                    "previous_invoice_id": previous[0].id,
                    "previous_usage_total": str(previous[0].usage_total),
                },
                [
                    "Open the $0 provider invoice and confirm its totals are $0.",
                    "Delete it (local only; Partner Center is not touched).",
                    "Work 365 → Sync/Download Provider Invoice: choose the provider and this invoice, after "
                    "Partner Center has finished publishing it.",
                    _REGENERATE,
                ],
            )
        )
    return out


def check_period_gap(ctx: Context) -> list[Finding]:
    """A month with no invoice between months that have one: only the latest invoice is pulled
    automatically, so a skipped month is never fetched unless someone downloads it ([S19])."""
    if ctx.snap.focus_invoice_id is not None:
        return []
    out = []
    oldest = add_months(ctx.period, -ctx.t.gap_lookback_months - 1)
    for provider in ctx.automatic_providers():
        periods = {
            p
            for (pid, p) in ctx.invoices_by_provider_period
            if pid == provider.id and oldest <= p <= ctx.period
        }
        for back in range(ctx.t.gap_lookback_months, 0, -1):
            period = add_months(ctx.period, -back)
            if period in periods:
                continue
            later = sorted(p for p in periods if p > period)
            earlier = [p for p in periods if p < period]
            if later and earlier:
                out.append(
                    finding(
                        "PI_PERIOD_GAP",
                        expected_subject(provider, period),
                        period,
                        f"No {provider.name} invoice for {period}, though {later[0]} was imported: "
                        "the month was skipped",
                        {
                            "provider_id": provider.id,
                            "missing_period": period,
                            "later_periods": later,
                            "earlier_periods": sorted(earlier),
                        },
                        [
                            "Work 365 → Provider Invoices → Sync Provider Invoice: choose the provider and the "
                            f"invoice for {period}, Submit (only the latest invoice is pulled automatically).",
                            _REGENERATE,
                        ],
                    )
                )
    return out


def _usage_by_sub(ctx: Context) -> list[tuple[Subscription, list[UsageGroup]]]:
    return [
        (ctx.subscriptions[sid], usage)
        for sid, usage in sorted(ctx.reviewed_usage_by_subscription.items())
        if sid in ctx.subscriptions
    ]


def check_markup(ctx: Context) -> list[Finding]:
    out = []
    for sub, usage in _usage_by_sub(ctx):
        if not sub.is_usage:
            continue
        if sub.markup is None:
            out.append(
                finding(
                    "SUB_MARKUP_MISSING",
                    subscription_subject(sub, ctx.snap.account_names),
                    ctx.period,
                    f"Usage subscription {sub.name or sub.id} has usage in {ctx.period} but no Markup %",
                    {"subscription_id": sub.id, "usage_summaries": sum(g.all.rows for g in usage)},
                    [
                        "Open the subscription and set Markup % (at least 0; 17.647 % gives a 15 % margin).",
                        "Update Markup % on the usage summaries already imported (Usage Summaries view → "
                        "bulk edit, or export, modify and re-import).",
                        _REGENERATE,
                    ],
                )
            )
            continue
        imported = sorted({m for g in usage for m in g.markups if m != sub.markup})
        imported_on = min(g.all.first_synced for g in usage if g.all.first_synced is not None)
        changed_after = sub.modified_on is not None and sub.modified_on > imported_on
        if imported and changed_after:
            invoiced = sum(g.invoiced for g in usage)
            out.append(
                finding(
                    "SUB_MARKUP_CHANGED_AFTER_IMPORT",
                    subscription_subject(sub, ctx.snap.account_names),
                    ctx.period,
                    f"Markup of {sub.name or sub.id} changed after its usage was imported: the usage keeps "
                    "the old markup",
                    {
                        "subscription_id": sub.id,
                        "subscription_markup": str(sub.markup),
                        "usage_markups": [str(m) for m in imported],
                        "subscription_modified_on": iso(sub.modified_on),
                        "usage_imported_on": iso(imported_on),
                        "invoiced_usage_summaries": invoiced,
                    },
                    [
                        "Update Markup % on this subscription's usage summaries to the new value (Usage "
                        "Summaries view → bulk edit, or export, modify and re-import).",
                        "If an invoice was already generated with the old markup, delete it and generate it again.",
                    ],
                )
            )
    return out


def check_archived_usage(ctx: Context) -> list[Finding]:
    out = []
    for sub, usage in _usage_by_sub(ctx):
        archived = [g for g in usage if g.archived.rows]
        if not archived:
            continue
        count = sum(g.archived.rows for g in archived)
        cost = sum((g.archived.cost for g in archived), Decimal(0))
        currency = ctx.currency_of_groups(archived)
        out.append(
            finding(
                "USAGE_ARCHIVED",
                subscription_subject(sub, ctx.snap.account_names),
                ctx.period,
                f"{count} usage summaries of {sub.name or sub.id} for {ctx.period} "
                f"({money(cost, currency)}) are archived and will never be billed",
                {
                    "subscription_id": sub.id,
                    "archived_usage_summaries": [i for g in archived for i in g.archived_ids],
                    "count": count,
                    "cost": str(cost),
                    "currency": currency,
                },
                [
                    "Find out why the usage was archived; archived usage is never billed.",
                    "If it should be billed, make the usage summaries Active again (INFERRED: Work 365 does not "
                    "document the way back), then generate the invoice for the cycle.",
                ],
            )
        )
    return out


def _schedule_evidence(schedule: BillingSchedule) -> dict[str, Any]:
    return {
        "billing_schedule_id": schedule.id,
        "schedule": schedule.name,
        "schedule_date": iso(schedule.schedule_date),
        "cycle_start": iso(schedule.cycle_start),
        "cycle_end": iso(schedule.cycle_end),
        "status": schedule.status_label,
    }


def check_billing_schedules(ctx: Context) -> list[Finding]:
    out = []
    late = ctx.today - timedelta(days=ctx.t.schedule_missed_days)
    for contract in ctx.usage_contracts():
        for schedule in sorted(ctx.schedules_by_contract.get(contract.id, []), key=lambda s: s.id):
            subject = contract_subject(contract)
            if schedule.status is ScheduleStatus.ERROR:
                evidence = _schedule_evidence(schedule) | {
                    "message": schedule.message,
                    "correlation_id": schedule.correlation_id,
                }
                out.append(
                    finding(
                        "BILLING_SCHEDULE_ERROR",
                        subject,
                        ctx.period,
                        f"Invoice generation failed for {contract.name or contract.id}: "
                        f"{cut((schedule.message or 'no message').splitlines()[0], 120)}",
                        evidence,
                        [
                            "Billing Administrator dashboard → Missed or Errored Schedules: open the schedule and "
                            "fix the cause its message names.",
                            "Generate the cycle's invoice by hand.",
                        ],
                    )
                )
            elif (
                schedule.status is ScheduleStatus.PENDING
                and schedule.schedule_date is not None
                and schedule.schedule_date < late
                and schedule.invoice_id is None
            ):
                out.append(
                    finding(
                        "BILLING_SCHEDULE_MISSED",
                        subject,
                        ctx.period,
                        f"{contract.name or contract.id} did not invoice on {schedule.schedule_date.isoformat()}: "
                        "its schedule is still Pending",
                        _schedule_evidence(schedule)
                        | {"days_late": (ctx.today - schedule.schedule_date).days},
                        [
                            "The invoicing process could not run: check the Work 365 service account's "
                            "credentials, consent and Dynamics licence, and restore them.",
                            "Generate the missed cycles by hand (Billing Contract → Generate Invoice).",
                        ],
                    )
                )
    return out


def check_contract_expired(ctx: Context) -> list[Finding]:
    out = []
    for contract in ctx.usage_contracts():
        end = contract.end_date
        if end is None or end >= ctx.today or contract.auto_renew:
            continue
        after: list[UsageGroup] = []
        rows, cost = 0, Decimal(0)
        for sub in ctx.usage_subscriptions_on(contract):
            for group in ctx.reviewed_usage_by_subscription.get(sub.id, []):
                late = group.after(end)
                if late.rows:
                    after.append(group)
                    rows += late.rows
                    cost += late.cost
        if not after:
            continue
        currency = ctx.currency_of_groups(after)
        out.append(
            finding(
                "CONTRACT_EXPIRED_WITH_USAGE",
                contract_subject(contract),
                ctx.period,
                f"{contract.name or contract.id} ended on {end.isoformat()} without auto-renew, but usage "
                f"continues ({money(cost, currency)} after the end)",
                {
                    "billing_contract_id": contract.id,
                    "end_date": iso(end),
                    "auto_renew": contract.auto_renew,
                    "usage_summaries_after_end": rows,
                    "cost_after_end": str(cost),
                    "currency": currency,
                },
                [
                    "Extend the contract's End Date or turn on Auto-Renew.",
                    "Generate the missed cycles by hand.",
                ],
            )
        )
    return out


def check_subscription_contracts(ctx: Context) -> list[Finding]:
    out = []
    reasons: dict[str, list[Subscription]] = defaultdict(list)
    for sub in ctx.usage_subscriptions:
        contract = ctx.contracts.get(sub.contract_id or "")
        if sub.contract_id is None:
            reasons["no billing contract"].append(sub)
        elif contract is None:
            reasons["its billing contract does not exist"].append(sub)
        elif not contract.active:
            reasons["its billing contract is inactive"].append(sub)
    for reason, subs in reasons.items():
        for sub in subs:
            contract = ctx.contracts.get(sub.contract_id or "")
            out.append(
                finding(
                    "SUB_NOT_ON_ACTIVE_CONTRACT",
                    subscription_subject(sub, ctx.snap.account_names),
                    ctx.period,
                    f"Usage subscription {sub.name or sub.id} is not on an active billing contract: {reason}",
                    {
                        "subscription_id": sub.id,
                        "billing_contract_id": sub.contract_id,
                        "billing_contract": contract.name if contract else None,
                        "reason": reason,
                    },
                    [
                        "Open the subscription and set its Billing Contract to the customer's active (usage) "
                        "billing contract.",
                        "Then generate the invoices of the cycles it missed.",
                    ],
                )
            )
    return out
