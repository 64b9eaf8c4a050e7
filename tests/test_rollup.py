"""Severity roll-up, statistics and what the text shows of them (findings.md)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from diagnostics.catalog import TENANT, finding
from diagnostics.cli import main
from diagnostics.engine import build_report, needs_attention
from diagnostics.model import PIStatus, Report
from diagnostics.render import to_html, to_text
from diagnostics.settings import Thresholds
from tests.test_engine import invoice, snapshot

SCENARIOS = Path(__file__).resolve().parent / "scenarios"
BLOCKED_AND_EXPIRED = SCENARIOS / "inhibit_blocked_mutes_window_and_import_error.json"


def expired_import_error() -> Report:
    # Found on 20 October, Error since: the window closed on 4 November, the scan runs on the 12th.
    pi = invoice(
        status=PIStatus.ERROR,
        status_label="Error",
        message="Import failed: the service was unavailable",
        created_on=datetime(2026, 10, 20, tzinfo=UTC),
    )
    return build_report(snapshot(provider_invoices=(pi,)), Thresholds())


def test_a_root_cause_takes_the_severity_of_the_worst_finding_it_mutes_and_says_why() -> None:
    report = expired_import_error()
    (root,) = [f for f in report.findings if not f.muted]
    (window,) = [f for f in report.findings if f.muted]
    assert (root.code, window.code) == ("PI_IMPORT_ERROR", "USAGE_PULL_WINDOW_EXPIRED")
    assert root.severity == "critical"
    assert root.title.endswith("; the usage-pull window closed on 2026-11-04")
    assert root.evidence["severity_raised_from"] == "error"
    assert root.evidence["severity_raised_by"] == "USAGE_PULL_WINDOW_EXPIRED"
    assert window.muted_by == root.dedup_key
    assert report.findings[0] is root  # the root cause comes first


def test_a_root_that_is_itself_muted_passes_its_symptoms_to_its_own_root() -> None:
    pi = invoice(
        status=PIStatus.ERROR,
        status_label="Error",
        message="Import failed",
        created_on=datetime(2026, 10, 20, tzinfo=UTC),
    )
    subject = next(f.subject for f in expired_import_error().findings)
    blocked = finding(
        "US_BLOCKED_UNRESOLVED_CUSTOMER", subject, "2026-10", "Usage import blocked", {}, ["fix"]
    )
    report = build_report(snapshot(provider_invoices=(pi,)), Thresholds(), extra=(blocked,))
    muted = {f.code: f.muted_by for f in report.findings if f.muted}
    assert muted == {"PI_IMPORT_ERROR": blocked.dedup_key, "USAGE_PULL_WINDOW_EXPIRED": blocked.dedup_key}
    (root,) = [f for f in report.findings if not f.muted]
    assert root.severity == "critical"
    assert "; the usage-pull window closed on 2026-11-04" in root.title


def test_a_less_severe_symptom_changes_nothing() -> None:
    pi = invoice(status=PIStatus.ERROR, status_label="Error", message="Checksum failed. Difference: -3.5")
    report = build_report(snapshot(provider_invoices=(pi,)), Thresholds())
    root = next(f for f in report.findings if not f.muted)
    assert root.severity == "error"
    assert "severity_raised_from" not in root.evidence
    assert ";" not in root.title


def test_statistics_count_what_alerts_and_the_muted_apart() -> None:
    stats = expired_import_error().statistics
    assert stats.by_severity == {"critical": 1, "error": 0, "warning": 0, "info": 0}
    assert (stats.findings, stats.muted, stats.silenced) == (2, 1, 0)


def test_silenced_findings_are_counted_apart_and_do_not_alert() -> None:
    report = expired_import_error()
    silenced = [f.model_copy(update={"silenced": True}) if not f.muted else f for f in report.findings]
    stats = type(report.statistics).of(silenced, checks=1, passed=0)
    assert stats.by_severity["critical"] == 0
    assert (stats.muted, stats.silenced) == (1, 1)
    assert not needs_attention(report.model_copy(update={"findings": tuple(silenced), "statistics": stats}))
    assert "1 silenced" in to_text(
        report.model_copy(update={"findings": tuple(silenced), "statistics": stats})
    )


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(["scan", "--simulate", str(BLOCKED_AND_EXPIRED), *args])
    return code, capsys.readouterr().out


def test_text_prints_the_statistics_of_the_json(capsys: pytest.CaptureFixture[str]) -> None:
    code_json, out_json = _run(capsys, "--format", "json")
    code_text, text = _run(capsys)
    stats = json.loads(out_json)["statistics"]
    summary = text.splitlines()[1]
    printed = {name: int(n) for n, name in re.findall(r"(\d+) (critical|error|warning|info|muted)", summary)}
    assert printed == {**stats["by_severity"], "muted": stats["muted"]}
    assert stats["by_severity"]["critical"] == 1
    assert stats["muted"] == 2
    assert code_json == code_text == 1


def test_muted_lines_name_their_cause_in_words(capsys: pytest.CaptureFixture[str]) -> None:
    _, text = _run(capsys)
    lines = text.splitlines()
    critical = lines.index("  CRITICAL US_BLOCKED_UNRESOLVED_SUBSCRIPTION")
    assert lines[critical + 1].endswith("; the usage-pull window closed on 2026-11-24")
    muted = [i for i, line in enumerate(lines) if ", muted)" in line]
    assert len(muted) == 2
    assert all(i > critical for i in muted)  # the root cause comes first
    for i in muted:
        cause = lines[i + 1].strip()
        assert cause.startswith("explained by US_BLOCKED_UNRESOLVED_SUBSCRIPTION: Usage import blocked")
        assert "provider_invoice:" not in cause  # not a dedup key


def test_tenant_text_cannot_drive_the_terminal() -> None:
    pi = invoice(
        name="Evil\x1b[2J\x1b]8;;http://x\x07link\x1b]8;;\x07 \u202egnp.exe\nINJECTED LINE\x00",
        status=PIStatus.ERROR,
        status_label="Error",
        message="bad\x1b[31m red\r\nsecond line",
    )
    report = build_report(snapshot(provider_invoices=(pi,)), Thresholds())
    for rendered in (to_text(report), to_html(report)):
        assert "\x1b" not in rendered
        assert "\u202e" not in rendered
        assert "\x00" not in rendered
        assert not any(line.startswith("INJECTED") for line in rendered.splitlines())
    assert "Provider invoice: Evillink gnp.exe INJECTED LINE" in to_text(report)


def test_long_evidence_is_never_dropped_silently() -> None:
    archived = [f"usage-{i}" for i in range(11)]
    item = finding(
        "USAGE_ARCHIVED", TENANT, "2026-10", "t", {"ids": archived, **{f"k{i}": i for i in range(25)}}, ["s"]
    )
    report = build_report(snapshot(as_of=datetime(2026, 11, 3, tzinfo=UTC)), Thresholds(), extra=(item,))
    text = to_text(report)
    assert "usage-7 … and 3 more in the JSON" in text
    assert "… and 7 more evidence line(s) in the JSON" in text
