"""Loading by unit of work: the slice of the tenant one check handler needs.

Seam between the monitor's handlers and the loader: `load_unit` is what handlers call. This first
version reuses the period snapshot (a provider invoice is loaded as `diagnose` loads it); reading
only the unit's slice, in at most three round trips with the schema cached, replaces it.
"""

from __future__ import annotations

from datetime import datetime

from diagnostics.checks.context import invoice_period
from diagnostics.messages import InvoiceUnit, Unit
from diagnostics.metadata import ResolvedSchema
from diagnostics.model import Snapshot
from diagnostics.periods import period_under_review
from diagnostics.settings import Thresholds
from diagnostics.snapshot_loader import DataverseReader, InvoiceLister, Loader, find_invoice, load_snapshot

__all__ = ["load_unit"]


async def load_unit(
    dv: DataverseReader,
    pc: InvoiceLister | None,
    schema: ResolvedSchema,
    thresholds: Thresholds,
    unit: Unit,
    *,
    as_of: datetime,
) -> Snapshot:
    """The snapshot one unit's checks need. Raises InvoiceNotFound for an unknown invoice."""
    if isinstance(unit, InvoiceUnit):
        focus = await find_invoice(dv, Loader(schema, thresholds), unit.invoice_id)
        period = invoice_period(focus) or period_under_review(as_of)
        return await load_snapshot(dv, pc, schema, thresholds, as_of=as_of, period=period, focus=focus)
    return await load_snapshot(dv, pc, schema, thresholds, as_of=as_of, period=unit.period)
