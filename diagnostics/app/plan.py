"""The daily planner: which units of work need a check today (monitor.md, "The flow in Azure").

`plan_units` is pure (a view of the tenant, the watermark and the clock → check requests);
`read_plan_view` is the planner's own read: one `$batch` of three narrow queries (providers,
provider invoices of the open periods or changed since the watermark, contracts invoicing soon),
then the usage subscriptions of those contracts only when there are any. It never reads usage.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from diagnostics.adapters.dataverse import Query
from diagnostics.adapters.telemetry import dimensions
from diagnostics.app.container import Container, counting_requests, get_container
from diagnostics.app.recheck import check_message
from diagnostics.checks.context import invoice_period
from diagnostics.errors import DiagnosticsError, ServiceError
from diagnostics.messages import (
    CONTRACTS_PER_UNIT,
    QUEUE_INVOICE_CHECKS,
    CheckRequest,
    ContractsUnit,
    ExpectedInvoiceUnit,
    InvoiceUnit,
    TenantPeriodUnit,
    Unit,
    unit_key,
)
from diagnostics.metadata import ResolvedSchema
from diagnostics.model import BillingContract, PIStatus, Provider, ProviderInvoice, ProviderKind
from diagnostics.periods import add_months, day_in_following_month, period_start, period_under_review
from diagnostics.ports import ConflictError
from diagnostics.schema import column_key, label_key
from diagnostics.settings import Thresholds
from diagnostics.snapshot_loader import (  # the loader's row builders: one reading of a row
    DataverseReader,
    Loader,
    Row,
    _contract,
    _provider,
    _provider_invoice,
)

log = logging.getLogger("diagnostics.monitor")

WATERMARK = "watermark"  # state kind
PLANNER = "planner"  # its key
# Dataverse's clock and ours may differ a little: the next plan looks back this much further, and
# the day's message ids make the overlap harmless.
WATERMARK_OVERLAP = timedelta(minutes=10)
# What the planner cannot do without (failure keys, schema.py): without it, it plans only the
# tenant unit, which reports why. The contract rule needs more; without that, it is skipped alone.
_PI, _BC, _SUB = "work365_providerinvoice", "work365_billingcontract", "work365_subscription"
PLANNER_READS = frozenset(
    {
        "providers",
        "provider_invoices",
        column_key(_PI, "work365_providerinvoice_billingperiodstart"),
        label_key("work365_provider", "work365_provider_type"),
    }
)
CONTRACT_RULE_READS = frozenset(
    {
        "contracts",
        "subscriptions",
        column_key(_BC, "work365_billingcontract_nextinvoicedate"),
        column_key(_SUB, "work365_subscription_billingcontract"),
        column_key(_SUB, "work365_subscription_subscriptiontype"),
        label_key(_SUB, "work365_subscription_subscriptiontype"),
        label_key(_SUB, "statuscode"),
    }
)


@dataclass(frozen=True)
class PlanView:
    providers: tuple[Provider, ...]
    invoices: tuple[ProviderInvoice, ...]
    contracts: tuple[BillingContract, ...]  # those invoicing within the at-risk days
    usage_contract_ids: frozenset[str]  # contracts that hold an active usage subscription


def open_periods(now: datetime, thresholds: Thresholds) -> list[str]:
    """The period under review and the earlier ones still watched (DIAG_GAP_LOOKBACK_MONTHS)."""
    current = period_under_review(now)
    return [add_months(current, -n) for n in range(thresholds.gap_lookback_months + 1)]


def _has_usage(invoice: ProviderInvoice) -> bool:
    # The planner does not read usage summaries: an Active invoice with a usage total is done.
    return invoice.status in (PIStatus.ACTIVE, PIStatus.ACTIVE_USAGE) and bool(invoice.usage_total)


def _changed(invoices: Iterable[ProviderInvoice], watermark: datetime | None) -> list[Unit]:
    return [
        InvoiceUnit(invoice_id=i.id)
        for i in invoices
        if watermark is None or i.created_on >= watermark or (i.modified_on or i.created_on) >= watermark
    ]


def _expected(view: PlanView, periods: list[str], today: date, thresholds: Thresholds) -> list[Unit]:
    present = {(i.provider_id, invoice_period(i)) for i in view.invoices}
    units: list[Unit] = []
    for provider in view.providers:
        if provider.kind is not ProviderKind.AUTOMATIC_USAGE:
            continue
        for period in periods:
            due = day_in_following_month(period, provider.invoice_day or thresholds.default_invoice_day)
            if today >= due and (provider.id, period) not in present:
                units.append(ExpectedInvoiceUnit(provider_id=provider.id, period=period))
    return units


def _pull_window(view: PlanView, now: datetime, thresholds: Thresholds) -> list[Unit]:
    window = timedelta(days=thresholds.pull_window_days)
    return [
        InvoiceUnit(invoice_id=i.id)
        for i in view.invoices
        if now < i.created_on + window or not _has_usage(i)
    ]


def _contracts(view: PlanView, today: date, period: str, thresholds: Thresholds) -> list[Unit]:
    """The usage contracts invoicing within the at-risk days, in batches of CONTRACTS_PER_UNIT
    (sorted by id, so the same contracts give the same batches and message ids all day)."""
    due_soon = sorted(
        {
            contract.id
            for contract in view.contracts
            if contract.active
            and contract.id in view.usage_contract_ids
            and contract.next_invoice_date is not None
            and 0 <= (contract.next_invoice_date - today).days <= thresholds.at_risk_days
        }
    )
    return [
        ContractsUnit(period=period, contract_ids=tuple(due_soon[start : start + CONTRACTS_PER_UNIT]))
        for start in range(0, len(due_soon), CONTRACTS_PER_UNIT)
    ]


def plan_units(
    view: PlanView, watermark: datetime | None, now: datetime, thresholds: Thresholds
) -> list[CheckRequest]:
    """Pure: one check request per unit that needs a check today, each unit once, in a stable order."""
    today = now.astimezone(UTC).date()
    periods = open_periods(now, thresholds)
    oldest = periods[-1]
    watched = PlanView(
        view.providers,
        tuple(i for i in view.invoices if (invoice_period(i) or oldest) >= oldest),
        view.contracts,
        view.usage_contract_ids,
    )
    units: list[Unit] = [
        *_changed(view.invoices, watermark),
        *_expected(watched, periods, today, thresholds),
        *_pull_window(watched, now, thresholds),
        *_contracts(watched, today, periods[0], thresholds),
        TenantPeriodUnit(period=periods[0]),
    ]
    unique = {unit_key(u): u for u in reversed(units)}  # the first rule that names a unit wins
    return [CheckRequest(unit=unique[k], day=today, reason="planned") for k in sorted(unique)]


# --- the planner's read -------------------------------------------------------------------------


def _usage_filter(loader: Loader) -> str | None:
    values = loader.schema.values_meaning(
        "work365_subscription", "work365_subscription_subscriptiontype", "usage"
    )
    column = loader.c("work365_subscription", "work365_subscription_subscriptiontype")
    return " or ".join(f"{column} eq {v}" for v in values) or None


async def read_plan_view(
    dv: DataverseReader,
    schema: ResolvedSchema,
    thresholds: Thresholds,
    *,
    now: datetime,
    watermark: datetime | None,
) -> PlanView:
    """What the planner needs, in one `$batch` (a second only when contracts invoice soon).
    A part that fails fails the plan (ServiceError): a partial plan would skip units silently."""
    loader = Loader(schema, thresholds)
    today = now.astimezone(UTC).date()
    oldest = period_start(open_periods(now, thresholds)[-1]).isoformat()
    pi = "work365_providerinvoice"
    start = loader.c(pi, "work365_providerinvoice_billingperiodstart")
    invoice_filter = f"{start} ge {oldest} or ({start} eq null and createdon ge {oldest}T00:00:00Z)"
    if watermark is not None:
        invoice_filter += f" or modifiedon ge {watermark.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%SZ')}"
    bc = "work365_billingcontract"
    next_date = loader.c(bc, "work365_billingcontract_nextinvoicedate")
    until = (today + timedelta(days=thresholds.at_risk_days)).isoformat()
    queries = [loader.query("work365_provider"), loader.query(pi, invoice_filter)]
    contract_rule = not (CONTRACT_RULE_READS & schema.unavailable.keys())
    if contract_rule:
        queries.append(loader.query(bc, f"{next_date} ge {today.isoformat()} and {next_date} le {until}"))
    answers: list[list[dict[str, Any]]] = []
    for answer in await dv.batch(queries):
        if isinstance(answer, ServiceError):
            raise answer
        answers.append(answer)
    raw_providers, raw_invoices = answers[0], answers[1]
    contracts = loader.rows(bc, answers[2], _contract) if contract_rule else []
    usage_contracts: set[str] = set()
    if contracts:
        sub = "work365_subscription"
        columns = (
            "work365_subscription_billingcontract",
            "work365_subscription_subscriptiontype",
            "statuscode",
        )
        select = tuple(loader.c(sub, c) for c in columns)
        for clause in loader.in_filter(
            sub, "work365_subscription_billingcontract", (c.id for c in contracts)
        ):
            usage = _usage_filter(loader)
            where = f"({clause}) and ({usage})" if usage else clause
            for raw in await dv.query(Query(schema.entity_set(sub), select, where)):
                row = Row(sub, raw, schema)
                if (
                    row.meaning("work365_subscription_subscriptiontype") == "usage"
                    and row.meaning("statuscode") == "active"
                ):
                    usage_contracts.add(row.required("work365_subscription_billingcontract"))
    return PlanView(
        providers=tuple(loader.rows("work365_provider", raw_providers, _provider)),
        invoices=tuple(loader.rows(pi, raw_invoices, _provider_invoice)),
        contracts=tuple(contracts),
        usage_contract_ids=frozenset(usage_contracts),
    )


# --- the use case -------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlanResult:
    published: int
    watermark: datetime | None  # the one the plan started from
    past_due: bool
    blind: bool = False  # the planner could not read what it needs (schema or access)
    unchecked: int = 0  # subjects whose open findings no unit checks any more (swept today)


async def run_planner(c: Container, *, past_due: bool = False) -> PlanResult:
    """Plan today and publish one message per unit; then move the watermark.

    A run that fails publishes what it can and leaves the watermark where it was, so the next run
    (the timer's retry, or tomorrow's) catches up; so does a run the host fires late (`past_due`).
    """
    now = c.clock()
    stored = await c.state.get(WATERMARK, PLANNER)
    watermark = datetime.fromisoformat(str(stored.value["at"])) if stored else None
    verification = await c.schema.get()
    blind = PLANNER_READS & verification.schema.unavailable.keys()
    if blind:
        # The plan cannot see what it needs: the tenant unit reports why (SCHEMA_MISMATCH or
        # READ_ACCESS_LIMITED) and what can still be checked; the watermark stays.
        requests = [CheckRequest(unit=TenantPeriodUnit(period=period_under_review(now)), day=now.date())]
    else:
        view = await read_plan_view(
            c.dataverse, verification.schema, c.thresholds, now=now, watermark=watermark
        )
        requests = plan_units(view, watermark, now, c.thresholds)
    await c.bus.send(QUEUE_INVOICE_CHECKS, [check_message(r) for r in requests])
    if not blind:
        value = {"at": (now - WATERMARK_OVERLAP).isoformat(), "planned_at": now.isoformat()}
        # Another run may have moved it meanwhile (a past-due run racing the next one): it stands.
        with contextlib.suppress(ConflictError):
            await c.state.put(WATERMARK, PLANNER, value, etag=stored.etag if stored else None)
    return PlanResult(len(requests), watermark, past_due, bool(blind), await _sweep(c, now))


async def _sweep(c: Container, now: datetime) -> int:
    """Once a day, with the plan: the open findings on records no planned unit visits any more leave
    the open ones as "no longer checked" (MonitorNotifier.sweep). A failure is logged, not raised:
    the plan is out, and tomorrow's sweep does the same work."""
    sweep = getattr(c.notifier, "sweep", None)
    if sweep is None:
        return 0
    try:
        return int(await sweep(now))
    except DiagnosticsError as exc:
        log.warning("the sweep of findings no longer checked failed; the next plan sweeps again: %s", exc)
        return 0


