"""The on-demand diagnosis of one provider invoice, on the worker's shared clients and schema."""

from __future__ import annotations

import uuid
from datetime import datetime

from diagnostics.app.container import Container
from diagnostics.engine import build_report
from diagnostics.loading import load_unit
from diagnostics.messages import InvoiceUnit
from diagnostics.model import Report
from diagnostics.periods import period_under_review
from diagnostics.service import schema_mismatch_report
from diagnostics.snapshot_loader import Loader, find_invoice


def _is_guid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return len(text.strip("{}")) == 36


async def diagnose(c: Container, invoice: str, as_of: datetime) -> Report:
    """The report of one provider invoice, by GUID or invoice number (InvoiceNotFound if none)."""
    verification = await c.schema.get()
    if verification.problems:
        return schema_mismatch_report(verification, as_of, period_under_review(as_of), c.schema_source)
    invoice_id = invoice.strip("{}").lower() if _is_guid(invoice) else None
    if invoice_id is None:
        focus = await find_invoice(c.dataverse, Loader(verification.schema, c.thresholds), invoice)
        invoice_id = focus.id
    snapshot = await load_unit(
        c.dataverse,
        c.partner_center,
        verification.schema,
        c.thresholds,
        InvoiceUnit(invoice_id=invoice_id),
        as_of=as_of,
    )
    return build_report(snapshot, c.thresholds, schema_map=c.schema_source)
