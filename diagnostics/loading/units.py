"""Which checks run for which unit of work, for which periods, and what they report (one place).

A unit's report holds the findings of its checks about its subjects (engine._focus_subjects) plus
the tool's own findings. An invoice too large for one unit is told in parts: its own unit (the
"head", which counted its usage by slices) tells of the invoice itself, each slice of its usage
(`InvoiceUnit.customers`) of its customers' subscriptions and contracts; `merge` joins them. `review` runs a snapshot's checks for its period and, for the checks that
are about a period's invoices and usage, for every earlier period still open (findings.md, "Open
periods"), so that a problem does not drop out of the report because the month turned.
"""

from __future__ import annotations

from collections.abc import Sequence

from diagnostics.checks import CHECKS, Check
from diagnostics.checks.context import Context
from diagnostics.checks.records import _MAX_LISTED
from diagnostics.engine import build_report, inhibit, roll_up, run_checks, sort_key
from diagnostics.messages import (
    ContractsUnit,
    ContractUnit,
    ExpectedInvoiceUnit,
    InvoiceUnit,
    TenantPeriodUnit,
    Unit,
)
from diagnostics.model import SEVERITY_RANK, Finding, InvoiceTimeline, Report, Snapshot, Statistics
from diagnostics.periods import add_months, period_under_review
from diagnostics.settings import Thresholds
from diagnostics.timeline import MAX_CONTRACTS

# check -> the codes it reports (findings.md sections 1-5). CHECK_FAILED comes from any of them.
CHECK_CODES: dict[str, frozenset[str]] = {
    "invoice_pulled": frozenset(
        {"PI_NOT_YET_DUE", "PI_MISSING_MICROSOFT_DELAY", "PI_MISSING_NOT_SYNCED", "PI_MISSING_UNVERIFIED"}
    ),
    "unresolved_references": frozenset(
        {
            "US_BLOCKED_UNRESOLVED_CUSTOMER",
            "US_BLOCKED_UNRESOLVED_SUBSCRIPTION",
            "US_BLOCKED_UNRESOLVED_CURRENCY",
            "REFERENCES_RESOLVED_REIMPORT_NEEDED",
            "US_NOT_SYNCED_AFTER_RESOLUTION",
            "ERRORS_FILE_UNREADABLE",
        }
    ),
    "write_in_products": frozenset({"SUB_WRITE_IN_PRODUCT"}),
    "contract_timing": frozenset(
        {
            "USAGE_SYNCED_AFTER_CONTRACT_INVOICE",
            "CONTRACT_INVOICE_DATE_TOO_EARLY",
            "USAGE_AT_RISK_NEXT_INVOICE",
        }
    ),
    "invoice_state": frozenset(
        {
            "USAGE_PULL_PENDING",
            "USAGE_PULL_WINDOW_CLOSING",
            "USAGE_PULL_WINDOW_EXPIRED",
            "PI_STUCK_POPULATING",
            "PI_MANUAL_NOT_ACTIVATED",
            "PI_CHECKSUM_MISMATCH",
            "PI_IMPORT_ERROR",
        }
    ),
    "zero_placeholder": frozenset({"PI_ZERO_PLACEHOLDER"}),
    "period_gap": frozenset({"PI_PERIOD_GAP"}),
    "markup": frozenset({"SUB_MARKUP_MISSING", "SUB_MARKUP_CHANGED_AFTER_IMPORT"}),
    "archived_usage": frozenset({"USAGE_ARCHIVED"}),
    "billing_schedules": frozenset({"BILLING_SCHEDULE_ERROR", "BILLING_SCHEDULE_MISSED"}),
    "contract_expired": frozenset({"CONTRACT_EXPIRED_WITH_USAGE"}),
    "subscription_contracts": frozenset({"SUB_NOT_ON_ACTIVE_CONTRACT"}),
}

_ALL = tuple(c.name for c in CHECKS)
_TENANT_WIDE = ("markup", "archived_usage", "billing_schedules", "contract_expired", "subscription_contracts")

