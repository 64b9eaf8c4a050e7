"""Partner Center's `invoice-ready` webhook event → a check of that period's expected invoices.

Partner Center posts `{"EventName": "invoice-ready", "ResourceUri": ".../invoices/<id>",
"ResourceName": "invoice", "AuditUri": null, "ResourceChangeUtcDate": "<ISO time>"}` when an invoice
is ready. Microsoft invoices period M early in M+1, so the event's month minus one is the period.
The event publishes one check per automatic usage provider for that period (the same message ids
as the planner's, so the broker drops whichever comes second): has Work 365 pulled it yet?
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit

from diagnostics.app.container import Container
from diagnostics.app.recheck import check_message
from diagnostics.errors import InputError, ServiceError
from diagnostics.messages import (
    QUEUE_INVOICE_CHECKS,
    CheckRequest,
    ExpectedInvoiceUnit,
    TenantPeriodUnit,
    Unit,
)
from diagnostics.model import ProviderKind
from diagnostics.periods import add_months, period_of
from diagnostics.snapshot_loader import Loader, _provider

INVOICE_READY = "invoice-ready"
_MAX_BODY = 16 * 1024
_INVOICE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@dataclass(frozen=True)
class InvoiceReadyEvent:
    invoice_id: str
    ready_at: datetime
    period: str


def _field(event: dict[str, object], name: str) -> object:
    # Partner Center writes PascalCase; accept any case rather than refuse a valid event.
    return next((v for k, v in event.items() if k.casefold() == name.casefold()), None)


def parse_invoice_ready(body: bytes) -> InvoiceReadyEvent:
    """The event, or InputError with a one-line reason (the caller answers 400)."""
    if len(body) > _MAX_BODY:
        raise InputError(f"the event has {len(body)} bytes; Partner Center's are under 16 KB")
    try:
        event = json.loads(body)
    except (ValueError, RecursionError):
        raise InputError("the body is not JSON") from None
    if not isinstance(event, dict):
        raise InputError("the body is not a JSON object")
    name = _field(event, "EventName")
    if name != INVOICE_READY:
        raise InputError(f"EventName {str(name)[:40]!r} is not {INVOICE_READY!r}")
    uri = _field(event, "ResourceUri")
    if not isinstance(uri, str):
        raise InputError("ResourceUri is missing")
    parts = urlsplit(uri)
    segments = [s for s in parts.path.split("/") if s]
    if parts.scheme not in ("http", "https") or len(segments) < 2 or "invoice" not in segments[-2].casefold():
        raise InputError(f"ResourceUri {uri[:100]!r} does not name an invoice (…/invoices/<id>)")
    if not _INVOICE_ID.match(segments[-1]):
        raise InputError(f"ResourceUri {uri[:100]!r} does not end in an invoice id")
    changed = _field(event, "ResourceChangeUtcDate")
    try:
        ready_at = datetime.fromisoformat(str(changed).replace("Z", "+00:00"))
    except ValueError:
        raise InputError(f"ResourceChangeUtcDate {str(changed)[:40]!r} is not an ISO 8601 time") from None
    ready_at = ready_at.replace(tzinfo=UTC) if ready_at.tzinfo is None else ready_at.astimezone(UTC)
    return InvoiceReadyEvent(segments[-1], ready_at, add_months(period_of(ready_at.date()), -1))


async def publish_for_event(c: Container, event: InvoiceReadyEvent) -> list[CheckRequest]:
    """Publish the checks of the event's period; returns them."""
    today = c.clock().date()
    units: list[Unit] = []
    verification = await c.schema.get()
    if "providers" not in verification.schema.unavailable:
        loader = Loader(verification.schema, c.thresholds)
        answer = (await c.dataverse.batch([loader.query("work365_provider")]))[0]
        if isinstance(answer, ServiceError):
            raise answer
        providers = loader.rows("work365_provider", answer, _provider)
        units = [
            ExpectedInvoiceUnit(provider_id=p.id, period=event.period)
            for p in providers
            if p.kind is ProviderKind.AUTOMATIC_USAGE
        ]
    if not units:
        # No automatic provider (or a schema to fix): the tenant unit still reports what it finds.
        units = [TenantPeriodUnit(period=event.period)]
    requests = [CheckRequest(unit=u, day=today, reason="event") for u in units]
    await c.bus.send(QUEUE_INVOICE_CHECKS, [check_message(r) for r in requests])
    return requests
