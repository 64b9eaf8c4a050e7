"""The check handler (queue `invoice-checks`): load one unit's slice, run the checks, hand off.

Hand-offs, each idempotent so that a duplicate delivery changes nothing:
- unresolved references → one message per invoice on `reference-resolution` (its id is invoice +
  day, so the broker drops a repeat);
- an automatic provider invoice inside its pull window without usage → tomorrow's re-check,
  scheduled once; cancelled when the usage arrives or the invoice is gone;
- findings changed since the last notification → notify; a batch of contracts is told per
  contract (its notes and alert state are each contract's, as when contracts were units of their
  own), in one notifier run;
- an invoice too large for one unit (over 50,000 usage rows) → one check per slice of its usage on
  `invoice-checks` (loading/slices.py), each id the invoice, the slice's bounds and the day, so a
  repeat publish is dropped and the slices spread over the workers as any other unit does.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from diagnostics.app.container import Container
from diagnostics.app.notify import notify_each, notify_gone, notify_if_changed
from diagnostics.app.recheck import (
    RecheckAction,
    RecheckDecision,
    check_message,
    decide_recheck,
    gone,
    invoice_facts,
    recheck_time,
    reconcile_recheck,
)
from diagnostics.app.reference_fixes import confirm_reimport
from diagnostics.errors import InvoiceNotFound
from diagnostics.loading import load_unit, review
from diagnostics.loading.units import per_contract
from diagnostics.messages import (
    QUEUE_INVOICE_CHECKS,
    QUEUE_REFERENCE_RESOLUTION,
    CheckRequest,
    ContractsUnit,
    ExpectedInvoiceUnit,
    InvoiceUnit,
    Reference,
    ReferenceRequest,
    TenantPeriodUnit,
    Unit,
    decode_check,
    encode,
    unit_key,
)
from diagnostics.model import Report
from diagnostics.periods import period_under_review
from diagnostics.ports import OutgoingMessage
from diagnostics.service import _tool_findings as tool_findings  # SCHEMA_MISMATCH, READ_ACCESS_LIMITED

_REFERENCE_CODES: dict[str, Literal["customer", "subscription", "currency"]] = {
    "US_BLOCKED_UNRESOLVED_CUSTOMER": "customer",
    "US_BLOCKED_UNRESOLVED_SUBSCRIPTION": "subscription",
    "US_BLOCKED_UNRESOLVED_CURRENCY": "currency",
}


@dataclass(frozen=True)
class CheckResult:
    """What one check did, for the canonical log line and the replay's day statistics."""

    unit: str
    findings: int
    references_published: int = 0
    recheck: RecheckAction = "none"
    slices_published: int = 0
    notified: bool = False
    note: str = ""


def unresolved_references(report: Report, day: Any) -> list[ReferenceRequest]:
    """Pure: the references the report found unresolved, one request per provider invoice."""
    by_invoice: dict[tuple[str, str], list[Reference]] = {}
    for item in report.findings:
        kind = _REFERENCE_CODES.get(item.code)
        if kind is None or item.subject.type != "provider_invoice":
            continue
        for ref in item.evidence.get("references", []):
            if not isinstance(ref, dict) or ref.get("resolved") or not ref.get("reference"):
                continue
            account = ref.get("customer_provider_account_id") or ref.get("provider_account_id")
            by_invoice.setdefault((item.subject.id, item.period), []).append(
                Reference(
                    type=kind,
                    id=str(ref["reference"]),
                    name=ref.get("name"),
                    provider_account_id=account if kind == "subscription" else None,
                )
            )
    return [
        ReferenceRequest(invoice_id=invoice, period=period, day=day, references=tuple(refs))
        for (invoice, period), refs in sorted(by_invoice.items())
    ]


_LOOKED_UP = ("customer", "subscription", "currency")


def reimport_requests(report: Report, day: Any) -> list[ReferenceRequest]:
    """Pure: for an invoice whose references all resolve now but that still waits to be re-imported,
    the request that lets the reference handler's auto-fix re-import it (DIAG_AUTOFIX_REIMPORT)."""
    requests = []
    for item in report.findings:
        if item.code != "REFERENCES_RESOLVED_REIMPORT_NEEDED" or item.subject.type != "provider_invoice":
            continue
        refs = tuple(
            Reference(type=ref["kind"], id=str(ref["reference"]), name=ref.get("name"))
            for ref in item.evidence.get("references", [])
            if isinstance(ref, dict) and ref.get("kind") in _LOOKED_UP and ref.get("reference")
        )
        if refs:
            requests.append(
                ReferenceRequest(invoice_id=item.subject.id, period=item.period, day=day, references=refs)
            )
    return requests


