"""An invoice's report joined from its own unit's and its slices' (pure): every finding once, the
usage rows each slice could not read told together, muting across the parts."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from diagnostics.catalog import finding
from diagnostics.loading.units import merge
from diagnostics.model import Finding, Report, Statistics, Subject

_INVOICE = Subject(
    type="provider_invoice", id="72539cea-8446-59e2-8f7f-5863dc3ed520", name="Microsoft 2026-10"
)
_CONTRACT = Subject(type="billing_contract", id="93776782-3bd6-5bbd-8df8-f57120b91fe0", name="Contoso usage")


def _unreadable(rows: list[int]) -> Finding:
    records: list[dict[str, Any]] = [
        {"table": "work365_usagesummary", "row": r, "record_id": f"id-{r}", "reason": "markup is 'x'"}
        for r in rows
    ]
    evidence = {"check": "record_decoding", "records": records, "records_unreadable": len(rows)}
    evidence |= {"parts": ["usage_summaries"], "why": "left out"}
    title = f"{len(rows)} record(s) of {_INVOICE.name} could not be read: markup is 'x'"
    return finding("CHECK_FAILED", _INVOICE, "2026-10", title, evidence, ["fix it"])


def _report(*findings: Finding) -> Report:
    return Report(
        as_of=datetime(2026, 11, 18, 9, tzinfo=UTC),
        period="2026-10",
        statistics=Statistics.of(findings, checks=1, passed=0),
        findings=findings,
    )


def test_the_rows_each_slice_could_not_read_are_told_together() -> None:
    merged = merge(_report(), [_report(_unreadable([1, 2])), _report(_unreadable([7]))])
    [told] = merged.findings
    assert told.title == f"3 record(s) of {_INVOICE.name} could not be read: markup is 'x'"
    assert told.evidence["records_unreadable"] == 3
    assert [r["row"] for r in told.evidence["records"]] == [1, 2, 7]
    assert merged.statistics.findings == 1


def test_a_blocked_invoice_mutes_a_slice_s_at_risk_warning_and_the_checks_are_counted_once() -> None:
    blocked = finding("PI_STUCK_POPULATING", _INVOICE, "2026-10", "stuck", {}, ["wait"])
    at_risk = finding("USAGE_AT_RISK_NEXT_INVOICE", _CONTRACT, "2026-10", "at risk", {}, ["move it"])
    merged = merge(_report(blocked), [_report(at_risk), _report(at_risk)])
    assert [(f.code, f.muted) for f in merged.findings] == [
        ("PI_STUCK_POPULATING", False),
        ("USAGE_AT_RISK_NEXT_INVOICE", True),
    ]
    assert merged.statistics.checks == 10  # the provider invoice's checks
    assert merged.statistics.passed == 8  # all but invoice_state and contract_timing
