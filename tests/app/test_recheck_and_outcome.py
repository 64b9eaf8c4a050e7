"""Pure decisions: when a re-check is due, how a pending one is kept or cancelled, notify only on
change, and how a failure's kind decides a message's fate."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest

from diagnostics.app.delivery import message_body
from diagnostics.app.notify import notify_if_changed
from diagnostics.app.outcome import classify, settle
from diagnostics.app.recheck import (
    RECHECK,
    RecheckDecision,
    daily_time,
    decide_recheck,
    recheck_time,
    reconcile_recheck,
)
from diagnostics.catalog import TENANT, finding
from diagnostics.errors import (
    AuthError,
    ConfigError,
    InvoiceNotFound,
    ServiceError,
    ServiceUnreachable,
    Throttled,
)
from diagnostics.messages import InvoiceUnit, MessageError, decode_check
from diagnostics.model import ProviderKind, Report, Statistics
from diagnostics.settings import Thresholds
from tests.app.builders import MANUAL, invoice, provider
from tests.fakes import FakeBus, FakeMessageActions, InMemoryStateStore, ReceivedMessage, RecordingNotifier

NOW = datetime(2026, 11, 12, 9, 0, tzinfo=UTC)
T = Thresholds()
SEVEN = time(7, 0)


def decide(
    created: datetime, *, has_usage: bool = False, manual: bool = False, now: datetime = NOW
) -> RecheckDecision:
    pi = invoice("pi-1", period="2026-10", created=created)
    owner = provider(MANUAL, ProviderKind.MANUAL) if manual else provider()
    return decide_recheck(pi, owner, has_usage, now=now, thresholds=T, daily_at=SEVEN)


def test_tomorrow_at_the_recheck_time_while_inside_the_window() -> None:
    decision = decide(datetime(2026, 11, 9, 5, 45, tzinfo=UTC))
    assert decision.needed
    assert decision.day == date(2026, 11, 13)
    assert decision.at == datetime(2026, 11, 13, 7, 0, tzinfo=UTC)
    assert decision.closes == datetime(2026, 11, 24, 5, 45, tzinfo=UTC)


def test_the_recheck_time_is_the_plans_time_plus_the_delay() -> None:
    assert recheck_time("0 0 7 * * *", 6) == time(13)
    assert recheck_time("0 30 20 * * *", 6) == time(2, 30)  # wraps past midnight


def test_still_needed_when_the_window_closes_before_tomorrows_recheck() -> None:
    # Created Oct 29 05:45: the window closes Nov 13 05:45, before tomorrow's 07:00 — but it is
    # still open now, so a re-check already pending for today stays (see reconcile).
    decision = decide(datetime(2026, 10, 29, 5, 45, tzinfo=UTC))
    assert decision.needed
    assert decision.at is None
    assert "window closes" in decision.why


@pytest.mark.parametrize(
    ("kwargs", "why"),
    [
        ({"has_usage": True}, "usage has arrived"),
        ({"manual": True}, "not from an automatic"),
        ({"created": datetime(2026, 10, 1, tzinfo=UTC)}, "window closed"),
    ],
)
def test_no_recheck(kwargs: dict, why: str) -> None:  # type: ignore[type-arg]
    created = kwargs.pop("created", datetime(2026, 11, 9, tzinfo=UTC))
    decision = decide(created, **kwargs)
    assert not decision.needed
    assert decision.day is None
    assert why in decision.why


def test_a_gone_invoice_needs_no_recheck() -> None:
    assert not decide_recheck(None, None, False, now=NOW, thresholds=T, daily_at=SEVEN).needed


@pytest.mark.parametrize(
    ("schedule", "expected"),
    [
        ("0 0 7 * * *", time(7)),
        ("30 15 6 * * *", time(6, 15, 30)),
        ("0 */5 * * * *", time(7)),
        ("0 0 25 * * *", time(7)),
    ],
)
def test_daily_time(schedule: str, expected: time) -> None:
    assert daily_time(schedule) == expected


CLOSES = datetime(2026, 11, 20, 6, tzinfo=UTC)


def waiting(day: date) -> RecheckDecision:
    return RecheckDecision(True, day, datetime.combine(day, time(13), tzinfo=UTC), "waiting", CLOSES)


async def test_reconcile_schedules_keeps_and_cancels_when_no_longer_needed() -> None:
    bus, state = FakeBus(), InMemoryStateStore()
    unit = InvoiceUnit(invoice_id="pi-1")
    morning = datetime(2026, 11, 12, 7, tzinfo=UTC)
    assert await reconcile_recheck(bus, state, unit, waiting(date(2026, 11, 13)), now=morning) == "scheduled"
    # A duplicate delivery of the same check keeps it.
    assert await reconcile_recheck(bus, state, unit, waiting(date(2026, 11, 13)), now=morning) == "kept"
    [(first, scheduled)] = bus.scheduled.items()
    assert decode_check(scheduled.message.body).reason == "recheck"
    # Nov 13, 07:00: the planner's check finds no usage yet; the afternoon's re-check stays.
    next_morning = datetime(2026, 11, 13, 7, tzinfo=UTC)
    assert await reconcile_recheck(bus, state, unit, waiting(date(2026, 11, 14)), now=next_morning) == "kept"
    # 13:00: the re-check itself is delivered; the next one is scheduled in its place.
    afternoon = datetime(2026, 11, 13, 13, tzinfo=UTC)
    assert (
        await reconcile_recheck(bus, state, unit, waiting(date(2026, 11, 14)), now=afternoon) == "scheduled"
    )
    assert bus.cancelled == []  # the one for Nov 13 was delivered: nothing to cancel
    stored = await state.get(RECHECK, "pi:pi-1")
    assert stored is not None
    second = stored.value["sequence_number"]
    assert second != first
    # Nov 14, 07:00: the usage arrived overnight: the afternoon's re-check is cancelled and forgotten.
    done = RecheckDecision(False, None, None, "the usage has arrived")
    day_after = datetime(2026, 11, 14, 7, tzinfo=UTC)
    assert await reconcile_recheck(bus, state, unit, done, now=day_after) == "cancelled"
    assert bus.cancelled == [second]
    assert await state.get(RECHECK, "pi:pi-1") is None
    assert await reconcile_recheck(bus, state, unit, done, now=day_after) == "none"


async def test_no_new_recheck_once_the_window_closes_before_it() -> None:
    bus, state = FakeBus(), InMemoryStateStore()
    unit = InvoiceUnit(invoice_id="pi-1")
    assert (
        await reconcile_recheck(
            bus, state, unit, waiting(date(2026, 11, 19)), now=datetime(2026, 11, 18, 7, tzinfo=UTC)
        )
        == "scheduled"
    )
    last = RecheckDecision(True, None, None, "the pull window closes", CLOSES)
    # Nov 19, 07:00: the afternoon's re-check is still inside the window: kept.
    assert (
        await reconcile_recheck(bus, state, unit, last, now=datetime(2026, 11, 19, 7, tzinfo=UTC)) == "kept"
    )
    # 13:00: it is delivered; the next one would come after the close: none, and the record goes.
    assert (
        await reconcile_recheck(bus, state, unit, last, now=datetime(2026, 11, 19, 13, tzinfo=UTC)) == "none"
    )
    assert len(bus.scheduled) == 1
    assert bus.cancelled == []
    assert await state.get(RECHECK, "pi:pi-1") is None


def report(*codes: str) -> Report:
    findings = tuple(finding(c, TENANT, "2026-10", c, {}, []) for c in codes)
    return Report(
        as_of=NOW,
        period="2026-10",
        statistics=Statistics(checks=1, passed=0, findings=len(findings), by_severity={}),
        findings=findings,
    )


async def test_notify_only_when_the_findings_change() -> None:
    notifier, state = RecordingNotifier(), InMemoryStateStore()
    unit = InvoiceUnit(invoice_id="pi-1")
    assert not await notify_if_changed(notifier, state, unit, report(), at=NOW)  # nothing, never anything
    assert await notify_if_changed(notifier, state, unit, report("PI_IMPORT_ERROR"), at=NOW)
    assert not await notify_if_changed(
        notifier, state, unit, report("PI_IMPORT_ERROR"), at=NOW + timedelta(days=1)
    )
    assert await notify_if_changed(notifier, state, unit, report(), at=NOW + timedelta(days=2))  # resolved
    assert [len(n.findings) for n in notifier.notifications] == [1, 0]


@pytest.mark.parametrize(
    ("error", "action", "reason"),
    [
        (MessageError("MalformedMessage", "bad"), "deadletter", "MalformedMessage"),
        (InvoiceNotFound("no provider invoice with id 'x'"), "deadletter", "InvoiceNotFound"),
        (AuthError("Dataverse GET answered 403"), "deadletter", "AccessDenied"),
        (ConfigError("setting DIAG_DATAVERSE_URL: missing"), "deadletter", "AppMisconfigured"),
        (Throttled("429 after 5 attempts"), "retry", "Transient"),
        (ServiceUnreachable("could not be reached"), "retry", "Transient"),
        (TimeoutError(), "retry", "Transient"),
        (ServiceError("answered 400", status=400), "deadletter", "ServiceRejected"),
        (RuntimeError("a bug"), "retry", "Transient"),
    ],
)
def test_a_failure_keeps_its_kind(error: Exception, action: str, reason: str) -> None:
    outcome = classify(error)
    assert (outcome.action, outcome.reason) == (action, reason)


def test_settle_applies_the_outcome() -> None:
    actions = FakeMessageActions()
    message = ReceivedMessage(b"{}", message_id="m")
    settle(classify(MessageError("MalformedMessage", "the message body is not JSON")), message, actions)
    settle(classify(Throttled("slow down")), message, actions)
    assert actions.settled == [
        ("deadletter", "m", "MalformedMessage", "the message body is not JSON"),
        ("abandon", "m", None, None),
    ]


def test_message_body_joins_data_sections() -> None:
    assert message_body(ReceivedMessage(b"abc")) == b"abc"

    class Sections:
        body = iter([b"ab", b"c"])

    assert message_body(Sections()) == b"abc"

    class Value:
        body = 42

    with pytest.raises(MessageError):
        message_body(Value())
