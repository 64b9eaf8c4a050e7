"""Query plans by unit of work: each reads only the rows its unit's checks need, in as few `$batch`
round trips as the ids allow (diagnostics/loading/units.py says which checks run for which unit).

- provider invoice: three round trips, whatever the size of the tenant — (1) the invoice by its
  GUID, how many usage summaries it has per subscription, its notes, the providers and currencies;
  (2) its usage summaries in queries of at most one page each, and what (1) names: the
  subscriptions its usage touches and its references name, the provider accounts its references
  name, the provider invoices of its period and the one before; (3) what the subscriptions name:
  their contracts, the other usage subscriptions on them (and of the referenced customers), their
  schedules and customer invoices, and whether the period's other invoices have usage.
- expected invoice: one round trip (the provider and its invoices of the look-back), Partner
  Center asked at the same time.
- billing contract, or a batch of them (the planner's `ContractsUnit`, up to CONTRACTS_PER_UNIT):
  two round trips whatever their number — (1) the contracts, their usage subscriptions, schedules
  and customer invoices, the providers, the provider invoices of the period and the currencies;
  (2) those subscriptions' usage of the period and whether each of the period's invoices has usage.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from diagnostics.adapters.dataverse import MAX_PAGE_SIZE
from diagnostics.checks.context import invoice_period, parse_notes
from diagnostics.errors import InvoiceNotFound, ServiceError
from diagnostics.messages import ContractsUnit, ContractUnit, ExpectedInvoiceUnit, InvoiceUnit
from diagnostics.metadata import ResolvedSchema
from diagnostics.model import PartnerCenterView, ProviderInvoice, Snapshot
from diagnostics.periods import add_months, day_in_following_month, period_start, period_under_review
from diagnostics.refcsv import RefKind, references_in_message
from diagnostics.settings import Thresholds
from diagnostics.snapshot_loader import (
    DataverseReader,
    InvoiceLister,
    Loader,
    _partner_center,
    _usage_type_filter,
    note_queries,
)

from .rounds import Answers, Round, run

_PI, _US, _SUB = "work365_providerinvoice", "work365_usagesummary", "work365_subscription"
_BS, _BC = "work365_billingschedule", "work365_billingcontract"
_IN_CHUNK = 200  # ids per In() filter, as the period loader chunks them
_GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_NOT_ASKED = PartnerCenterView(
    state="not_configured", reason="this unit of work does not need Partner Center"
)


def _eq(loader: Loader, table: str, column: str, guid: str) -> str:
    return f"{loader.c(table, column)} eq {guid}"


def _periods_filter(loader: Loader, first: str, last: str) -> str:
    """Provider invoices that bill a period from `first` to `last` (invoice_period's rule: the billing
    period start, else the month before the invoice date)."""
    start = loader.c(_PI, "work365_providerinvoice_billingperiodstart")
    dated = loader.c(_PI, "work365_providerinvoice_invoicedate")
    since, until = period_start(first).isoformat(), period_start(add_months(last, 1)).isoformat()
    after_since, after_until = (
        period_start(add_months(first, 1)).isoformat(),
        period_start(add_months(last, 2)).isoformat(),
    )
    return (
        f"({start} ge {since} and {start} lt {until}) or "
        f"({start} eq null and {dated} ge {after_since} and {dated} lt {after_until})"
    )


def _contract_rows(
    round_: Round, contract_ids: Iterable[str], *, period: str, as_of: datetime, t: Thresholds
) -> None:
    """Schedules and customer invoices of these contracts, in the windows the period scan reads."""
    loader, ids = round_.loader, sorted(set(contract_ids))
    oldest = period_start(add_months(period, -t.gap_lookback_months - 1))
    scheduled = loader.c(_BS, "work365_billingschedule_scheduledate")
    until = (as_of + timedelta(days=62)).date()
    window = f"{scheduled} ge {oldest.isoformat()} and {scheduled} le {until.isoformat()}"
    since = day_in_following_month(period, 1).isoformat()
    round_.add_in("schedules", _BS, "work365_billingschedule_billingcontract", ids, window)
    round_.add_in(
        "invoices", "invoice", "work365_invoice_billingcontract", ids, f"createdon ge {since}T00:00:00Z"
    )


def _probe_usage(round_: Round, invoices: Iterable[ProviderInvoice]) -> None:
    column = round_.loader.c(_US, "work365_usagesummary_providerinvoice")
    for pi in invoices:
        round_.probe(f"any:{pi.id}", _US, f"{column} eq {pi.id}", part="usage_summaries")


# --- one provider invoice -------------------------------------------------------------------------


def _guids(*texts: str | None) -> set[str]:
    return {m.lower() for text in texts if text for m in _GUID.findall(text)}


def _named_ids(focus: ProviderInvoice, answers: Answers) -> tuple[set[str], set[str]]:
    """The customer and subscription ids the invoice's notes and message name, as the checks read
    them: references of errors.csv and of the message, and warnings.csv's (by provider subscription
    id or record id). A subscription reference's text may name its customer by tenant id: those
    GUIDs are customers to look up too (the migrated-Azure hint)."""
    notes = parse_notes(answers.get("notes"))
    blocking = [*notes.errors, *references_in_message(focus.message)]
    customers = {r.id.strip() for r in blocking if r.kind is RefKind.CUSTOMER}
    subscriptions = {r.id.strip() for r in [*blocking, *notes.warnings] if r.kind is not RefKind.CUSTOMER}
    for ref in blocking:
        if ref.kind is not RefKind.CUSTOMER:
            customers |= _guids(ref.name, ref.message)
    return customers, subscriptions


def _usage_in_pages(round_: Round, guid: str, counts: dict[str | None, int]) -> None:
    """The invoice's usage summaries as queries of at most one page each, grouped by subscription
    from their counts, so that all of them come back in this one round trip (a subscription with
    more than a page of rows in one month still pages)."""
    loader = round_.loader
    of_invoice = _eq(loader, _US, "work365_usagesummary_providerinvoice", guid)
    if None in counts:
        column = loader.c(_US, "work365_usagesummary_subscription")
        round_.add("usage_summaries", _US, f"{column} eq null and {of_invoice}")
    bins: list[list[str]] = [[]]
    rows = 0
    for sub in sorted(k for k in counts if k is not None):
        if bins[-1] and (rows + counts[sub] > MAX_PAGE_SIZE or len(bins[-1]) >= _IN_CHUNK):
            bins.append([])
            rows = 0
        bins[-1].append(sub)
        rows += counts[sub]
    for ids in bins:
        round_.add_in("usage_summaries", _US, "work365_usagesummary_subscription", ids, of_invoice)


async def load_invoice_unit(
    dv: DataverseReader, schema: ResolvedSchema, t: Thresholds, unit: InvoiceUnit, *, as_of: datetime
) -> Snapshot:
    loader, answers = Loader(schema, t), Answers.of(schema)
    guid = unit.invoice_id
    of_invoice = _eq(loader, _US, "work365_usagesummary_providerinvoice", guid)

    first = Round(loader)
    first.add("provider_invoices", _PI, _eq(loader, _PI, "work365_providerinvoiceid", guid))
    first.count_by("usage", _US, "work365_usagesummary_subscription", of_invoice, part="usage_summaries")
    first.extend(note_queries(first.loader, [guid]))
    first.add("providers", "work365_provider")
    first.add("currencies", "transactioncurrency")
    await run(dv, first, answers)
    if "provider_invoices" in schema.unavailable:
        # The invoice table cannot be read (schema or privilege): every check of it fails, saying why.
        return answers.snapshot(
            as_of=as_of, period=period_under_review(as_of), unit=unit, partner_center=_NOT_ASKED
        )
    focus = _the_invoice(answers, guid)
    period = invoice_period(focus) or period_under_review(as_of)

    customers, named_subs = _named_ids(focus, answers)
    counts = answers.counts.get("usage")
    second = Round(loader)
    if isinstance(counts, dict):
        _usage_in_pages(second, guid, counts)
        usage_subs = {sub for sub in counts if sub is not None}
    else:
        # Too many rows to count (Dataverse's aggregate limit of 50,000): read them page by page,
        # and the subscriptions they touch one round trip later.
        second.add_in("usage_summaries", _US, "work365_usagesummary_providerinvoice", [guid])
        usage_subs = set()
    second.add("provider_invoices", _PI, _periods_filter(loader, add_months(period, -1), period))
    _subscriptions_named(second, usage_subs | _guids(*named_subs), named_subs)
    second.add_in(
        "provider_accounts",
        "work365_provideraccount",
        "work365_provideraccount_providerspecificaccountid",
        customers,
        annotations=True,
    )
    await run(dv, second, answers)
    if not isinstance(counts, dict):
        late = Round(loader)
        _subscriptions_named(late, answers.usage.subscription_ids(), ())
        await run(dv, late, answers)

    contracts = {s.contract_id for s in answers.get("subscriptions") if s.contract_id}
    owners = {pa.account_id for pa in answers.get("provider_accounts") if pa.account_id}
    third = Round(loader)
    third.add_in("contracts", _BC, "work365_billingcontractid", contracts)
    usage_type = _usage_type_filter(loader)
    third.add_in(
        "subscriptions", _SUB, "work365_subscription_billingcontract", contracts, usage_type, annotations=True
    )
    third.add_in("subscriptions", _SUB, "work365_subscription_customer", owners, usage_type, annotations=True)
    _contract_rows(third, contracts, period=period, as_of=as_of, t=t)
    _probe_usage(
        third,
        (pi for pi in answers.get("provider_invoices") if pi.id != guid and invoice_period(pi) == period),
    )
    await run(dv, third, answers)
    return answers.snapshot(as_of=as_of, period=period, unit=unit, partner_center=_NOT_ASKED)


def _subscriptions_named(round_: Round, ids: Iterable[str], provider_ids: Iterable[str]) -> None:
    """Subscriptions by record id, and by the provider's subscription id (as references name them)."""
    round_.add_in("subscriptions", _SUB, "work365_subscriptionid", ids, annotations=True)
    round_.add_in(
        "subscriptions", _SUB, "work365_subscription_providersubscriptionid", provider_ids, annotations=True
    )


