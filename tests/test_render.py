"""Text and HTML are what a billing admin reads: grouped by subject, worst first, with next steps."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from diagnostics.engine import build_report
from diagnostics.model import PIStatus
from diagnostics.render import to_html, to_json, to_text
from diagnostics.settings import Thresholds
from tests.test_engine import invoice, snapshot


def report_with_checksum_and_muted_window() -> object:
    pi = invoice(
        status=PIStatus.ERROR,
        status_label="Error",
        name="Microsoft <G1> & co",
        message="Checksum failed. Difference: -1329.7525",
    )
    return build_report(
        snapshot(provider_invoices=(pi,), as_of=datetime(2026, 11, 12, 9, tzinfo=UTC)), Thresholds()
    )


def test_text_groups_by_subject_and_gives_the_next_step() -> None:
    text = to_text(report_with_checksum_and_muted_window())  # type: ignore[arg-type]
    lines = text.splitlines()
    assert lines[0] == "Work 365 usage-invoice diagnosis — period 2026-10, as of 2026-11-12 09:00 UTC"
    assert "1 error" in lines[1]
    assert "1 muted" in lines[1]
    assert "■ Provider invoice: Microsoft <G1> & co" in text
    assert "ERROR    PI_CHECKSUM_MISMATCH" in text
    assert "Next: 1. Find the cause of the difference" in text
    assert "enter 1330 (positive, rounded up)" in text
    assert "(info, muted) USAGE_PULL_PENDING" in text
    assert "Runbook: docs/findings/PI_CHECKSUM_MISMATCH.md" in text


def test_html_escapes_record_data() -> None:
    html = to_html(report_with_checksum_and_muted_window())  # type: ignore[arg-type]
    assert "Microsoft &lt;G1&gt; &amp; co" in html
    assert "<G1>" not in html
    assert 'docs/findings/PI_CHECKSUM_MISMATCH.md">Runbook: PI_CHECKSUM_MISMATCH</a>' in html


def test_json_is_the_report_contract() -> None:
    data = json.loads(to_json(report_with_checksum_and_muted_window()))  # type: ignore[arg-type]
    assert data["report_version"] == 1
    assert data["as_of"] == "2026-11-12T09:00:00Z"
    assert {f["code"]: f["muted"] for f in data["findings"]} == {
        "PI_CHECKSUM_MISMATCH": False,
        "USAGE_PULL_PENDING": True,
    }


def test_a_clean_report_says_so() -> None:
    healthy = build_report(snapshot(as_of=datetime(2026, 11, 3, tzinfo=UTC), providers=()), Thresholds())
    assert "Nothing found: every check passed." in to_text(healthy)