# unit kind -> the checks its handler runs ("tenant" is `scan`: every check over the tenant).
UNIT_CHECKS: dict[str, tuple[str, ...]] = {
    "tenant": _ALL,
    # Everything about the invoice and the subscriptions and contracts its usage touches; nothing
    # is missing when the invoice exists, and gaps are the expected invoice's business.
    "provider_invoice": tuple(c for c in _ALL if c not in ("invoice_pulled", "period_gap")),
    "expected_invoice": ("invoice_pulled", "period_gap"),
    # Section 3 and the contract and subscription checks of section 5, for one contract.
    "billing_contract": ("contract_timing", *_TENANT_WIDE),
    # The planner's batch of contracts: the same checks, the report told per contract.
    "billing_contracts": ("contract_timing", *_TENANT_WIDE),
    # A subscription without a product is found on its record too, with no invoice to name it.
    "tenant_period": (*_TENANT_WIDE, "write_in_products"),
}

# Checks that look at one period's invoices and usage: run again for each earlier open period.
# The others (missing invoices and gaps, schedules, contracts) read state that has no period, or
# look back over the periods themselves.
PER_OPEN_PERIOD = frozenset(
    {
        "unresolved_references",
        "write_in_products",
        "contract_timing",
        "invoice_state",
        "zero_placeholder",
        "markup",
        "archived_usage",
        "contract_expired",
    }
)
# Codes about what comes next, or about a record rather than a period: reported for the period
# under review only, never again for an earlier one.
_NOT_FOR_EARLIER = frozenset({"CONTRACT_INVOICE_DATE_TOO_EARLY", "USAGE_AT_RISK_NEXT_INVOICE"})

# The checks of a provider invoice that tell of the invoice itself (its state, its placeholder, its
# import's references): an invoice cut into slices has them run by its own unit, on its counted
# totals, and every other check by its slices.
INVOICE_LEVEL = ("invoice_state", "zero_placeholder", "unresolved_references")

_BY_NAME = {c.name: c for c in CHECKS}


def unit_kind(unit: Unit | None) -> str:
    return "tenant" if unit is None else unit.kind


def _check_names(unit: Unit | None, *, sliced: bool = False) -> tuple[str, ...]:
    names = UNIT_CHECKS[unit_kind(unit)]
    # A slice runs the invoice-level checks too, though it does not tell their findings (its own
    # unit does): they are the roots that mute its contracts' symptoms (a stuck or mismatched
    # invoice mutes the at-risk warnings), as in the invoice told in one unit.
    if isinstance(unit, InvoiceUnit) and unit.customers is None and sliced:
        return tuple(n for n in names if n in INVOICE_LEVEL)
    return names


def checks_for(unit: Unit | None, *, sliced: bool = False) -> tuple[Check, ...]:
    """The unit's checks; `sliced`: of an invoice's own unit whose usage was cut into slices."""
    return tuple(_BY_NAME[name] for name in _check_names(unit, sliced=sliced))


def codes_for(unit: Unit | None, *, sliced: bool = False) -> frozenset[str]:
    """Every code the unit's report may hold (besides the tool's own)."""
    return frozenset(code for name in _check_names(unit, sliced=sliced) for code in CHECK_CODES[name])


def _earlier_findings(ctx: Context, checks: Sequence[Check]) -> list[Finding]:
    """The per-period checks for each earlier open period, without what the period under review
    reports anyway: a subscription without a product is found directly, and a check that could not
    run for want of data fails the same way for every period."""
    directly = {s.id for s in ctx.usage_subscriptions if s.product_id is None}
    repeated = [c for c in checks if c.name in PER_OPEN_PERIOD and not c.needs & ctx.snap.failures.keys()]
    out: list[Finding] = []
    for period in ctx.snap.open_periods:
        earlier = ctx.snap.model_copy(update={"period": period})
        found, _ = run_checks(Context(earlier, ctx.t), repeated, unreadable_records=False)
        out.extend(
            f
            for f in found
            if f.code not in _NOT_FOR_EARLIER
            and not (f.code == "SUB_WRITE_IN_PRODUCT" and f.subject.id in directly)
        )
    return out


