"""The local replay, `python -m diagnostics monitor --simulate FIXTURE` (monitor.md): the Function
app's own functions against the simulator and the local Service Bus broker, day by day.

What is asserted is read from the command's JSON, which the replay reads back from the broker
(queue statistics, dead letters) and the simulator (notes, Teams posts, the tenant), never from the
app's bookkeeping."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from azure.servicebus import ServiceBusClient, ServiceBusMessage
from replay_support import run_monitor

from diagnostics.messages import QUEUE_INVOICE_CHECKS
from diagnostics.replay import ReplayOptions, run_replay
from diagnostics.settings import load_settings

SAME_OUTCOME = (
    "date",
    "published",
    "handled",
    "rechecks_scheduled",
    "rechecks_cancelled",
    "dead_lettered",
    "notes_written",
    "teams_posts",
    "open",
    "opened",
    "resolved",
)


def _column(result: dict[str, Any], name: str) -> list[Any]:
    return [day[name] for day in result["days"]]


def _nothing_lost(result: dict[str, Any]) -> None:
    """Every message that entered a queue was handled, dead-lettered or (a re-check) cancelled."""
    days = result["days"]
    entered = sum(d["published"] + d["rechecks_scheduled"] for d in days)
    left = sum(d["handled"] + d["dead_lettered"] + d["rechecks_cancelled"] for d in days)
    assert entered == left


def test_the_window_story_day_by_day(window_run: tuple[int, dict[str, Any]]) -> None:
    code, result = window_run
    assert result["monitor_version"] == 1
    assert (result["start"], result["end"]) == ("2026-11-09T06:00:00Z", "2026-11-13T00:00:00Z")
    assert _column(result, "date") == ["2026-11-09", "2026-11-10", "2026-11-11", "2026-11-12"]
    # Each day the timer publishes one check per unit: the two invoices and the tenant-wide checks.
    assert _column(result, "published") == [3, 3, 3, 3]
    # A re-check each day (due 13:00) for each invoice inside its window without usage: the EU
    # invoice's chain ends when its usage arrives (the 11th, 04:00: that morning's planned check
    # sees it and cancels the afternoon's re-check); the US one's when its window closes (13th,
    # 05:30: the 12th's re-check schedules none for the 13th, 13:00).
    assert _column(result, "rechecks_scheduled") == [2, 2, 1, 0]
    assert _column(result, "rechecks_cancelled") == [0, 0, 1, 0]
    # The day's planned checks plus the re-checks that came due.
    assert _column(result, "handled") == [3, 5, 4, 4]
    assert _column(result, "dead_lettered") == [0, 0, 0, 0]
    assert result["dead_letters"] == []
    _nothing_lost(result)
    assert [c["description"] for c in result["days"][2]["tenant_changes"]] == [
        "Work 365 pulls the EU invoice's usage"
    ]
    assert all(set(day["open"]) == {"critical", "error", "warning"} for day in result["days"])
    assert code in (0, 1)
    assert code == (1 if any(f["severity"] != "info" for f in result["open_findings"]) else 0)


def test_a_duplicate_delivery_changes_nothing_of_the_outcome(
    replay_env: None, window_fixture: Path, window_run: tuple[int, dict[str, Any]]
) -> None:
    _, expected = window_run
    code, result = run_monitor("--simulate", str(window_fixture), "--duplicate-rate", "0.5", "--seed", "3")
    assert sum(_column(result, "duplicates_delivered")) > 0
    for name in SAME_OUTCOME:
        assert _column(result, name) == _column(expected, name), name
    assert result["notes"] == expected["notes"]
    assert result["open_findings"] == expected["open_findings"]
    assert code == window_run[0]


def test_under_faults_every_unit_is_checked_or_dead_lettered_with_a_reason(
    replay_env: None, window_fixture: Path, window_run: tuple[int, dict[str, Any]]
) -> None:
    _, expected = window_run
    _, result = run_monitor("--simulate", str(window_fixture), "--fault-rate", "0.2", "--seed", "5")
    assert sum(_column(result, "faults_injected")) > 0
    _nothing_lost(result)
    assert _column(result, "published") == _column(expected, "published")
    for letter in result["dead_letters"]:
        assert letter["reason"]
        assert letter["description"]
    dead = sum(_column(result, "dead_lettered"))
    assert dead == len(result["dead_letters"])
    if dead == 0:
        # Nothing given up on: the same checks, the same re-checks, the same outcome.
        assert _column(result, "rechecks_scheduled") == _column(expected, "rechecks_scheduled")
        assert result["open_findings"] == expected["open_findings"]


def test_one_timer_run_and_a_poison_message(replay_env: None, window_fixture: Path) -> None:
    """One day: one check per unit through real messages; a malformed message that no planner
    would send is dead-lettered at once with a reason a person can act on."""

    def poison(connection_string: str) -> None:
        with (
            ServiceBusClient.from_connection_string(connection_string) as client,
            client.get_queue_sender(QUEUE_INVOICE_CHECKS) as sender,
        ):
            sender.send_messages(ServiceBusMessage(b"{not json", message_id="poison-1"))

    options = ReplayOptions(window_fixture, days=1)
    replay = run_replay(options, load_settings(), prepare=poison)

    [day] = replay.days
    assert (day.published, day.handled, day.rechecks_scheduled) == (3, 3, 2)
    assert day.dead_lettered == 1
    [letter] = replay.dead_letters
    assert (letter.queue, letter.message_id, letter.reason) == (
        QUEUE_INVOICE_CHECKS,
        "poison-1",
        "MalformedMessage",
    )
    assert "not JSON" in letter.description


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--days", "0"], "--days: '0' is not a number of days from 1 to 45"),
        (["--fault-rate", "1.5"], "--fault-rate: '1.5' is not a share between 0 and 1"),
        (["--duplicate-rate", "x"], "--duplicate-rate: 'x' is not a share between 0 and 1"),
    ],
)
def test_bad_options_exit_2_with_one_line(
    args: list[str], message: str, window_fixture: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from diagnostics.cli import main  # noqa: PLC0415

    with pytest.raises(SystemExit) as exit_:
        main(["monitor", "--simulate", str(window_fixture), *args])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert message in err


def test_a_bad_fixture_exits_2_and_nothing_starts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from diagnostics.cli import main  # noqa: PLC0415

    path = tmp_path / "bad.json"
    path.write_text(
        '{"fixture_version": 1, "now": "2026-11-12T09:00:00Z", '
        '"timeline": [{"at": "2026-11-01T00:00:00Z", "delete": {"account": ["x"]}}]}'
    )
    assert main(["monitor", "--simulate", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "timeline[0].at '2026-11-01T00:00:00Z' is before the fixture's now" in err
    assert main(["monitor", "--simulate", str(tmp_path / "missing.json")]) == 2
