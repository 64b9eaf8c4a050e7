"""The alert lifecycle, pure: what is posted for each finding as days pass (monitor.md, "Teams alerts")."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from diagnostics.catalog import finding
from diagnostics.lifecycle import (
    AlertSettings,
    Claim,
    Outcome,
    Silence,
    SubjectAlerts,
    advance,
    claimed,
    from_value,
    posted,
    released,
    subject_key,
    to_value,
    unchecked,
)
from diagnostics.model import Finding, Severity, Subject
from diagnostics.note import render_note

DAY0 = datetime(2026, 11, 9, 7, tzinfo=UTC)
INVOICE = Subject(type="provider_invoice", id="3a496486-0f7b-56ee-afa0-d8b3fea8006c", name="G011 2026-10")
UNIT = "pi:3a496486-0f7b-56ee-afa0-d8b3fea8006c"


def found(code: str = "PI_IMPORT_ERROR", severity: Severity | None = None, **changes: Any) -> Finding:
    item = finding(code, INVOICE, "2026-10", f"{code} title", {"message": "x"}, ["do it"], severity=severity)
    return item.model_copy(update=changes) if changes else item


def day(n: int) -> datetime:
    return DAY0 + timedelta(days=n)


def run(
    state: SubjectAlerts,
    findings: Sequence[Finding],
    at: datetime,
    *,
    unit: str = UNIT,
    silences: Sequence[Silence] = (),
    post_ok: bool = True,
    partial: bool = False,
) -> tuple[SubjectAlerts, dict[str, list[str]]]:
    """One run as the notifier does it: advance, claim, post (or fail), settle; what was posted."""
    outcome: Outcome = advance(
        state, findings, unit=unit, run="r", now=at, silences=silences, partial=partial
    )
    state = outcome.state
    told: dict[str, list[str]] = {}
    if outcome.posts:
        state = claimed(state, "r", at)
        if post_ok:
            for post in outcome.posts:
                told.setdefault(post.change, []).append(post.entry.dedup_key)
            state = posted(state, outcome.posts, at, "r")
        else:
            state = released(state, "r")
    return from_value(to_value(state)), told  # through the stored form, as between runs


def test_new_then_quiet_then_reminded_every_repeat_days() -> None:
    state = SubjectAlerts(INVOICE)
    item = found()
    state, told = run(state, [item], day(0))
    assert told == {"new": [item.dedup_key]}
    for n in range(1, 7):
        state, told = run(state, [item], day(n))
        assert told == {}, n
    state, told = run(state, [item], day(7))
    assert told == {"reminded": [item.dedup_key]}
    state, told = run(state, [item], day(8))
    assert told == {}


def test_a_severity_rise_posts_once_and_a_fall_posts_nothing() -> None:
    state, _ = run(SubjectAlerts(INVOICE), [found(severity="warning")], day(0))
    state, told = run(state, [found(severity="critical")], day(1))
    assert told == {"escalated": [found().dedup_key]}
    state, told = run(state, [found(severity="critical")], day(2))
    assert told == {}
    state, told = run(state, [found(severity="warning")], day(3))
    assert told == {}


def test_resolved_once_and_all_clear_since() -> None:
    state, _ = run(SubjectAlerts(INVOICE), [found()], day(0))
    state, told = run(state, [], day(1))
    assert told == {"resolved": [found().dedup_key]}
    assert state.all_clear_since == day(1)
    state, told = run(state, [], day(2))
    assert told == {}
    assert state.all_clear_since == day(1)
    entry = state.entries[found().dedup_key]
    assert entry.resolved_at == day(1)
    assert not entry.open


def test_a_failed_post_stays_pending_and_is_posted_once_by_the_next_run() -> None:
    state, told = run(SubjectAlerts(INVOICE), [found()], day(0), post_ok=False)
    assert told == {}
    assert state.entries[found().dedup_key].pending == "new"
    assert state.claim is None  # released: the next run may post
    state, told = run(state, [found()], day(1))
    assert told == {"new": [found().dedup_key]}
    state, told = run(state, [found()], day(2))
    assert told == {}


def test_a_claim_held_by_another_run_is_not_posted_until_it_expires() -> None:
    state = SubjectAlerts(INVOICE, claim=Claim("other", day(0)))
    outcome = advance(state, [found()], unit=UNIT, run="r", now=day(0) + timedelta(minutes=1))
    assert outcome.posts == ()  # the other worker is posting
    later = advance(state, [found()], unit=UNIT, run="r", now=day(0) + timedelta(hours=1))
    assert [p.change for p in later.posts] == ["new"]  # it died mid-post: its change is not lost


def test_info_and_muted_findings_are_never_posted_and_resolve_quietly() -> None:
    info = found("USAGE_PULL_PENDING")
    muted = found("PI_IMPORT_ERROR", muted=True, muted_by="X")
    state, told = run(SubjectAlerts(INVOICE), [info, muted], day(0))
    assert told == {}
    state, told = run(state, [], day(1))
    assert told == {}


def test_a_muted_finding_that_alerts_later_is_new_then() -> None:
    state, _ = run(SubjectAlerts(INVOICE), [found(muted=True)], day(0))
    state, told = run(state, [found()], day(1))
    assert told == {"new": [found().dedup_key]}


def test_a_silenced_finding_never_posts_until_the_silence_ends() -> None:
    item = found()
    by_key = Silence(until=date(2026, 11, 12), reason="MS ticket", dedup_key=item.dedup_key)
    by_code = Silence(until=date(2026, 11, 12), reason="MS ticket", code=item.code, subject_id=INVOICE.id)
    for silence in (by_key, by_code):
        state = SubjectAlerts(INVOICE)
        for n in range(4):  # through the 12th, inclusive
            state, told = run(state, [item], day(n), silences=[silence])
            assert told == {}, n
            assert state.entries[item.dedup_key].silenced_until == date(2026, 11, 12)
        state, told = run(state, [item], day(4), silences=[silence])
        assert told == {"new": [item.dedup_key]}


def test_a_finding_resolves_only_when_no_unit_sees_it() -> None:
    state, _ = run(SubjectAlerts(INVOICE), [found()], day(0), unit="a")
    state, told = run(state, [found()], day(0), unit="b")
    assert told == {}
    state, told = run(state, [], day(1), unit="a")
    assert told == {}  # unit b still sees it
    state, told = run(state, [], day(1), unit="b")
    assert told == {"resolved": [found().dedup_key]}


def test_a_partial_report_resolves_nothing() -> None:
    other = found("PI_CHECKSUM_MISMATCH")
    state, _ = run(SubjectAlerts(INVOICE), [found(), other], day(0))
    state, told = run(state, [other], day(1), partial=True)
    assert told == {}
    assert state.entries[found().dedup_key].open


def test_a_reappearing_finding_is_new_again_and_a_flap_before_the_resolution_is_told_is_not() -> None:
    state, _ = run(SubjectAlerts(INVOICE), [found()], day(0))
    state, _ = run(state, [], day(1))
    state, told = run(state, [found()], day(2))
    assert told == {"new": [found().dedup_key]}
    # Resolved, the post fails, then it is back: nothing was told, so nothing is new.
    state, told = run(state, [], day(3), post_ok=False)
    assert told == {}
    state, told = run(state, [found()], day(4))
    assert told == {}


def test_resolved_findings_are_forgotten_after_the_keep_days() -> None:
    state, _ = run(SubjectAlerts(INVOICE), [found()], day(0))
    state, _ = run(state, [], day(1))
    outcome = advance(
        state, [], unit=UNIT, run="r", now=day(40), settings=AlertSettings(keep_resolved_days=30)
    )
    assert outcome.state.entries == {}


def test_subject_keys_are_valid_state_keys() -> None:
    odd = Subject(type="expected_provider_invoice", id="a/b#c?d\\e:2026-10", name="x")
    key = subject_key(odd)
    assert not set("/\\#?") & set(key)
    assert subject_key(Subject(type="subscription", id="x" * 500, name="x")) != subject_key(
        Subject(type="subscription", id="x" * 499 + "y", name="x")
    )


# --- a unit no longer checked lets go of what it saw (UNIT_GRACE) --------------------------------


def test_a_finding_only_a_unit_no_longer_checked_saw_resolves_once_past_the_grace() -> None:
    item = found()
    state, told = run(SubjectAlerts(INVOICE), [item], day(0), unit="tenant:2026-10")
    assert told == {"new": [item.dedup_key]}
    # The month turned: only another unit visits the subject now, and it does not see the finding.
    for n in (1, 2, 3):  # within UNIT_GRACE (3 days): a missed day or an outage, not a fix
        state, told = run(state, [], day(n), unit="contract:c1:2026-11")
        assert told == {}, n
        assert state.entries[item.dedup_key].open
    state, told = run(state, [], day(4), unit="contract:c1:2026-11")
    assert told == {"resolved": [item.dedup_key]}
    assert state.entries[item.dedup_key].resolved_at == day(4)
    state, told = run(state, [], day(5), unit="contract:c1:2026-11")
    assert told == {}


def test_the_unit_seeing_it_again_keeps_it_open() -> None:
    item = found()
    state, _ = run(SubjectAlerts(INVOICE), [item], day(0), unit="a")
    state, _ = run(state, [], day(2), unit="b")
    state, told = run(state, [item], day(3), unit="a")  # late, but still checked and still seeing it
    assert told == {}
    for n in (4, 5, 6):
        state, told = run(state, [], day(n), unit="b")
        assert told == {}, n
    assert state.entries[item.dedup_key].units == ("a",)
    state, told = run(state, [], day(7), unit="b")  # a last saw it on day 3: more than 3 days ago
    assert told == {"resolved": [item.dedup_key]}


def test_a_finding_seen_by_the_next_months_unit_never_resolves_and_forgets_the_old_one() -> None:
    item = found()
    state, _ = run(SubjectAlerts(INVOICE), [item], day(0), unit="tenant:2026-10")
    for n in range(1, 10):
        state, told = run(state, [item], day(n), unit="tenant:2026-11")
        assert "resolved" not in told, n
    entry = state.entries[item.dedup_key]
    assert entry.open
    assert entry.units == ("tenant:2026-11",)
    assert entry.unit_seen == (("tenant:2026-11", day(9)),)


def test_a_partial_report_lets_go_of_nothing() -> None:
    item = found()
    state, _ = run(SubjectAlerts(INVOICE), [item], day(0), unit="a")
    state, told = run(state, [], day(5), unit="ref", partial=True)
    assert told == {}
    assert state.entries[item.dedup_key].units == ("a",)


def test_a_state_stored_before_the_units_times_were_kept_counts_them_at_last_seen() -> None:
    item = found()
    state, _ = run(SubjectAlerts(INVOICE), [item], day(0), unit="a")
    state, _ = run(state, [item], day(1), unit="b")
    value = to_value(state)
    for raw in value["entries"].values():
        del raw["unit_seen"]  # as an older version stored it
    old = from_value(value)
    assert old.entries[item.dedup_key].units == ("a", "b")
    state, told = run(old, [], day(4), unit="c")  # both counted at last_seen (day 1): within the grace
    assert told == {}
    state, told = run(state, [], day(5), unit="c")
    assert told == {"resolved": [item.dedup_key]}


# --- the reference look-up adds to what the check says (Entry.lookup) -----------------------------


def _blocks(findings: Sequence[Finding], text: str) -> dict[str, tuple[str, str]]:
    return {f.dedup_key: (text, f"{text}: next") for f in findings}


def test_the_look_up_adds_its_part_and_the_check_keeps_its_own() -> None:
    checked = found("US_BLOCKED_UNRESOLVED_CUSTOMER", severity="critical")
    looked = found("US_BLOCKED_UNRESOLVED_CUSTOMER", title="Blocked (looked up again)")
    state = SubjectAlerts(INVOICE)
    hashes = []
    for n in range(3):  # every day: the check, then the look-up it hands the references to
        state = advance(
            state, [checked], unit=UNIT, run="r", now=day(n), blocks=_blocks([checked], "check")
        ).state
        state = advance(
            state,
            [looked],
            unit=UNIT,
            run="r",
            now=day(n),
            blocks=_blocks([looked], "candidates"),
            partial=True,
        ).state
        state = from_value(to_value(state))
        note = render_note(state, checked_at=day(n))
        assert note is not None
        hashes.append(note.content_hash)
    entry = state.entries[checked.dedup_key]
    assert (entry.block, entry.lookup) == ("check", "candidates")
    assert (entry.severity, entry.title, entry.next_step) == ("critical", checked.title, "check: next")
    assert hashes[1:] == hashes[:-1]  # nothing new on the later days: the note stays as it is


def test_a_look_up_that_comes_after_the_check_saw_the_finding_resolve_reopens_nothing() -> None:
    item = found("US_BLOCKED_UNRESOLVED_CUSTOMER")
    state, _ = run(SubjectAlerts(INVOICE), [item], day(0))
    state, told = run(state, [], day(1))
    assert told == {"resolved": [item.dedup_key]}
    state, told = run(state, [item], day(1), partial=True)
    assert told == {}
    assert not state.entries[item.dedup_key].open


def test_a_look_up_before_the_check_told_its_findings_is_kept_for_the_check() -> None:
    item = found("US_BLOCKED_UNRESOLVED_CUSTOMER")
    state = advance(
        SubjectAlerts(INVOICE),
        [item],
        unit=UNIT,
        run="r",
        now=day(0),
        blocks=_blocks([item], "L"),
        partial=True,
    ).state
    state = advance(state, [item], unit=UNIT, run="r", now=day(0), blocks=_blocks([item], "B")).state
    entry = state.entries[item.dedup_key]
    assert (entry.block, entry.lookup) == ("B", "L")


# --- the sweep: a subject no unit visits any more (lifecycle.unchecked) ---------------------------


def test_a_finding_on_a_subject_no_unit_visits_leaves_the_open_ones_as_no_longer_checked() -> None:
    item = found()
    state, _ = run(SubjectAlerts(INVOICE), [item], day(0), unit="pi:x")
    assert unchecked(state, day(4)) is None  # within a day past UNIT_GRACE: a visit would resolve it
    swept = unchecked(state, day(4) + timedelta(minutes=1))
    assert swept is not None
    entry = from_value(to_value(swept)).entries[item.dedup_key]
    assert (entry.open, entry.unchecked, entry.unchecked_at) == (False, True, day(4) + timedelta(minutes=1))
    assert entry.resolved_at is None  # nobody saw it fixed
    assert entry.pending is None
    assert swept.all_clear_since is None
    assert unchecked(swept, day(30)) is None  # said once


def test_a_finding_no_longer_checked_is_never_reminded_and_goes_on_when_seen_again() -> None:
    item = found()
    state, _ = run(SubjectAlerts(INVOICE), [item], day(0), unit="pi:x")
    swept = unchecked(state, day(5))
    assert swept is not None
    state, told = run(swept, [], day(8), unit="pi:x", partial=True)  # a look-up visits: no reminder
    assert told == {}
    state, told = run(state, [item], day(9), unit="pi:x")  # checked again (an event, a diagnosis)
    assert told == {"reminded": [item.dedup_key]}  # told a week ago, never resolved: not "new"
    entry = state.entries[item.dedup_key]
    assert (entry.open, entry.first_seen) == (True, day(0))


def test_a_unit_visiting_a_finding_no_longer_checked_without_seeing_it_resolves_it() -> None:
    item = found()
    state, _ = run(SubjectAlerts(INVOICE), [item], day(0), unit="tenant:2026-10")
    swept = unchecked(state, day(5))
    assert swept is not None
    state, told = run(swept, [], day(6), unit="tenant:2026-11")
    assert told == {"resolved": [item.dedup_key]}
    assert not state.entries[item.dedup_key].unchecked


def test_findings_no_longer_checked_are_forgotten_after_the_keep_days() -> None:
    state, _ = run(SubjectAlerts(INVOICE), [found()], day(0))
    swept = unchecked(state, day(5))
    assert swept is not None
    outcome = advance(
        swept,
        [],
        unit="other",
        run="r",
        now=day(40),
        settings=AlertSettings(keep_resolved_days=30),
        partial=True,
    )
    assert outcome.state.entries == {}
