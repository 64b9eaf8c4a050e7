"""The use cases: scan a tenant, diagnose one invoice, verify the schema map.

Shared by the command line and the Function app. Everything that reaches a service is passed in
as a `Connection`, so the same code runs against a real environment and the simulator.
"""

from __future__ import annotations

import logging
import ssl
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from azure.core.credentials import TokenCredential

from diagnostics.adapters.dataverse import DataverseClient
from diagnostics.adapters.http import RequestCounter, RetryPolicy
from diagnostics.adapters.partner_center import PartnerCenterClient
from diagnostics.catalog import TENANT, finding
from diagnostics.checks import CHECKS
from diagnostics.checks.context import invoice_period
from diagnostics.engine import build_report
from diagnostics.metadata import Problem, ResolvedSchema, fetch_metadata, proposed_overrides, resolve, verify
from diagnostics.model import Report, Statistics
from diagnostics.periods import period_under_review
from diagnostics.schema import SchemaMap
from diagnostics.settings import Thresholds
from diagnostics.snapshot_loader import Loader, find_invoice, load_snapshot

log = logging.getLogger("diagnostics")


@dataclass(frozen=True)
class PartnerCenterAccess:
    url: str
    credential: TokenCredential


@dataclass
class Connection:
    """Where the data lives and how to authenticate; built by the CLI or the Function app."""

    dataverse_url: str
    dataverse_credential: TokenCredential
    partner_center: PartnerCenterAccess | None
    schema_map: SchemaMap
    thresholds: Thresholds
    verify: ssl.SSLContext | bool = True
    retry: RetryPolicy | None = None
    requests: RequestCounter = field(default_factory=RequestCounter)


@asynccontextmanager
async def _clients(conn: Connection) -> AsyncIterator[tuple[DataverseClient, PartnerCenterClient | None]]:
    dv = DataverseClient(
        conn.dataverse_url,
        conn.dataverse_credential,
        verify=conn.verify,
        retry=conn.retry,
        on_request=conn.requests,
    )
    pc = None
    if conn.partner_center is not None:
        pc = PartnerCenterClient(
            conn.partner_center.url,
            conn.partner_center.credential,
            verify=conn.verify,
            retry=conn.retry,
            on_request=conn.requests,
        )
    try:
        yield dv, pc
    finally:
        await dv.aclose()
        if pc is not None:
            await pc.aclose()


@dataclass(frozen=True)
class Verification:
    problems: tuple[Problem, ...]
    proposed: dict[str, Any]
    schema: ResolvedSchema


async def _verify(dv: DataverseClient, schema_map: SchemaMap) -> Verification:
    meta = await fetch_metadata(dv, schema_map)
    problems = tuple(verify(meta, schema_map))
    return Verification(problems, proposed_overrides(problems, schema_map), resolve(meta, schema_map))


async def verify_schema(conn: Connection) -> Verification:
    async with _clients(conn) as (dv, _):
        return await _verify(dv, conn.schema_map)


def schema_mismatch_report(verification: Verification, as_of: datetime, period: str, source: str) -> Report:
    """The report when the map does not fit the environment: no check runs on unreadable data."""
    problems = verification.problems
    item = finding(
        "SCHEMA_MISMATCH",
        TENANT,
        period,
        f"The schema map does not fit this environment: {len(problems)} difference(s); no check was run",
        {
            "schema_map": source,
            "differences": [p.as_evidence() for p in problems],
            "proposed_override_file": verification.proposed,
        },
        [
            "Run `python -m diagnostics schema verify --write schema-map.json` to see each difference and "
            "write the proposed mapping.",
            "Check the proposals against Work 365's tables, correct the file where needed, and pass it with "
            "--schema-map (or the setting DIAG_SCHEMA_MAP_FILE).",
            "Run the scan again.",
        ],
    )
    return Report(
        as_of=as_of,
        period=period,
        statistics=Statistics.of((item,), checks=len(CHECKS), passed=0),
        findings=(item,),
        schema_map=source,
    )


async def scan(conn: Connection, as_of: datetime, invoice: str | None = None) -> Report:
    """Every check over the tenant for the period under review, or over one provider invoice."""
    started = time.perf_counter()
    async with _clients(conn) as (dv, pc):
        verification = await _verify(dv, conn.schema_map)
        period = period_under_review(as_of)
        if verification.problems:
            report = schema_mismatch_report(verification, as_of, period, conn.schema_map.source)
        else:
            focus = None
            if invoice is not None:
                focus = await find_invoice(dv, Loader(verification.schema, conn.thresholds), invoice)
                period = invoice_period(focus) or period
            snapshot = await load_snapshot(
                dv, pc, verification.schema, conn.thresholds, as_of=as_of, period=period, focus=focus
            )
            report = build_report(snapshot, conn.thresholds, schema_map=conn.schema_map.source)
    # One canonical log line per unit of work (architecture.md, "structlog" habit).
    log.info(
        "diagnosis done",
        extra={
            "period": report.period,
            "invoice": invoice,
            "findings": report.statistics.findings,
            "requests": conn.requests.count,
            "duration_s": round(time.perf_counter() - started, 3),
        },
    )
    return report
