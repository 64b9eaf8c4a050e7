"""`schema verify` and `scan` against a simulated tenant whose names differ from the defaults."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from diagnostics.checks import CHECKS
from diagnostics.cli import main

SAMPLE = Path(__file__).resolve().parent.parent / "simulator" / "samples" / "sample-tenant.json"
RENAMES = {
    "tables": {
        "work365_usagesummary": "w365_usagesummary",
        "work365_billingschedule": "cr7a1_billingschedule",
    },
    "columns": {
        "work365_providerinvoice.work365_providerinvoice_message": "work365_statusmessage",
        "work365_subscription.work365_subscription_providersubscriptionid": "work365_subscription_azuresubscriptionid",
    },
}
RELABELS = {"work365_providerinvoice": {"Active": "Completed"}}


def tenant(tmp_path: Path, renames: dict[str, Any], relabels: dict[str, Any]) -> Path:
    fixture = json.loads(SAMPLE.read_text(encoding="utf-8"))
    fixture["dataverse"]["renames"] = renames
    fixture["dataverse"]["status_labels"] = relabels
    path = tmp_path / "renamed.json"
    path.write_text(json.dumps(fixture), encoding="utf-8")
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().out


def test_verify_names_every_difference_and_the_proposed_file_restores_the_diagnosis(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    renamed = tenant(tmp_path, RENAMES, RELABELS)
    proposal = tmp_path / "schema-map.json"
    code, out = run(
        capsys, "schema", "verify", "--simulate", str(renamed), "--format", "json", "--write", str(proposal)
    )
    assert code == 1
    differences = {
        (d["kind"], d["table"], d["column"], d["proposal"]) for d in json.loads(out)["differences"]
    }
    assert differences == {
        ("table", "work365_usagesummary", None, "w365_usagesummary"),
        ("column", "work365_usagesummary", "work365_usagesummaryid", "w365_usagesummaryid"),
        ("table", "work365_billingschedule", None, "cr7a1_billingschedule"),
        ("column", "work365_billingschedule", "work365_billingscheduleid", "cr7a1_billingscheduleid"),
        ("column", "work365_providerinvoice", "work365_providerinvoice_message", "work365_statusmessage"),
        (
            "column",
            "work365_subscription",
            "work365_subscription_providersubscriptionid",
            "work365_subscription_azuresubscriptionid",
        ),
        ("label", "work365_providerinvoice", "statuscode", "Completed"),
    }

    # Without the map the checks that read what differs do not run; the two that read none of it do.
    code, out = run(capsys, "scan", "--simulate", str(renamed), "--format", "json")
    report = json.loads(out)
    assert code == 1
    (mismatch,) = [f for f in report["findings"] if f["code"] == "SCHEMA_MISMATCH"]
    assert mismatch["evidence"]["proposed_override_file"] == json.loads(proposal.read_text())
    stopped = {c.name for c in CHECKS} - {"invoice_pulled", "period_gap"}
    assert set(mismatch["evidence"]["stopped_checks"]) == stopped
    failed = {f["evidence"]["check"] for f in report["findings"] if f["code"] == "CHECK_FAILED"}
    assert failed == stopped
    assert report["statistics"]["passed"] <= len(CHECKS) - len(stopped)
    assert {f["code"] for f in report["findings"]} <= {"SCHEMA_MISMATCH", "CHECK_FAILED", "PI_PERIOD_GAP"}

    # With the proposed map: the same diagnosis as the same tenant on the default schema.
    code_mapped, mapped = run(
        capsys, "scan", "--simulate", str(renamed), "--schema-map", str(proposal), "--format", "json"
    )
    code_default, default = run(capsys, "scan", "--simulate", str(SAMPLE), "--format", "json")
    assert code_mapped == code_default == 1
    mapped_report, default_report = json.loads(mapped), json.loads(default)
    assert mapped_report["findings"] == default_report["findings"]
    assert mapped_report["statistics"] == default_report["statistics"]
    assert mapped_report["schema_map"] == str(proposal)

    code, out = run(capsys, "schema", "verify", "--simulate", str(renamed), "--schema-map", str(proposal))
    assert code == 0
    assert "matches the environment" in out


def test_a_table_with_no_match_has_no_proposal_and_stops_the_scan(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A logical name and no display name to go by: nothing to propose, and no healthy-looking empty tenant.
    renamed = tenant(tmp_path, {"tables": {"work365_providerinvoice": "cr9_billingdoc"}}, {})
    fixture = json.loads(renamed.read_text())
    code, out = run(capsys, "scan", "--simulate", str(renamed), "--format", "json")
    assert code == 1
    report = json.loads(out)
    (mismatch,) = [f for f in report["findings"] if f["code"] == "SCHEMA_MISMATCH"]
    assert mismatch["evidence"]["differences"][0]["table"] == "work365_providerinvoice"
    assert fixture["dataverse"]["renames"]["tables"]["work365_providerinvoice"] == "cr9_billingdoc"
    # Every check that reads provider invoices is stopped, naming the missing table; the rest run.
    failed = {f["evidence"]["check"]: f for f in report["findings"] if f["code"] == "CHECK_FAILED"}
    assert set(failed) == {c.name for c in CHECKS if "provider_invoices" in c.needs}
    assert all("cr9_billingdoc" in f["evidence"]["why"] for f in failed.values())
    assert {"BILLING_SCHEDULE_ERROR", "SUB_NOT_ON_ACTIVE_CONTRACT"} <= {f["code"] for f in report["findings"]}


def test_default_schema_verifies_clean(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run(capsys, "schema", "verify", "--simulate", str(SAMPLE))
    assert code == 0
    assert "matches the environment" in out
