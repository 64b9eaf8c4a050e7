"""Re-checks of a provider invoice that is waiting for its usage.

Work 365 tries to pull an automatic provider invoice's usage for the pull window (15 days after the
invoice was found). While it has none, the invoice is checked again every day at the planner's time:
a Service Bus *scheduled* message on `invoice-checks`, one at a time per invoice, its sequence
number kept in the state store (kind "recheck") so that it can be cancelled when usage arrives or the
invoice is gone. The chain never goes past the window's close: from then on the planner's daily
"past the window without usage" rule takes over.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal

from diagnostics.messages import QUEUE_INVOICE_CHECKS, CheckRequest, InvoiceUnit, encode, unit_key
from diagnostics.model import Provider, ProviderInvoice, ProviderKind, Snapshot
from diagnostics.ports import ConflictError, MessageBus, OutgoingMessage, StateStore
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
    day: date | None  # the day of the re-check to have pending; None: none is needed
    at: datetime | None
    why: str


def decide_recheck(
    invoice: ProviderInvoice | None,
    provider: Provider | None,
    has_usage: bool,
    *,
    now: datetime,
    thresholds: Thresholds,
    daily_at: time,
) -> RecheckDecision:
    """Pure: whether the invoice needs tomorrow's re-check, and when it is due."""
    if invoice is None:
        return RecheckDecision(None, None, "the invoice is gone")
    if provider is None or provider.kind is not ProviderKind.AUTOMATIC_USAGE:
        return RecheckDecision(None, None, "the invoice is not from an automatic usage provider")
    if has_usage:
        return RecheckDecision(None, None, "the usage has arrived")
    closes = invoice.created_on + timedelta(days=thresholds.pull_window_days)
    tomorrow = now.astimezone(UTC).date() + timedelta(days=1)
    at = datetime.combine(tomorrow, daily_at, tzinfo=UTC)
    if at >= closes:
        return RecheckDecision(None, None, f"the pull window closes at {closes.isoformat()}")
    return RecheckDecision(tomorrow, at, "inside the pull window without usage")


def invoice_facts(
    snapshot: Snapshot, invoice_id: str
) -> tuple[ProviderInvoice | None, Provider | None, bool]:
    """(the invoice, its provider, whether it has usage summaries) from a loaded unit."""
    invoice = next((i for i in snapshot.provider_invoices if i.id == invoice_id), None)
    if invoice is None:
        return None, None, False
    provider = next((p for p in snapshot.providers if p.id == invoice.provider_id), None)
    has_usage = any(u.provider_invoice_id == invoice_id for u in snapshot.usage_summaries)
    return invoice, provider, has_usage


def check_message(request: CheckRequest) -> OutgoingMessage:
    return OutgoingMessage(request.message_id, encode(request), "check")


async def reconcile_recheck(
    bus: MessageBus,
    state: StateStore,
    unit: InvoiceUnit,
    decision: RecheckDecision,
    *,
    today: date,
) -> RecheckAction:
    """Make the pending re-check match the decision: schedule, keep, or cancel it. Idempotent: a
    duplicate delivery finds the re-check already pending and keeps it."""
    key = unit_key(unit)
    pending = await state.get(RECHECK, key)
    pending_day = date.fromisoformat(str(pending.value["day"])) if pending else None
    still_scheduled = pending is not None and pending_day is not None and pending_day > today

    if decision.day is None or decision.at is None:
        if pending is None:
            return "none"
        if still_scheduled:
            await bus.cancel(QUEUE_INVOICE_CHECKS, [int(pending.value["sequence_number"])])
        with contextlib.suppress(ConflictError):  # a concurrent delivery changed it; its own decision stands
            await state.delete(RECHECK, key, etag=pending.etag)
        return "cancelled" if still_scheduled else "none"

    if pending is not None and pending_day == decision.day:
        return "kept"
    if pending is not None and still_scheduled:
        # A re-check for another future day (the schedule changed): only one may be pending.
        await bus.cancel(QUEUE_INVOICE_CHECKS, [int(pending.value["sequence_number"])])
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
