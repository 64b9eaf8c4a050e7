"""One provider invoice whose usage Dataverse cannot count (more rows than an aggregate may read,
refused here by an injected fault on a small invoice): its own unit counts the usage by customer
and cuts it into slices, still in three round trips, and the invoice told whole (`review_invoice`)
is the same diagnosis; when the customers cannot be sampled either, the rows are read page by page
and the subscriptions they touch one round trip later, the diagnosis the same again."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from benchmarks.__main__ import unit_requests
from diagnostics.adapters.http import RetryPolicy
from diagnostics.errors import ServiceError
from diagnostics.loading import load_unit, review_invoice
from diagnostics.messages import InvoiceUnit
from diagnostics.model import Report
from diagnostics.service import check_unit
from diagnostics.settings import Thresholds
from simulator import Simulator
from simulator.connect import connection
from simulator.faults import Fault
from tests.loading.support import open_clients

FIXTURE = Path(__file__).resolve().parent.parent / "scenarios" / "usage_synced_after_contract_invoice.json"
USAGE = "/api/data/v9.2/work365_usagesummaries"


def _october_invoice() -> InvoiceUnit:
    rows = json.loads(FIXTURE.read_text(encoding="utf-8"))["dataverse"]["rows"]["work365_providerinvoice"]
    row = next(r for r in rows if r["work365_providerinvoice_billingperiodstart"] == "2026-10-01")
    return InvoiceUnit(invoice_id=row["work365_providerinvoiceid"])


def _refuse(sim: Simulator, times: int) -> None:
    """Refuse the next `times` usage queries of a batch, as Dataverse refuses an aggregate over
    more than 50,000 rows (the count is the only usage query of the first round, the sample of
    the second)."""
    sim.faults.add(Fault(status=400, in_batch=True, times=times, path_prefix=USAGE))


async def _whole(sim: Simulator, unit: InvoiceUnit) -> Report:
    async with open_clients(sim, retry=RetryPolicy(max_attempts=1)) as (dv, _, schema):
        return await review_invoice(dv, schema, Thresholds(), unit, as_of=sim.now)


def _same(got: Report, expected: Report) -> None:
    assert [f.dedup_key for f in got.findings] == [f.dedup_key for f in expected.findings]
    assert [f.evidence for f in got.findings] == [f.evidence for f in expected.findings]
    assert [f.muted for f in got.findings] == [f.muted for f in expected.findings]


def test_an_invoice_whose_usage_cannot_be_counted_is_counted_by_customer_and_told_whole() -> None:
    unit = _october_invoice()
    with Simulator(FIXTURE) as sim:
        counted = asyncio.run(check_unit(connection(sim), unit, sim.now))
        assert asyncio.run(unit_requests(sim, unit)) == {"Dataverse": 3}
        _refuse(sim, 1)
        requests = asyncio.run(unit_requests(sim, unit))
        _refuse(sim, 1)
        own = asyncio.run(check_unit(connection(sim), unit, sim.now))
        _refuse(sim, 1)
        whole = asyncio.run(_whole(sim, unit))
    assert requests == {"Dataverse": 3}
    assert "USAGE_SYNCED_AFTER_CONTRACT_INVOICE" in {f.code for f in counted.findings}
    # The own unit tells of the invoice only; its slices of the rest.
    assert {f.subject.id for f in own.findings if f.subject.type != "tenant"} <= {unit.invoice_id}
    assert "USAGE_SYNCED_AFTER_CONTRACT_INVOICE" not in {f.code for f in own.findings}
    _same(whole, counted)


def test_an_invoice_whose_customers_cannot_be_sampled_is_read_in_full() -> None:
    unit = _october_invoice()
    with Simulator(FIXTURE) as sim:
        counted = asyncio.run(check_unit(connection(sim), unit, sim.now))
        _refuse(sim, 2)
        requests = asyncio.run(unit_requests(sim, unit))
        _refuse(sim, 2)
        uncounted = asyncio.run(check_unit(connection(sim), unit, sim.now))
    # the count, the sample, the rows, the subscriptions they touch, what those name
    assert requests == {"Dataverse": 5}
    _same(uncounted, counted)


async def _load(sim: Simulator, unit: InvoiceUnit) -> None:
    async with open_clients(sim, retry=RetryPolicy(max_attempts=1)) as (dv, pc, schema):
        await load_unit(dv, pc, schema, Thresholds(), unit, as_of=sim.now)


def test_a_sample_that_fails_for_another_reason_fails_the_unit_rather_than_read_every_row() -> None:
    unit = _october_invoice()
    with Simulator(FIXTURE) as sim:
        _refuse(sim, 1)
        sim.faults.add(Fault(status=503, in_batch=True, times=1, path_prefix=USAGE))
        with pytest.raises(
            ServiceError, match=f"could not sample the usage of provider invoice {unit.invoice_id}"
        ):
            asyncio.run(_load(sim, unit))