def _still_missing(ctx: Context, checks: Sequence[Check]) -> list[Finding]:
    """Expected invoices of earlier periods that never came, with nothing imported after them (so no
    PI_PERIOD_GAP names them): a missing October invoice is still reported on 1 December."""
    pulled = [c for c in checks if c.name == "invoice_pulled" and not c.needs & ctx.snap.failures.keys()]
    if not pulled:
        return []
    out: list[Finding] = []
    for back in range(1, ctx.t.gap_lookback_months + 1):
        period = add_months(ctx.period, -back)
        found, _ = run_checks(Context(ctx.snap.model_copy(update={"period": period}), ctx.t), pulled)
        for f in found:
            provider = f.subject.id.rpartition(":")[0]
            billed = {p for (pid, p) in ctx.invoices_by_provider_period if pid == provider}
            # Invoices before it show the provider was billing then; one after it is a gap instead.
            if any(p < period for p in billed) and not any(p > period for p in billed):
                out.append(f)
    return out


def review(
    snapshot: Snapshot,
    thresholds: Thresholds,
    extra: Sequence[Finding] = (),
    *,
    schema_map: str = "defaults",
) -> Report:
    """The report of the snapshot's unit: its checks for its period and the earlier open periods.

    An invoice cut into slices: its own unit reports only of the invoice (and the tool's own
    findings), a slice never of the invoice (its own unit does)."""
    checks = checks_for(snapshot.unit, sliced=bool(snapshot.usage_slices))
    ctx = Context(snapshot, thresholds)
    earlier = _earlier_findings(ctx, checks) if snapshot.open_periods else []
    if snapshot.unit is None or isinstance(snapshot.unit, ExpectedInvoiceUnit):
        earlier += _still_missing(ctx, checks)
    report = _told_by_its_part(
        snapshot, build_report(snapshot, thresholds, [*extra, *earlier], schema_map=schema_map, checks=checks)
    )
    if snapshot.period >= period_under_review(snapshot.as_of):
        return report
    # A unit of an earlier period (an invoice still open from August, say): its forward-looking
    # warnings belong to the period under review only, as in the scan — otherwise one contract's
    # configuration would be reported (and posted to Teams) once per open period.
    kept = [f for f in report.findings if f.code not in _NOT_FOR_EARLIER]
    if len(kept) == len(report.findings):
        return report
    statistics = Statistics.of(kept, checks=report.statistics.checks, passed=report.statistics.passed)
    return report.model_copy(update={"findings": tuple(kept), "statistics": statistics})


def _told_by_its_part(snapshot: Snapshot, report: Report) -> Report:
    """Of an invoice cut into slices, what its part tells: the own unit, the invoice and the tool's
    own findings; a slice, everything but the invoice, save the usage rows of the invoice it could
    not read (CHECK_FAILED: no other part reads them)."""
    unit = snapshot.unit
    if not isinstance(unit, InvoiceUnit) or (unit.customers is None and not snapshot.usage_slices):
        return report
    if unit.customers is None:
        kept = [f for f in report.findings if f.subject.type == "tenant" or f.subject.id == unit.invoice_id]
    else:
        kept = [f for f in report.findings if f.subject.id != unit.invoice_id or _unread_usage(f)]
    if len(kept) == len(report.findings):
        return report
    statistics = Statistics.of(kept, checks=report.statistics.checks, passed=report.statistics.passed)
    return report.model_copy(update={"findings": tuple(kept), "statistics": statistics})


def _unread_usage(item: Finding) -> bool:
    """Usage rows of the invoice a slice could not read (no other part reads them)."""
    return item.code == "CHECK_FAILED" and item.evidence.get("check") == "record_decoding"


