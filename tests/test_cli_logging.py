"""`-v` anywhere on the command line, and the canonical log line of every run, success or failure."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from diagnostics.cli import build_parser, main

SCENARIOS = Path(__file__).resolve().parent / "scenarios"
FIXTURE = str(SCENARIOS / "inhibit_blocked_mutes_window_and_import_error.json")
FIELDS = ("period", "invoice", "outcome", "findings", "requests", "duration_s")


@pytest.mark.parametrize(
    "argv",
    [
        ["-v", "scan", "--simulate", FIXTURE],
        ["scan", "-v", "--simulate", FIXTURE],
        ["scan", "--simulate", FIXTURE, "--verbose"],
        ["--verbose", "diagnose", "G0113579246"],
        ["diagnose", "G0113579246", "-v"],
        ["demo", "-v"],
        ["schema", "verify", "-v"],
    ],
)
def test_verbose_before_or_after_the_subcommand(argv: list[str]) -> None:
    assert build_parser().parse_args(argv).verbose is True


def test_not_verbose_by_default() -> None:
    assert build_parser().parse_args(["scan"]).verbose is False


def _canonical(caplog: pytest.LogCaptureFixture) -> dict[str, str]:
    (record,) = [r for r in caplog.records if r.getMessage().startswith("diagnosis ")]
    text = record.getMessage()
    fields = dict(re.findall(r"(\w+)=(\S+)", text))
    assert tuple(fields) == FIELDS, text
    for name in FIELDS:
        assert getattr(record, f"diag_{name}", "missing") != "missing", name
    return fields


def test_the_canonical_line_on_success(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="diagnostics")
    code = main(["diagnose", "G0113579246", "--simulate", FIXTURE, "-v"])
    capsys.readouterr()
    assert code == 1
    fields = _canonical(caplog)
    assert fields["period"] == "2026-10"
    assert fields["invoice"] == "G0113579246"
    assert fields["outcome"] == "needs_attention"
    assert fields["findings"] == "3"
    assert int(fields["requests"]) >= 3
    assert float(fields["duration_s"]) > 0


def test_the_canonical_line_on_failure(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="diagnostics")
    code = main(["-v", "diagnose", "G404", "--simulate", FIXTURE])
    assert code == 2
    assert "no provider invoice" in capsys.readouterr().err
    fields = _canonical(caplog)
    assert fields["outcome"] == "failed:InvoiceNotFound"
    assert fields["invoice"] == "G404"
    assert fields["findings"] == "-"
    assert int(fields["requests"]) >= 2


def test_verbose_output_is_one_line_per_request_without_the_sdk_dumps(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    main(["scan", "--simulate", FIXTURE, "-v"])
    capsys.readouterr()
    messages = [r.getMessage() for r in caplog.records]
    assert any(re.match(r"Dataverse (GET|POST) /api/data/v9\.2/\S+ -> 200", m) for m in messages)
    assert not [
        r for r in caplog.records if r.name.startswith(("azure", "httpx")) and r.levelno < logging.WARNING
    ]
