"""The engine: runs every check, turns failures into CHECK_FAILED, applies inhibition, and builds
the report (findings worst first, statistics)."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

from diagnostics.catalog import finding
from diagnostics.checks import CHECKS, Check
from diagnostics.checks.context import Context
from diagnostics.checks.records import check_unreadable_records
from diagnostics.messages import ContractsUnit, ContractUnit, ExpectedInvoiceUnit, InvoiceUnit
from diagnostics.model import SEVERITY_RANK, Finding, Report, Snapshot, Statistics, Subject
from diagnostics.settings import Thresholds
from diagnostics.timeline import timelines

log = logging.getLogger(__name__)

_PULL_WINDOW = frozenset({"USAGE_PULL_PENDING", "USAGE_PULL_WINDOW_CLOSING", "USAGE_PULL_WINDOW_EXPIRED"})
_REFERENCE_ROOTS = frozenset(
    {
        "US_BLOCKED_UNRESOLVED_CUSTOMER",
        "US_BLOCKED_UNRESOLVED_SUBSCRIPTION",
        "US_BLOCKED_UNRESOLVED_CURRENCY",
        "ERRORS_FILE_UNREADABLE",
        "REFERENCES_RESOLVED_REIMPORT_NEEDED",
        "US_NOT_SYNCED_AFTER_RESOLUTION",
    }
)
_INVOICE_ROOTS = _REFERENCE_ROOTS | {"PI_CHECKSUM_MISMATCH", "PI_IMPORT_ERROR", "PI_ZERO_PLACEHOLDER"}

# A root cause mutes its own symptoms (findings.md, "Inhibition").
# Same subject: (roots, symptoms).
SAME_SUBJECT_RULES: tuple[tuple[frozenset[str], frozenset[str]], ...] = (
    (_INVOICE_ROOTS, _PULL_WINDOW),
    # errors.csv explains the Error status: the generic import error is its symptom.
    (_REFERENCE_ROOTS, frozenset({"PI_IMPORT_ERROR"})),
)
# Same period, any subject: a missing or blocked invoice explains why a contract's coming invoice
# will miss the usage.
SAME_PERIOD_RULES: tuple[tuple[frozenset[str], frozenset[str]], ...] = (
    (
        # Not PI_NOT_YET_DUE or USAGE_PULL_PENDING: they are expected states, and before the
        # invoice day the at-risk warning is the only sign that an early contract will miss usage.
        frozenset(
            {
                "PI_MISSING_MICROSOFT_DELAY",
                "PI_MISSING_NOT_SYNCED",
                "PI_MISSING_UNVERIFIED",
                *_INVOICE_ROOTS,
                "USAGE_PULL_WINDOW_EXPIRED",
                "PI_STUCK_POPULATING",
                "PI_MANUAL_NOT_ACTIVATED",
            }
        ),
        frozenset({"USAGE_AT_RISK_NEXT_INVOICE"}),
    ),
)


def _direct_root(item: Finding, findings: Sequence[Finding]) -> Finding | None:
    for roots, symptoms in SAME_SUBJECT_RULES:
        if item.code in symptoms:
            for other in findings:
                if (
                    other is not item
                    and other.code in roots
                    and other.subject == item.subject
                    and other.period == item.period
                ):
                    return other
    for roots, symptoms in SAME_PERIOD_RULES:
        if item.code in symptoms:
            for other in findings:
                if other is not item and other.code in roots and other.period == item.period:
                    return other
    return None


def _root_for(item: Finding, findings: Sequence[Finding]) -> Finding | None:
    """The root cause at the end of the chain: a root that is itself a symptom (PI_IMPORT_ERROR,
    muted by unresolved references) passes its symptoms on to its own root, so that every muted
    finding names a root that alerts."""
    root = _direct_root(item, findings)
    seen = {id(item)}
    while root is not None and id(root) not in seen:
        seen.add(id(root))
        further = _direct_root(root, findings)
        if further is None:
            return root
        root = further
    return root


def inhibit(findings: Sequence[Finding]) -> list[Finding]:
    """Mark symptoms muted by their root cause; they stay in the report and do not alert."""
    out = []
    for item in findings:
        root = _root_for(item, findings)
        out.append(item.model_copy(update={"muted": True, "muted_by": root.dedup_key}) if root else item)
    return out


def _date_of(evidence: dict[str, Any], key: str) -> str:
    value = evidence.get(key)
    return str(value)[:10] if value else "an unknown date"


def _why_it_matters(symptom: Finding) -> str:
    """Why a root cause is as severe as the symptom it mutes, in the words of its title."""
    if symptom.code == "USAGE_PULL_WINDOW_EXPIRED":
        return f"the usage-pull window closed on {_date_of(symptom.evidence, 'pull_window_ends')}"
    if symptom.code == "USAGE_PULL_WINDOW_CLOSING":
        return f"the usage-pull window closes on {_date_of(symptom.evidence, 'pull_window_ends')}"
    if symptom.code == "USAGE_AT_RISK_NEXT_INVOICE":
        return f"{symptom.subject.name} invoices soon without this usage"
    return f"it also causes {symptom.code} ({symptom.severity})"


# PI_IMPORT_ERROR is "status Error for any other reason" (findings.md): when errors.csv explains the
# Error status it restates the root cause rather than adding a consequence, so it raises nothing
# (a resolved reference awaiting re-import stays the warning the contract gives it).
_RESTATES_ITS_ROOT = frozenset({"PI_IMPORT_ERROR"})


def roll_up(findings: Sequence[Finding]) -> list[Finding]:
    """A root cause takes the severity of the worst finding it mutes, and its title says why
    (findings.md, "Severity roll-up"): muting a critical symptom must not lower what alerts."""
    worst: dict[str, Finding] = {}
    for item in findings:
        if item.muted and item.muted_by is not None and item.code not in _RESTATES_ITS_ROOT:
            current = worst.get(item.muted_by)
            if current is None or SEVERITY_RANK[item.severity] < SEVERITY_RANK[current.severity]:
                worst[item.muted_by] = item
    out = []
    for item in findings:
        symptom = worst.get(item.dedup_key)
        if item.muted or symptom is None or SEVERITY_RANK[symptom.severity] >= SEVERITY_RANK[item.severity]:
            out.append(item)
            continue
        out.append(
            item.model_copy(
                update={
                    "severity": symptom.severity,
                    "title": f"{item.title}; {_why_it_matters(symptom)}",
                    # The symptom is the muted finding of that code whose muted_by is this finding.
                    "evidence": item.evidence
                    | {"severity_raised_from": item.severity, "severity_raised_by": symptom.code},
                }
            )
        )
    return out


def _check_failed(check: Check, period: str, why: str, parts: Iterable[str] = ()) -> Finding:
    subject = Subject(type="tenant", id=f"check:{check.name}", name=f"check '{check.name}'")
    return finding(
        "CHECK_FAILED",
        subject,
        period,
        f"Check '{check.name}' could not run: {why}",
        {"check": check.name, "missing_data": sorted(parts), "why": why},
        [
            "Fix the cause named in the evidence (often a missing read privilege of the Dataverse application "
            "user on a Work 365 table, or a service that could not be reached), then run the scan again.",
            "Until then, treat this part of the diagnosis as unknown, not as healthy.",
        ],
    )


def run_checks(
    ctx: Context, checks: Sequence[Check] = CHECKS, *, unreadable_records: bool = True
) -> tuple[list[Finding], int]:
    """Every check's findings, and how many checks passed (ran and found nothing to act on)."""
    findings: list[Finding] = []
    passed = 0
    failures = ctx.snap.failures
    for check in checks:
        missing = sorted(check.needs & failures.keys())
        if missing:
            why = "; ".join(f"{part}: {failures[part]}" for part in missing)
            findings.append(_check_failed(check, ctx.period, why, missing))
            continue
        try:
            result = check.run(ctx)
        except Exception as exc:  # one check's bug must not stop the others (architecture.md)
            log.exception("check %s failed", check.name)
            findings.append(_check_failed(check, ctx.period, f"{type(exc).__name__}: {exc}"))
            continue
        if all(SEVERITY_RANK[f.severity] > SEVERITY_RANK["warning"] for f in result):
            passed += 1
        findings.extend(result)
    # Records left out for a malformed value fail their own subject, not the whole diagnosis
    # (once per snapshot: a re-run over an earlier period passes unreadable_records=False).
    if unreadable_records:
        findings.extend(check_unreadable_records(ctx))
    return findings, passed


