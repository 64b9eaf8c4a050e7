"""The on-demand diagnosis over HTTP: input checks and the mapping of outcomes to status codes.

`function_app.py` only turns the Functions request into a call of `diagnose_request`; everything
that decides a status code lives here, typed and testable.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from diagnostics.connect import real_connection
from diagnostics.errors import ConfigError, InputError, InvoiceNotFound, ServiceError
from diagnostics.periods import parse_as_of
from diagnostics.render import to_json
from diagnostics.service import scan
from diagnostics.settings import load_settings

log = logging.getLogger("diagnostics.http")

# Partner Center invoice ids (G012345678, D070002ISK) and manual numbers (IND-2026-10).
_INVOICE_NUMBER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


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
        return bool(_INVOICE_NUMBER.match(text))
    return True


async def diagnose_request(
    invoice: str, *, as_of: str | None = None, environ: Mapping[str, str] | None = None
) -> HttpResult:
    """Diagnose one provider invoice; the report JSON, or a one-line error and its status code."""
    if not is_invoice_key(invoice):
        return _error(400, f"{invoice[:80]!r} is neither a GUID nor a provider invoice number")
    try:
        clock = parse_as_of(as_of) if as_of else datetime.now(UTC)
        settings = load_settings(environ)
        report = await scan(real_connection(settings, None, None), clock, invoice=invoice)
    except InvoiceNotFound as exc:
        return _error(404, str(exc))
    except ConfigError as exc:
        log.error("configuration error: %s", exc)  # noqa: TRY400  (no traceback needed)
        return _error(500, f"the app is misconfigured: {exc}")
    except InputError as exc:
        return _error(400, str(exc))
    except ServiceError as exc:
        log.warning("diagnosis of %s could not complete: %s", invoice, exc)
        return _error(502, f"the diagnosis could not complete: {exc}")
    except Exception:
        log.exception("internal error while diagnosing %s", invoice)
        return _error(500, "internal error; the details are in the app's logs")
    return HttpResult(200, to_json(report))
