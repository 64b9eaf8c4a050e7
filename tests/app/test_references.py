"""The reference-resolution handler on the sample tenant: what each unresolved reference finds in
Dataverse now, in the findings' evidence; notified again only when that changes."""

from __future__ import annotations

from datetime import UTC, datetime

from diagnostics.app.container import Container, counting_requests
from diagnostics.app.delivery import deliver
from diagnostics.app.handle_check import handle_check
from diagnostics.app.resolve_references import handle_references, read_reference_records, reference_report
from diagnostics.messages import (
    QUEUE_INVOICE_CHECKS,
    QUEUE_REFERENCE_RESOLUTION,
    CheckRequest,
    InvoiceUnit,
    decode_reference,
    encode,
)
from simulator import Simulator
from tests.app.conftest import BLOCKED, DAY, parts
from tests.fakes import FakeClock, FakeMessageActions, ReceivedMessage


async def _reference_message(container: Container) -> ReceivedMessage:
    request = CheckRequest(unit=InvoiceUnit(invoice_id=BLOCKED), day=DAY)
    await deliver(
        QUEUE_INVOICE_CHECKS,
        ReceivedMessage(encode(request)),
        FakeMessageActions(),
        handle_check,
        container=lambda: container,
    )
    bus, _, _ = parts(container)
    [body] = bus.bodies("reference-resolution")
    return ReceivedMessage(body, message_id="refs")


async def resolve(container: Container, message: ReceivedMessage) -> FakeMessageActions:
    actions = FakeMessageActions()
    await deliver(
        QUEUE_REFERENCE_RESOLUTION, message, actions, handle_references, container=lambda: container
    )
    return actions


async def test_each_reference_gets_the_records_that_bear_on_it(changing: Container) -> None:
    message = await _reference_message(changing)
    _, _, notifier = parts(changing)
    before = len(notifier.notifications)
    await changing.schema.get()
    with counting_requests() as tally:
        actions = await resolve(changing, message)
    assert actions.settled == [("complete", "refs", None, None)]
    assert tally.count <= 2  # one $batch; one more for the customers' other subscriptions
    note = notifier.notifications[before]
    assert note.unit_key == f"pi:{BLOCKED}"
    assert {f.code for f in note.findings} >= {
        "US_BLOCKED_UNRESOLVED_CUSTOMER",
        "US_BLOCKED_UNRESOLVED_SUBSCRIPTION",
    }
    # Same records, same day: no second notification.
    await resolve(changing, message)
    assert len(notifier.notifications) == before + 1


async def test_evidence_says_what_dataverse_holds_now(changing: Container, changing_sim: Simulator) -> None:
    message = await _reference_message(changing)
    request = decode_reference(message.body)
    schema = (await changing.schema.get()).schema
    records = await read_reference_records(changing.dataverse, schema, changing.thresholds, request)
    assert records.invoice is not None
    report = reference_report(request, records.invoice, records, now=changing_sim.now)
    customers = next(f for f in report.findings if f.code == "US_BLOCKED_UNRESOLVED_CUSTOMER")
    refs = customers.evidence["references"]
    assert all("provider_account_exists" in r and "provider_accounts" in r for r in refs)
    assert any(r["provider_accounts"] and r["provider_accounts"][0]["account_column_empty"] for r in refs)

    # Dana maps Tailspin's provider account and adds Alpine Ski House: those references resolve.
    changing_sim.advance_to(datetime(2026, 11, 13, 12, 0, tzinfo=UTC))
    assert isinstance(changing.clock, FakeClock)
    changing.clock.now = changing_sim.now
    records = await read_reference_records(changing.dataverse, schema, changing.thresholds, request)
    assert records.invoice is not None
    after = reference_report(request, records.invoice, records, now=changing_sim.now)
    still = [f for f in after.findings if f.code == "US_BLOCKED_UNRESOLVED_CUSTOMER"]
    unresolved_before = [r for r in refs if not r["resolved"]]
    unresolved_after = [r for f in still for r in f.evidence["references"] if not r["resolved"]]
    assert len(unresolved_after) < len(unresolved_before)


async def test_a_gone_invoice_completes_without_notifying(
    changing: Container, changing_sim: Simulator
) -> None:
    message = await _reference_message(changing)
    _, _, notifier = parts(changing)
    before = len(notifier.notifications)
    changing_sim.advance_to(datetime(2026, 11, 14, 10, 0, tzinfo=UTC))
    actions = await resolve(changing, message)
    assert actions.settled[0][0] == "complete"
    assert len(notifier.notifications) == before
