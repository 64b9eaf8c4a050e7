"""Query plans by unit of work: each reads only the rows its unit's checks need, in as few `$batch`
round trips as the ids allow (diagnostics/loading/units.py says which checks run for which unit).

- provider invoice: three round trips, whatever the size of the tenant — (1) the invoice by its
  GUID, how many usage summaries it has per subscription, its notes, the providers and currencies;
  (2) its usage summaries in queries of at most one page each, and what (1) names: the
  subscriptions its usage touches and its references name, the provider accounts its references
  name, the provider invoices of its period and the one before; (3) what the subscriptions name:
  their contracts, the other usage subscriptions on them (and of the referenced customers), their
  schedules and customer invoices, and whether the period's other invoices have usage.
  An invoice with more usage than Dataverse will count at once (50,000 rows) is cut into slices by
  customer (`load_invoice_unit`), each a unit of the same three round trips over its customers' usage.
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

from diagnostics.adapters.dataverse import MAX_PAGE_SIZE, Query
from diagnostics.checks.context import invoice_period, parse_notes
from diagnostics.errors import InvoiceNotFound, ServiceError
from diagnostics.messages import ContractsUnit, ContractUnit, CustomerRange, ExpectedInvoiceUnit, InvoiceUnit
from diagnostics.metadata import ResolvedSchema
from diagnostics.model import PartnerCenterView, ProviderInvoice, Snapshot, UsageTotals
from diagnostics.periods import add_months, day_in_following_month, period_start, period_under_review
from diagnostics.refcsv import RefKind, references_in_message
from diagnostics.schema import column_key
from diagnostics.settings import Thresholds
from diagnostics.snapshot_loader import (
    DataverseReader,
    InvoiceLister,
    Loader,
    _moment,
    _partner_center,
    _usage_type_filter,
    note_queries,
)

from .rounds import Answers, Round, run, totals_of
from .slices import FINE_RANGES, NO_CUSTOMER, coalesce, cut, isolate, one_customer, order_key, range_filter

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


def _usage_in_pages(round_: Round, of_invoice: str, counts: dict[str | None, int]) -> None:
    """The invoice's usage summaries (those `of_invoice` keeps) as queries of at most one page
    each, grouped by subscription from their counts, so that all of them come back in this one
    round trip (a subscription with more than a page of rows in one month still pages)."""
    loader = round_.loader
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
    """One provider invoice in three round trips, or one slice of its usage (`unit.customers`):
    the same three over the usage of the slice's customers, without what the invoice's references
    name (a slice does not tell of the invoice; it still reads the notes: warnings.csv names the
    subscriptions without a product). When Dataverse refuses to count the invoice's usage (over
    50,000 rows), its own unit counts it by ranges of customers instead of reading it, and cuts it
    into the slices (`Snapshot.usage_slices`) that are checked as units of their own; see
    `_Head`."""
    loader, answers = Loader(schema, t), Answers.of(schema)
    guid = unit.invoice_id
    of_invoice = _eq(loader, _US, "work365_usagesummary_providerinvoice", guid)
    in_slice = None if unit.customers is None else range_filter(_customer(loader), unit.customers)
    of_unit = of_invoice if in_slice is None else f"{of_invoice} and {in_slice}"

    first = Round(loader)
    first.add("provider_invoices", _PI, _eq(loader, _PI, "work365_providerinvoiceid", guid))
    first.count_by("usage", _US, "work365_usagesummary_subscription", of_unit, part="usage_summaries")
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

    # A slice runs no check of the invoice's references: it reads none of them.
    customers, named_subs = _named_ids(focus, answers) if unit.customers is None else (set(), set())
    counts = answers.counts.get("usage")
    if unit.customers is None and not isinstance(counts, dict) and _customers_readable(schema):
        head = _Head(dv, loader, answers, unit, period, as_of)
        return await head.load(customers, named_subs)
    second = Round(loader)
    if isinstance(counts, dict):
        _usage_in_pages(second, of_unit, counts)
        usage_subs = {sub for sub in counts if sub is not None}
    else:
        # Too many rows to count (Dataverse's aggregate limit of 50,000): read them page by page,
        # and the subscriptions they touch one round trip later.
        second.add_in("usage_summaries", _US, "work365_usagesummary_providerinvoice", [guid], in_slice)
        usage_subs = set()
    _named_and_periods(second, period, usage_subs, customers, named_subs)
    await run(dv, second, answers)
    if not isinstance(counts, dict):
        late = Round(loader)
        _subscriptions_named(late, answers.usage.subscription_ids(), ())
        await run(dv, late, answers)
    third = _contracts_round(loader, answers, guid, period, as_of=as_of, t=t)
    await run(dv, third, answers)
    if unit.customers is not None:
        # A note that cannot be read is the invoice's own unit's to tell (it reads the notes too);
        # a slice tells of the usage rows it could not read, which no other part reads.
        answers.unreadable = [u for u in answers.unreadable if u.part != "notes"]
    return answers.snapshot(as_of=as_of, period=period, unit=unit, partner_center=_NOT_ASKED)


def _customer(loader: Loader) -> str:
    return loader.c(_US, "work365_usagesummary_customer")


def _customers_readable(schema: ResolvedSchema) -> bool:
    """Whether usage can be cut by its customer lookup. No check reads that column, so the schema's
    verification does not know it: a sample that cannot be read tells it instead (`_Head`)."""
    key = column_key(_US, "work365_usagesummary_customer")
    return (
        key not in schema.missing
        and key not in schema.unavailable
        and "usage_summaries" not in schema.unavailable
    )


def _named_and_periods(
    round_: Round, period: str, usage_subs: set[str], customers: set[str], named_subs: set[str]
) -> None:
    """The provider invoices of the period and the one before, the subscriptions the usage touches
    and the references name, the provider accounts the references name."""
    loader = round_.loader
    round_.add("provider_invoices", _PI, _periods_filter(loader, add_months(period, -1), period))
    _subscriptions_named(round_, usage_subs | _guids(*named_subs), named_subs)
    round_.add_in(
        "provider_accounts",
        "work365_provideraccount",
        "work365_provideraccount_providerspecificaccountid",
        customers,
        annotations=True,
    )


def _contracts_round(
    loader: Loader, answers: Answers, guid: str, period: str, *, as_of: datetime, t: Thresholds
) -> Round:
    """What the subscriptions read name: their contracts, the other usage subscriptions on them
    and of the referenced customers, their schedules and customer invoices; and whether the
    period's other invoices have usage."""
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
    return third


