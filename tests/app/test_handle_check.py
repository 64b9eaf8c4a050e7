"""The check handler end to end on the real clients and the simulator, with the port fakes for the
bus, the state and the notifier; settlement through `deliver` and the fake message actions."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from datetime import UTC, date, datetime

import pytest

from diagnostics.app.container import Container
from diagnostics.app.delivery import deliver
from diagnostics.app.handle_check import handle_check
from diagnostics.app.recheck import RECHECK
from diagnostics.messages import (
    QUEUE_INVOICE_CHECKS,
    CheckRequest,
    InvoiceUnit,
    TenantPeriodUnit,
    decode_check,
    decode_reference,
    encode,
)
from simulator import Simulator
from tests.app.conftest import BLOCKED, DAY, parts
from tests.fakes import FakeMessageActions, ReceivedMessage


def check(unit: InvoiceUnit | TenantPeriodUnit, reason: str = "planned", day: date = DAY) -> ReceivedMessage:
    request = CheckRequest(unit=unit, day=day, reason=reason)  # type: ignore[arg-type]
    return ReceivedMessage(encode(request), message_id=request.message_id)


async def handle(container: Container, message: ReceivedMessage) -> FakeMessageActions:
    actions = FakeMessageActions()
    await deliver(QUEUE_INVOICE_CHECKS, message, actions, handle_check, container=lambda: container)
    return actions


async def test_a_blocked_invoice_hands_off_references_schedules_a_recheck_and_notifies(
    container: Container, caplog: pytest.LogCaptureFixture
) -> None:
    bus, state, notifier = parts(container)
    caplog.set_level(logging.INFO, logger="diagnostics.monitor")
    actions = await handle(container, check(InvoiceUnit(invoice_id=BLOCKED)))
    assert actions.settled == [("complete", f"check:pi:{BLOCKED}:2026-11-12", None, None)]

    [references] = [decode_reference(b) for b in bus.bodies("reference-resolution")]
    assert references.invoice_id == BLOCKED
    assert references.period == "2026-10"
    assert {r.type for r in references.references} >= {"customer", "subscription"}

    [scheduled] = bus.scheduled.values()
    recheck = decode_check(scheduled.message.body)
    assert (recheck.reason, recheck.day) == ("recheck", date(2026, 11, 13))
    # DIAG_SCHEDULE's time + DIAG_RECHECK_DELAY_HOURS; its own id, apart from the planner's check
    assert scheduled.at == datetime(2026, 11, 13, 13, 0, tzinfo=UTC)
    assert scheduled.message.message_id == f"recheck:pi:{BLOCKED}:2026-11-13"
    pending = await state.get(RECHECK, f"pi:{BLOCKED}")
    assert pending is not None
    assert pending.value["sequence_number"] == scheduled.sequence_number

    [note] = notifier.notifications
    assert note.unit_key == f"pi:{BLOCKED}"
    assert any(f.code == "US_BLOCKED_UNRESOLVED_CUSTOMER" for f in note.findings)

    [line] = [r.getMessage() for r in caplog.records if r.getMessage().startswith("message handled")]
    for part in (f"unit=pi:{BLOCKED}", "outcome=complete", "recheck=scheduled", "notified=True", "requests="):
        assert part in line


async def test_a_duplicate_delivery_changes_nothing(container: Container) -> None:
    bus, _, notifier = parts(container)
    message = check(InvoiceUnit(invoice_id=BLOCKED))
    await handle(container, message)
    actions = await handle(container, message)
    assert actions.settled[0][0] == "complete"
    assert len(bus.scheduled) == 1  # the pending re-check is kept, not scheduled twice
    assert len(notifier.notifications) == 1  # same findings: no second notification
    assert bus.dropped_duplicates == 1  # the reference message: same id, dropped by the broker


async def test_the_tenant_unit_is_checked_without_rechecks(container: Container) -> None:
    bus, _, _ = parts(container)
    actions = await handle(container, check(TenantPeriodUnit(period="2026-10")))
    assert actions.settled[0][0] == "complete"
    assert not bus.scheduled


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"not json", "MalformedMessage"),
        (b'{"version": 2, "unit": {}}', "UnsupportedVersion"),
        (b'{"version": 1, "unit": {"kind": "nope"}, "day": "2026-11-12"}', "MalformedMessage"),
    ],
)
async def test_a_malformed_message_is_dead_lettered_at_once(
    container: Container, body: bytes, reason: str
) -> None:
    actions = await handle(container, ReceivedMessage(body))
    [(action, _, got_reason, description)] = actions.settled
    assert (action, got_reason) == ("deadletter", reason)
    assert description
    assert "\n" not in description


async def test_an_unreachable_dataverse_fails_the_delivery_for_a_retry(
    container: Container, sim: Simulator
) -> None:
    sim.inject(status=503, path_prefix="/api/data")
    try:
        actions = await handle(container, check(InvoiceUnit(invoice_id=BLOCKED)))
    finally:
        sim.clear_faults()
    assert [a for a, *_ in actions.settled] == ["abandon"]


async def test_access_denied_is_dead_lettered_with_the_reason(container: Container, sim: Simulator) -> None:
    await container.schema.get()
    sim.inject(status=403, path_prefix="/api/data")
    try:
        actions = await handle(container, check(InvoiceUnit(invoice_id=BLOCKED)))
    finally:
        sim.clear_faults()
    [(action, _, reason, description)] = actions.settled
    assert (action, reason) == ("deadletter", "AccessDenied")
    assert "403" in (description or "")


async def test_an_unknown_invoice_is_dead_lettered(container: Container) -> None:
    unknown = "99999999-9999-4999-8999-999999999999"
    actions = await handle(container, check(InvoiceUnit(invoice_id=unknown)))
    assert [(a, r) for a, _, r, _ in actions.settled] == [("deadletter", "InvoiceNotFound")]


# --- the invoice goes away -------------------------------------------------------------------------


async def test_when_the_invoice_is_gone_the_pending_recheck_is_cancelled(
    changing: Container, changing_sim: Simulator
) -> None:
    bus, state, _ = parts(changing)
    await handle(changing, check(InvoiceUnit(invoice_id=BLOCKED)))
    [number] = bus.scheduled
    # Dana deletes the blocked invoice on Nov 14 so that Work 365 re-imports it.
    changing_sim.advance_to(datetime(2026, 11, 14, 10, 0, tzinfo=UTC))
    actions = await handle(changing, check(InvoiceUnit(invoice_id=BLOCKED), reason="recheck"))
    assert actions.settled[0][0] == "complete"  # a re-check of what is gone: nothing to do
    assert bus.cancelled == [number]
    assert await state.get(RECHECK, f"pi:{BLOCKED}") is None
    # A planned check of an invoice that does not exist is a message a person should look at.
    planned = await handle(changing, check(InvoiceUnit(invoice_id=BLOCKED)))
    assert [(a, r) for a, _, r, _ in planned.settled] == [("deadletter", "InvoiceNotFound")]


async def test_a_message_past_its_deadline_is_retried(container: Container) -> None:
    hurried = dataclasses.replace(
        container, settings=container.settings.model_copy(update={"message_deadline_seconds": 0.05})
    )

    async def slow(c: Container, body: bytes) -> object:
        await asyncio.sleep(5)
        raise AssertionError("not reached")

    actions = FakeMessageActions()
    outcome = await deliver(
        QUEUE_INVOICE_CHECKS,
        ReceivedMessage(b"{}", message_id="slow"),
        actions,
        slow,  # type: ignore[arg-type]
        container=lambda: hurried,
    )
    assert actions.settled == [("abandon", "slow", None, None)]
    assert outcome.description == "took longer than 0.05 s (DIAG_MESSAGE_DEADLINE_SECONDS)"


async def test_the_handler_runs_within_the_message_deadline(container: Container) -> None:
    from diagnostics.adapters.http import current_deadline  # noqa: PLC0415

    seen: list[float] = []

    async def note_deadline(c: Container, body: bytes) -> None:
        deadline = current_deadline()
        assert deadline is not None
        seen.append(deadline.remaining())

    await deliver(
        QUEUE_INVOICE_CHECKS,
        ReceivedMessage(b"{}", message_id="timed"),
        FakeMessageActions(),
        note_deadline,  # type: ignore[arg-type]
        container=lambda: container,
    )
    (left,) = seen
    assert 0 < left <= container.settings.message_deadline_seconds