@dataclass(frozen=True)
class _Checked:
    report: Report
    decision: RecheckDecision | None
    # A batch of contracts: its report per contract, told as each contract's own check tells it.
    parts: tuple[tuple[Unit, Report], ...] | None = None
    # An invoice too large for one unit: the slices of its usage, each to be checked as a unit.
    slices: tuple[InvoiceUnit, ...] = ()


async def _check(c: Container, unit: Unit, now: datetime) -> _Checked:
    verification = await c.schema.get()
    schema = verification.schema
    load: Unit = unit
    if isinstance(unit, InvoiceUnit) and "provider_invoices" in schema.unavailable:
        # The invoice table cannot be read: the tenant's checks say why, and what they still can.
        load = TenantPeriodUnit(period=period_under_review(now))
    snapshot = await load_unit(c.dataverse, c.partner_center, schema, c.thresholds, load, as_of=now)
    extra = tool_findings(verification, snapshot.period, c.schema_source)
    report = review(snapshot, c.thresholds, extra, schema_map=c.schema_source)
    decision = None
    # The invoice's own unit decides its re-check; a slice of its usage does not tell of it.
    if isinstance(unit, InvoiceUnit) and load is unit and unit.customers is None:
        invoice, provider, has_usage = invoice_facts(snapshot, unit.invoice_id)
        decision = decide_recheck(
            invoice,
            provider,
            has_usage,
            now=now,
            thresholds=c.thresholds,
            daily_at=recheck_time(c.settings.schedule, c.settings.recheck_delay_hours),
        )
    if isinstance(unit, ContractsUnit):
        return _Checked(report, decision, tuple(per_contract(snapshot, report)))
    if isinstance(unit, InvoiceUnit) and snapshot.usage_slices:
        slices = tuple(unit.model_copy(update={"customers": s}) for s in snapshot.usage_slices)
        return _Checked(report, decision, slices=slices)
    return _Checked(report, decision)


def slice_requests(request: CheckRequest, slices: tuple[InvoiceUnit, ...]) -> list[OutgoingMessage]:
    """Pure: the checks of an invoice's slices, for the same day and reason as its own check."""
    return [check_message(CheckRequest(unit=s, day=request.day, reason=request.reason)) for s in slices]


async def handle_check(c: Container, body: bytes) -> CheckResult:
    """Handle one `invoice-checks` message. Raises on failure; the caller classifies the error."""
    request = decode_check(body)
    now = c.clock()
    today = now.date()
    key = unit_key(request.unit)
    try:
        checked = await _check(c, request.unit, now)
    except InvoiceNotFound:
        if not isinstance(request.unit, InvoiceUnit):
            raise
        # Gone (often deleted on purpose, so that Work 365 re-imports it): nothing to re-check.
        cancelled = await reconcile_recheck(c.bus, c.state, request.unit, gone(), now=now)
        # What was told about it resolves (its note went with the record).
        await notify_gone(c.notifier, c.state, request.unit, at=now)
        if request.reason == "recheck":
            return CheckResult(key, 0, recheck=cancelled, note="the invoice is gone")
        raise

    report, decision = checked.report, checked.decision
    references = unresolved_references(report, today)
    if c.settings.autofix_reimport:
        references += reimport_requests(report, today)
    if references:
        await c.bus.send(
            QUEUE_REFERENCE_RESOLUTION,
            [OutgoingMessage(r.message_id, encode(r), "references") for r in references],
        )
    if checked.slices:
        await c.bus.send(QUEUE_INVOICE_CHECKS, slice_requests(request, checked.slices))
    action: RecheckAction = "none"
    if decision is not None and isinstance(request.unit, InvoiceUnit):
        action = await reconcile_recheck(c.bus, c.state, request.unit, decision, now=now)
    if checked.parts is not None:
        notified = await notify_each(c.notifier, c.state, checked.parts, at=now)
    else:
        notified = await notify_if_changed(c.notifier, c.state, request.unit, report, at=now)
    note = decision.why if decision is not None else ""
    if isinstance(request.unit, ExpectedInvoiceUnit) and request.reason == "recheck":
        # The re-check auto-fix scheduled after deleting an invoice: is it imported again?
        note = await confirm_reimport(
            c.dataverse,
            c.bus,
            c.state,
            (await c.schema.get()).schema,
            c.thresholds,
            request.unit,
            now=now,
            daily_at=recheck_time(c.settings.schedule, c.settings.recheck_delay_hours),
        )
    return CheckResult(
        key,
        len(report.findings),
        references_published=len(references),
        recheck=action,
        slices_published=len(checked.slices),
        notified=notified,
        note=note,
    )
