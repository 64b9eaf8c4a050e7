"""A provider invoice too large for one unit (over 50,000 usage rows, Dataverse's aggregate limit),
read through the real clients against the simulator at that real limit: its own unit counts its
usage by customer and cuts it into slices, every unit (its own and each slice) in three requests
with the schema cached, the slices' rows add up to the count, and together the units report what
the scan reports about the invoice's subjects; `review_invoice` returns that whole."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from diagnostics.adapters.dataverse import sql_guid_key
from diagnostics.adapters.http import RequestCounter, RetryPolicy
from diagnostics.checks.context import Context
from diagnostics.engine import _focus_subjects
from diagnostics.loading import load_unit, review, review_invoice
from diagnostics.loading.slices import FINE_RANGES, SLICE_ROWS, contains, cut
from diagnostics.loading.units import codes_for
from diagnostics.messages import CustomerRange, InvoiceUnit, unit_key
from diagnostics.model import Finding, Report, Snapshot
from diagnostics.service import scan
from diagnostics.settings import Thresholds
from simulator import Simulator, load_fixture
from simulator.connect import connection
from simulator.faults import Fault
from simulator.generate import generate
from tests.loading.support import open_clients
from tests.loading.test_units_match_the_scan import _observed

_NO_RETRY = RetryPolicy(max_attempts=1)
_T = Thresholds()
_US = "work365_usagesummary"
# The Microsoft invoice of the period under review gets 53,000 usage rows (of 60,000): over the limit.
CUSTOMERS, SUBSCRIPTIONS, USAGE = 120, 5, 100


@dataclass
class _Part:
    unit: InvoiceUnit
    snapshot: Snapshot
    report: Report
    requests: dict[str, int]


Rows = dict[str, list[dict[str, Any]]]  # the fixture's rows by table


def _by_usage(tables: Rows, rank: int = 0) -> tuple[InvoiceUnit, list[dict[str, Any]]]:
    """The invoice with the most usage (rank 0), the next (1)…, and its usage rows."""
    usage = tables[_US]
    ranked = Counter(r["work365_usagesummary_providerinvoice"] for r in usage).most_common(rank + 1)
    invoice = ranked[rank][0]
    rows = [r for r in usage if r["work365_usagesummary_providerinvoice"] == invoice]
    return InvoiceUnit(invoice_id=invoice), rows


async def _parts(sim: Simulator, unit: InvoiceUnit) -> tuple[_Part, list[_Part]]:
    """The invoice's own unit, then each of its slices, loaded one after another (so that each
    one's requests are its own) on clients whose schema was resolved once."""
    counter = RequestCounter()
    async with open_clients(sim, retry=_NO_RETRY, counter=counter) as (dv, pc, schema):

        async def one(part: InvoiceUnit) -> _Part:
            before = len(counter.records)
            snapshot = await load_unit(dv, pc, schema, _T, part, as_of=sim.now)
            requests = Counter(r.service for r in counter.records[before:])
            return _Part(part, snapshot, review(snapshot, _T), dict(requests))

        head = await one(unit)
        slices = [await one(unit.model_copy(update={"customers": s})) for s in head.snapshot.usage_slices]
    return head, slices


async def _review_invoice(sim: Simulator, unit: InvoiceUnit) -> Report:
    async with open_clients(sim, retry=_NO_RETRY) as (dv, _, schema):
        return await review_invoice(dv, schema, _T, unit, as_of=sim.now)


def _subjects(tables: Rows, rows: list[dict[str, Any]]) -> set[str]:
    """The invoice's subjects as the scan knows them: the subscriptions its usage touches and their
    contracts."""
    subs = {
        r["work365_usagesummary_subscription"] for r in rows if r.get("work365_usagesummary_subscription")
    }
    contracts = {
        s["work365_subscription_billingcontract"]
        for s in tables["work365_subscription"]
        if s["work365_subscriptionid"] in subs and s.get("work365_subscription_billingcontract")
    }
    return subs | contracts


def _of(scanned: Report, codes: frozenset[str], subjects: set[str], period: str) -> dict[str, Finding]:
    return {
        f.dedup_key: f
        for f in scanned.findings
        if (f.code in codes or f.code == "CHECK_FAILED") and f.subject.id in subjects and f.period == period
    }


