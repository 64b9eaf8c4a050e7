"""A living note is written when what it says changes, and only then (monitor.md, "The living note"),
read back from what the simulator recorded. Through the command (`python -m diagnostics monitor`)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from replay_support import run_monitor

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"
BLOCKED = SCENARIOS / "us_blocked_customer_unmapped.json"  # an October invoice, a customer unresolved
BLOCKED_NUMBER = "G0113579246"


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    patch = pytest.MonkeyPatch()
    patch.setenv("DIAG_STATE_FILE", str(tmp_path_factory.mktemp("state") / "state.json"))
    patch.setenv("DIAG_SCHEDULE", "0 0 7 * * *")
    patch.setenv("DIAG_GAP_LOOKBACK_MONTHS", "0")  # October is watched until November is reviewed
    yield
    patch.undo()


def _note(result: dict[str, Any], invoice_number: str) -> dict[str, Any]:
    [note] = [n for n in result["notes"] if invoice_number in n["subject"]["name"]]
    return note


def test_a_blocked_invoice_checked_and_looked_up_every_day_is_written_once(settings: None) -> None:
    # Each day the check (twice: the morning's and the pull window's re-check) hands the invoice to
    # the reference look-up; the two used to write the note in their own words, four writes a day.
    _, result = run_monitor("--simulate", str(BLOCKED), "--days", "4")
    note = _note(result, BLOCKED_NUMBER)
    assert note["writes"] == 2  # the first check, then what its look-up added
    assert [d["notes_written"] for d in result["days"]][1:] == [0, 0, 0]
    assert "What the reference look-up found:" in note["text"]
    assert "best match: Tailspin Toys (95%" in note["text"]
    assert "Account column empty" in note["text"]


@pytest.fixture(scope="module")
def month_turns(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same blocked October invoice from the 27th of November: on the 1st of December the
    period under review is November, and no planned unit visits the October invoice any more."""
    tenant = json.loads(BLOCKED.read_text(encoding="utf-8"))
    tenant["now"] = "2026-11-27T09:00:00Z"
    path = tmp_path_factory.mktemp("fixtures") / "month_turns.json"
    path.write_text(json.dumps(tenant), encoding="utf-8")
    return path


def test_a_finding_no_unit_checks_any_more_leaves_the_open_ones_once(
    settings: None, month_turns: Path
) -> None:
    _, result = run_monitor("--simulate", str(month_turns), "--days", "12")  # to the 8th of December
    note = _note(result, BLOCKED_NUMBER)
    assert note["subject_line"].startswith(
        "Usage-invoice diagnosis: no longer checked (1 open when last seen, "
    )
    assert "NO LONGER CHECKED (as last seen)" in note["text"]
    assert "US_BLOCKED_UNRESOLVED_CUSTOMER" in note["text"]
    assert (
        "Last seen 2026-11-30 07:00 UTC. The monitor stopped checking it 2026-12-05 07:00 UTC" in note["text"]
    )
    assert note["writes"] == 3  # the first check, its look-up, the sweep
    by_day = {d["date"]: d["notes_written"] for d in result["days"]}
    assert [by_day[f"2026-12-0{n}"] for n in range(1, 8)] == [0, 0, 0, 0, 1, 0, 0]
    blocked_posts = [
        (p["at"][:10], kind)
        for p in result["teams_posts"]
        for kind in ("new", "escalated", "reminded", "resolved")
        for key in p[kind]
        if key.startswith("US_BLOCKED_UNRESOLVED_CUSTOMER")
    ]
    assert blocked_posts == [("2026-11-27", "new")]  # neither reminded nor told resolved


@pytest.mark.parametrize(
    ("scenario", "subject", "dated", "counter", "report_key"),
    [
        (
            "billing_schedule_missed.json",
            "Contoso Ltd – Azure",
            "did not invoice on 2026-11-15: its schedule is still Pending",
            "Days late",
            "days_late",
        ),
        (
            "usage_pull_window_expired.json",
            BLOCKED_NUMBER,
            "found on 2026-11-09, still no usage",
            "days ago",
            "days_since_found",
        ),
        (
            "pi_stuck_populating.json",
            BLOCKED_NUMBER,
            "still Populating after its usage arrived on 2026-11-10",
            "day(s)",
            None,
        ),
    ],
)
def test_a_finding_open_for_days_states_its_date_and_is_written_once(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    scenario: str,
    subject: str,
    dated: str,
    counter: str,
    report_key: str | None,
) -> None:
    # A missed schedule (or an expired pull window, an invoice stuck Populating) stays open for
    # weeks; its count of days used to rewrite the note every day with nothing new to say.
    monkeypatch.setenv("DIAG_STATE_FILE", str(tmp_path / "state.json"))
    monkeypatch.setenv("DIAG_SCHEDULE", "0 0 7 * * *")
    _, result = run_monitor("--simulate", str(SCENARIOS / scenario), "--days", "5")
    note = _note(result, subject)
    assert note["writes"] == 1
    assert [d["notes_written"] for d in result["days"]] == [1, 0, 0, 0, 0]
    assert dated in note["text"]
    assert counter not in note["text"]
    if report_key is not None:  # the report keeps counting (findings.md): only the note says the date
        [found] = [f for f in result["open_findings"] if report_key in f["evidence"]]
        assert found["evidence"][report_key] >= 5
