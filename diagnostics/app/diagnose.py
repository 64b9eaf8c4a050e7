"""The on-demand diagnosis of one provider invoice, on the worker's shared clients and schema."""

from __future__ import annotations

import uuid
from datetime import datetime

from diagnostics.app.container import Container
from diagnostics.loading import load_unit, review, review_invoice
from diagnostics.messages import InvoiceUnit, TenantPeriodUnit
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
    """The report of one provider invoice, by GUID or invoice number (InvoiceNotFound if none): the
    whole of it, the slices of a big invoice's usage included (loading.review_invoice)."""
    verification = await c.schema.get()
    schema = verification.schema
    if "provider_invoices" in schema.unavailable:
        # An unreadable invoice table cannot be searched: the report then says why its checks failed.
        unit = TenantPeriodUnit(period=period_under_review(as_of))
        snapshot = await load_unit(c.dataverse, c.partner_center, schema, c.thresholds, unit, as_of=as_of)
        extra = tool_findings(verification, snapshot.period, c.schema_source)
        return review(snapshot, c.thresholds, extra, schema_map=c.schema_source)
    invoice_id = invoice.strip("{}").lower() if _is_guid(invoice) else None
    if invoice_id is None:
        invoice_id = (await find_invoice(c.dataverse, Loader(schema, c.thresholds), invoice)).id
    return await review_invoice(
        c.dataverse,
        schema,
        c.thresholds,
        InvoiceUnit(invoice_id=invoice_id),
        as_of=as_of,
        tool_findings=lambda period: tool_findings(verification, period, c.schema_source),
        schema_map=c.schema_source,
    )
