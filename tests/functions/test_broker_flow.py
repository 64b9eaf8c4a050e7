"""The Function app's own functions driven through the local broker with the real azure-servicebus
SDK, as the Functions host drives them: publish → drain → settled; poison → dead letter with a
reason; a re-check scheduled on the broker, then cancelled. Dataverse is the simulator."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

import function_app
from broker import Broker, QueueOptions
from broker.functions_host import LocalFunctionsHost
from broker.testing import SimulatedClock, running_broker
from diagnostics.adapters.servicebus import ServiceBusMessageBus
from diagnostics.adapters.state_file import FileStateStore
from diagnostics.app.container import Container, use_container
from diagnostics.app.recheck import RECHECK, check_message
from diagnostics.messages import QUEUE_INVOICE_CHECKS, CheckRequest, InvoiceUnit, decode_check
from diagnostics.ports import OutgoingMessage
from diagnostics.settings import load_settings
from simulator import Simulator, load_fixture
from simulator.connect import connection, sim_credential
from tests.app.conftest import BLOCKED, NO_WAIT, SAMPLE
from tests.fakes import FakeClock, RecordingNotifier

QUEUES = {
    "invoice-checks": QueueOptions(max_delivery_count=3),
    "reference-resolution": QueueOptions(max_delivery_count=3),
}


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(load_fixture(SAMPLE)) as running:
        yield running


@pytest.fixture
def broker_clock(sim: Simulator) -> SimulatedClock:
    return SimulatedClock(sim.now)


@pytest.fixture
def broker(broker_clock: SimulatedClock) -> Iterator[Broker]:
    with running_broker(QUEUES, clock=broker_clock) as running:
        yield running


@pytest.fixture
async def app(
    sim: Simulator, broker: Broker, tmp_path: Path
) -> AsyncIterator[tuple[Container, LocalFunctionsHost]]:
    container = Container.from_connection(
        connection(sim, retry=NO_WAIT),
        settings=load_settings({}),
        bus=ServiceBusMessageBus.from_connection_string(broker.connection_string),
        state=FileStateStore(tmp_path / "state.json"),
        notifier=RecordingNotifier(),
        clock=FakeClock(sim.now),
    )
    use_container(container)  # closed by the autouse fixture
    env = {"DIAG_SERVICEBUS": broker.connection_string, "DIAG_SCHEDULE": "0 0 7 * * *"}
    async with LocalFunctionsHost(function_app.app, env, clock=lambda: sim.now, idle=broker.idle) as host:
        yield container, host


async def test_plan_publish_drain_settle_and_a_recheck_on_the_broker(
    app: tuple[Container, LocalFunctionsHost], broker: Broker
) -> None:
    container, host = app
    assert host.service_bus_functions == {
        "invoice_checks": "invoice-checks",
        "reference_resolution": "reference-resolution",
    }
    assert host.timer_schedules == {"plan_checks": "0 0 7 * * *"}
    await host.fire_timer("plan_checks")
    published = broker.stats("invoice-checks").active
    assert published >= 3
    drained = await host.drain(give_up_after=60)
    checks, references = drained["invoice_checks"], drained["reference_resolution"]
    assert (checks.handled, checks.completed, checks.errors) == (published, published, [])
    assert references.handled == references.completed >= 1
    assert broker.dead_letters("invoice-checks") == []

    # The blocked October invoice waits for its usage: tomorrow's re-check is on the broker.
    [(number, message_id, due)] = broker.scheduled("invoice-checks")
    assert message_id == f"recheck:pi:{BLOCKED}:2026-11-13"
    assert due == datetime(2026, 11, 13, 13, 0, tzinfo=UTC)  # the plan's time + DIAG_RECHECK_DELAY_HOURS
    stored = await container.state.get(RECHECK, f"pi:{BLOCKED}")
    assert stored is not None
    assert stored.value["sequence_number"] == number
    notifier = container.notifier
    assert isinstance(notifier, RecordingNotifier)
    assert any(n.unit_key == f"pi:{BLOCKED}" for n in notifier.notifications)

    # Planning the same day again publishes the same message ids: the broker drops them.
    before = broker.stats("invoice-checks")
    await host.fire_timer("plan_checks", past_due=True)
    assert broker.stats("invoice-checks").active == before.active == 0


async def test_poison_is_dead_lettered_at_once_with_its_reason(
    app: tuple[Container, LocalFunctionsHost], broker: Broker
) -> None:
    container, host = app
    await container.bus.send(QUEUE_INVOICE_CHECKS, [OutgoingMessage("poison-1", b"{not json", "check")])
    drained = await host.drain(give_up_after=30)
    assert drained["invoice_checks"].dead_lettered == 1
    [dead] = broker.dead_letters("invoice-checks")
    assert (dead.message_id, dead.reason, dead.delivery_count) == ("poison-1", "MalformedMessage", 0)
    assert dead.description == "the message body is not JSON"


async def test_a_transient_failure_is_retried_then_dead_lettered_by_the_broker(
    app: tuple[Container, LocalFunctionsHost], broker: Broker, sim: Simulator
) -> None:
    container, host = app
    request = CheckRequest(unit=InvoiceUnit(invoice_id=BLOCKED), day=date(2026, 11, 12))
    await container.bus.send(QUEUE_INVOICE_CHECKS, [check_message(request)])
    sim.inject(status=503, path_prefix="/api/data")
    try:
        drained = await host.drain(give_up_after=30)
    finally:
        sim.clear_faults()
    assert drained["invoice_checks"].abandoned == 3  # the queue's max delivery count
    [dead] = broker.dead_letters("invoice-checks")
    assert dead.reason == "MaxDeliveryCountExceeded"


async def test_the_pending_recheck_is_cancelled_on_the_broker_when_the_invoice_is_gone(
    app: tuple[Container, LocalFunctionsHost], broker: Broker, sim: Simulator
) -> None:
    container, host = app
    first = CheckRequest(unit=InvoiceUnit(invoice_id=BLOCKED), day=date(2026, 11, 12))
    await container.bus.send(QUEUE_INVOICE_CHECKS, [check_message(first)])
    await host.drain(give_up_after=30)
    assert len(broker.scheduled("invoice-checks")) == 1
    # Dana deletes the invoice so that Work 365 re-imports it; then a re-check of it arrives.
    sim.advance_to(datetime(2026, 11, 14, 10, 0, tzinfo=UTC))
    gone = CheckRequest(unit=InvoiceUnit(invoice_id=BLOCKED), day=date(2026, 11, 11), reason="recheck")
    await container.bus.send(QUEUE_INVOICE_CHECKS, [check_message(gone)])
    drained = await host.drain(give_up_after=30)
    assert drained["invoice_checks"].completed == 1
    assert broker.scheduled("invoice-checks") == []
    assert await container.state.get(RECHECK, f"pi:{BLOCKED}") is None
    assert decode_check(check_message(gone).body).reason == "recheck"


async def test_identity_based_publishing_signs_in_with_the_credential(broker: Broker, sim: Simulator) -> None:
    bus = ServiceBusMessageBus.from_namespace(
        broker.fully_qualified_namespace,
        sim_credential(sim, connection_verify=str(sim.ca_file)),
        use_tls=False,
    )
    try:
        await bus.ping(QUEUE_INVOICE_CHECKS)
        await bus.send(QUEUE_INVOICE_CHECKS, [OutgoingMessage("hello", b"{}", "check")])
        await bus.cancel(QUEUE_INVOICE_CHECKS, [987654])  # unknown or already delivered: not an error
    finally:
        await bus.aclose()
    assert broker.stats("invoice-checks").active == 1
    audience, token = broker.cbs_tokens()[-1]
    assert audience.endswith("/invoice-checks")
    # A bearer token the credential got from Entra ID (the simulator's), for Service Bus.
    assert any(t.token == token and "servicebus" in t.scope for t in sim.tokens)
