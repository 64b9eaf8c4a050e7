"""The soak: a generated tenant followed day by day by the monitor with 20% of simulator requests
failing and half the messages delivered twice, against the same replay without faults. Nothing is
lost, nothing is said twice, the concurrency cap holds, and the diagnosis ends the same.

`make test` runs it short (150 customers, 6 days); `make soak` long (2,000 customers, a month)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from soak_support import (
    FOOTER,
    Run,
    Size,
    announced_twice_a_day,
    changes,
    early_reminders,
    final_diagnosis,
    message_ids,
    notes_by_subject,
    replay,
    size,
    soak_settings,
    summary,
    tenant,
    unsettled,
)

from diagnostics.settings import Settings
from simulator.generate import ARCHIVED, CONTRACT_INVOICED, LATE_INVOICE, MARKUP_MISSING, Generated


@dataclass(frozen=True)
class Soak:
    size: Size
    generated: Generated
    settings: Settings
    clean: Run
    faulty: Run


@pytest.fixture(scope="module")
def soak(tmp_path_factory: pytest.TempPathFactory) -> Soak:
    chosen = size()
    generated, fixture = tenant(chosen, tmp_path_factory.mktemp("soak"))
    settings = soak_settings()
    clean = replay(fixture, chosen.days, settings, faults=False)
    faulty = replay(fixture, chosen.days, settings, faults=True)
    for line in summary(chosen, clean, faulty):
        print(line)  # `make soak` shows it (pytest -s)
    return Soak(chosen, generated, settings, clean, faulty)


def test_the_faulty_run_met_faults_and_duplicate_deliveries(soak: Soak) -> None:
    days = soak.faulty.replay.days
    assert sum(d.faults_injected for d in days) > 0
    assert sum(d.duplicates_delivered for d in days) > 0


def test_the_timeline_played_out(soak: Soak) -> None:
    changes = [c.description for d in soak.clean.replay.days for c in d.changes]
    assert any("is imported" in c for c in changes)
    assert any("invoice" in c and "contract" in c for c in changes)
    assert soak.generated.events[LATE_INVOICE]
    assert soak.generated.events[CONTRACT_INVOICED]


def test_a_fixed_fault_is_not_open_at_the_end(soak: Soak) -> None:
    open_keys = {f.dedup_key for f in soak.clean.replay.findings}
    for code in (MARKUP_MISSING, ARCHIVED):
        for subject in soak.generated.fixed(code):
            assert not [k for k in open_keys if k.startswith(f"{code}:") and subject in k], (code, subject)


@pytest.mark.parametrize("run", ["clean", "faulty"])
def test_every_message_is_handled_dead_lettered_cancelled_or_still_scheduled(soak: Soak, run: str) -> None:
    replay = getattr(soak, run).replay
    assert replay.messages["invoice-checks"]
    assert unsettled(replay) == []


@pytest.mark.parametrize("run", ["clean", "faulty"])
def test_every_dead_letter_says_why(soak: Soak, run: str) -> None:
    for letter in getattr(soak, run).replay.dead_letters:
        assert letter.reason.strip(), letter
        assert letter.description.strip(), letter


def test_faults_change_no_unit_planned_or_handed_on(soak: Soak) -> None:
    assert message_ids(soak.faulty.replay) == message_ids(soak.clean.replay)


def test_each_subject_has_one_note_and_it_ends_as_without_faults(soak: Soak) -> None:
    clean, faulty = notes_by_subject(soak.clean.replay), notes_by_subject(soak.faulty.replay)
    assert all(len(ids) == 1 for ids, _, _ in clean.values())
    assert all(FOOTER in note.text for note in soak.clean.replay.notes)  # what is left out is there
    assert faulty == clean


def test_teams_announces_each_change_as_without_faults(soak: Soak) -> None:
    assert changes(soak.clean.replay)
    assert changes(soak.faulty.replay) == changes(soak.clean.replay)


@pytest.mark.parametrize("run", ["clean", "faulty"])
def test_teams_never_reminds_sooner_than_the_repeat_days(soak: Soak, run: str) -> None:
    replay = getattr(soak, run).replay
    assert early_reminders(replay, soak.settings.teams_repeat_days) == []


@pytest.mark.parametrize("run", ["clean", "faulty"])
def test_no_change_is_posted_twice_the_same_day(soak: Soak, run: str) -> None:
    assert announced_twice_a_day(getattr(soak, run).replay) == []


@pytest.mark.parametrize("run", ["clean", "faulty"])
def test_the_dataverse_concurrency_cap_is_never_exceeded(soak: Soak, run: str) -> None:
    peak = getattr(soak, run).replay.max_in_flight()
    assert 0 < peak <= soak.settings.dataverse_max_concurrency


def test_the_final_diagnosis_is_the_fault_free_one(soak: Soak) -> None:
    assert final_diagnosis(soak.faulty.replay) == final_diagnosis(soak.clean.replay)


def test_the_fixture_is_the_soaks_own(soak: Soak, tmp_path: Path) -> None:
    # The same seed gives the same tenant and timeline, so a failing soak can be replayed.
    again, _ = tenant(soak.size, tmp_path)
    assert again.fixture == soak.generated.fixture
