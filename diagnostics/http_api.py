"""The HTTP endpoints: input checks and the mapping of outcomes to status codes.

`function_app.py` only turns the Functions request into a call of one of these; everything that
decides a status code lives here, typed and testable. All of them run on the worker's container.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from dataclasses import dataclass
from datetime import date

from diagnostics import silences
from diagnostics.adapters.http import within_deadline
from diagnostics.app.container import Container, get_container
from diagnostics.app.diagnose import diagnose
from diagnostics.app.events import parse_invoice_ready, publish_for_event
from diagnostics.app.health import health
from diagnostics.errors import (
    AuthError,
    ConfigError,
    DiagnosticsError,
    InputError,
    InvoiceNotFound,
    ServiceError,
)
from diagnostics.lifecycle import Silence
from diagnostics.model import Report
from diagnostics.periods import excerpt, parse_as_of
from diagnostics.render import to_json

log = logging.getLogger("diagnostics.http")

# Partner Center invoice ids (G012345678, D070002ISK) and manual numbers (IND-2026-10).
_INVOICE_NUMBER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


@dataclass(frozen=True)
class HttpResult:
    status: int
    body: str


def _error(status: int, message: str) -> HttpResult:
    return HttpResult(status, json.dumps({"error": message}))


def is_invoice_key(text: str) -> bool:
    """A GUID, or something shaped like a provider invoice number."""
    try:
        uuid.UUID(text)
    except ValueError:
        return bool(_INVOICE_NUMBER.fullmatch(text))  # fullmatch: `$` would let a trailing "\n" in
    return True


def _failure(exc: Exception, what: str) -> HttpResult:
    """The status of a failure: 500 misconfigured, 400 bad input, 502 a service failed, 500 a bug."""
    if isinstance(exc, ConfigError | AuthError):
        # Settings, the sign-in or the app user's privileges: the operator's to fix, not the caller's.
        log.error("configuration error: %s", exc)
        return _error(500, f"the app is misconfigured: {exc}")
    if isinstance(exc, InputError):
        return _error(400, str(exc))
    if isinstance(exc, ServiceError):
        log.warning("%s could not complete: %s", what, exc)
        return _error(502, f"{what} could not complete: {exc}")
    log.error("internal error in %s", what, exc_info=exc)
    return _error(500, "internal error; the details are in the app's logs")


async def _silences(container: Container) -> list[Silence]:
    """The silences to mark, as `scan`/`diagnose` mark them; when the state store cannot be read,
    none (every finding then alerts, which is never less safe) and a one-line warning."""
    try:
        return await silences.load(container.state)
    except DiagnosticsError as exc:
        log.warning("silences not applied: %s", exc)
        return []


async def _silenced(container: Container, report: Report, today: date) -> Report:
    return silences.silenced_report(report, await _silences(container), today)


async def diagnose_request(invoice: str, *, as_of: str | None = None) -> HttpResult:
    """Diagnose one provider invoice; the report JSON, or a one-line error and its status code."""
    if not is_invoice_key(invoice):
        return _error(400, f"{excerpt(invoice)} is neither a GUID nor a provider invoice number")
    try:
        container = get_container()
        clock = parse_as_of(as_of, today=container.clock()) if as_of else container.clock()
        with within_deadline(container.settings.http_deadline_seconds):
            report = await diagnose(container, invoice, clock)
            report = await _silenced(container, report, clock.date())
    except InvoiceNotFound as exc:
        return _error(404, str(exc))
    except Exception as exc:
        return _failure(exc, "the diagnosis")
    return HttpResult(200, to_json(report))


async def partner_center_event(body: bytes) -> HttpResult:
    """POST /api/partner-center/events: 202 with what was published; 400 for anything that is not a
    valid `invoice-ready` event; 502 when it could not be published (Partner Center retries)."""
    try:
        event = parse_invoice_ready(body)
    except InputError as exc:
        return _error(400, f"not a Partner Center invoice-ready event: {exc}")
    try:
        requests = await publish_for_event(get_container(), event)
    except Exception as exc:
        return _failure(exc, "publishing the event's checks")
    log.info("invoice-ready %s for %s: %d check(s) published", event.invoice_id, event.period, len(requests))
    body_out = {
        "period": event.period,
        "invoice_id": event.invoice_id,
        "published": [r.message_id for r in requests],
    }
    return HttpResult(202, json.dumps(body_out))


async def health_request() -> HttpResult:
    """GET /api/health: 200 when Dataverse, the broker and the state store answer, else 503."""
    try:
        report = await health(get_container())
    except ConfigError as exc:
        return HttpResult(503, json.dumps({"status": "misconfigured", "error": str(exc)}))
    status = "ok" if report.ok else "degraded"
    return HttpResult(200 if report.ok else 503, json.dumps({"status": status, "checks": report.checks}))
