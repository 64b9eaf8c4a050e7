"""The Function app: registration as the host would index it, and the HTTP diagnosis called with
real `azure.functions` request objects against the simulator."""

from __future__ import annotations

import inspect
import json
import typing
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest
from azurefunctions.extensions.base import meta

import function_app
from diagnostics.messages import QUEUE_INVOICE_CHECKS, QUEUE_REFERENCE_RESOLUTION, SERVICEBUS_CONNECTION
from diagnostics.settings import load_settings
from simulator import Simulator, load_fixture
from tests.sim_env import use_simulator_settings

SAMPLE = Path(__file__).resolve().parents[2] / "simulator" / "samples" / "sample-tenant.json"


@cache
def functions() -> dict[str, object]:
    # get_functions() is not idempotent (it raises on a second call on the same app, and the local
    # Functions host of other tests indexes it too): reset its state, then index once per session.
    function_app.app.functions_bindings = None
    return {f.get_function_name(): f for f in function_app.app.get_functions()}


def trigger_of(name: str) -> dict[str, Any]:
    raw: dict[str, Any] = json.loads(functions()[name].get_raw_bindings()[0])  # type: ignore[attr-defined]
    return raw


def test_the_app_has_exactly_these_functions() -> None:
    assert set(functions()) == {
        "plan_checks",
        "invoice_checks",
        "reference_resolution",
        "diagnose_invoice",
        "partner_center_events",
        "health",
        "runbook",
    }


@pytest.mark.parametrize(
    ("name", "route", "methods"),
    [
        ("diagnose_invoice", "invoices/{id}/diagnose", ["POST"]),
        ("partner_center_events", "partner-center/events", ["POST"]),
        ("health", "health", ["GET"]),
    ],
)
def test_http_routes(name: str, route: str, methods: list[str]) -> None:
    raw = trigger_of(name)
    assert raw["type"] == "httpTrigger"
    assert (raw["route"], raw["methods"], raw["authLevel"]) == (route, methods, "FUNCTION")


def test_the_timer_plans_on_the_schedule_setting_with_retries() -> None:
    raw = trigger_of("plan_checks")
    assert raw["type"] == "timerTrigger"
    assert raw["schedule"] == "%DIAG_SCHEDULE%"
    assert raw["runOnStartup"] is False
    retry = functions()["plan_checks"].get_setting("retry_policy").get_dict_repr()  # type: ignore[attr-defined]
    assert retry["strategy"] == "exponential_backoff"
    assert int(retry["max_retry_count"]) >= 1


@pytest.mark.parametrize(
    ("name", "queue"),
    [("invoice_checks", QUEUE_INVOICE_CHECKS), ("reference_resolution", QUEUE_REFERENCE_RESOLUTION)],
)
def test_service_bus_triggers_settle_their_own_messages(name: str, queue: str) -> None:
    raw = trigger_of(name)
    assert raw["type"] == "serviceBusTrigger"
    assert raw["queueName"] == queue
    assert raw["connection"] == SERVICEBUS_CONNECTION == "DIAG_SERVICEBUS"
    assert raw["autoCompleteMessages"] is False
    # What the worker checks to inject the SDK types: the trigger parameter is an SdkType (the host
    # then sends the message for deferred binding) and the other one a gRPC client type (the
    # settlement actions); annotations must resolve to the classes, not stay strings.
    hints = typing.get_type_hints(functions()[name].get_user_function())  # type: ignore[attr-defined]
    assert meta._ConverterMeta.check_supported_type(hints[raw["name"]])
    assert "serviceBusTrigger" in meta._ConverterMeta._bindings
    others = [p for p in hints if p not in (raw["name"], "return")]
    assert others == ["message_actions"]
    assert meta._ConverterMeta.check_supported_grpc_client_type(hints["message_actions"])


def test_binding_names_match_parameters() -> None:
    # The library does not check this; the Functions host rejects the app at indexing time. The
    # settlement actions are injected by type, without a binding.
    for fn in functions().values():
        names = {b.name for b in fn.get_bindings() if b.name != "$return"}  # type: ignore[attr-defined]
        hints = typing.get_type_hints(fn.get_user_function())  # type: ignore[attr-defined]
        injected = {p for p, t in hints.items() if meta._ConverterMeta.check_supported_grpc_client_type(t)}
        assert names | injected == set(inspect.signature(fn.get_user_function()).parameters)  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    with Simulator(load_fixture(SAMPLE)) as running:
        yield running


@pytest.fixture
def app_settings(sim: Simulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    use_simulator_settings(
        monkeypatch, sim, DIAG_STATE_FILE=str(tmp_path / "state.json"), DIAG_HTTP_MAX_ATTEMPTS="1"
    )


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


def test_host_limits_keep_each_instance_within_its_dataverse_share() -> None:
    # README "Concurrency": each instance runs at most as many messages (and HTTP requests) at once
    # as the worker's Dataverse cap lets through; more would only hold message locks while waiting.
    host = json.loads((Path(function_app.__file__).parent / "host.json").read_text())
    cap = load_settings({}).dataverse_max_concurrency
    service_bus = host["extensions"]["serviceBus"]
    assert service_bus["maxConcurrentCalls"] == cap
    assert host["extensions"]["http"]["maxConcurrentRequests"] == cap
    assert host["concurrency"]["dynamicConcurrencyEnabled"] is False  # fixed, not grown past the cap
    # The lock is renewed for as long as a message may take (DIAG_MESSAGE_DEADLINE_SECONDS).
    hours, minutes, seconds = (int(p) for p in service_bus["maxAutoLockRenewalDuration"].split(":"))
    assert hours * 3600 + minutes * 60 + seconds >= load_settings({}).message_deadline_seconds
    # 4 instances (infra: maximumInstanceCount) x 1 worker process x the cap stays under 52.
    assert 4 * cap <= 52
