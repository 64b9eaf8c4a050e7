"""Round trips are designed, and this keeps them so.

A scan reads Dataverse in four HTTP requests (a `$batch` of the table list and WhoAmI, a metadata
`$batch` that also carries the identity's RetrieveUserPrivileges, two data `$batch`es) plus one per
further 5,000-row page, and one more `$batch` only when an earlier period is still open.
A unit of work, with the schema verified, reads only its slice: a provider invoice in three requests
whatever the tenant's size (its usage in queries of one page each), an expected invoice in one (and
Partner Center once), a billing contract in two. The simulator counts what it served.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest

from benchmarks.__main__ import invoice_units_requests, large_tenant, run, sample_units, unit_requests
from diagnostics.messages import CONTRACTS_PER_UNIT, ContractsUnit
from simulator import Simulator, load_fixture
from simulator.generate import generate

PERIOD = "2026-10"
# Requests per unit kind after schema verification (the monitor's handlers keep the schema).
BUDGET = {
    "provider_invoice": {"Dataverse": 3},
    "expected_invoice": {"Dataverse": 1, "Partner Center": 1},
    "billing_contract": {"Dataverse": 2},
}


def test_a_large_tenant_is_scanned_in_a_fixed_number_of_round_trips() -> None:
    # 600 customers: 3 chunks of contract ids in the second batch; 6,000 usage rows: 2 pages.
    with Simulator(load_fixture(large_tenant(customers=600, usage_per_customer=10))) as sim:
        conn, _, summary = asyncio.run(run(sim))
        batches = sim.requests[("POST", "/api/data/v9.2/$batch")]
        usage_gets = sim.requests[("GET", "/api/data/v9.2/work365_usagesummaries")]
    assert conn.requests.by_service() == {"Dataverse": 4 + 1, "Partner Center": 1}
    # table list + WhoAmI, metadata + privileges, independent data, dependent data: the table list
    # became a batch so that WhoAmI rides with it (RetrieveUserPrivileges needs its UserId).
    assert batches == 4
    # The first page inside the batch, the second as its nextLink; and, in the batch, whether
    # September's invoice has usage and whether any of it is on no invoice (it is all billed).
    assert usage_gets == 2 + 2
    assert "0 error" in summary


def test_an_open_earlier_period_costs_one_more_round_trip() -> None:
    tenant = large_tenant(customers=50, usage_per_customer=1)
    september = tenant["dataverse"]["rows"]["work365_usagesummary"][0]
    september["work365_usagesummary_invoice"] = None  # September's usage is on no invoice: still open
    with Simulator(load_fixture(tenant)) as sim:
        conn, _, _ = asyncio.run(run(sim))
        batches = sim.requests[("POST", "/api/data/v9.2/$batch")]
    assert conn.requests.by_service() == {"Dataverse": 4 + 1, "Partner Center": 1}
    assert batches == 4 + 1  # and September's usage and notes


def test_round_trips_do_not_grow_with_customers() -> None:
    counts = []
    for customers in (50, 400):
        with Simulator(load_fixture(large_tenant(customers=customers, usage_per_customer=1))) as sim:
            conn, _, _ = asyncio.run(run(sim))
            counts.append(conn.requests.count)
    assert counts[0] == counts[1]


@pytest.fixture(scope="module")
def large() -> Any:
    """2,000 customers; October's invoice has 12,000 usage rows (three pages read as one query),
    September's 6,000 more that an October unit must not read."""
    tenant = large_tenant(customers=2_000, usage_per_customer=6, history=3)
    with Simulator(load_fixture(tenant)) as sim:
        yield sim, tenant


@pytest.mark.parametrize("kind", sorted(BUDGET))
def test_each_unit_stays_within_its_budget_on_a_large_tenant(large: Any, kind: str) -> None:
    sim, tenant = large
    unit = sample_units(tenant, PERIOD)[kind]
    sim.reset_counts()
    requests = asyncio.run(unit_requests(sim, unit))
    assert requests == BUDGET[kind]
    # Schema verification is two requests of the total; the rest is the unit's.
    assert sim.request_count("/api/data") == 2 * 2 + BUDGET[kind]["Dataverse"]


