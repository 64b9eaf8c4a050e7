"""Benchmark: a large simulated tenant, scanned with injected latency per request.

`make bench` prints the round trips by service and the wall time, for a scan and for one unit of
work of each kind (a provider invoice, an expected invoice, a billing contract, the tenant-wide
checks), the latter after schema verification. Speed is designed (two `$batch`
round trips after metadata, 5,000-row pages) and measured here, not asserted in timed tests.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from typing import Any

from diagnostics.messages import ContractUnit, ExpectedInvoiceUnit, InvoiceUnit, TenantPeriodUnit, Unit
from diagnostics.render import to_text
from diagnostics.service import Connection, check_unit, scan, verify_schema
from simulator import Simulator, load_fixture
from simulator.connect import connection


def large_tenant(customers: int, usage_per_customer: int, history: int = 0) -> dict[str, Any]:
    """A partner with many Azure customers and a full month of usage; `history` more usage rows per
    customer on the previous month's invoice, already billed."""
    ns = uuid.UUID("00000000-0000-4000-8000-00000000be0c")

    def gid(name: str) -> str:
        return str(uuid.uuid5(ns, name))

    ms, pi_sep, pi_oct = gid("ms"), gid("pi-sep"), gid("pi-oct")
    rows: dict[str, list[dict[str, Any]]] = {
        "work365_provider": [
            {
                "work365_providerid": ms,
                "work365_name": "Microsoft",
                "work365_provider_type": "Microsoft Partner Center",
            }
        ],
        "account": [],
        "work365_provideraccount": [],
        "work365_billingcontract": [],
        "work365_subscription": [],
        # September was billed: its usage is on a customer invoice, so September is not open.
        "work365_usagesummary": [
            {
                "work365_usagesummaryid": gid("us-sep"),
                "work365_usagesummary_providerinvoice": pi_sep,
                "work365_usagesummary_subscription": gid("sub0"),
                "work365_usagesummary_customer": gid("acc0"),
                "work365_usagesummary_chargestartdate": "2026-09-01",
                "work365_usagesummary_chargeenddate": "2026-09-30",
                "work365_usagesummary_cost": 1000.0,
                "work365_usagesummary_markup": 17.647,
                "work365_usagesummary_invoice": gid("inv-sep"),
                "createdon": "2026-10-09T06:30:00Z",
            }
        ],
        "work365_providerinvoice": [
            {
                "work365_providerinvoiceid": pi,
                "work365_name": f"Microsoft {period}",
                "work365_providerinvoice_invoicenumber": number,
                "work365_providerinvoice_provider": ms,
                "work365_providerinvoice_billingperiodstart": f"{period}-01",
                "work365_providerinvoice_usagetotal": 1000.0,
                "statuscode": "Active",
                "createdon": created,
            }
            for pi, period, number, created in (
                (pi_sep, "2026-09", "G0000000009", "2026-10-09T06:00:00Z"),
                (pi_oct, "2026-10", "G0000000010", "2026-11-09T06:00:00Z"),
            )
        ],
    }
    for c in range(customers):
        acc, bc, sub = gid(f"acc{c}"), gid(f"bc{c}"), gid(f"sub{c}")
        rows["account"].append({"accountid": acc, "name": f"Customer {c:05d}"})
        rows["work365_provideraccount"].append(
            {
                "work365_provideraccountid": gid(f"pa{c}"),
                "work365_provideraccount_name": f"Customer {c:05d}",
                "work365_provideraccount_account": acc,
                "work365_provideraccount_providerspecificaccountid": gid(f"tenant{c}"),
                "work365_provideraccount_provider": ms,
            }
        )
        rows["work365_billingcontract"].append(
            {
                "work365_billingcontractid": bc,
                "work365_name": f"Customer {c:05d} – Azure",
                "work365_billingcontract_customer": acc,
                "work365_billingcontract_startdate": "2025-01-15",
                "work365_billingcontract_nextinvoicedate": "2026-11-15",
                "statecode": "Active",
            }
        )
        rows["work365_subscription"].append(
            {
                "work365_subscriptionid": sub,
                "work365_subscription_subscriptionname": "Microsoft Azure",
                "work365_subscription_customer": acc,
                "work365_subscription_billingcontract": bc,
                "work365_subscription_product": gid("azure"),
                "work365_subscription_providersubscriptionid": gid(f"azsub{c}"),
                "work365_subscription_subscriptiontype": "Usage Based",
                "work365_subscription_markup": 17.647,
                "statuscode": "Active",
                "createdon": "2025-01-15T00:00:00Z",
            }
        )
        for u in range(usage_per_customer):
            rows["work365_usagesummary"].append(
                {
                    "work365_usagesummaryid": gid(f"us{c}-{u}"),
                    "work365_usagesummary_providerinvoice": pi_oct,
                    "work365_usagesummary_subscription": sub,
                    "work365_usagesummary_customer": acc,
                    "work365_usagesummary_chargestartdate": "2026-10-01",
                    "work365_usagesummary_chargeenddate": "2026-10-31",
                    "work365_usagesummary_cost": 10.0,
                    "work365_usagesummary_markup": 17.647,
                    "createdon": "2026-11-09T06:30:00Z",
                }
            )
        for h in range(history):
            rows["work365_usagesummary"].append(
                {
                    "work365_usagesummaryid": gid(f"us-sep{c}-{h}"),
                    "work365_usagesummary_providerinvoice": pi_sep,
                    "work365_usagesummary_subscription": sub,
                    "work365_usagesummary_customer": acc,
                    "work365_usagesummary_chargestartdate": "2026-09-01",
                    "work365_usagesummary_chargeenddate": "2026-09-30",
                    "work365_usagesummary_cost": 10.0,
                    "work365_usagesummary_markup": 17.647,
                    "work365_usagesummary_invoice": gid("inv-sep"),
                    "createdon": "2026-10-09T06:30:00Z",
                }
            )
    return {
        "fixture_version": 1,
        "description": f"benchmark: {customers} Azure customers, {customers * usage_per_customer} usage rows",
        "now": "2026-11-12T09:00:00Z",
        "dataverse": {"rows": rows},
        "partner_center": {"enabled": True, "invoices": []},
    }