def _focus_subjects(ctx: Context) -> set[str] | None:
    """The subjects a unit of work's report is about (diagnostics/loading/units.py says which checks
    run for it); None for the whole tenant (`scan`)."""
    unit, snap = ctx.snap.unit, ctx.snap
    if unit is None:
        return None
    if isinstance(unit, InvoiceUnit):
        # The invoice, and the subscriptions and contracts its usage touches.
        subs = ctx.usage_subscription_ids(unit.invoice_id)
        contracts = {ctx.subscriptions[s].contract_id for s in subs if s in ctx.subscriptions}
        return {unit.invoice_id, *subs, *(c for c in contracts if c)}
    if isinstance(unit, ExpectedInvoiceUnit):
        # The expected invoice: missing, or a gap when a later one was imported.
        return {f"{unit.provider_id}:{unit.period}"}
    if isinstance(unit, ContractUnit | ContractsUnit):
        ids = {unit.contract_id} if isinstance(unit, ContractUnit) else set(unit.contract_ids)
        return {*ids, *(s.id for s in snap.subscriptions if s.contract_id in ids)}
    # The tenant-wide checks are about subscriptions and contracts (those that could not be read too).
    unreadable = {
        r.subject_id
        for r in snap.unreadable_records
        if r.subject_id and r.subject_type in ("subscription", "billing_contract")
    }
    return {*(s.id for s in snap.subscriptions), *(c.id for c in snap.contracts), *unreadable}


