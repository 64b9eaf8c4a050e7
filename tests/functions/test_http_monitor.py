"""The monitor's HTTP functions called as the host calls them: Partner Center's invoice-ready event
and the health probe, on a container over the simulator with the port fakes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import azure.functions as func
import pytest

import function_app
from diagnostics.app.container import Container, use_container
from diagnostics.messages import decode_check
from diagnostics.settings import load_settings
from simulator import Simulator, load_fixture
from simulator.connect import connection
from tests.app.conftest import NO_WAIT
from tests.fakes import FakeBus, FakeClock, InMemoryStateStore, RecordingNotifier
from tests.sim_env import use_simulator_settings

SAMPLE = Path(__file__).resolve().parents[2] / "simulator" / "samples" / "sample-tenant.json"
MICROSOFT = "ad6ce976-763b-53b7-ac41-fc81f9a6f63f"
EVENT = {
    "EventName": "invoice-ready",
    "ResourceUri": "https://api.partnercenter.microsoft.com/webhooks/v1/invoices/G0113579246",
    "ResourceName": "invoice",
    "AuditUri": None,
    "ResourceChangeUtcDate": "2026-11-08T16:19:06.3520276+00:00",
}


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    with Simulator(load_fixture(SAMPLE)) as running:
        yield running


@pytest.fixture
async def installed(sim: Simulator) -> Container:
    built = Container.from_connection(
        connection(sim, retry=NO_WAIT),
        settings=load_settings({}),
        bus=FakeBus(),
        state=InMemoryStateStore(),
        notifier=RecordingNotifier(),
        clock=FakeClock(sim.now),
    )
    use_container(built)
    return built  # the autouse fixture closes it


async def post_event(body: bytes) -> func.HttpResponse:
    request = func.HttpRequest(method="POST", url="/api/partner-center/events", body=body)
    response = await function_app.partner_center_events(request)
    assert isinstance(response, func.HttpResponse)
    return response


async def test_an_invoice_ready_event_publishes_the_periods_expected_invoice_checks(
    installed: Container,
) -> None:
    response = await post_event(json.dumps(EVENT).encode())
    assert response.status_code == 202
    answer = json.loads(response.get_body())
    assert answer["period"] == "2026-10"
    bus = installed.bus
    assert isinstance(bus, FakeBus)
    requests = [decode_check(b) for b in bus.bodies("invoice-checks")]
    assert [r.message_id for r in requests] == answer["published"]
    # Only Microsoft feeds usage automatically in the sample tenant.
    assert [r.unit.model_dump() for r in requests] == [
        {"kind": "expected_invoice", "provider_id": MICROSOFT, "period": "2026-10"}
    ]
    assert requests[0].reason == "event"


@pytest.mark.usefixtures("installed")
@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b"", "not JSON"),
        (b"[]", "not a JSON object"),
        (json.dumps({**EVENT, "EventName": "test-created"}).encode(), "is not 'invoice-ready'"),
        (
            json.dumps({**EVENT, "ResourceUri": "https://x/v1/customers/abc"}).encode(),
            "does not name an invoice",
        ),
        (json.dumps({**EVENT, "ResourceUri": None}).encode(), "ResourceUri is missing"),
        (json.dumps({**EVENT, "ResourceChangeUtcDate": "soon"}).encode(), "not an ISO 8601 time"),
        (b"x" * 20000, "under 16 KB"),
    ],
)
async def test_anything_else_is_400(body: bytes, says: str) -> None:
    response = await post_event(body)
    assert response.status_code == 400
    assert says in json.loads(response.get_body())["error"]


async def get_health() -> tuple[int, dict]:  # type: ignore[type-arg]
    response = await function_app.health(func.HttpRequest(method="GET", url="/api/health", body=b""))
    assert isinstance(response, func.HttpResponse)
    return response.status_code, json.loads(response.get_body())


@pytest.mark.usefixtures("installed")
async def test_health_is_ok_when_everything_answers() -> None:
    status, body = await get_health()
    assert (status, body["status"]) == (200, "ok")
    assert body["checks"] == {
        "dataverse": "ok",
        "write_privileges": "ok",
        "service_bus": "ok",
        "state_store": "ok",
    }


@pytest.mark.usefixtures("installed")
async def test_health_names_what_cannot_be_reached(sim: Simulator) -> None:
    sim.inject(status=503, path_prefix="/api/data")
    try:
        status, body = await get_health()
    finally:
        sim.clear_faults()
    assert (status, body["status"]) == (503, "degraded")
    assert "503" in body["checks"]["dataverse"]
    assert body["checks"]["service_bus"] == "ok"


async def test_health_without_service_bus_settings_names_the_setting(
    sim: Simulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    use_simulator_settings(monkeypatch, sim, DIAG_STATE_FILE=str(tmp_path / "state.json"))
    monkeypatch.delenv("DIAG_SERVICEBUS", raising=False)
    status, body = await get_health()
    assert status == 503
    assert body["checks"]["dataverse"] == "ok"
    assert body["checks"]["state_store"] == "ok"
    assert "DIAG_SERVICEBUS" in body["checks"]["service_bus"]