@pytest.mark.parametrize("size", [CONTRACTS_PER_UNIT, 250])
def test_a_batch_of_contracts_costs_what_one_contract_costs(large: Any, size: int) -> None:
    """The planner's batch of 100 contracts, and one past the loader's 200 ids per `In` filter (so
    its contracts and subscriptions go in two chunks each): the two `$batch`es of one contract,
    every query inside them."""
    sim, tenant = large
    rows = tenant["dataverse"]["rows"]
    ids = sorted(r["work365_billingcontractid"] for r in rows["work365_billingcontract"])[:size]
    assert len(ids) == size
    sim.reset_counts()
    requests = asyncio.run(unit_requests(sim, ContractsUnit(period=PERIOD, contract_ids=tuple(ids))))
    assert requests == BUDGET["billing_contract"]
    assert sim.requests[("POST", "/api/data/v9.2/$batch")] == 2 * 2 + 2  # two verifications
    assert sim.request_count("/api/data/v9.2/work365_usagesummaries") == 0  # no page on its own


def test_an_invoice_unit_reads_no_page_of_usage_beyond_its_batches(large: Any) -> None:
    sim, tenant = large
    sim.reset_counts()
    asyncio.run(unit_requests(sim, sample_units(tenant, PERIOD)["provider_invoice"]))
    # Only queries inside the three `$batch`es: no nextLink page, so nothing of another invoice's
    # usage and no page of this one's was read on its own.
    assert sim.requests[("POST", "/api/data/v9.2/$batch")] == 2 * 2 + 3  # two verifications
    assert sim.request_count("/api/data/v9.2/work365_usagesummaries") == 0


def test_the_benchmark_counts_an_invoice_countable_in_one_aggregate_as_one_unit(large: Any) -> None:
    """12,000 usage rows: under Dataverse's aggregate limit, so the head cuts no slices."""
    sim, tenant = large
    invoice = sample_units(tenant, PERIOD)["provider_invoice"]
    assert asyncio.run(invoice_units_requests(sim, invoice.invoice_id)) == [
        BUDGET["provider_invoice"]["Dataverse"]
    ]


def test_the_benchmark_counts_the_head_and_every_slice_of_an_invoice_over_the_limit() -> None:
    """An invoice over Dataverse's 50,000-row aggregate limit: its head cuts slices, and the
    benchmark counts each of its units (as `make bench` does at 10,000 customers)."""
    generated = generate(customers=120, subscriptions=5, usage=110)
    rows = generated.fixture["dataverse"]["rows"]
    per_invoice = Counter(u["work365_usagesummary_providerinvoice"] for u in rows["work365_usagesummary"])
    invoice, usage_rows = per_invoice.most_common(1)[0]
    assert usage_rows > 50_000
    with Simulator(load_fixture(generated.fixture)) as sim:
        counts = asyncio.run(invoice_units_requests(sim, invoice))
    assert len(counts) >= 1 + -(-usage_rows // 25_000)  # slices of at most 25,000 rows
    assert max(counts) == BUDGET["provider_invoice"]["Dataverse"]


def test_the_invoice_unit_does_not_grow_with_the_tenant() -> None:
    counts = []
    for customers in (20, 1_500):
        tenant = large_tenant(customers=customers, usage_per_customer=2, history=2)
        with Simulator(load_fixture(tenant)) as sim:
            counts.append(asyncio.run(unit_requests(sim, sample_units(tenant, PERIOD)["provider_invoice"])))
    assert counts == [BUDGET["provider_invoice"]] * 2


def test_the_tenant_unit_reads_the_period_without_asking_partner_center(large: Any) -> None:
    sim, tenant = large
    requests = asyncio.run(unit_requests(sim, sample_units(tenant, PERIOD)["tenant_period"]))
    assert "Partner Center" not in requests
    # Two `$batch`es; the period's 12,000 usage rows in two ranges of subscriptions (and the empty
    # partition of usage on none, in the batch), each range a GET of its own and one further page.
    assert requests == {"Dataverse": 2 + 2 + 2}