# --- the own unit of an invoice too large for one unit: its usage counted by ranges of customers --

SAMPLE_ROWS = MAX_PAGE_SIZE  # one page
# Rounds a skewed invoice may take beyond the three (ranges refused again, sampled within, split):
# past them the unit fails, to be tried again, rather than go on asking.
_MORE_ROUNDS = 12
_AGGREGATE_LIMIT = "0x8004E023"  # Dataverse's AggregateQueryRecordLimit


def _refused(error: ServiceError) -> bool:
    """Whether Dataverse refused an aggregate for its number of rows (not for any other reason)."""
    return error.code == _AGGREGATE_LIMIT or "AggregateQueryRecordLimit" in str(error)


def _customers_of(rows: Sequence[dict[str, object]], column: str) -> list[str | None]:
    """The customer of each sampled row, canonical (None: none, or not a GUID)."""
    out: list[str | None] = []
    for row in rows:
        value = row.get(column)
        text = value.lower() if isinstance(value, str) else None
        out.append(text if text is not None and _GUID.fullmatch(text) else None)
    return out


class _Head:
    """The own unit of an invoice whose usage Dataverse will not count at once (AggregateQueryRecordLimit),
    still in three round trips when its customers' usage is not too skewed:

    (2) a sample of its usage's customers (the costliest 5,000 rows, ties by id: the same rows,
        hence the same cut and the same slice keys, every day), beside what the invoice-level
        checks read (the period's provider invoices, what its references name);
    (3) its usage counted and summed by at most 31 ranges of customers cut from the sample (and the
        rows without a customer), its first and last sync, beside the contracts round.

    A range still refused (a skewed invoice) is cut by the sample's customers inside it and counted
    one round later; one the sample cannot cut is sampled within itself first (one more round);
    a range of one customer still refused is read page by page into the totals. Only such skewed
    invoices take more than three round trips. The counted ranges are joined into the slices."""

    def __init__(
        self,
        dv: DataverseReader,
        loader: Loader,
        answers: Answers,
        unit: InvoiceUnit,
        period: str,
        as_of: datetime,
    ) -> None:
        self.dv, self.loader, self.answers, self.unit = dv, loader, answers, unit
        self.period, self.as_of = period, as_of
        self.of_invoice = _eq(loader, _US, "work365_usagesummary_providerinvoice", unit.invoice_id)
        self.customer = _customer(loader)
        self.counted: dict[CustomerRange, UsageTotals] = {}
        self.samples: dict[CustomerRange, list[str | None]] = {}  # a refused range's own sample

    async def load(self, customers: set[str], named_subs: set[str]) -> Snapshot:
        loader, answers = self.loader, self.answers
        second = Round(loader)
        self._sample(second, "sample", self.of_invoice)
        _named_and_periods(second, self.period, set(), customers, named_subs)
        await run(self.dv, second, answers)
        sample = answers.rows.get("sample")
        if isinstance(sample, ServiceError) and sample.status != 400:
            # Unreachable or throttled after the client's retries: the unit is tried again later.
            raise ServiceError(
                f"could not sample the usage of provider invoice {self.unit.invoice_id}: {sample}"
            )
        if not isinstance(sample, list):
            # Refused: the customer column cannot be read (another schema, say). Read the rows.
            return await self._read_in_full()
        third = _contracts_round(
            loader, answers, self.unit.invoice_id, self.period, as_of=self.as_of, t=loader.t
        )
        self._sync_moments(third)
        sampled = _customers_of(sample, self.customer)
        pending = [("count", r) for r in [*cut(sampled, FINE_RANGES), NO_CUSTOMER]]
        for _ in range(_MORE_ROUNDS + 1):
            asked = self._count(third, pending)
            await run(self.dv, third, answers)
            pending = self._settle(asked, sampled)
            if not pending:
                return self._snapshot()
            third = Round(loader)
        raise ServiceError(
            f"could not count the usage of provider invoice {self.unit.invoice_id} by customer in "
            f"{_MORE_ROUNDS + 3} round trips; it is tried again later"
        )

    def _sample(self, round_: Round, key: str, filter_: str) -> None:
        loader = self.loader
        cost, row_id = loader.c(_US, "work365_usagesummary_cost"), loader.c(_US, "work365_usagesummaryid")
        query = Query(
            loader.schema.entity_set(_US),
            (self.customer,),
            filter_,
            orderby=f"{cost} desc,{row_id}",
            top=SAMPLE_ROWS,
        )
        round_.rows(key, query, part="usage_summaries")

    def _sync_moments(self, round_: Round) -> None:
        """The invoice's first and last synced usage summary: one row each."""
        entity_set = self.loader.schema.entity_set(_US)
        for key, order in (("first", "asc"), ("last", "desc")):
            query = Query(entity_set, ("createdon",), self.of_invoice, orderby=f"createdon {order}", top=1)
            round_.rows(key, query, part="usage_summaries")

    def _count(self, round_: Round, ranges: list[tuple[str, CustomerRange]]) -> dict[str, CustomerRange]:
        """Ask for each range: its count and cost, its own sample, or its rows page by page."""
        asked: dict[str, CustomerRange] = {}
        for how, r in ranges:
            key = f"{how}:{r.key()}"
            filter_ = f"{self.of_invoice} and {range_filter(self.customer, r)}"
            if how == "sample":
                self._sample(round_, key, filter_)
            elif how == "tally":
                round_.tally(key, filter_)
            else:
                round_.usage_totals(key, filter_)
            asked[key] = r
        return asked

    def _settle(
        self, asked: dict[str, CustomerRange], sampled: list[str | None]
    ) -> list[tuple[str, CustomerRange]]:
        """Take what was counted; say what to ask next for what was refused (at most about as many
        parts as the first count had, shared among the refused ranges)."""
        answers, guid = self.answers, self.unit.invoice_id
        refused: list[CustomerRange] = []
        for key, r in asked.items():
            how = key.partition(":")[0]
            if how == "tally":
                tally = answers.tallies.get(key)
                if not isinstance(tally, UsageTotals):
                    raise ServiceError(f"could not read the usage of provider invoice {guid}: {tally}")
                self.counted[r] = tally
            elif how == "sample":
                rows = answers.rows.get(key)
                if not isinstance(rows, list):
                    raise ServiceError(f"could not sample the usage of provider invoice {guid}: {rows}")
                self.samples[r] = _customers_of(rows, self.customer)
                refused.append(r)
            else:
                totals = totals_of(answers.rows.get(key))
                if isinstance(totals, tuple):
                    self.counted[r] = UsageTotals(rows=totals[0], cost=totals[1])
                elif _refused(totals):
                    refused.append(r)
                else:
                    raise ServiceError(f"could not count the usage of provider invoice {guid}: {totals}")
        share = max(2, FINE_RANGES // max(1, len(refused)))
        return [step for r in refused for step in self._split(r, sampled, share)]

    def _split(
        self, r: CustomerRange, sampled: list[str | None], share: int
    ) -> list[tuple[str, CustomerRange]]:
        """A refused range: cut by the sample's customers inside it (its own sample once it has
        one), else sampled within itself, else its first customer set apart; one customer alone,
        or the rows without one, are read page by page."""
        if one_customer(r) or r.no_customer:
            return [("tally", r)]
        own = self.samples.get(r)
        parts = cut(sampled if own is None else own, share, within=r)
        if len(parts) < 2 and own is None:
            return [("sample", r)]
        if len(parts) < 2:
            parts = isolate(r)
        if len(parts) < 2:
            return [("tally", r)]
        return [("count", p) for p in parts]

    async def _read_in_full(self) -> Snapshot:
        loader, answers, guid = self.loader, self.answers, self.unit.invoice_id
        rows = Round(loader)
        rows.add_in("usage_summaries", _US, "work365_usagesummary_providerinvoice", [guid])
        await run(self.dv, rows, answers)
        late = Round(loader)
        _subscriptions_named(late, answers.usage.subscription_ids(), ())
        await run(self.dv, late, answers)
        await run(
            self.dv,
            _contracts_round(loader, answers, guid, self.period, as_of=self.as_of, t=loader.t),
            answers,
        )
        return answers.snapshot(
            as_of=self.as_of, period=self.period, unit=self.unit, partner_center=_NOT_ASKED
        )

    def _snapshot(self) -> Snapshot:
        totals = UsageTotals()
        for counted in self.counted.values():
            totals.rows += counted.rows
            totals.cost += counted.cost
        for key in ("first", "last"):
            moment = self._moment(key)
            if moment is not None and totals.rows:
                totals.add(None, moment, rows=0)
        slices = coalesce(
            [(r, c.rows) for r, c in sorted(self.counted.items(), key=lambda i: order_key(i[0]))]
        )
        return self.answers.snapshot(
            as_of=self.as_of,
            period=self.period,
            unit=self.unit,
            partner_center=_NOT_ASKED,
            usage_counted={self.unit.invoice_id: totals},
            usage_slices=slices,
        )

    def _moment(self, key: str) -> datetime | None:
        rows = self.answers.rows.get(key)
        if not isinstance(rows, list):
            raise ServiceError(
                f"could not read when provider invoice {self.unit.invoice_id}'s usage was synced: {rows}"
            )
        created = rows[0].get("createdon") if rows else None
        return _moment(created) if isinstance(created, str) else None


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