def _the_invoice(answers: Answers, guid: str) -> ProviderInvoice:
    if "provider_invoices" in answers.failures:
        # Not known before asking (a throttled or failed part): the unit is tried again later.
        raise ServiceError(f"could not read provider invoice {guid}: {answers.failures['provider_invoices']}")
    found: list[ProviderInvoice] = answers.get("provider_invoices")
    if not found:
        raise InvoiceNotFound(f"no provider invoice with id {guid!r}")
    return found[0]


# --- one expected provider invoice ----------------------------------------------------------------


async def load_expected_unit(
    dv: DataverseReader,
    pc: InvoiceLister | None,
    schema: ResolvedSchema,
    t: Thresholds,
    unit: ExpectedInvoiceUnit,
    *,
    as_of: datetime,
) -> Snapshot:
    """The provider and its invoices from the look-back on, as the scan reads them: the expected
    invoice is judged as the scan judges it (missing, or a gap when a later one was imported), for
    the period under review (or the unit's period, if later)."""
    loader, answers = Loader(schema, t), Answers.of(schema)
    pc_task = asyncio.create_task(_partner_center(pc, unit.period))  # asked while Dataverse answers
    reviewed = max(unit.period, period_under_review(as_of))
    oldest = period_start(add_months(reviewed, -t.gap_lookback_months - 1)).isoformat()
    provider = unit.provider_id
    first = Round(loader)
    first.add(
        "providers", "work365_provider", _eq(loader, "work365_provider", "work365_providerid", provider)
    )
    of_provider = _eq(loader, _PI, "work365_providerinvoice_provider", provider)
    start = loader.c(_PI, "work365_providerinvoice_billingperiodstart")
    since = f"{start} ge {oldest} or ({start} eq null and createdon ge {oldest}T00:00:00Z)"
    first.add("provider_invoices", _PI, f"{of_provider} and ({since})")
    await run(dv, first, answers)
    return answers.snapshot(as_of=as_of, period=reviewed, unit=unit, partner_center=await pc_task)


