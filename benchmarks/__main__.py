"""Benchmark: a large simulated tenant, scanned with injected latency per request.

`make bench` prints the round trips by service and the wall time. Speed is designed (two `$batch`
round trips after metadata, 5,000-row pages) and measured here, not asserted in timed tests.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from typing import Any

from diagnostics.render import to_text
from diagnostics.service import Connection, scan
from simulator import Simulator, load_fixture
from simulator.connect import connection


def large_tenant(customers: int, usage_per_customer: int) -> dict[str, Any]:
    """A partner with many Azure customers, one blocked customer, and a full month of usage."""
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
        "work365_usagesummary": [],
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


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument("--customers", type=int, default=2_000)
    parser.add_argument("--usage", type=int, default=6, help="usage summaries per customer")
    parser.add_argument("--latency-ms", type=float, default=50.0, help="injected delay per request")
    args = parser.parse_args()
    fixture = load_fixture(large_tenant(args.customers, args.usage))
    with Simulator(fixture) as sim:
        sim.inject(latency=args.latency_ms / 1000)
        conn, elapsed, summary = asyncio.run(run(sim))
        result = {
            "customers": args.customers,
            "usage_rows": args.customers * args.usage,
            "latency_ms": args.latency_ms,
            "round_trips": conn.requests.by_service(),
            "simulator_requests": dict(sorted((f"{m} {p}", n) for (m, p), n in sim.requests.items())),
            "seconds": round(elapsed, 2),
            "report": summary,
        }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