async def plan_today(
    *, past_due: bool = False, container: Callable[[], Container] = get_container
) -> PlanResult:
    """The timer's call: plan, with the canonical log line of the run. A failure is raised, so the
    host's retry policy runs the plan again (the watermark did not move)."""
    started = time.perf_counter()
    with counting_requests() as tally:
        try:
            result = await run_planner(container(), past_due=past_due)
        except Exception as exc:
            duration = time.perf_counter() - started
            log.warning(
                "plan failed past_due=%s requests=%d duration_s=%.3f error=%s",
                past_due,
                tally.count,
                duration,
                exc,
                exc_info=not isinstance(exc, DiagnosticsError),
                extra=dimensions(
                    {
                        "outcome": f"failed:{type(exc).__name__}",
                        "past_due": past_due,
                        "requests": tally.count,
                        "duration_s": round(duration, 3),
                        "error": str(exc),
                    }
                ),
            )
            raise
    duration = time.perf_counter() - started
    watermark = result.watermark.isoformat() if result.watermark else "none"
    log.info(
        "plan done published=%d unchecked=%d past_due=%s watermark=%s requests=%d duration_s=%.3f",
        result.published,
        result.unchecked,
        past_due,
        watermark,
        tally.count,
        duration,
        extra=dimensions(
            {
                "outcome": "planned",
                "published": result.published,
                "unchecked": result.unchecked,
                "past_due": past_due,
                "watermark": watermark,
                "requests": tally.count,
                "duration_s": round(duration, 3),
            }
        ),
    )
    return result