def _told(report: Report) -> dict[str, Finding]:
    return {f.dedup_key: f for f in report.findings if f.subject.type != "tenant"}


def _assert_same(got: dict[str, Finding], expected: dict[str, Finding], where: str) -> None:
    assert set(got) == set(expected), f"{where}: {sorted(set(got) ^ set(expected))}"
    for key, item in got.items():
        assert _observed(item) == _observed(expected[key]), f"{where}: {key}"


def _sync_moment(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _check_counts(head: _Part, slices: list[_Part], rows: list[dict[str, Any]]) -> None:
    """The own unit counted every row, its cost and its first and last sync; each row is in one
    slice, which read it."""
    invoice = head.unit.invoice_id
    counted = head.snapshot.usage_counted[invoice]
    assert counted.rows == len(rows)
    assert counted.cost == sum(Decimal(repr(r["work365_usagesummary_cost"])) for r in rows)
    assert counted.first_synced == min(_sync_moment(r["createdon"]) for r in rows)
    assert counted.last_synced == max(_sync_moment(r["createdon"]) for r in rows)
    ranges = [p.unit.customers for p in slices]
    assert all(r is not None for r in ranges)
    per_slice = Counter(
        next(
            i
            for i, r in enumerate(ranges)
            if r is not None and contains(r, row.get("work365_usagesummary_customer"))
        )
        for row in rows
    )
    read = [sum(g.all.rows for g in p.snapshot.usage.of_invoice(invoice)) for p in slices]
    assert read == [per_slice[i] for i in range(len(slices))]
    assert sum(read) == counted.rows


def _check_reports(
    sim: Simulator, tables: Rows, head: _Part, slices: list[_Part], rows: list[dict[str, Any]]
) -> None:
    """Each part reports what the scan reports about its subjects, and together they report what
    the scan reports about the invoice's subjects."""
    scanned = asyncio.run(scan(connection(sim, retry=_NO_RETRY), sim.now))
    invoice, period = head.unit.invoice_id, head.snapshot.period
    _assert_same(
        _told(head.report), _of(scanned, codes_for(head.unit, sliced=True), {invoice}, period), "head"
    )
    union = dict(_told(head.report))
    for part in slices:
        subjects = (_focus_subjects(Context(part.snapshot, _T)) or set()) - {invoice}
        _assert_same(
            _told(part.report), _of(scanned, codes_for(part.unit), subjects, period), unit_key(part.unit)
        )
        assert not set(union) & set(_told(part.report)), "two parts told the same finding"
        union |= _told(part.report)
    whole = _of(scanned, codes_for(head.unit), {invoice, *_subjects(tables, rows)}, period)
    assert whole, "the tenant has findings about the invoice's subjects: the comparison can fail"
    _assert_same(union, whole, "head and slices")
    merged = asyncio.run(_review_invoice(sim, head.unit))
    _assert_same(_told(merged), whole, "review_invoice")
    assert merged.statistics.findings == len(merged.findings)
    # the invoice's timeline: its counted usage, and the contracts its slices drew
    timeline = next(t for t in merged.timelines if t.subject.id == invoice)
    assert timeline == next(t for t in scanned.timelines if t.subject.id == invoice)
    assert timeline.contracts


@pytest.fixture(scope="module")
def large() -> Iterator[tuple[Simulator, Rows]]:
    tenant = generate(CUSTOMERS, subscriptions=SUBSCRIPTIONS, usage=USAGE)
    with Simulator(load_fixture(tenant.fixture)) as sim:
        yield sim, tenant.fixture["dataverse"]["rows"]


def test_an_invoice_over_the_limit_is_cut_into_slices_of_three_requests_each(
    large: tuple[Simulator, Rows],
) -> None:
    sim, tables = large
    unit, rows = _by_usage(tables)
    assert len(rows) > 50_000  # over Dataverse's aggregate limit: no test knob
    head, slices = asyncio.run(_parts(sim, unit))
    assert head.requests == {"Dataverse": 3}
    assert [p.requests for p in slices] == [{"Dataverse": 3}] * len(slices)
    assert len(slices) >= 2
    assert all(
        sum(g.all.rows for g in p.snapshot.usage.of_invoice(unit.invoice_id)) <= SLICE_ROWS for p in slices
    )
    _check_counts(head, slices, rows)
    _check_reports(sim, tables, head, slices, rows)
    again, _ = asyncio.run(_parts(sim, unit))  # the same cut, the same slice keys, every day
    assert [s.key() for s in again.snapshot.usage_slices] == [s.key() for s in head.snapshot.usage_slices]


def test_an_invoice_under_the_limit_is_not_cut(large: tuple[Simulator, Rows]) -> None:
    sim, tables = large
    unit, rows = _by_usage(tables, rank=1)
    assert 0 < len(rows) <= 50_000
    head, slices = asyncio.run(_parts(sim, unit))
    assert head.requests == {"Dataverse": 3}
    assert slices == []
    assert head.snapshot.usage_counted == {}
    assert sum(g.all.rows for g in head.snapshot.usage.of_invoice(unit.invoice_id)) == len(rows)


# --- a skewed invoice: one customer with more rows than Dataverse aggregates ---------------------

HEAVY_ROWS = 50_001


def _skewed(fixture: dict[str, Any], heavy: str | None = None) -> dict[str, Any]:
    """The tenant with 50,001 more usage rows on its Microsoft invoice for one customer (`heavy`,
    else the first row's), all cheaper than any other (so that the invoice's sample of its
    costliest rows shows them only when the invoice has fewer than 5,000 others)."""
    usage: list[dict[str, Any]] = fixture["dataverse"]["rows"][_US]
    invoice, _ = Counter(r["work365_usagesummary_providerinvoice"] for r in usage).most_common(1)[0]
    template = next(
        r
        for r in usage
        if r["work365_usagesummary_providerinvoice"] == invoice
        and heavy in (None, r["work365_usagesummary_customer"])
    )
    usage += [
        template
        | {
            "work365_usagesummaryid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"heavy/{i}")),
            "work365_usagesummary_cost": 0.01,
        }
        for i in range(HEAVY_ROWS)
    ]
    return fixture


def test_a_skewed_invoice_is_cut_further_and_its_heaviest_customer_counted_page_by_page() -> None:
    fixture = _skewed(generate(40, subscriptions=2, usage=3).fixture)  # the sample shows the customer
    tables = fixture["dataverse"]["rows"]
    with Simulator(load_fixture(fixture)) as sim:
        unit, rows = _by_usage(tables)
        head, slices = asyncio.run(_parts(sim, unit))
        heavy = Counter(r["work365_usagesummary_customer"] for r in rows).most_common(1)[0][0]
        # R3 refused, the range sampled within itself, its customer set apart, then read: 6
        # round trips and the pages of 50,001 rows after the first.
        assert head.requests == {"Dataverse": 6 + HEAVY_ROWS // 5_000}
        alone = [p for p in slices if p.unit.customers is not None and contains(p.unit.customers, heavy)]
        assert len(alone) == 1
        assert alone[0].unit.customers == CustomerRange(low=heavy, high=alone[0].unit.customers.high)
        _check_counts(head, slices, rows)
        _check_reports(sim, tables, head, slices, rows)


# --- every scenario: an invoice told in parts is the invoice told in one unit ---------------------

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"
FIXTURES = sorted(p for p in SCENARIOS.glob("*.json") if p.stem != "expected")


async def _whole_and_parts(sim: Simulator, units: list[InvoiceUnit]) -> list[tuple[Report, Report]]:
    """Each invoice as one unit reviews it, and as `review_invoice` tells it when Dataverse refuses
    to count its usage (an injected refusal of the first usage query: the own unit's count): its
    own unit then counts by customer and its slices tell the rest."""
    out = []
    async with open_clients(sim, retry=_NO_RETRY) as (dv, pc, schema):
        usage = f"/api/data/v9.2/{schema.entity_set(_US)}"

        def refuse() -> None:  # a fault of its own each time: a fault counts its uses down
            sim.faults.add(Fault(status=400, in_batch=True, times=1, path_prefix=usage))

        for unit in units:
            one = review(await load_unit(dv, pc, schema, _T, unit, as_of=sim.now), _T)
            refuse()
            head = await load_unit(dv, pc, schema, _T, unit, as_of=sim.now)
            assert unit.invoice_id in head.usage_counted, "the own unit counted by customer"
            refuse()
            out.append((one, await review_invoice(dv, schema, _T, unit, as_of=sim.now)))
    return out


async def _schema_failures(sim: Simulator) -> set[str]:
    async with open_clients(sim, retry=_NO_RETRY) as (_, _, schema):
        return set(schema.unavailable)


@pytest.mark.parametrize("fixture", FIXTURES, ids=[p.stem for p in FIXTURES])
def test_an_invoice_told_in_parts_is_the_invoice_told_in_one_unit(fixture: Path) -> None:
    tables = json.loads(fixture.read_text(encoding="utf-8"))["dataverse"]["rows"]
    units = [
        InvoiceUnit(invoice_id=r["work365_providerinvoiceid"])
        for r in tables.get("work365_providerinvoice", [])
    ]
    with Simulator(fixture) as sim:
        if "provider_invoices" in asyncio.run(_schema_failures(sim)):
            pytest.skip("the invoice table cannot be read: no invoice is cut")
        for one, parts in asyncio.run(_whole_and_parts(sim, units)):
            assert [f.dedup_key for f in parts.findings] == [f.dedup_key for f in one.findings]
            assert [_observed(f) for f in parts.findings] == [_observed(f) for f in one.findings]
            assert [f.muted for f in parts.findings] == [f.muted for f in one.findings]


def test_usage_rows_that_cannot_be_read_are_told_by_the_slice_that_read_them() -> None:
    """A usage row whose markup is a word fails its invoice (CHECK_FAILED) in one unit; told in
    parts, the slice that read it tells it, with the count and the rows."""
    fixture = json.loads((SCENARIOS / "usage_synced_after_contract_invoice.json").read_text(encoding="utf-8"))
    tables = fixture["dataverse"]["rows"]
    invoice = next(
        r["work365_providerinvoiceid"]
        for r in tables["work365_providerinvoice"]
        if r["work365_providerinvoice_billingperiodstart"] == "2026-10-01"
    )
    bad = [r for r in tables[_US] if r["work365_usagesummary_providerinvoice"] == invoice][:1]
    for row in bad:
        row["$raw"] = {"work365_usagesummary_markup": "seventeen"}  # served as it is
    with Simulator(load_fixture(fixture)) as sim:
        [(one, parts)] = asyncio.run(_whole_and_parts(sim, [InvoiceUnit(invoice_id=invoice)]))
    failed = [f for f in one.findings if f.code == "CHECK_FAILED" and f.subject.id == invoice]
    assert len(failed) == 1
    assert failed[0].evidence["records_unreadable"] == len(bad)
    assert [f.dedup_key for f in parts.findings] == [f.dedup_key for f in one.findings]
    assert [_observed(f) for f in parts.findings] == [_observed(f) for f in one.findings]


def test_a_refused_range_is_cut_by_the_sampled_customers_inside_it() -> None:
    """The sample misses the heavy customer (5,700 other rows, all costlier): its fine range, of two
    sampled customers, is refused and cut between them; the part with the heavy customer is
    refused again, sampled within itself, its customer set apart and read page by page."""
    fixture = generate(40, subscriptions=5, usage=30).fixture
    tables = fixture["dataverse"]["rows"]
    _, rows = _by_usage(tables)
    sample = sorted(
        rows, key=lambda r: (-r["work365_usagesummary_cost"], sql_guid_key(r["work365_usagesummaryid"]))
    )[:5_000]
    customers = [r["work365_usagesummary_customer"] for r in sample]
    shared = next(
        r for r in cut(customers, FINE_RANGES) if len({c for c in customers if contains(r, c)}) >= 2
    )
    heavy = sorted({c for c in customers if contains(shared, c)}, key=sql_guid_key)[1]
    with Simulator(load_fixture(_skewed(fixture, heavy))) as sim:
        unit, rows = _by_usage(tables)
        head, slices = asyncio.run(_parts(sim, unit))
        # R3 refused; R4 the range cut in two, the heavy part refused; R5 it sampled within; R6 its
        # customer set apart and refused; R7 read: 7 round trips and the pages after the first.
        assert head.requests == {"Dataverse": 7 + HEAVY_ROWS // 5_000}
        # the heavy customer's slice begins at it (the empty rest of its range joined to it)
        alone = [p.unit.customers for p in slices if p.unit.customers and contains(p.unit.customers, heavy)]
        assert [r.low for r in alone] == [heavy]
        _check_counts(head, slices, rows)
        _check_reports(sim, tables, head, slices, rows)