def sort_key(item: Finding) -> tuple[int, bool, bool, str, str, str]:
    # Worst first; at one severity what alerts comes before what is muted, so a root cause (whose
    # severity is at least that of its symptoms, after the roll-up) always precedes its symptoms.
    return (
        SEVERITY_RANK[item.severity],
        item.muted,
        item.silenced,
        item.subject.type,
        item.subject.name,
        item.code,
    )


def build_report(
    snapshot: Snapshot,
    thresholds: Thresholds,
    extra: Sequence[Finding] = (),
    *,
    schema_map: str = "defaults",
    checks: Sequence[Check] = CHECKS,
) -> Report:
    ctx = Context(snapshot, thresholds)
    found, passed = run_checks(ctx, checks)
    related = _focus_subjects(ctx)
    findings = [
        f
        for f in roll_up(inhibit([*extra, *found]))
        # The tool's own findings always stay: a check that could not run is never hidden.
        if related is None or f.subject.type == "tenant" or f.subject.id in related
    ]
    findings.sort(key=sort_key)
    return Report(
        as_of=snapshot.as_of,
        period=snapshot.period,
        statistics=Statistics.of(findings, checks=len(checks), passed=passed),
        findings=tuple(findings),
        schema_map=schema_map,
        timelines=timelines(ctx),
    )


def needs_attention(report: Report) -> bool:
    """Exit status 1: at least one finding that alerts (neither muted nor silenced) of severity
    warning or above."""
    return any(
        not f.muted and not f.silenced and SEVERITY_RANK[f.severity] <= SEVERITY_RANK["warning"]
        for f in report.findings
    )
