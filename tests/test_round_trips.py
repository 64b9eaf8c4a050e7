"""Round trips are designed, and this keeps them so: a scan reads Dataverse in four HTTP requests
(a `$batch` of the table list and WhoAmI, a metadata `$batch` that also carries the identity's
RetrieveUserPrivileges, two data `$batch`es) plus one per further 5,000-row page."""

from __future__ import annotations

import asyncio

from benchmarks.__main__ import large_tenant, run
from simulator import Simulator, load_fixture


def test_a_large_tenant_is_scanned_in_a_fixed_number_of_round_trips() -> None:
    # 600 customers: 3 chunks of contract ids in the second batch; 6,000 usage rows: 2 pages.
    with Simulator(load_fixture(large_tenant(customers=600, usage_per_customer=10))) as sim:
        conn, _, summary = asyncio.run(run(sim))
        batches = sim.requests[("POST", "/api/data/v9.2/$batch")]
        usage_pages = sim.requests[("GET", "/api/data/v9.2/work365_usagesummaries")]
    assert conn.requests.by_service() == {"Dataverse": 4 + 1, "Partner Center": 1}
    # table list + WhoAmI, metadata + privileges, independent data, dependent data: the table list
    # became a batch so that WhoAmI rides with it (RetrieveUserPrivileges needs its UserId).
    assert batches == 4
    assert usage_pages == 2  # the first page inside the batch, the second as its nextLink
    assert "0 error" in summary


def test_round_trips_do_not_grow_with_customers() -> None:
    counts = []
    for customers in (50, 400):
        with Simulator(load_fixture(large_tenant(customers=customers, usage_per_customer=1))) as sim:
            conn, _, _ = asyncio.run(run(sim))
            counts.append(conn.requests.count)
    assert counts[0] == counts[1]