async def run(sim: Simulator) -> tuple[Connection, float, str]:
    conn = connection(sim)
    started = time.perf_counter()
    report = await scan(conn, sim.now)
    return conn, time.perf_counter() - started, to_text(report).splitlines()[1]


def _minus(total: dict[str, int], part: dict[str, int]) -> dict[str, int]:
    return {service: n - part.get(service, 0) for service, n in total.items() if n - part.get(service, 0)}


async def unit_requests(sim: Simulator, unit: Unit) -> dict[str, int]:
    """Requests by service to check one unit of work, schema verification left out (the monitor's
    handlers verify it once and keep it)."""
    verified = connection(sim)
    await verify_schema(verified)
    conn = connection(sim)
    await check_unit(conn, unit, sim.now)
    return _minus(conn.requests.by_service(), verified.requests.by_service())


def sample_units(fixture: dict[str, Any], period: str) -> dict[str, Unit]:
    """One unit of each kind in the large tenant: the period's invoice, the provider, a contract."""
    rows = fixture["dataverse"]["rows"]
    invoice = next(
        r
        for r in rows["work365_providerinvoice"]
        if r["work365_providerinvoice_billingperiodstart"].startswith(period)
    )
    return {
        "provider_invoice": InvoiceUnit(invoice_id=invoice["work365_providerinvoiceid"]),
        "expected_invoice": ExpectedInvoiceUnit(
            provider_id=rows["work365_provider"][0]["work365_providerid"], period=period
        ),
        "billing_contract": ContractUnit(
            contract_id=rows["work365_billingcontract"][0]["work365_billingcontractid"], period=period
        ),
        "tenant_period": TenantPeriodUnit(period=period),
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument("--customers", type=int, default=2_000)
    parser.add_argument("--usage", type=int, default=6, help="usage summaries per customer")
    parser.add_argument("--latency-ms", type=float, default=50.0, help="injected delay per request")
    parser.add_argument("--history", type=int, default=3, help="billed usage rows per customer, month before")
    args = parser.parse_args()
    tenant = large_tenant(args.customers, args.usage, args.history)
    with Simulator(load_fixture(tenant)) as sim:
        sim.inject(latency=args.latency_ms / 1000)
        conn, elapsed, summary = asyncio.run(run(sim))
        per_unit = {
            kind: asyncio.run(unit_requests(sim, unit))
            for kind, unit in sample_units(tenant, "2026-10").items()
        }
        result = {
            "customers": args.customers,
            "usage_rows": args.customers * args.usage,
            "latency_ms": args.latency_ms,
            "history_rows": args.customers * args.history,
            "round_trips": conn.requests.by_service(),
            "round_trips_per_unit_after_schema_verification": per_unit,
            "simulator_requests": dict(sorted((f"{m} {p}", n) for (m, p), n in sim.requests.items())),
            "seconds": round(elapsed, 2),
            "report": summary,
        }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