def merge(head: Report, parts: Sequence[Report]) -> Report:
    """An invoice's report from its own unit's and its slices': every finding once (the tool's own
    too), muting and roll-up across them as in one report (a blocked invoice mutes a contract's
    at-risk warning whichever part found it), the statistics of the union (a check ran in each
    part it belongs to: it passed when no part found it something to act on or failed it)."""
    findings: dict[str, Finding] = {}
    for report in (head, *parts):
        for item in report.findings:
            found = findings.get(item.dedup_key)
            findings[item.dedup_key] = item if found is None else _joined(found, item)
    joined = roll_up(inhibit(list(findings.values())))
    joined.sort(key=sort_key)
    names = UNIT_CHECKS["provider_invoice"]
    acted = {
        name
        for f in joined
        if SEVERITY_RANK[f.severity] <= SEVERITY_RANK["warning"] or f.code == "CHECK_FAILED"
        for name in names
        if f.code in CHECK_CODES[name] or f.evidence.get("check") == name
    }
    statistics = Statistics.of(joined, checks=len(names), passed=len(names) - len(acted))
    timelines = tuple(_with_contracts(t, parts) for t in head.timelines)
    return head.model_copy(
        update={"findings": tuple(joined), "statistics": statistics, "timelines": timelines}
    )


def _joined(first: Finding, other: Finding) -> Finding:
    """One finding told by two parts: the records each could not read, together (the parts read
    different rows); anything else is the same finding, told once."""
    if first.evidence.get("check") != "record_decoding" or other.evidence.get("check") != "record_decoding":
        return first
    total = int(first.evidence["records_unreadable"]) + int(other.evidence["records_unreadable"])
    reason = first.title.partition(" could not be read: ")[2]
    evidence = first.evidence | {
        "records": [*first.evidence["records"], *other.evidence["records"]][:_MAX_LISTED],
        "records_unreadable": total,
        "parts": sorted({*first.evidence["parts"], *other.evidence["parts"]}),
    }
    title = f"{total} record(s) of {first.subject.name} could not be read: {reason}"
    return first.model_copy(update={"title": title, "evidence": evidence})


def _with_contracts(timeline: InvoiceTimeline, parts: Sequence[Report]) -> InvoiceTimeline:
    """The own unit's timeline of the invoice (its counted usage) with the contracts its slices
    drew: each slice knows the contracts of its customers."""
    same = [t for part in parts for t in part.timelines if t.subject == timeline.subject]
    if not same:
        return timeline
    drawn = {c.id: c for t in (timeline, *same) for c in t.contracts}
    ordered = sorted(drawn.values(), key=lambda c: (c.name, c.id))
    more = timeline.more_contracts + sum(t.more_contracts for t in same)
    return timeline.model_copy(
        update={
            "contracts": tuple(ordered[:MAX_CONTRACTS]),
            "more_contracts": more + max(0, len(ordered) - MAX_CONTRACTS),
        }
    )


def per_contract(snapshot: Snapshot, report: Report) -> list[tuple[ContractUnit, Report]]:
    """A batch's report as its contracts' own: each contract's findings (the contract and its
    subscriptions, the focus a `ContractUnit` has) and the tool's own findings, under the
    `ContractUnit` whose key the notes and alerts of that contract are kept by. A unit that is not
    a batch is returned as it is, if it is a contract."""
    unit = snapshot.unit
    if isinstance(unit, ContractUnit):
        return [(unit, report)]
    if not isinstance(unit, ContractsUnit):
        return []
    subjects: dict[str, set[str]] = {c: {c} for c in unit.contract_ids}
    for sub in snapshot.subscriptions:
        if sub.contract_id in subjects:
            subjects[sub.contract_id].add(sub.id)
    out = []
    for contract in unit.contracts():
        focus = subjects[contract.contract_id]
        # The tool's own findings (a check that could not run) are every contract's, as they are
        # in each contract's own report.
        kept = [f for f in report.findings if f.subject.type == "tenant" or f.subject.id in focus]
        statistics = Statistics.of(kept, checks=report.statistics.checks, passed=report.statistics.passed)
        out.append((contract, report.model_copy(update={"findings": tuple(kept), "statistics": statistics})))
    return out


__all__ = [
    "CHECK_CODES",
    "INVOICE_LEVEL",
    "PER_OPEN_PERIOD",
    "UNIT_CHECKS",
    "ContractUnit",
    "ContractsUnit",
    "ExpectedInvoiceUnit",
    "InvoiceUnit",
    "TenantPeriodUnit",
    "checks_for",
    "codes_for",
    "merge",
    "per_contract",
    "review",
]
