"""The living notes and the Teams posts of the replay (monitor.md, "The living note", "Teams alerts"),
read back from what the simulator recorded: the annotations it holds and the posts its Teams sink
received. Through the command (`python -m diagnostics monitor ... --format json`)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from alerts_fixture import alerts_tenant
from replay_support import run_monitor

from diagnostics.cli import main
from diagnostics.replay import ReplayOptions, run_replay, to_json
from diagnostics.settings import load_settings

DAYS = "10"  # the 9th to the 18th of November
ENV = {
    "DIAG_PULL_WINDOW_DAYS": "15",
    "DIAG_GAP_LOOKBACK_MONTHS": "0",
    "DIAG_SCHEDULE": "0 0 7 * * *",
}


@pytest.fixture(scope="module")
def alerts_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The settings of these replays, and a state file of their own (where silences are kept)."""
    state = tmp_path_factory.mktemp("state") / "state.json"
    patch = pytest.MonkeyPatch()
    for name, value in {**ENV, "DIAG_STATE_FILE": str(state)}.items():
        patch.setenv(name, value)
    yield state
    patch.undo()


@pytest.fixture(scope="module")
def alerts_fixture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("fixtures") / "alerts.json"
    path.write_text(json.dumps(alerts_tenant(), indent=1), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def alerts_run(alerts_env: Path, alerts_fixture: Path) -> dict[str, Any]:
    return run_monitor("--simulate", str(alerts_fixture), "--days", DAYS)[1]


def _key(result: dict[str, Any], code: str) -> str:
    keys = {
        k for post in result["teams_posts"] for kind in ("new",) for k in post[kind] if k.startswith(code)
    }
    [key] = keys
    return key


def _told(result: dict[str, Any], key: str) -> list[tuple[str, str]]:
    """(day, change) of every post that announced this finding."""
    return [
        (post["at"][:10], kind)
        for post in result["teams_posts"]
        for kind in ("new", "escalated", "reminded", "resolved")
        if key in post[kind]
    ]


def _note(result: dict[str, Any], invoice_number: str) -> dict[str, Any]:
    [note] = [n for n in result["notes"] if invoice_number in n["subject"]["name"]]
    return note


def test_unchanged_days_give_one_post_and_one_note_write(alerts_run: dict[str, Any]) -> None:
    key = _key(alerts_run, "PI_IMPORT_ERROR")
    # Seven days in Error: one post the first day, then nothing until the reminder a week later.
    assert _told(alerts_run, key) == [("2026-11-09", "new"), ("2026-11-16", "reminded")]
    note = _note(alerts_run, "G0000000004")
    assert note["writes"] == 1
    assert len(note["annotation_ids"]) == 1
    assert note["subject"]["type"] == "provider_invoice"
    assert note["subject_line"] == "Usage-invoice diagnosis: 1 open (error)"
    assert "(401) Unauthorized" in note["text"]
    assert re.search(r"Runbook: (file|https)://\S+/PI_IMPORT_ERROR\.md", note["text"])


def test_a_severity_rise_posts_once_and_the_fix_posts_resolved_and_all_clear(
    alerts_run: dict[str, Any],
) -> None:
    key = _key(alerts_run, "PI_CHECKSUM_MISMATCH")
    assert _told(alerts_run, key) == [
        ("2026-11-09", "new"),  # a warning before the usage-file day
        ("2026-11-11", "escalated"),  # an error from the usage-file day on
        ("2026-11-15", "resolved"),  # the override was entered and the usage imported
    ]
    note = _note(alerts_run, "G0000000003")
    assert note["writes"] == 3  # new, risen, all clear; nothing on the unchanged days between
    assert note["subject_line"] == "Usage-invoice diagnosis: all clear"
    assert "All clear since 2026-11-15 07:00 UTC." in note["text"]
    assert "RESOLVED\n- " in note["text"]
    assert "(PI_CHECKSUM_MISMATCH) — resolved 2026-11-15 07:00 UTC" in note["text"]


def test_each_day_counts_the_posts_and_notes_the_simulator_received(alerts_run: dict[str, Any]) -> None:
    assert sum(d["teams_posts"] for d in alerts_run["days"]) == len(alerts_run["teams_posts"])
    assert sum(d["notes_written"] for d in alerts_run["days"]) == sum(
        n["writes"] for n in alerts_run["notes"]
    )
    quiet = [d["date"] for d in alerts_run["days"] if d["teams_posts"] == 0 and d["notes_written"] == 0]
    assert quiet == ["2026-11-10", "2026-11-12", "2026-11-13", "2026-11-14", "2026-11-17", "2026-11-18"]
    assert all(p["bytes"] < 28_000 for p in alerts_run["teams_posts"])


def _announced(result: dict[str, Any]) -> list[tuple[str, str, str]]:
    return sorted(
        (p["at"], kind, key)
        for p in result["teams_posts"]
        for kind in ("new", "escalated", "reminded", "resolved")
        for key in p[kind]
    )


def _notes(result: dict[str, Any]) -> list[tuple[str, tuple[str, ...], str, str]]:
    return [
        (n["subject"]["id"], tuple(n["annotation_ids"]), n["subject_line"], n["text"])
        for n in result["notes"]
    ]


def test_duplicates_and_faults_give_the_same_posts_and_notes(
    alerts_run: dict[str, Any], alerts_fixture: Path
) -> None:
    _, result = run_monitor(
        "--simulate",
        str(alerts_fixture),
        "--days",
        DAYS,
        "--duplicate-rate",
        "0.5",
        "--fault-rate",
        "0.2",
        "--seed",
        "5",
    )
    assert sum(d["duplicates_delivered"] for d in result["days"]) > 0
    assert sum(d["faults_injected"] for d in result["days"]) > 0
    assert result["dead_letters"] == []
    # None duplicated, none lost: the same announcements and the same notes, one note per subject.
    assert _announced(result) == _announced(alerts_run)
    assert _notes(result) == _notes(alerts_run)


def test_a_failed_teams_post_is_posted_the_next_day_once(alerts_env: Path, alerts_fixture: Path) -> None:
    options = ReplayOptions(alerts_fixture, days=int(DAYS), teams_down=(date(2026, 11, 11),))
    result = json.loads(to_json(run_replay(options, load_settings())))
    [escalated] = [k for p in result["teams_posts"] for k in p["escalated"]]
    assert _told(result, escalated) == [
        ("2026-11-09", "new"),
        ("2026-11-12", "escalated"),  # the sink was down on the 11th: posted by the next run
        ("2026-11-15", "resolved"),
    ]
    assert [d["teams_posts"] for d in result["days"]][2:4] == [0, 1]


def test_a_silenced_finding_never_posts_and_stays_in_the_note_marked(
    alerts_env: Path, alerts_run: dict[str, Any], alerts_fixture: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = _key(alerts_run, "PI_IMPORT_ERROR")
    code = main(["silence", "add", "--dedup-key", key, "--until", "2099-12-31", "--reason", "MS ticket 7731"])
    assert code == 0
    assert "MS ticket 7731" in capsys.readouterr().out
    try:
        _, result = run_monitor("--simulate", str(alerts_fixture), "--days", DAYS)
    finally:
        assert main(["silence", "remove", "--dedup-key", key]) == 0
    assert _told(result, key) == []
    note = _note(result, "G0000000004")
    assert "[ERROR, silenced until 2099-12-31]" in note["text"]
    assert note["subject_line"] == "Usage-invoice diagnosis: all clear (1 silenced)"
    assert key not in {f["dedup_key"] for f in result["open_findings"]}
    # The rest is told as before.
    assert [a for a in _announced(alerts_run) if a[2] != key] == _announced(result)
