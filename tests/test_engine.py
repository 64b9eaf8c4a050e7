"""The engine on hand-built snapshots: inhibition, CHECK_FAILED, statistics, exit status."""

from __future__ import annotations

from datetime import UTC, datetime

from diagnostics.checks import CHECKS, Check
from diagnostics.checks.context import Context
from diagnostics.engine import build_report, needs_attention
from diagnostics.model import (
    Finding,
    PartnerCenterInvoice,
    PartnerCenterView,
    PIStatus,
    Provider,
    ProviderInvoice,
    ProviderKind,
    Snapshot,
)
from diagnostics.settings import Thresholds

NOW = datetime(2026, 11, 12, 9, tzinfo=UTC)
MICROSOFT = Provider(
    id="p1",
    name="Microsoft",
    type_label="Microsoft Partner Center",
    kind=ProviderKind.AUTOMATIC_USAGE,
    invoice_day=8,
)


def invoice(**changes: object) -> ProviderInvoice:
    values: dict[str, object] = {
        "id": "pi-oct",
        "name": "Microsoft G1 2026-10",
        "invoice_number": "G1",
        "provider_id": "p1",
        "invoice_date": None,
        "period_start": datetime(2026, 10, 1).date(),
        "period_end": datetime(2026, 10, 31).date(),
        "total_amount": None,
        "usage_total": None,
        "message": None,
        "currency_id": None,
        "status": PIStatus.POPULATING,
        "status_label": "Populating",
        "created_on": datetime(2026, 11, 9, tzinfo=UTC),
        "modified_on": None,
    }
    values.update(changes)
    return ProviderInvoice.model_validate(values)


def snapshot(**changes: object) -> Snapshot:
    values: dict[str, object] = {"as_of": NOW, "period": "2026-10", "providers": (MICROSOFT,)}
    values.update(changes)
    return Snapshot.model_validate(values)


def codes(findings: tuple[Finding, ...], *, muted: bool = False) -> set[str]:
    return {f.code for f in findings if f.muted == muted}


def test_empty_period_before_the_invoice_day_is_only_informational() -> None:
    report = build_report(snapshot(as_of=datetime(2026, 11, 3, tzinfo=UTC)), Thresholds())
    assert codes(report.findings) == {"PI_NOT_YET_DUE"}
    assert not needs_attention(report)


def test_missing_invoice_without_partner_center_is_unverified_never_a_delay() -> None:
    report = build_report(snapshot(), Thresholds())
    assert codes(report.findings) == {"PI_MISSING_UNVERIFIED"}
    report = build_report(
        snapshot(partner_center=PartnerCenterView(state="unreachable", reason="503")), Thresholds()
    )
    assert codes(report.findings) == {"PI_MISSING_UNVERIFIED"}
    assert needs_attention(report)


def test_checksum_mutes_the_pull_window_of_the_same_invoice() -> None:
    pi = invoice(
        status=PIStatus.ERROR, status_label="Error", message="Checksum failed. Difference: -1329.7525"
    )
    report = build_report(snapshot(provider_invoices=(pi,)), Thresholds())
    assert codes(report.findings) == {"PI_CHECKSUM_MISMATCH"}
    assert codes(report.findings, muted=True) == {"USAGE_PULL_PENDING"}
    checksum = next(f for f in report.findings if f.code == "PI_CHECKSUM_MISMATCH")
    assert checksum.severity == "error"  # after the usage-file day (11th)
    assert checksum.evidence["override_tolerance"] == 1330
    muted = next(f for f in report.findings if f.muted)
    assert muted.muted_by == checksum.dedup_key


def test_pull_window_alone_is_pending_then_closing_then_expired() -> None:
    def code_at(day: int) -> tuple[str, str]:
        report = build_report(
            snapshot(as_of=datetime(2026, 11, day, 9, tzinfo=UTC), provider_invoices=(invoice(),)),
            Thresholds(),
        )
        (only,) = report.findings
        return only.code, only.severity

    assert code_at(12) == ("USAGE_PULL_PENDING", "info")
    assert code_at(21) == ("USAGE_PULL_WINDOW_CLOSING", "warning")  # 2.6 days left of 15
    assert code_at(25) == ("USAGE_PULL_WINDOW_EXPIRED", "critical")


def test_a_part_that_could_not_be_loaded_fails_its_checks_not_passes_them() -> None:
    report = build_report(snapshot(failures={"notes": "403 Forbidden: no read access to Note"}), Thresholds())
    failed = [f for f in report.findings if f.code == "CHECK_FAILED"]
    needing_notes = {c.name for c in CHECKS if "notes" in c.needs}
    assert {f.evidence["check"] for f in failed} == needing_notes
    assert all("403" in f.evidence["why"] for f in failed)
    assert report.statistics.checks == len(CHECKS)
    assert report.statistics.passed <= len(CHECKS) - len(needing_notes)


def test_a_check_that_raises_becomes_check_failed_and_the_others_still_run() -> None:
    def broken(ctx: Context) -> list[Finding]:
        raise ZeroDivisionError("division by zero")

    checks = (Check("broken", frozenset(), broken), *CHECKS)
    report = build_report(snapshot(), Thresholds(), checks=checks)
    assert {"CHECK_FAILED", "PI_MISSING_UNVERIFIED"} <= codes(report.findings)
    failed = next(f for f in report.findings if f.code == "CHECK_FAILED")
    assert "ZeroDivisionError" in failed.evidence["why"]


def test_statistics_count_findings_by_severity_and_findings_are_worst_first() -> None:
    pi = invoice(created_on=datetime(2026, 10, 20, tzinfo=UTC))  # window expired: critical
    report = build_report(snapshot(provider_invoices=(pi,)), Thresholds())
    severities = [f.severity for f in report.findings]
    assert severities == sorted(severities, key=["critical", "error", "warning", "info"].index)
    assert sum(report.statistics.by_severity.values()) == report.statistics.findings == len(report.findings)


def pc_invoice(id_: str, invoice_type: str, start: datetime, published: datetime) -> PartnerCenterInvoice:
    return PartnerCenterInvoice(
        id=id_,
        invoice_date=published,
        period_start=start,
        period_end=None,
        total_charges=None,
        currency_code="USD",
        invoice_type=invoice_type,
        document_type="Invoice",
    )


def test_a_legacy_recurring_invoice_is_not_the_usage_invoice_microsoft_owes() -> None:
    september = pc_invoice(
        "G0009", "OneTime", datetime(2026, 9, 1, tzinfo=UTC), datetime(2026, 10, 8, tzinfo=UTC)
    )
    legacy_october = pc_invoice(
        "D0010", "Recurring", datetime(2026, 10, 3, tzinfo=UTC), datetime(2026, 11, 3, tzinfo=UTC)
    )
    view = PartnerCenterView(state="ok", invoices=(september, legacy_october))
    report = build_report(snapshot(partner_center=view), Thresholds())
    assert codes(report.findings) == {"PI_MISSING_MICROSOFT_DELAY"}

    october = pc_invoice(
        "G0010", "OneTime", datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 11, 8, tzinfo=UTC)
    )
    view = PartnerCenterView(state="ok", invoices=(september, legacy_october, october))
    (missing,) = build_report(snapshot(partner_center=view), Thresholds()).findings
    assert missing.code == "PI_MISSING_NOT_SYNCED"
    assert missing.evidence["partner_center_invoice"] == "G0010"
