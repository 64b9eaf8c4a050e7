"""The whole tenant for one period and the earlier periods still open (`scan`, the tenant unit).

Round one reads what needs no ids (providers, provider invoices of the look-back, accounts,
subscriptions, contracts, currencies); round two the usage and notes of the period's invoices, the
schedules and invoices of usage contracts, and asks of each earlier invoice whether it still has a
problem (findings.md, "Open periods"); round three, only when an earlier period is open, reads that
period's usage and notes. Partner Center is asked while Dataverse answers, when given.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from datetime import date, datetime, timedelta

from diagnostics.adapters.dataverse import DEFAULT_PARTITIONS, Query, guid_ranges
from diagnostics.checks.context import invoice_period
from diagnostics.messages import Unit
from diagnostics.metadata import ResolvedSchema
from diagnostics.model import PIStatus, Provider, ProviderInvoice, ProviderKind, Snapshot
from diagnostics.periods import add_months, day_in_following_month, period_start
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

_US, _PI_COLUMN = "work365_usagesummary", "work365_usagesummary_providerinvoice"
_USAGE = "usage_summaries"
# Providers whose invoices carry usage: an invoice of theirs without usage is a problem.
_USAGE_PROVIDERS = frozenset({ProviderKind.AUTOMATIC_USAGE, ProviderKind.MANUAL})


def independent_queries(loader: Loader, oldest: date) -> dict[str, Query]:
    """Round one: what needs no ids from elsewhere. Invoices from `oldest` on, for the gap check."""
    pi = "work365_providerinvoice"
    start = loader.c(pi, "work365_providerinvoice_billingperiodstart")
    since = oldest.isoformat()
    return {
        "providers": loader.query("work365_provider"),
        "provider_invoices": loader.query(
            pi, f"{start} ge {since} or ({start} eq null and createdon ge {since}T00:00:00Z)"
        ),
        # Formatted lookup values carry the customers' names: no request for accounts.
        "provider_accounts": loader.query("work365_provideraccount", annotations=True),
        "subscriptions": loader.query("work365_subscription", _usage_type_filter(loader), annotations=True),
        "contracts": loader.query("work365_billingcontract"),
        "currencies": loader.query("transactioncurrency"),
    }


def dependent_queries(
    loader: Loader,
    reviewed: Sequence[str],
    usage_contracts: Iterable[str],
    *,
    oldest: date,
    since: date,
    until: date,
    partitions: Sequence[str] = (),
) -> list[tuple[str, Query]]:
    """Round two: usage and notes of the reviewed invoices (the usage in `partitions`, filters that
    split it, when given); schedules and invoices of usage contracts."""
    us, bs = "work365_usagesummary", "work365_billingschedule"
    scheduled = loader.c(bs, "work365_billingschedule_scheduledate")
    window = f"{scheduled} ge {oldest.isoformat()} and {scheduled} le {until.isoformat()}"
    contracts = sorted(set(usage_contracts))
    queries = [
        # The partition's range first: it rejects most rows at once where nothing is indexed.
        ("usage_summaries", loader.query(us, f"({part}) and ({clause})" if part else clause))
        for clause in loader.in_filter(us, "work365_usagesummary_providerinvoice", reviewed)
        for part in partitions or [""]
    ]
    queries += note_queries(loader, reviewed)  # those over the size limit without their body
    queries += [
        ("schedules", loader.query(bs, f"{clause} and {window}"))
        for clause in loader.in_filter(bs, "work365_billingschedule_billingcontract", contracts)
    ]
    queries += [
        ("invoices", loader.query("invoice", f"{clause} and createdon ge {since.isoformat()}T00:00:00Z"))
        for clause in loader.in_filter("invoice", "work365_invoice_billingcontract", contracts)
    ]
    return queries


# Subscriptions per partition of the usage query: below this many, one query reads it (a few pages).
_SUBSCRIPTIONS_PER_PARTITION = 1000


def usage_partitions(loader: Loader, subscriptions: Sequence[str], cap: int | None) -> list[str]:
    """Filters splitting a month's usage into partitions read at once, each paged at 5,000 rows: by
    ranges of the subscription it belongs to (`guid_ranges`), as many as the client's concurrency
    cap allows and the subscriptions call for (a 10,000-customer tenant: 50,000 subscriptions, half a
    million rows). Each partition's last page is a partial one, and its first page is a GET of its
    own (`send_ranges_alone`), so a partition costs up to two requests more."""
    wanted = min(cap or DEFAULT_PARTITIONS, len(subscriptions) // _SUBSCRIPTIONS_PER_PARTITION)
    column = loader.c(_US, "work365_usagesummary_subscription")
    return guid_ranges(column, subscriptions, wanted) if wanted > 1 else []


def send_ranges_alone(round_: Round, partitions: Sequence[str]) -> None:
    """Each usage partition of a range of subscriptions as a GET of its own: its first page, 5,000
    rows, would wait in the `$batch` for the others before it. The partition of usage on no
    subscription (`guid_ranges`' first: empty, or nearly) stays in the batch, at no round trip."""
    ranges = tuple(f"({clause}) and " for clause in partitions[1:])
    if ranges:
        round_.alone |= {
            query
            for part, query in round_.queries
            if part == _USAGE and query.filter is not None and query.filter.startswith(ranges)
        }


def earlier_periods(period: str, thresholds: Thresholds) -> list[str]:
    """The periods before `period` within DIAG_GAP_LOOKBACK_MONTHS, oldest first."""
    return [add_months(period, -back) for back in range(thresholds.gap_lookback_months, 0, -1)]


def usage_invoices(
    invoices: Iterable[ProviderInvoice], providers: Sequence[Provider]
) -> list[ProviderInvoice]:
    kinds = {p.id: p.kind for p in providers}
    return [pi for pi in invoices if kinds.get(pi.provider_id or "") in _USAGE_PROVIDERS]


def probe_open(round_: Round, invoices: Iterable[ProviderInvoice]) -> None:
    """Ask of each invoice whether it has usage, and whether any of it is on no invoice."""
    loader = round_.loader
    column, billed = loader.c(_US, _PI_COLUMN), loader.c(_US, "work365_usagesummary_invoice")
    for pi in invoices:
        if pi.status is not PIStatus.ERROR:  # in Error it is open whatever its usage
            round_.probe(f"any:{pi.id}", _US, f"{column} eq {pi.id}", part="usage_summaries")
            round_.probe(
                f"unbilled:{pi.id}", _US, f"{column} eq {pi.id} and {billed} eq null", part="usage_summaries"
            )


def open_periods(invoices: Iterable[ProviderInvoice], answers: Answers) -> list[str]:
    """Periods with an invoice in Error, without usage, or with usage on no invoice."""
    found = set()
    for pi in invoices:
        period = invoice_period(pi)
        if period is None:
            continue
        without_usage = not answers.probes.get(f"any:{pi.id}", False)
        unbilled = answers.probes.get(f"unbilled:{pi.id}", False)
        if pi.status is PIStatus.ERROR or without_usage or unbilled:
            found.add(period)
    return sorted(found)


def read_invoices_usage(round_: Round, invoice_ids: Iterable[str]) -> None:
    """The usage summaries and errors.csv / warnings.csv notes of these invoices."""
    ids = sorted(set(invoice_ids))
    round_.add_in("usage_summaries", _US, _PI_COLUMN, ids)
    round_.extend(note_queries(round_.loader, ids))


async def load_period(
    dv: DataverseReader,
    pc: InvoiceLister | None,
    schema: ResolvedSchema,
    thresholds: Thresholds,
    *,
    as_of: datetime,
    period: str,
    unit: Unit | None = None,
) -> Snapshot:
    loader = Loader(schema, thresholds)
    answers = Answers.of(schema)
    oldest = period_start(add_months(period, -thresholds.gap_lookback_months - 1))
    pc_task = asyncio.create_task(_partner_center(pc, period))  # asked while Dataverse answers

    first = Round(loader)
    first.extend(independent_queries(loader, oldest).items())
    await run(dv, first, answers)

    invoices: list[ProviderInvoice] = answers.get("provider_invoices")
    earlier = set(earlier_periods(period, thresholds))
    candidates = [
        pi for pi in usage_invoices(invoices, answers.get("providers")) if invoice_period(pi) in earlier
    ]
    usage_contracts = (
        s.contract_id for s in answers.get("subscriptions") if s.is_usage and s.active and s.contract_id
    )
    second = Round(loader)
    known_subscriptions = [s.id for s in answers.get("subscriptions")]
    partitions = usage_partitions(loader, known_subscriptions, dv.max_concurrency)
    second.extend(
        dependent_queries(
            loader,
            [pi.id for pi in invoices if invoice_period(pi) == period],
            usage_contracts,
            oldest=oldest,
            since=day_in_following_month(period, 1),
            until=(as_of + timedelta(days=62)).date(),
            partitions=partitions,
        ),
    )
    probe_open(second, candidates)
    send_ranges_alone(second, partitions)
    await run(dv, second, answers)

    still_open = open_periods(candidates, answers)
    if still_open:
        third = Round(loader)
        read_invoices_usage(third, (pi.id for pi in invoices if invoice_period(pi) in still_open))
        await run(dv, third, answers)

    return answers.snapshot(
        as_of=as_of,
        period=period,
        partner_center=await pc_task,
        unit=unit,
        open_periods=tuple(still_open),
    )
