"""Malformed tenant data through the real command line: no input ends in "internal error".

A value no Dataverse column should hold (served by the simulator exactly as written, a row's
`"$raw"`), a Partner Center record that is not what the API documents, a fixture nested deeper than
JSON can be read: each run ends with a report (exit 0 or 1) in which the record's subject is
CHECK_FAILED, or with one line on standard error (exit 2 or 3), never a traceback.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from diagnostics.cli import main

ROOT = Path(__file__).resolve().parent.parent
BASE = ROOT / "tests" / "scenarios" / "us_blocked_currency_missing.json"


@pytest.fixture(autouse=True)
def _clean_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("DIAG_"):
            monkeypatch.delenv(name)


def _fixture(tmp_path: Path, change: Any) -> Path:
    data = json.loads(BASE.read_text(encoding="utf-8"))
    change(data)
    path = tmp_path / "tenant.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def _raw(table: str, index: int, **values: Any) -> Any:
    def change(data: dict[str, Any]) -> None:
        data["dataverse"]["rows"][table][index]["$raw"] = values

    return change


DEEP = [[[[[["six levels"]]]]]]
CASES = [
    pytest.param(_raw("annotation", 0, createdon="9999-12-31T23:59:59-05:00"), id="note date out of range"),
    pytest.param(_raw("annotation", 0, createdon="0001-01-01T00:00:00+01:00"), id="note date before year 1"),
    pytest.param(_raw("annotation", 0, documentbody=DEEP), id="note body a nested list"),
    pytest.param(
        _raw("work365_providerinvoice", 1, work365_providerinvoice_totalamount="twelve"), id="amount a word"
    ),
    pytest.param(
        _raw("work365_providerinvoice", 1, work365_providerinvoice_billingperiodend="31/10/2026"),
        id="invoice date not ISO",
    ),
    pytest.param(_raw("work365_providerinvoice", 0, statuscode="Active"), id="status a label, not a value"),
    pytest.param(_raw("work365_subscription", 0, work365_subscription_markup=float("nan")), id="markup NaN"),
    pytest.param(_raw("work365_subscription", 0, work365_subscription_markup=True), id="markup a boolean"),
    pytest.param(_raw("work365_provider", 0, work365_provider_invoiceday=1e300), id="invoice day huge"),
    pytest.param(
        _raw("work365_provideraccount", 0, work365_provideraccount_name={"a": DEEP}), id="name an object"
    ),
    pytest.param(
        _raw("work365_billingcontract", 0, work365_billingcontract_autorenew="yes"), id="flag a word"
    ),
    pytest.param(_raw("work365_usagesummary", 0, work365_usagesummary_cost=[1, 2]), id="cost a list"),
    pytest.param(_raw("invoice", 0, work365_invoice_billingdate="last Tuesday"), id="billing date a phrase"),
    pytest.param(_raw("work365_usagesummary", 0, createdon=None), id="required date missing"),
    pytest.param(
        lambda d: d["partner_center"]["invoices"][0].update(invoiceDate="9999-12-31T23:59:59-05:00"),
        id="Partner Center date out of range (the fixture is refused)",
    ),
    pytest.param(lambda d: d["dataverse"]["rows"]["invoice"].append([1, 2]), id="a row that is a list"),
    pytest.param(
        lambda d: d["partner_center"]["invoices"][1].update(totalCharges={"amount": 1}),
        id="Partner Center total an object",
    ),
]


@pytest.mark.parametrize("change", CASES)
def test_malformed_values_end_in_a_report_or_one_line(
    change: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _fixture(tmp_path, change)
    code = main(["scan", "--simulate", str(path), "--format", "json"])
    out, err = capsys.readouterr()
    assert "internal error" not in err
    if code == 2:  # what the simulator cannot serve is refused as bad input, in one line
        assert err.startswith("error: ")
        assert err.count("\n") == 1
        return
    assert code in (0, 1), err
    report = json.loads(out)
    assert report["findings"]


def test_a_malformed_record_fails_only_its_subject(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _fixture(tmp_path, _raw("annotation", 0, createdon="9999-12-31T23:59:59-05:00"))
    assert main(["scan", "--simulate", str(path), "--format", "json"]) == 1
    report = json.loads(capsys.readouterr().out)
    failed = [f for f in report["findings"] if f["code"] == "CHECK_FAILED"]
    assert [f["subject"]["type"] for f in failed] == ["provider_invoice"]
    assert failed[0]["evidence"]["records"][0]["table"] == "annotation"
    # the rest of the diagnosis ran: the message still names the blocking currency
    assert any(f["code"] == "US_BLOCKED_UNRESOLVED_CURRENCY" for f in report["findings"])


def _cli(*argv: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIAG_")}
    return subprocess.run(
        [sys.executable, "-m", "diagnostics", *argv],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_fixture_nested_too_deep_is_one_line_of_bad_input(tmp_path: Path) -> None:
    path = tmp_path / "deep.json"
    path.write_text('{"dataverse": ' + "[" * 100_000 + "]" * 100_000 + "}", encoding="utf-8")
    result = _cli("scan", "--simulate", str(path))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("error: ")
    assert "nested too deeply" in result.stderr
    assert "internal error" not in result.stderr


def test_malformed_tenant_data_through_the_command_line(tmp_path: Path) -> None:
    def change(data: dict[str, Any]) -> None:
        _raw("work365_subscription", 0, work365_subscription_markup="seventeen")(data)
        _raw("annotation", 0, createdon="9999-12-31T23:59:59-05:00")(data)
        data["partner_center"]["invoices"][0]["totalCharges"] = "n/a"

    result = _cli("scan", "--simulate", str(_fixture(tmp_path, change)), "--format", "json")
    assert result.returncode == 1, result.stderr
    assert result.stderr == ""
    codes = {f["code"] for f in json.loads(result.stdout)["findings"]}
    assert "CHECK_FAILED" in codes


def test_a_note_over_the_size_limit_is_reported_not_downloaded(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    row = "Currency,GBP,Pound Sterling,Currency could not be resolved\r\n"
    body = "Type,Id,Name,Message\r\n" + row * (6_000_000 // len(row))  # over the default 5 MB

    def change(data: dict[str, Any]) -> None:
        data["dataverse"]["rows"]["annotation"][0]["document_text"] = body

    code = main(["scan", "--simulate", str(_fixture(tmp_path, change)), "--format", "json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 1
    (unreadable,) = [f for f in report["findings"] if f["code"] == "ERRORS_FILE_UNREADABLE"]
    (note,) = unreadable["evidence"]["notes"]
    assert note["reason"] == f"too large: the file is {len(body):,} bytes, over the limit DIAG_NOTE_MAX_BYTES"
