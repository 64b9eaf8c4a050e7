"""Loading by unit of work: the slice of the tenant one check handler needs.

Seam between the monitor's handlers and the loader: `load_unit` is what handlers call; `review`
(diagnostics/loading/units.py) turns the snapshot into the unit's report. Each unit reads only its
slice (plans.py): one provider invoice in at most three Dataverse round trips with the schema
verified, whatever the tenant's size — an invoice with more than 50,000 usage rows (more than
Dataverse will count at once) has its usage counted by customer in its own unit and cut into
slices (slices.py), each a unit of three round trips too; a batch of contracts in two, whatever
their number; the tenant-wide unit reads its period and the earlier periods still open
(period.py). `review_invoice` tells the whole of one invoice, its slices included.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import datetime

from diagnostics.messages import (
    ContractsUnit,
    ContractUnit,
    CustomerRange,
    ExpectedInvoiceUnit,
    InvoiceUnit,
    Unit,
)
from diagnostics.metadata import ResolvedSchema
from diagnostics.model import Finding, Report, Snapshot
from diagnostics.settings import Thresholds
from diagnostics.snapshot_loader import DataverseReader, InvoiceLister

from .period import load_period
from .plans import load_contract_unit, load_contracts_unit, load_expected_unit, load_invoice_unit
from .units import merge, review

__all__ = ["load_period", "load_unit", "review", "review_invoice"]


async def load_unit(
    dv: DataverseReader,
    pc: InvoiceLister | None,
    schema: ResolvedSchema,
    thresholds: Thresholds,
    unit: Unit,
    *,
    as_of: datetime,
) -> Snapshot:
    """The snapshot one unit's checks need. Raises InvoiceNotFound for an unknown invoice.

    Partner Center is asked only for an expected invoice (is it published?).
    """
    if isinstance(unit, InvoiceUnit):
        return await load_invoice_unit(dv, schema, thresholds, unit, as_of=as_of)
    if isinstance(unit, ExpectedInvoiceUnit):
        return await load_expected_unit(dv, pc, schema, thresholds, unit, as_of=as_of)
    if isinstance(unit, ContractUnit):
        return await load_contract_unit(dv, schema, thresholds, unit, as_of=as_of)
    if isinstance(unit, ContractsUnit):
        return await load_contracts_unit(dv, schema, thresholds, unit, as_of=as_of)
    return await load_period(dv, None, schema, thresholds, as_of=as_of, period=unit.period, unit=unit)


def _no_findings(period: str) -> Sequence[Finding]:
    return ()


async def review_invoice(
    dv: DataverseReader,
    schema: ResolvedSchema,
    thresholds: Thresholds,
    unit: InvoiceUnit,
    *,
    as_of: datetime,
    tool_findings: Callable[[str], Sequence[Finding]] = _no_findings,
    schema_map: str = "defaults",
) -> Report:
    """The whole report of one provider invoice, as a person asking about it wants it (`diagnose`).

    Its own unit is loaded and reviewed; when its usage was too large for one unit and cut into
    slices (`Snapshot.usage_slices`), every slice is loaded and reviewed too, all at once (the
    client's concurrency cap bounds the requests in flight), and the reports are merged into one:
    the own unit's findings and the slices', the tool's own findings once, muting and statistics
    over the whole. `tool_findings(period)`: the tool's own findings for the invoice's period
    (SCHEMA_MISMATCH, READ_ACCESS_LIMITED), added once. Raises InvoiceNotFound for an unknown
    invoice, and what loading raises (a slice that cannot be read fails the whole report: nothing
    is reported fine that was not checked)."""
    head = await load_invoice_unit(dv, schema, thresholds, unit, as_of=as_of)
    report = review(head, thresholds, tool_findings(head.period), schema_map=schema_map)
    if not head.usage_slices:
        return report
    cut = head.usage_slices
    del head  # not held while its slices are read

    async def part(customers: CustomerRange) -> Report:
        piece = unit.model_copy(update={"customers": customers})
        snapshot = await load_invoice_unit(dv, schema, thresholds, piece, as_of=as_of)
        return review(snapshot, thresholds, schema_map=schema_map)

    slices = await asyncio.gather(*(part(s) for s in cut))
    return merge(report, slices)