# --- billing contracts ----------------------------------------------------------------------------


async def load_contract_unit(
    dv: DataverseReader, schema: ResolvedSchema, t: Thresholds, unit: ContractUnit, *, as_of: datetime
) -> Snapshot:
    return await _load_contracts(dv, schema, t, unit, [unit.contract_id], as_of=as_of)


async def load_contracts_unit(
    dv: DataverseReader, schema: ResolvedSchema, t: Thresholds, unit: ContractsUnit, *, as_of: datetime
) -> Snapshot:
    """A batch of contracts in the same two round trips as one: every read is by `In` lists."""
    return await _load_contracts(dv, schema, t, unit, unit.contract_ids, as_of=as_of)


async def _load_contracts(
    dv: DataverseReader,
    schema: ResolvedSchema,
    t: Thresholds,
    unit: ContractUnit | ContractsUnit,
    contracts: Sequence[str],
    *,
    as_of: datetime,
) -> Snapshot:
    loader, answers = Loader(schema, t), Answers.of(schema)
    first = Round(loader)
    first.add_in("contracts", _BC, "work365_billingcontractid", contracts)
    first.add_in(
        "subscriptions",
        _SUB,
        "work365_subscription_billingcontract",
        contracts,
        _usage_type_filter(loader),
        annotations=True,
    )
    first.add("providers", "work365_provider")
    first.add("provider_invoices", _PI, _periods_filter(loader, unit.period, unit.period))
    first.add("currencies", "transactioncurrency")  # the usage's currency is its provider invoice's
    _contract_rows(first, contracts, period=unit.period, as_of=as_of, t=t)
    await run(dv, first, answers)

    invoices = [pi.id for pi in answers.get("provider_invoices")]
    subs = [s.id for s in answers.get("subscriptions")]
    second = Round(loader)
    of_invoices = " or ".join(loader.in_filter(_US, "work365_usagesummary_providerinvoice", invoices))
    if of_invoices:
        # The subscriptions in chunks of `In` ids (a batch's hundreds stay under the URL limit).
        second.add_in("usage_summaries", _US, "work365_usagesummary_subscription", subs, of_invoices)
    _probe_usage(second, answers.get("provider_invoices"))
    await run(dv, second, answers)
    return answers.snapshot(as_of=as_of, period=unit.period, unit=unit, partner_center=_NOT_ASKED)
