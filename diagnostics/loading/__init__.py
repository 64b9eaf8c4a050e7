"""Loading by unit of work: the slice of the tenant one check handler needs.

Seam between the monitor's handlers and the loader: `load_unit` is what handlers call; `review`
(diagnostics/loading/units.py) turns the snapshot into the unit's report. Each unit reads only its
slice (plans.py): one provider invoice in at most three Dataverse round trips with the schema
verified, whatever the tenant's size, while the invoice has at most 50,000 usage rows (above that
Dataverse refuses the counting aggregate and its rows are read page by page); a batch of contracts in two, whatever their number; the
tenant-wide unit reads its period and the earlier periods
still open (period.py).
"""

from __future__ import annotations

from datetime import datetime

from diagnostics.messages import ContractsUnit, ContractUnit, ExpectedInvoiceUnit, InvoiceUnit, Unit
from diagnostics.metadata import ResolvedSchema
from diagnostics.model import Snapshot
from diagnostics.settings import Thresholds
from diagnostics.snapshot_loader import DataverseReader, InvoiceLister

from .period import load_period
from .plans import load_contract_unit, load_contracts_unit, load_expected_unit, load_invoice_unit
from .units import review

__all__ = ["load_period", "load_unit", "review"]


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
