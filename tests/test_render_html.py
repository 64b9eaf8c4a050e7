"""The HTML report: self-contained, escaped, a timeline per provider invoice drawn from the snapshot
the checks used, and runbook links that resolve wherever the file is opened."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from diagnostics.cli import SAMPLE_TENANT, main
from diagnostics.errors import ConfigError
from diagnostics.model import ContractTimeline, InvoiceTimeline, Subject
from diagnostics.render_html import layout, to_html
from diagnostics.runbooks import default_runbook_base, runbook_url
from diagnostics.settings import load_settings
from tests.test_render import report_with_checksum_and_muted_window

AS_OF = datetime(2026, 11, 12, 9, tzinfo=UTC)


def timeline(**changes: object) -> InvoiceTimeline:
    values: dict[str, object] = {
        "subject": Subject(type="provider_invoice", id="pi-1", name="Microsoft 2026-10"),
        "provider": "Microsoft",
        "period": "2026-10",
        "period_end": date(2026, 10, 31),
        "invoice_day": date(2026, 11, 8),
        "usage_file_day": date(2026, 11, 11),
        "created_on": datetime(2026, 11, 8, 6, tzinfo=UTC),
        "pull_window_end": datetime(2026, 11, 23, 6, tzinfo=UTC),
    }
    return InvoiceTimeline.model_validate(values | changes)


def kinds(view: object) -> dict[str, list[str]]:
    return {row.label: [p.kind for p in row.points] for row in view.rows}  # type: ignore[attr-defined]


def test_a_contract_that_invoiced_before_the_usage_arrived_is_drawn_late() -> None:
    contract = ContractTimeline(
        id="c-1",
        name="Contoso – Azure",
        invoiced_at=(datetime(2026, 11, 5, 6, tzinfo=UTC), datetime(2026, 11, 11, 6, tzinfo=UTC)),
        next_invoice_date=date(2026, 12, 5),
    )
    view = layout(
        timeline(
            usage_first_synced=datetime(2026, 11, 9, 4, tzinfo=UTC),
            usage_last_synced=datetime(2026, 11, 10, 4, tzinfo=UTC),
            has_usage=True,
            contracts=(contract,),
        ),
        AS_OF,
    )
    assert kinds(view)["Contoso – Azure"] == ["invoiced-late", "invoiced-ok", "next-invoice"]
    assert view.late == 1
    assert view.headline == "1 contract invoice run(s) before the usage arrived"
    usage = next(row for row in view.rows if row.label == "Usage synced")
    [band] = usage.bands
    late, ok, _ = next(row for row in view.rows if row.contract).points
    # Drawn in order along the axis: the late run left of the usage, the good one right of it.
    assert late.x < band.x1 < ok.x


def test_without_usage_the_next_invoice_is_at_risk_and_the_window_is_drawn() -> None:
    contract = ContractTimeline(id="c-1", name="Fabrikam", next_invoice_date=date(2026, 11, 15))
    view = layout(timeline(contracts=(contract,)), AS_OF)
    assert kinds(view) == {
        "Provider invoice": ["window-end", "landed"],
        "Usage synced": [],
        "Fabrikam": ["next-risk"],
    }
    assert next(r for r in view.rows if r.label == "Usage synced").note == "no usage yet"
    assert [m.kind for m in view.markers] == ["period-end", "invoice-day", "usage-file", "now"]
    assert view.headline == "No usage yet; pull window ends 2026-11-23"


def test_an_invoice_not_yet_in_work_365_shows_when_it_was_due() -> None:
    view = layout(timeline(created_on=None, pull_window_end=None), AS_OF)
    assert view.headline == "Not in Work 365 yet (due 2026-11-08)"
    assert view.rows[0].note == "not in Work 365 yet"


def test_a_date_far_outside_the_month_is_drawn_at_the_edge_marked_clipped() -> None:
    contract = ContractTimeline(id="c", name="Yearly", next_invoice_date=date(2027, 6, 1))
    view = layout(timeline(contracts=(contract,)), AS_OF)
    [point] = next(r for r in view.rows if r.contract).points
    assert point.clipped
    assert point.x == view.plot_right


def test_runbook_links_are_absolute() -> None:
    assert runbook_url("docs/findings/PI_IMPORT_ERROR.md", "https://example.org/runbooks/") == (
        "https://example.org/runbooks/PI_IMPORT_ERROR.md"
    )
    # In Azure (App Service sets WEBSITE_HOSTNAME) the app serves the pages itself.
    assert default_runbook_base({"WEBSITE_HOSTNAME": "diag.azurewebsites.net"}) == (
        "https://diag.azurewebsites.net/api/runbook"
    )
    # In a checkout: the pages on this disk, as a file URL that exists.
    local = default_runbook_base({})
    assert local.startswith("file:///")
    assert (Path(local.removeprefix("file://")) / "PI_IMPORT_ERROR.md").is_file()


def test_the_runbook_base_setting_is_checked() -> None:
    assert load_settings({"DIAG_RUNBOOK_BASE_URL": "https://x.example/docs"}).runbook_base_url == (
        "https://x.example/docs"
    )
    with pytest.raises(ConfigError, match="RUNBOOK_BASE_URL"):
        load_settings({"DIAG_RUNBOOK_BASE_URL": "docs/findings"})


def test_the_page_is_self_contained_and_escaped() -> None:
    html = to_html(report_with_checksum_and_muted_window(), runbook_base="https://r.example/x")  # type: ignore[arg-type]
    assert "Microsoft &lt;G1&gt; &amp; co" in html
    assert "<G1>" not in html
    assert 'href="https://r.example/x/PI_CHECKSUM_MISMATCH.md"' in html
    # Nothing is fetched from elsewhere: no scripts, stylesheets or images by URL.
    assert not re.search(r"<(script|link|img)\b|url\(|@import", html)
    # The muted finding is collapsed with its cause named; the alerting one is open.
    assert re.search(
        r'<details class="finding info quiet">\s*<summary>.*muted — explained by PI_CHECKSUM_MISMATCH',
        html,
        re.S,
    )
    assert '<details class="finding error" open>' in html


def test_scan_html_of_the_sample_tenant_draws_the_late_usage(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DIAG_RUNBOOK_BASE_URL", "https://runbooks.example/findings")
    code = main(["scan", "--simulate", str(SAMPLE_TENANT), "--format", "html"])
    html = capsys.readouterr().out
    assert code == 1
    assert "1 contract invoice run(s) before the usage arrived" in html
    assert html.count('class="pt pt-invoiced-late') == 1
    assert "<b>1,312.40</b> — usage not invoiced on Adventure Works" in html
    assert 'href="https://runbooks.example/findings/USAGE_SYNCED_AFTER_CONTRACT_INVOICE.md"' in html


def test_monitor_writes_the_final_html_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "report.html"
    code = main(["monitor", "--simulate", str(SAMPLE_TENANT), "--days", "2", "--html", str(out)])
    capsys.readouterr()
    assert code in (0, 1)
    html = out.read_text(encoding="utf-8")
    assert html.startswith("<!doctype html>")
    assert "The month of each provider invoice" in html


def test_monitor_html_to_a_bad_path_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "monitor",
            "--simulate",
            str(SAMPLE_TENANT),
            "--days",
            "1",
            "--html",
            str(tmp_path / "no" / "r.html"),
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: cannot write")
    assert err.count("\n") == 1
