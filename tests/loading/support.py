"""The real clients against a running simulator, with the schema resolved once (as the monitor's
handlers keep it), for tests that load units of work themselves."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date
from typing import Any

from diagnostics.adapters.dataverse import DataverseClient
from diagnostics.adapters.http import RequestCounter, RetryPolicy
from diagnostics.adapters.partner_center import PartnerCenterClient
from diagnostics.metadata import ResolvedSchema, fetch_metadata, resolve
from diagnostics.periods import add_months, period_of
from diagnostics.schema import SchemaMap
from simulator import Simulator
from simulator.connect import sim_credential


@asynccontextmanager
async def open_clients(
    sim: Simulator, *, retry: RetryPolicy | None = None, counter: RequestCounter | None = None
) -> AsyncIterator[tuple[DataverseClient, PartnerCenterClient | None, ResolvedSchema]]:
    credential = sim_credential(sim, connection_verify=str(sim.ca_file))
    options: dict[str, Any] = {"verify": sim.ssl_context(), "retry": retry, "on_request": counter}
    dv = DataverseClient(sim.dataverse_url, credential, **options)
    pc = (
        PartnerCenterClient(sim.partner_center_url, credential, **options)
        if sim.fixture.partner_center.enabled
        else None
    )
    try:
        # What differs or cannot be read stops only the parts it touches, as in a scan.
        yield dv, pc, resolve(await fetch_metadata(dv, SchemaMap()), SchemaMap())
    finally:
        await dv.aclose()
        if pc is not None:
            await pc.aclose()


def row_period(row: dict[str, Any]) -> str | None:
    """The period a provider invoice row bills: its billing period, else the month before its date."""
    start = row.get("work365_providerinvoice_billingperiodstart")
    if start:
        return str(start)[:7]
    dated = row.get("work365_providerinvoice_invoicedate")
    if dated:
        return add_months(period_of(date.fromisoformat(str(dated)[:10])), -1)
    return None
