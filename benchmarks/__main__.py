"""Benchmark: generated tenants (`simulator/generate.py`) scanned with 50 ms injected per request.

`make bench` (`python -m benchmarks`) prints each scale target beside its measured figure and their
ratio (measured / target; at most 1 meets it), then the figures per size. By default it runs 1,000
and 10,000 customers (the issue's sizes; a few minutes); `--quick` runs 100 and 1,000 (a minute).
The large tenant is scanned twice: with 50 ms per request, and again with Dataverse's page cost as
well (`--page-cost-ms-per-1000`, 300 ms per 1,000 rows served by default), which only reading its
largest table in partitions at once keeps within a minute.
Each scan runs in a process of its own (`benchmarks/scanner.py`) so that its peak memory and CPU are
the scan's; the simulator stays in this process, whose CPU time during the scan is the simulator's
(`simulator_cpu_seconds`: this process does nothing else meanwhile). Speed is measured here, not
asserted in timed tests.

"Wall / requests' cost" is the scan's wall time over its requests' own cost: the requests the
simulator served during the scan (every service, the sign-in too) times the latency injected into
each, as if sent one after another; so it is the factor by which anything else (the scan's and the
simulator's CPU, a loaded machine) made the scan slower than its requests alone, less what sending
requests at once saved. It is printed with the 1-minute load average at the end of the scan: on a
shared machine the wall time is not robust to load; request counts and CPU seconds are.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from types import TracebackType
from typing import Any

from benchmarks import monitor_day
from benchmarks.coldstart import cold_start, explain
from diagnostics.adapters.http import RequestCounter
from diagnostics.loading import load_unit
from diagnostics.messages import ContractUnit, ExpectedInvoiceUnit, InvoiceUnit, TenantPeriodUnit, Unit
from diagnostics.render import to_text
from diagnostics.service import Connection, build_clients, check_unit, scan, verify_schema
from diagnostics.settings import Settings
from simulator import Simulator, load_fixture
from simulator.connect import connection
from simulator.generate import generate


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


async def invoice_units_requests(sim: Simulator, invoice_id: str) -> list[int]:
    """Dataverse requests of each unit of one provider invoice, the schema verified once and kept
    (as the monitor's handlers keep it): its own unit (the head) first, then each slice the head cut
    its usage into (`Snapshot.usage_slices`; none for an invoice whose usage Dataverse can count in
    one aggregate). Each unit loads alone, as a handler loads one message's unit."""
    conn = connection(sim)
    verification = await verify_schema(conn)
    units = [InvoiceUnit(invoice_id=invoice_id)]
    counts: list[int] = []
    while len(counts) < len(units):
        unit = units[len(counts)]
        counter = RequestCounter()
        dv, pc = build_clients(conn, counter)
        try:
            snapshot = await load_unit(dv, pc, verification.schema, conn.thresholds, unit, as_of=sim.now)
        finally:
            await dv.aclose()
            if pc is not None:
                await pc.aclose()
        counts.append(counter.by_service().get("Dataverse", 0))
        if unit.customers is None:  # the head: what it cut
            units += [unit.model_copy(update={"customers": cut}) for cut in snapshot.usage_slices]
    return counts


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


class InFlight:
    """The simulator's requests in flight, sampled every `every` seconds."""

    def __init__(self, sim: Simulator, every: float = 0.1) -> None:
        self._sim, self._every = sim, every
        self._samples: list[tuple[float, int]] = []  # (epoch seconds, requests in flight)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="bench-in-flight", daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(self._every):
            self._samples.append((time.time(), self._sim.in_flight))

    def seconds(self, start: float, end: float) -> dict[int, float]:
        """Seconds spent with each number of requests in flight between `start` and `end`."""
        counts = Counter(n for at, n in self._samples if start <= at <= end)
        return {n: round(k * self._every, 1) for n, k in sorted(counts.items())}

    def __enter__(self) -> InFlight:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join()


def scan_in_child(sim: Simulator) -> dict[str, Any]:
    """One scan in a fresh process (`benchmarks.scanner`), against this process's simulator; with
    what the simulator did meanwhile: its CPU seconds, the requests it served, the most in flight
    and how long each number was, the page costs it slept, and the load average at the end."""
    served, slept = sim.request_count(""), sim.page_cost_seconds
    sim.take_max_in_flight(dataverse=True)
    cpu = time.process_time()
    with InFlight(sim) as in_flight:
        result = _run_scanner(sim)
    return {
        **result,
        "simulator_cpu_seconds": round(time.process_time() - cpu, 2),
        "served": sim.request_count("") - served,
        "max_in_flight": sim.take_max_in_flight(dataverse=True),
        # while the scan ran, not while its process started
        "in_flight_seconds": in_flight.seconds(result["started_at"], result["ended_at"]),
        "pages_cost_s": round(sim.page_cost_seconds - slept, 1),  # slept in all, overlapping or not
        "load_average": round(os.getloadavg()[0], 2),
    }


def _run_scanner(sim: Simulator) -> dict[str, Any]:
    where = {
        "url": sim.dataverse_url,
        "authority": sim.authority,
        "tenant_id": sim.tenant_id,
        "client_id": sim.client_id,
        "client_secret": sim.client_secret,
        "ca_file": sim.ca_file,
        "now": sim.now.isoformat(),
    }
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.scanner"],
        input=json.dumps(where),
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"the scanning process failed: {done.stderr.strip().splitlines()[-1:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def measure(customers: int, seed: int, latency_s: float, page_cost_ms: float | None = None) -> dict[str, Any]:
    """One size: a scan with `latency_s` per request, the invoice unit's requests and, when
    `page_cost_ms` is given, a second scan with that page cost per 1,000 rows as well."""
    generated = generate(customers, seed)
    started = time.perf_counter()
    fixture = load_fixture(generated.fixture)
    with Simulator(fixture) as sim:
        loaded = time.perf_counter() - started
        # The tenant's millions of objects live as long as the simulator: kept out of the cyclic
        # collector's way, whose full collections would walk them all while pages are served.
        gc.freeze()
        sim.inject(latency=latency_s)
        scanned = scan_in_child(sim)
        rows = generated.fixture["dataverse"]["rows"]
        invoice = next(
            r["work365_providerinvoiceid"]
            for r in rows["work365_providerinvoice"]
            if r["work365_name"] == "Microsoft 2026-10"
        )
        invoice_units = asyncio.run(invoice_units_requests(sim, invoice))
        paged: dict[str, Any] = {}
        if page_cost_ms is not None:
            sim.set_page_cost(page_cost_ms)
            with_cost = scan_in_child(sim)
            paged = {"page_cost_ms_per_1000": page_cost_ms, "page_cost_seconds": with_cost.pop("seconds")}
            paged |= {f"paged_{name}": value for name, value in with_cost.items()}
    gc.unfreeze()
    return {
        "customers": customers,
        "subscriptions": len(rows["work365_subscription"]),
        "usage_summaries": len(rows["work365_usagesummary"]),
        "fixture_load_s": round(loaded, 1),
        **scanned,
        "latency_s": latency_s,
        "requests_alone_s": round(scanned["served"] * latency_s, 2),
        # The invoice's units: its own (the head) and the slices it was cut into, if any.
        "invoice_unit_dataverse": max(invoice_units),
        "invoice_head_dataverse": invoice_units[0],
        "invoice_slices": len(invoice_units) - 1,
        "invoice_units_dataverse_total": sum(invoice_units),
        **paged,
    }


# The cap a scan runs under here (benchmarks/scanner.py): the app's default per worker process.
SCAN_CAP = Settings.model_fields["dataverse_max_concurrency"].default


def targets(
    small: dict[str, Any], large: dict[str, Any], cold: dict[str, float], day: dict[str, Any]
) -> list[tuple[str, float, float]]:
    """(target, measured, limit): measured / limit at most 1 meets it."""
    growth = large["customers"] / small["customers"]
    return [
        (
            f"Dataverse requests, monthly scan of {large['customers']:,} customers",
            large["round_trips"].get("Dataverse", 0),
            120,
        ),
        (
            f"peak memory of the scanning process, {large['customers']:,} customers (MB)",
            large["peak_mb"],
            200,
        ),
        (
            f"CPU growth {large['customers']:,} / {small['customers']:,} customers (x{growth:g} size)",
            large["cpu_seconds"] / max(small["cpu_seconds"], 1e-9),
            1.2 * growth,
        ),
        (
            f"wall / requests' cost ({large['served']} served x {large['latency_s'] * 1000:g} ms), "
            f"load {large['load_average']:g}",
            large["seconds"] / max(large["requests_alone_s"], 1e-9),
            2,
        ),
        (
            "Dataverse requests of one invoice unit, schema cached"
            + (
                f" (the most of the invoice's own unit and its {large['invoice_slices']} slices)"
                if large["invoice_slices"]
                else ""
            ),
            large["invoice_unit_dataverse"],
            3,
        ),
        *(
            [
                (
                    f"scan of {large['customers']:,} customers, {large['page_cost_ms_per_1000']:g} ms per 1,000 "
                    "rows served (s)",
                    large["page_cost_seconds"],
                    60,
                ),
                (
                    "most Dataverse requests in flight in that scan (the per-worker cap)",
                    large["paged_max_in_flight"],
                    SCAN_CAP,
                ),
            ]
            if "page_cost_seconds" in large
            else []
        ),
        (
            "import function_app in the Functions worker as deployed, beyond its own imports (ms CPU, median)",
            cold["deployed_added_cpu_s"] * 1000,
            100,
        ),
        (
            f"Dataverse requests, busiest of {day['days']} monitored days, {day['customers']:,} customers",
            day["dataverse_requests"],
            500,
        ),
        ("most requests in flight in those days (the cap)", day["max_in_flight"], day["cap"]),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument("--quick", action="store_true", help="100 and 1,000 customers (about a minute)")
    parser.add_argument("--full", action="store_true", help="1,000 and 10,000 customers (the default)")
    parser.add_argument(
        "--sizes", type=int, nargs=2, metavar=("SMALL", "LARGE"), help="customers of the two runs"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--latency-ms", type=float, default=50.0, help="injected delay per request")
    parser.add_argument(
        "--page-cost-ms-per-1000",
        type=float,
        default=300.0,
        help="the large tenant's second scan: time per 1,000 rows served (0: no second scan)",
    )
    parser.add_argument("--import-runs", type=int, default=7, help="fresh processes timing the import")
    parser.add_argument(
        "--monitor-customers",
        type=int,
        help="customers of the monitored days (default: 1,000; the larger size with --full or --sizes)",
    )
    parser.add_argument("--monitor-days", type=int, default=2, help="monitored days replayed")
    args = parser.parse_args()
    sizes = args.sizes or ((100, 1_000) if args.quick else (1_000, 10_000))
    small = measure(sizes[0], args.seed, args.latency_ms / 1000)
    large = measure(sizes[1], args.seed, args.latency_ms / 1000, args.page_cost_ms_per_1000 or None)
    cold = cold_start(args.import_runs)
    # The monitored day's replay of 10,000 customers takes far longer than the scans: it runs at
    # 1,000 unless asked for (`--monitor-customers`) or the sizes are (`--full`, `--sizes`).
    monitored = args.monitor_customers or (sizes[1] if args.full or args.sizes else 1_000)
    day = monitor_day.measure(monitored, args.monitor_days, args.seed)
    print(f"{'target':<78} {'measured':>10} {'target':>8} {'ratio':>6}")
    for name, measured, limit in targets(small, large, cold, day):
        verdict = "ok" if measured / limit <= 1 else "MISSED"
        print(f"{name:<78} {measured:>10.1f} {limit:>8g} {measured / limit:>6.2f} {verdict}")
    print(invoice_units_line(large))
    print(explain(cold))
    print(
        f"monitored days ({day['customers']:,} customers): units {day['units_by_day']}, Dataverse requests "
        f"{day['requests_by_day']}, {day['seconds']:.0f} s; the issue's target is for 10,000 customers"
    )
    for run in (small, large):
        print(per_size(run))
    for run in (small, large):
        print(json.dumps(run))


def invoice_units_line(run: dict[str, Any]) -> str:
    """The large tenant's Microsoft invoice as units: facts beside the per-unit target."""
    return (
        f"{run['customers']:,} customers' Microsoft invoice ({run['usage_summaries']:,} usage rows in the "
        f"tenant): the head and {run['invoice_slices']} slices, {run['invoice_units_dataverse_total']} "
        f"Dataverse requests in all (the head {run['invoice_head_dataverse']})"
    )


def per_size(run: dict[str, Any]) -> str:
    """One size's figures for a reader: the scan's and the simulator's CPU apart, with the load."""
    line = (
        f"{run['customers']:,} customers: scan {run['seconds']:.1f} s wall (load {run['load_average']:g}), "
        f"scan CPU {run['cpu_seconds']:.1f} s, simulator CPU {run['simulator_cpu_seconds']:.1f} s, "
        f"{run['served']} requests served ({run['requests_alone_s']:g} s of latency: "
        f"x{run['seconds'] / max(run['requests_alone_s'], 1e-9):.1f}), at most {run['max_in_flight']} in flight"
    )
    if "page_cost_seconds" in run:
        line += (
            f"; with {run['page_cost_ms_per_1000']:g} ms per 1,000 rows: {run['page_cost_seconds']:.1f} s wall "
            f"(load {run['paged_load_average']:g}), pages' cost {run['paged_pages_cost_s']:g} s "
            f"in all, simulator CPU {run['paged_simulator_cpu_seconds']:.1f} s, seconds by requests in "
            f"flight {run['paged_in_flight_seconds']}"
        )
    return line


if __name__ == "__main__":
    main()
