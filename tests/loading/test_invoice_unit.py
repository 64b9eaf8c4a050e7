"""One provider invoice's slice: when Dataverse cannot count its usage (more rows than an aggregate
may read), the rows are read page by page and the subscriptions they touch one round trip later;
the diagnosis is the same."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from benchmarks.__main__ import unit_requests
from diagnostics.messages import InvoiceUnit
from diagnostics.service import check_unit
from simulator import Simulator
from simulator.connect import connection
from simulator.faults import Fault

FIXTURE = Path(__file__).resolve().parent.parent / "scenarios" / "usage_synced_after_contract_invoice.json"


def _october_invoice() -> InvoiceUnit:
    rows = json.loads(FIXTURE.read_text(encoding="utf-8"))["dataverse"]["rows"]["work365_providerinvoice"]
    row = next(r for r in rows if r["work365_providerinvoice_billingperiodstart"] == "2026-10-01")
    return InvoiceUnit(invoice_id=row["work365_providerinvoiceid"])


def test_an_invoice_whose_usage_cannot_be_counted_is_read_in_full_one_round_trip_later() -> None:
    unit = _october_invoice()
    with Simulator(FIXTURE) as sim:
        counted = asyncio.run(check_unit(connection(sim), unit, sim.now))
        assert asyncio.run(unit_requests(sim, unit)) == {"Dataverse": 3}
        # The aggregate is the only usage query of the first round: refuse it as Dataverse refuses
        # an aggregate over more than 50,000 rows.
        usage = "/api/data/v9.2/work365_usagesummaries"
        sim.faults.add(Fault(status=400, in_batch=True, times=1, path_prefix=usage))
        requests = asyncio.run(unit_requests(sim, unit))
        sim.faults.add(Fault(status=400, in_batch=True, times=1, path_prefix=usage))
        uncounted = asyncio.run(check_unit(connection(sim), unit, sim.now))
    assert requests == {"Dataverse": 4}
    assert [f.dedup_key for f in uncounted.findings] == [f.dedup_key for f in counted.findings]
    assert "USAGE_SYNCED_AFTER_CONTRACT_INVOICE" in {f.code for f in uncounted.findings}
    assert [f.evidence for f in uncounted.findings] == [f.evidence for f in counted.findings]
