"""The use cases: scan a tenant, diagnose one invoice, verify the schema map.

Shared by the command line and the Function app. Everything that reaches a service is passed in
as a `Connection`, so the same code runs against a real environment and the simulator.
"""

from __future__ import annotations

import logging
import ssl
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from azure.core.credentials import TokenCredential

from diagnostics.access import (
    HeldPrivileges,
    ReadAccess,
    access_failures,
    held_privileges,
    read_access,
    read_access_finding,
)
from diagnostics.adapters.dataverse import DataverseClient
from diagnostics.adapters.http import RequestCounter, RequestRecord, RetryPolicy
from diagnostics.adapters.partner_center import PartnerCenterClient
from diagnostics.adapters.telemetry import dimensions
from diagnostics.catalog import TENANT, finding
from diagnostics.checks import CHECKS
from diagnostics.engine import needs_attention
from diagnostics.loading import load_period, load_unit, review, review_invoice
from diagnostics.loading.rounds import collector_paused
from diagnostics.messages import InvoiceUnit, Unit, unit_key
from diagnostics.metadata import (
    Problem,
    ResolvedSchema,
    fetch_metadata,
    problem_failures,
    proposed_overrides,
    resolve,
    verify,
)
from diagnostics.model import Finding, Report
from diagnostics.periods import period_under_review
from diagnostics.schema import SchemaMap
from diagnostics.settings import Thresholds
from diagnostics.snapshot_loader import Loader, find_invoice

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
    # Dataverse requests in flight at once (DIAG_DATAVERSE_MAX_CONCURRENCY); None: no cap of ours.
    max_concurrency: int | None = None


def build_clients(
    conn: Connection,
    on_request: Callable[[RequestRecord], None],
    *,
    max_concurrency: int | None = None,
) -> tuple[DataverseClient, PartnerCenterClient | None]:
    """The Dataverse client and, when configured, the Partner Center client of a connection; the
    caller closes them (`aclose`)."""
    dv = DataverseClient(
        conn.dataverse_url,
        conn.dataverse_credential,
        verify=conn.verify,
        retry=conn.retry,
        on_request=on_request,
        max_concurrency=max_concurrency,
    )
    pc = None
    if conn.partner_center is not None:
        pc = PartnerCenterClient(
            conn.partner_center.url,
            conn.partner_center.credential,
            verify=conn.verify,
            retry=conn.retry,
            on_request=on_request,
        )
    return dv, pc


@asynccontextmanager
async def _clients(conn: Connection) -> AsyncIterator[tuple[DataverseClient, PartnerCenterClient | None]]:
    dv, pc = build_clients(conn, conn.requests, max_concurrency=conn.max_concurrency)
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
    access: ReadAccess = field(default_factory=ReadAccess)
    # what the identity may write (access.missing_write_privileges reads it for notes and auto-fixes)
    privileges: HeldPrivileges = field(default_factory=HeldPrivileges)


async def _verify(dv: DataverseClient, schema_map: SchemaMap) -> Verification:
    meta = await fetch_metadata(dv, schema_map)
    problems = tuple(verify(meta, schema_map))
    return Verification(
        problems,
        proposed_overrides(problems, schema_map),
        resolve(meta, schema_map),
        read_access(meta, schema_map),
        held_privileges(meta),
    )


async def verify_schema(conn: Connection) -> Verification:
    async with _clients(conn) as (dv, _):
        return await _verify(dv, conn.schema_map)


def _stopped(failures: dict[str, str]) -> list[str]:
    return [c.name for c in CHECKS if c.needs & failures.keys()]


def schema_mismatch_finding(verification: Verification, period: str, source: str) -> Finding:
    """One finding for every difference; only the checks that read what differs are stopped."""
    problems = verification.problems
    stopped = _stopped(problem_failures(problems))
    return finding(
        "SCHEMA_MISMATCH",
        TENANT,
        period,
        f"The schema map does not fit this environment: {len(problems)} difference(s); "
        f"{len(stopped)} of {len(CHECKS)} check(s) could not run",
        {
            "schema_map": source,
            "differences": [p.as_evidence() for p in problems],
            "proposed_override_file": verification.proposed,
            "stopped_checks": stopped,
        },
        [
            "Run `python -m diagnostics schema verify --write schema-map.json` to see each difference and "
            "write the proposed mapping.",
            "Check the proposals against Work 365's tables, correct the file where needed, and pass it with "
            "--schema-map (or the setting DIAG_SCHEMA_MAP_FILE).",
            "Run the scan again.",
        ],
    )


