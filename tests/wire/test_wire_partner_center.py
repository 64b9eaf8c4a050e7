"""Partner Center's documented invoice list carries no billing period; only the invoice by id does.

Through the real clients and the simulator (which lists invoices as Microsoft documents them, and
refuses the read by id to app-only tokens unless the fixture sets `invoice_by_id`): a one-time
invoice is matched on its date, a legacy one is read by id when it could be the period's, and
"Microsoft is late" is never concluded while a candidate's period is unknown.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx

from diagnostics.adapters.http import RetryPolicy
from diagnostics.adapters.partner_center import MAX_CONCURRENT_READS, PartnerCenterClient
from diagnostics.errors import AuthError, NotFoundError
from diagnostics.model import Finding, Report
from diagnostics.service import scan
from simulator import Simulator, load_fixture
from simulator.connect import connection

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"


async def _no_sleep(_: float) -> None:
    return None


RETRY = RetryPolicy(max_attempts=1, sleep=_no_sleep)


def _scenario(name: str) -> dict[str, Any]:
    fixture: dict[str, Any] = json.loads((SCENARIOS / f"{name}.json").read_text(encoding="utf-8"))
    return fixture


def _legacy(invoice_id: str, invoice_date: str, start: str, end: str) -> dict[str, Any]:
    return {
        "id": invoice_id,
        "invoiceDate": f"{invoice_date}T00:00:00Z",
        "billingPeriodStartDate": f"{start}T00:00:00Z",
        "billingPeriodEndDate": f"{end}T00:00:00Z",
        "totalCharges": 412.0,
        "currencyCode": "USD",
        "invoiceType": "Recurring",
        "documentType": "Invoice",
    }


def _scan(fixture: dict[str, Any]) -> tuple[Report, Simulator]:
    with Simulator(load_fixture(fixture)) as sim:
        report = asyncio.run(scan(connection(sim, retry=RETRY), sim.now))
    return report, sim


def _pulled(report: Report) -> Finding:
    (found,) = [f for f in report.findings if f.code.startswith("PI_MISSING")]
    return found


def test_the_list_serves_no_period_and_the_invoice_by_id_does() -> None:
    fixture = _scenario("pi_missing_not_synced")
    fixture["partner_center"]["invoice_by_id"] = True
    with Simulator(load_fixture(fixture)) as sim, httpx.Client(verify=sim.ssl_context()) as http:
        headers = {
            "Authorization": f"Bearer {sim.issue_token('https://api.partnercenter.microsoft.com/.default')}"
        }
        listed = http.get(f"{sim.partner_center_url}/v1/invoices", headers=headers).json()["items"]
        one = http.get(f"{sim.partner_center_url}/v1/invoices/{listed[0]['id']}", headers=headers).json()

    assert listed
    assert all("billingPeriodStartDate" not in i and "billingPeriodEndDate" not in i for i in listed)
    assert one["billingPeriodStartDate"].startswith("2026-")


def test_a_one_time_invoice_without_period_is_matched_on_its_date() -> None:
    report, sim = _scan(_scenario("pi_missing_not_synced"))

    found = _pulled(report)
    assert found.code == "PI_MISSING_NOT_SYNCED"
    assert found.evidence["partner_center_invoice"] == "G0113579246"
    assert "inferred from the invoice date" in found.evidence["partner_center_period"]
    assert sim.request_count("/v1/invoices/") == 0  # one-time invoices need no read by id


def test_a_legacy_invoice_without_period_refused_by_id_leaves_the_month_unverified() -> None:
    fixture = _scenario("pi_missing_microsoft_delay")
    fixture["partner_center"]["invoices"] = [
        _legacy("D0000AUG", "2026-09-03", "2026-08-03", "2026-09-02"),
        _legacy("D0000OCT", "2026-11-03", "2026-10-03", "2026-11-02"),
    ]

    report, sim = _scan(fixture)

    found = _pulled(report)
    assert found.code == "PI_MISSING_UNVERIFIED"
    assert found.evidence["partner_center_invoices_without_period"] == ["D0000OCT"]
    assert "403" in found.evidence["partner_center_reason"]
    assert "App+User" in found.evidence["partner_center_reason"]
    # Only the invoice that could bill October was asked for; the August one is older than it.
    assert sim.request_count("/v1/invoices/D0000OCT") == 1
    assert sim.request_count("/v1/invoices/D0000AUG") == 0


def test_a_legacy_invoice_read_by_id_is_matched_on_its_period() -> None:
    fixture = _scenario("pi_missing_microsoft_delay")
    fixture["partner_center"]["invoice_by_id"] = True
    fixture["partner_center"]["invoices"] = [
        _legacy("D0000AUG", "2026-09-03", "2026-08-03", "2026-09-02"),
        _legacy("D0000OCT", "2026-11-03", "2026-10-03", "2026-11-02"),
    ]

    found = _pulled(_scan(fixture)[0])

    assert found.code == "PI_MISSING_NOT_SYNCED"
    assert found.evidence["partner_center_invoice"] == "D0000OCT"
    assert "partner_center_period" not in found.evidence


def test_microsoft_is_late_only_when_every_candidate_period_is_known() -> None:
    fixture = _scenario("pi_missing_microsoft_delay")
    fixture["partner_center"]["invoice_by_id"] = True
    fixture["partner_center"]["invoices"] = [_legacy("D0000SEP", "2026-10-03", "2026-09-03", "2026-10-02")]

    found = _pulled(_scan(fixture)[0])

    assert found.code == "PI_MISSING_MICROSOFT_DELAY"


async def test_invoices_are_read_by_id_a_few_at_a_time_and_in_order(credential: Any) -> None:
    in_flight = 0
    most = 0

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        for _ in range(5):  # let the other reads start, if the client allowed them
            await asyncio.sleep(0)
        in_flight -= 1
        invoice_id = request.url.path.rsplit("/", 1)[-1]
        if invoice_id == "D3":
            return httpx.Response(403, json={"code": 403, "description": "App+User only"})
        if invoice_id == "D5":
            return httpx.Response(404, json={"code": 404, "description": "not found"})
        return httpx.Response(200, json={"id": invoice_id, "billingPeriodStartDate": "2026-10-01T00:00:00Z"})

    ids = [f"D{n}" for n in range(10)]
    transport = httpx.MockTransport(handler)
    async with PartnerCenterClient("https://pc.example", credential, retry=RETRY, transport=transport) as pc:
        results = await pc.read_invoices(ids)

    assert most == MAX_CONCURRENT_READS
    assert isinstance(results[3], AuthError)
    assert isinstance(results[5], NotFoundError)
    assert [r["id"] for r in results if isinstance(r, dict)] == [i for i in ids if i not in ("D3", "D5")]
