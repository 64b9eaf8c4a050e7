"""The Function app: registration as the host would index it, and the HTTP trigger called with
real `azure.functions` request objects against the simulator."""

from __future__ import annotations

import inspect
import json
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import azure.functions as func
import pytest

import function_app
from simulator import Simulator, load_fixture

SAMPLE = Path(__file__).resolve().parents[2] / "simulator" / "samples" / "sample-tenant.json"


@cache
def functions() -> dict[str, object]:
    # get_functions() is not idempotent (it raises on a second call): index once per session.
    return {f.get_function_name(): f for f in function_app.app.get_functions()}


def test_http_trigger_registration() -> None:
    fn = functions()["diagnose_invoice"]
    trigger = fn.get_trigger()  # type: ignore[attr-defined]
    assert trigger.get_binding_name() == "httpTrigger"
    raw = json.loads(fn.get_raw_bindings()[0])  # type: ignore[attr-defined]
    assert raw["route"] == "invoices/{id}/diagnose"
    assert raw["methods"] == ["POST"]
    assert raw["authLevel"] == "FUNCTION"


def test_binding_names_match_parameters() -> None:
    # The library does not check this; the Functions host rejects the app at indexing time.
    for fn in functions().values():
        names = {b.name for b in fn.get_bindings() if b.name != "$return"}  # type: ignore[attr-defined]
        assert names == set(inspect.signature(fn.get_user_function()).parameters)  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    with Simulator(load_fixture(SAMPLE)) as running:
        yield running


@pytest.fixture
def app_settings(sim: Simulator, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "DIAG_DATAVERSE_URL": sim.dataverse_url,
        "DIAG_DATAVERSE_CREDENTIAL": "client_secret",
        "DIAG_DATAVERSE_TENANT_ID": sim.tenant_id,
        "DIAG_DATAVERSE_CLIENT_ID": sim.client_id,
        "DIAG_DATAVERSE_CLIENT_SECRET": sim.client_secret,
        "DIAG_AUTHORITY_HOST": sim.authority,
        "DIAG_CA_BUNDLE": str(sim.ca_file),
        "DIAG_HTTP_MAX_ATTEMPTS": "1",
    }.items():
        monkeypatch.setenv(name, value)


async def call(invoice: str, as_of: str | None = "2026-11-12T09:00:00Z") -> func.HttpResponse:
    request = func.HttpRequest(
        method="POST",
        url=f"/api/invoices/{invoice}/diagnose",
        route_params={"id": invoice},
        params={"as_of": as_of} if as_of else {},
        body=b"",
    )
    response = await function_app.diagnose_invoice(request)
    assert isinstance(response, func.HttpResponse)
    assert response.mimetype == "application/json"
    return response


@pytest.mark.usefixtures("app_settings")
async def test_diagnose_by_invoice_number_returns_the_report() -> None:
    response = await call("G0113579246")
    assert response.status_code == 200
    report = json.loads(response.get_body())
    assert report["report_version"] == 1
    assert report["period"] == "2026-10"
    codes = {f["code"] for f in report["findings"] if not f["muted"]}
    assert {"US_BLOCKED_UNRESOLVED_CUSTOMER", "US_BLOCKED_UNRESOLVED_SUBSCRIPTION"} <= codes
    assert all(f["subject"]["type"] != "expected_provider_invoice" for f in report["findings"])


@pytest.mark.usefixtures("app_settings")
async def test_diagnose_by_guid(sim: Simulator) -> None:
    by_number = json.loads((await call("G0113579246")).get_body())
    invoice_id = next(
        f["subject"]["id"] for f in by_number["findings"] if f["subject"]["type"] == "provider_invoice"
    )
    response = await call(invoice_id)
    assert response.status_code == 200
    assert json.loads(response.get_body())["findings"] == by_number["findings"]


@pytest.mark.usefixtures("app_settings")
@pytest.mark.parametrize("bad", ["not an invoice!", "x" * 65, "'; drop", ""])
async def test_an_id_that_is_neither_guid_nor_invoice_number_is_400(bad: str) -> None:
    response = await call(bad)
    assert response.status_code == 400
    assert "neither a GUID nor a provider invoice number" in json.loads(response.get_body())["error"]


@pytest.mark.usefixtures("app_settings")
async def test_an_unknown_invoice_is_404() -> None:
    response = await call("G9999999999")
    assert response.status_code == 404
    assert "G9999999999" in json.loads(response.get_body())["error"]


@pytest.mark.usefixtures("app_settings")
async def test_a_bad_clock_is_400_without_a_stack_trace() -> None:
    response = await call("G0113579246", as_of="yesterday")
    assert response.status_code == 400
    assert "Traceback" not in response.get_body().decode()


async def test_missing_configuration_is_500_naming_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DIAG_DATAVERSE_URL", raising=False)
    response = await call("G0113579246")
    assert response.status_code == 500
    assert "DIAG_DATAVERSE_URL" in json.loads(response.get_body())["error"]


@pytest.mark.usefixtures("app_settings")
async def test_unreachable_dataverse_is_502(sim: Simulator, monkeypatch: pytest.MonkeyPatch) -> None:
    sim.inject(status=503, path_prefix="/api/data")
    try:
        response = await call("G0113579246")
    finally:
        sim.clear_faults()
    assert response.status_code == 502
    body = json.loads(response.get_body())["error"]
    assert "503" in body
    assert "Traceback" not in body