def _tool_findings(verification: Verification, period: str, source: str) -> list[Finding]:
    out = []
    if verification.problems:
        out.append(schema_mismatch_finding(verification, period, source))
    if not verification.access.complete:
        stopped = _stopped(access_failures(verification.access))
        out.append(read_access_finding(verification.access, period, stopped))
    return out


async def scan(conn: Connection, as_of: datetime, invoice: str | None = None) -> Report:
    """Every check over the tenant for the period under review, or over one provider invoice."""
    started = time.perf_counter()
    line: dict[str, Any] = {
        "period": period_under_review(as_of),
        "invoice": invoice,
        "outcome": "failed",
        "findings": None,
    }
    try:
        report = await _scan(conn, as_of, invoice, line)
        line["outcome"] = "needs_attention" if needs_attention(report) else "ok"
    except BaseException as exc:
        line["outcome"] = f"failed:{type(exc).__name__}"
        raise
    finally:
        _canonical_line(line, conn, started)
    return report


def _canonical_line(line: dict[str, Any], conn: Connection, started: float) -> None:
    """One canonical log line per unit of work (architecture.md), on success and on failure; the
    fields are in the message for a plain log and in `extra` for a structured one."""
    line |= {"requests": conn.requests.count, "duration_s": round(time.perf_counter() - started, 3)}
    text = " ".join(f"{key}={value if value is not None else '-'}" for key, value in line.items())
    # Absent values as "-", as in the text: every field is on the record, and OpenTelemetry (App
    # Insights) drops a None attribute.
    fields = {f"diag_{key}": "-" if value is None else value for key, value in line.items()}
    log.info("diagnosis %s", text, extra=dimensions(fields))


async def _scan(conn: Connection, as_of: datetime, invoice: str | None, line: dict[str, Any]) -> Report:
    # The collector paused from the reads to the report (see there): resumed between them, it would
    # traverse everything read so far, then the checks' indexes and findings the whole snapshot.
    async with _clients(conn) as (dv, pc):
        with collector_paused():
            report = await _scan_with(dv, pc, conn, as_of, invoice)
    line["period"] = report.period
    line["findings"] = report.statistics.findings
    return report


async def _scan_with(
    dv: DataverseClient,
    pc: PartnerCenterClient | None,
    conn: Connection,
    as_of: datetime,
    invoice: str | None,
) -> Report:
    verification = await _verify(dv, conn.schema_map)
    period = period_under_review(as_of)
    tool = _tool_findings(verification, period, conn.schema_map.source)
    # An unreadable invoice table cannot be searched: the report then says why its checks failed.
    if invoice is None or "provider_invoices" in verification.schema.unavailable:
        # The period under review and every earlier period still open (findings.md).
        snapshot = await load_period(dv, pc, verification.schema, conn.thresholds, as_of=as_of, period=period)
    else:
        # The whole of the invoice: the slices of a big invoice's usage too (review_invoice).
        unit = InvoiceUnit(invoice_id=await _invoice_id(dv, verification.schema, conn.thresholds, invoice))
        return await review_invoice(
            dv,
            verification.schema,
            conn.thresholds,
            unit,
            as_of=as_of,
            tool_findings=lambda period: _tool_findings(verification, period, conn.schema_map.source),
            schema_map=conn.schema_map.source,
        )
    # Returning frees the snapshot while the collector is paused: it is not traversed when it resumes.
    return review(snapshot, conn.thresholds, tool, schema_map=conn.schema_map.source)


async def _invoice_id(dv: DataverseClient, schema: ResolvedSchema, thresholds: Thresholds, key: str) -> str:
    """The invoice's GUID: as given, or looked up by invoice number (one more round trip)."""
    try:
        return str(uuid.UUID(key))
    except ValueError:
        return (await find_invoice(dv, Loader(schema, thresholds), key)).id


async def check_unit(conn: Connection, unit: Unit, as_of: datetime) -> Report:
    """One unit of work's report: the schema verified, only the unit's slice loaded, its checks run
    (diagnostics/loading/units.py). Raises InvoiceNotFound for an unknown invoice."""
    started = time.perf_counter()
    async with _clients(conn) as (dv, pc):
        verification = await _verify(dv, conn.schema_map)
        verified = conn.requests.count
        snapshot = await load_unit(dv, pc, verification.schema, conn.thresholds, unit, as_of=as_of)
        tool = _tool_findings(verification, snapshot.period, conn.schema_map.source)
        report = review(snapshot, conn.thresholds, tool, schema_map=conn.schema_map.source)
    log.info(
        "unit checked",
        extra={
            "unit": unit_key(unit),
            "findings": report.statistics.findings,
            "requests": conn.requests.count - verified,
            "duration_s": round(time.perf_counter() - started, 3),
        },
    )
    return report
