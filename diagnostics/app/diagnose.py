"""The on-demand diagnosis of one provider invoice, on the worker's shared clients and schema."""

from __future__ import annotations

import uuid
from datetime import datetime

from diagnostics.app.container import Container
from diagnostics.loading import load_unit, review
from diagnostics.messages import InvoiceUnit, TenantPeriodUnit, Unit
from diagnostics.model import Report
from diagnostics.periods import period_under_review
from diagnostics.service import _tool_findings as tool_findings  # SCHEMA_MISMATCH, READ_ACCESS_LIMITED
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
    schema = verification.schema
    unit: Unit = TenantPeriodUnit(period=period_under_review(as_of))
    # An unreadable invoice table cannot be searched: the report then says why its checks failed.
    if "provider_invoices" not in schema.unavailable:
        invoice_id = invoice.strip("{}").lower() if _is_guid(invoice) else None
        if invoice_id is None:
            invoice_id = (await find_invoice(c.dataverse, Loader(schema, c.thresholds), invoice)).id
        unit = InvoiceUnit(invoice_id=invoice_id)
    snapshot = await load_unit(c.dataverse, c.partner_center, schema, c.thresholds, unit, as_of=as_of)
    extra = tool_findings(verification, snapshot.period, c.schema_source)
    return review(snapshot, c.thresholds, extra, schema_map=c.schema_source)
