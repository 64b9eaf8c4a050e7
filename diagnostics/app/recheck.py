"""Re-checks of a provider invoice that is waiting for its usage.

Work 365 tries to pull an automatic provider invoice's usage for the pull window (15 days after the
invoice was found). While it has none, the invoice is checked again every day: a Service Bus
*scheduled* message on `invoice-checks`, one at a time per invoice, its sequence number kept in the
state store (kind "recheck") so that it can be cancelled when it is no longer needed.

A re-check comes due `DIAG_RECHECK_DELAY_HOURS` (default 6) after the planner's daily time — 13:00
UTC by default — and never on the planner's own time, for two reasons: the planner checks every
invoice inside its window each morning anyway, so usage that landed overnight is seen then and the
afternoon re-check is cancelled; and usage that lands during the day is seen that afternoon, the
evening before the contracts that invoice next morning run. The chain never goes past the window's
close: from then on the planner's daily "past the window without usage" rule takes over.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal

from diagnostics.messages import QUEUE_INVOICE_CHECKS, CheckRequest, InvoiceUnit, encode, unit_key
from diagnostics.model import Provider, ProviderInvoice, ProviderKind, Snapshot
from diagnostics.ports import ConflictError, MessageBus, OutgoingMessage, StateStore, Stored
from diagnostics.settings import Thresholds

RECHECK = "recheck"  # state kind
_DEFAULT_TIME = time(7, 0)
_FIELD = re.compile(r"^\d{1,2}$")

RecheckAction = Literal["scheduled", "kept", "cancelled", "none"]


def daily_time(schedule: str) -> time:
    """The time of day of a daily NCRONTAB (`s m h * * *`); 07:00 when it is not that simple."""
    fields = schedule.split()
    if len(fields) == 6 and all(_FIELD.match(f) for f in fields[:3]):
        second, minute, hour = (int(f) for f in fields[:3])
        if second < 60 and minute < 60 and hour < 24:
            return time(hour, minute, second)
    return _DEFAULT_TIME


@dataclass(frozen=True)
class RecheckDecision:
    needed: bool  # the invoice still waits for its usage inside its window
    day: date | None  # the next re-check's day, when one fits before the window closes
    at: datetime | None
    why: str
    closes: datetime | None = None  # the end of the pull window


def recheck_time(schedule: str, delay_hours: int) -> time:
    """The time of day re-checks come due: the planner's daily time plus the delay."""
    planned = datetime.combine(date(2000, 1, 1), daily_time(schedule))
    return (planned + timedelta(hours=delay_hours)).time()


def decide_recheck(
    invoice: ProviderInvoice | None,
    provider: Provider | None,
    has_usage: bool,
    *,
    now: datetime,
    thresholds: Thresholds,
    daily_at: time,
) -> RecheckDecision:
    """Pure: whether the invoice still waits for its usage, and when tomorrow's re-check is due
    (`daily_at`: the re-check time of day)."""
    if invoice is None:
        return gone()
    if provider is None or provider.kind is not ProviderKind.AUTOMATIC_USAGE:
        return RecheckDecision(False, None, None, "the invoice is not from an automatic usage provider")
    if has_usage:
        return RecheckDecision(False, None, None, "the usage has arrived")
    closes = invoice.created_on + timedelta(days=thresholds.pull_window_days)
    if now >= closes:
        return RecheckDecision(False, None, None, f"the pull window closed at {closes.isoformat()}")
    tomorrow = now.astimezone(UTC).date() + timedelta(days=1)
    at = datetime.combine(tomorrow, daily_at, tzinfo=UTC)
    if at >= closes:
        return RecheckDecision(True, None, None, f"the pull window closes at {closes.isoformat()}", closes)
    return RecheckDecision(True, tomorrow, at, "inside the pull window without usage", closes)


def gone() -> RecheckDecision:
    return RecheckDecision(False, None, None, "the invoice is gone")


def invoice_facts(
    snapshot: Snapshot, invoice_id: str
) -> tuple[ProviderInvoice | None, Provider | None, bool]:
    """(the invoice, its provider, whether it has usage summaries) from a loaded unit."""
    invoice = next((i for i in snapshot.provider_invoices if i.id == invoice_id), None)
    if invoice is None:
        return None, None, False
    provider = next((p for p in snapshot.providers if p.id == invoice.provider_id), None)
    # Usage counted but not read (the own unit of an invoice cut into slices) is usage too.
    counted = snapshot.usage_counted.get(invoice_id)
    has_usage = bool(snapshot.usage.of_invoice(invoice_id)) or (counted is not None and counted.rows > 0)
    return invoice, provider, has_usage


def check_message(request: CheckRequest) -> OutgoingMessage:
    return OutgoingMessage(request.message_id, encode(request), "check")


async def _cancel(bus: MessageBus, state: StateStore, key: str, pending: Stored, *, future: bool) -> None:
    if future:
        await bus.cancel(QUEUE_INVOICE_CHECKS, [int(pending.value["sequence_number"])])
    with contextlib.suppress(ConflictError):  # a concurrent delivery changed it; its own decision stands
        await state.delete(RECHECK, key, etag=pending.etag)


async def reconcile_recheck(
    bus: MessageBus,
    state: StateStore,
    unit: InvoiceUnit,
    decision: RecheckDecision,
    *,
    now: datetime,
) -> RecheckAction:
    """Make the pending re-check match the decision: schedule, keep, or cancel it. Idempotent: a
    duplicate delivery finds the re-check already pending and keeps it."""
    key = unit_key(unit)
    pending = await state.get(RECHECK, key)
    pending_at = datetime.fromisoformat(str(pending.value["at"])) if pending else None
    # Still to come: the re-check being handled right now is due, not pending.
    future = pending_at is not None and pending_at > now

    if not decision.needed:
        if pending is None:
            return "none"
        await _cancel(bus, state, key, pending, future=future)
        return "cancelled" if future else "none"

    if future and pending_at is not None and (decision.closes is None or pending_at < decision.closes):
        return "kept"  # the morning's planned check leaves the afternoon's re-check in place
    if decision.day is None or decision.at is None:
        if pending is not None:  # the window closes before another re-check would come due
            await _cancel(bus, state, key, pending, future=future)
        return "none"
    request = CheckRequest(unit=unit, day=decision.day, reason="recheck")
    number = await bus.schedule(QUEUE_INVOICE_CHECKS, check_message(request), decision.at)
    record = {"day": decision.day.isoformat(), "at": decision.at.isoformat(), "sequence_number": number}
    try:
        await state.put(RECHECK, key, record, etag=pending.etag if pending else None)
    except ConflictError:
        # A concurrent delivery of the same check scheduled one too; keep theirs, drop ours.
        await bus.cancel(QUEUE_INVOICE_CHECKS, [number])
        return "kept"
    return "scheduled"
