"""The alert lifecycle: what a person is told about each finding, and when (monitor.md, "Teams alerts").

Pure: given one subject's stored alert state, the findings one unit of work found for it now, the
clock and the settings, `advance` returns the subject's new state and what is to be posted. The
notifier (diagnostics/app/notify.py) reads and writes the state (kind "alert", one item per subject,
ETags) and posts; nothing here does I/O.

A finding (by `dedup_key`) is posted when it is **new**, when its severity **rises**, when it
**resolves**, and otherwise **reminded** at most every `repeat_days`. Info, muted and silenced
findings are never posted. A finding resolves when no unit of work sees it any more: a unit that
stops seeing it lets go of it, and so does a unit that has not seen it for more than `UNIT_GRACE`
(it is no longer checked: last month's tenant unit, an invoice past its pull window, a contract
that has invoiced), so that another unit visiting the subject resolves it. When no unit visits the
subject either, the daily sweep (`unchecked`) takes the finding out of the open ones as **no
longer checked**: not resolved (nobody saw it fixed), not reminded, said once in the note. A change
stays *pending* until a post of it succeeds, so a failed post is posted by the next run; a claim on
the subject (written with the ETag before posting) keeps two workers from both posting it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any, Literal

from diagnostics.model import SEVERITY_RANK, Finding, Subject

ALERT = "alert"  # state kind: one item per subject
SILENCE = "silence"  # state kind: one item per silence
Change = Literal["new", "escalated", "reminded", "resolved"]
CHANGES: tuple[Change, ...] = ("new", "escalated", "reminded", "resolved")
_FORBIDDEN = str.maketrans(dict.fromkeys("/\\#?", "_"))
# A unit that has not seen a finding for longer than this no longer holds it (it is no longer
# planned). Every planned unit is checked daily, so three days ride out a missed day or a broker
# outage without a spurious resolve-then-reopen.
UNIT_GRACE = timedelta(days=3)
# A finding no unit has seen for this long is on a subject no unit visits any more either: a
# visiting unit would have resolved it a day earlier (`_gone`), so the sweep takes only the rest.
SWEEP_AFTER = UNIT_GRACE + timedelta(days=1)


@dataclass(frozen=True)
class AlertSettings:
    repeat_days: int = 7  # DIAG_TEAMS_REPEAT_DAYS
    keep_resolved_days: int = 30  # a resolved finding stays in the note (and the state) this long
    claim_minutes: int = 15  # a claim older than this was left by a worker that died mid-post


def subject_key(subject: Subject) -> str:
    """The state key of a subject: readable, without the characters Table Storage refuses."""
    text = f"{subject.type}:{subject.id}".translate(_FORBIDDEN)
    if len(text) <= 200:
        return text
    return f"{subject.type}:{hashlib.sha256(subject.id.encode()).hexdigest()}"


# --- silences ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Silence:
    """A person's silence: one dedup key, or one code on one subject, until a day (inclusive)."""

    until: date
    reason: str
    dedup_key: str | None = None
    code: str | None = None
    subject_id: str | None = None
    created_at: datetime | None = None

    def __post_init__(self) -> None:
        if (self.dedup_key is None) == (self.code is None or self.subject_id is None):
            raise ValueError("a silence names a dedup key, or a code and a subject id (not both)")

    @property
    def key(self) -> str:
        text = f"dedup:{self.dedup_key}" if self.dedup_key else f"code:{self.code}:{self.subject_id}"
        return text.translate(_FORBIDDEN)

    def covers(self, finding: Finding, today: date) -> bool:
        if today > self.until:
            return False
        if self.dedup_key is not None:
            return finding.dedup_key == self.dedup_key
        return finding.code == self.code and finding.subject.id == self.subject_id

    def to_value(self) -> dict[str, Any]:
        return {
            "until": self.until.isoformat(),
            "reason": self.reason,
            "dedup_key": self.dedup_key,
            "code": self.code,
            "subject_id": self.subject_id,
            "created_at": self.created_at.isoformat() if self.created_at else None,
        }

    @classmethod
    def from_value(cls, value: Mapping[str, Any]) -> Silence:
        created = value.get("created_at")
        return cls(
            until=date.fromisoformat(str(value["until"])),
            reason=str(value.get("reason") or ""),
            dedup_key=value.get("dedup_key"),
            code=value.get("code"),
            subject_id=value.get("subject_id"),
            created_at=datetime.fromisoformat(created) if created else None,
        )


def silenced_until(finding: Finding, silences: Iterable[Silence], today: date) -> date | None:
    """The latest day a silence in force covers this finding; None when none does."""
    days = [s.until for s in silences if s.covers(finding, today)]
    return max(days) if days else None


def apply_silences(findings: Sequence[Finding], silences: Sequence[Silence], today: date) -> list[Finding]:
    """The findings, those a silence in force covers marked `silenced` (they stay in the report)."""
    return [
        f.model_copy(update={"silenced": True})
        if not f.silenced and silenced_until(f, silences, today) is not None
        else f
        for f in findings
    ]


# --- the state of one subject --------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    """What has been seen and told about one finding (by dedup key)."""

    dedup_key: str
    code: str
    severity: str
    title: str
    first_seen: datetime
    last_seen: datetime
    block: str = ""  # the finding as the note shows it (diagnostics/note.py), rendered when seen
    next_step: str = ""
    # What a partial report (the reference look-up) adds to the block: the candidates it found.
    # Kept apart from `block`, so the check and the look-up each keep their part of the note and
    # a day on which neither finds anything new leaves the note as it is.
    lookup: str = ""
    units: tuple[str, ...] = ()  # the units of work whose checks see it now
    # When each of `units` last saw it; a unit missing here (stored before this was kept) saw it
    # at `last_seen`.
    unit_seen: tuple[tuple[str, datetime], ...] = ()
    alerting: bool = True  # neither info nor muted: a finding people are told about
    silenced_until: date | None = None
    last_posted: datetime | None = None
    posted_severity: str | None = None
    resolved_at: datetime | None = None
    pending: Change | None = None  # a change not yet posted
    # When the sweep found that no unit checks it any more (`unchecked`): out of the open findings,
    # not resolved. Seen again, it goes on where it was (no second "new").
    unchecked_at: datetime | None = None

    @property
    def open(self) -> bool:
        return self.resolved_at is None and self.unchecked_at is None

    @property
    def unchecked(self) -> bool:
        return self.unchecked_at is not None and self.resolved_at is None


@dataclass(frozen=True)
class Claim:
    by: str  # the run that is posting
    at: datetime


@dataclass(frozen=True)
class SubjectAlerts:
    subject: Subject
    entries: Mapping[str, Entry] = field(default_factory=dict)
    note_hash: str | None = None  # the content the note is to have (written when note_written)
    note_written: bool = True
    note_claim: Claim | None = None  # the run writing the note now
    all_clear_since: datetime | None = None
    last_check: datetime | None = None
    claim: Claim | None = None

    def claimed_by_other(self, run: str, now: datetime, settings: AlertSettings) -> bool:
        return _held_by_other(self.claim, run, now, settings)

    def note_claimed_by_other(self, run: str, now: datetime, settings: AlertSettings) -> bool:
        return _held_by_other(self.note_claim, run, now, settings)


def _held_by_other(claim: Claim | None, run: str, now: datetime, settings: AlertSettings) -> bool:
    if claim is None or claim.by == run:
        return False
    return now - claim.at < timedelta(minutes=settings.claim_minutes)


@dataclass(frozen=True)
class Post:
    """One change to post about one finding."""

    change: Change
    entry: Entry
    subject: Subject


@dataclass(frozen=True)
class Outcome:
    state: SubjectAlerts
    posts: tuple[Post, ...]  # pending changes this run may post (none while another run holds a claim)


def _rank(severity: str | None) -> int:
    return SEVERITY_RANK.get(severity or "info", 9)


def _alerting(finding: Finding) -> bool:
    return not finding.muted and finding.severity != "info"


def _seen(
    old: Entry | None,
    finding: Finding,
    *,
    unit: str,
    now: datetime,
    silenced: date | None,
    block: str,
    next_step: str,
    settings: AlertSettings,
) -> Entry:
    # Seen again after it resolved; a resolution never told is no resolution: it simply goes on, as
    # does a finding seen again after no unit checked it for a while.
    reopened = old is None or (old.resolved_at is not None and old.pending != "resolved")
    base = Entry(finding.dedup_key, finding.code, finding.severity, finding.title, now, now)
    entry = base if reopened or old is None else old
    held = {} if reopened or old is None else _held(old, now)
    held[unit] = now
    entry = replace(
        entry,
        code=finding.code,
        severity=finding.severity,
        title=finding.title,
        last_seen=now,
        block=block,
        next_step=next_step,
        units=tuple(sorted(held)),
        unit_seen=tuple(sorted(held.items())),
        alerting=_alerting(finding),
        silenced_until=silenced,
        resolved_at=None,
        unchecked_at=None,
        # A reopened finding was announced before (and resolved): announce it anew.
        last_posted=None if reopened else entry.last_posted,
        posted_severity=None if reopened else entry.posted_severity,
        pending=None if reopened else entry.pending,
    )
    return replace(entry, pending=_pending(entry, now, settings))


def _looked_up(
    old: Entry | None,
    finding: Finding,
    *,
    unit: str,
    now: datetime,
    silenced: date | None,
    lookup: str,
    next_step: str,
    settings: AlertSettings,
) -> Entry | None:
    """The entry after a partial report (the reference look-up) saw the finding: only its `lookup`
    changes. The check owns the rest (title, severity, evidence, next step): the look-up words the
    same finding differently, and letting it rewrite them made the note flip between the two every
    time either ran. None: nothing to add to (a finding the check has since seen resolve)."""
    if old is not None and old.resolved_at is not None and old.pending != "resolved":
        return None  # resolved by the check since it asked: a stale look-up reopens nothing
    if old is None:  # the look-up ran before the check told its findings: the check fills the rest
        old = _seen(
            None,
            finding,
            unit=unit,
            now=now,
            silenced=silenced,
            block="",
            next_step=next_step,
            settings=settings,
        )
    return replace(old, lookup=lookup)


def _pending(entry: Entry, now: datetime, settings: AlertSettings) -> Change | None:
    """The change to post about an open finding, if any."""
    if not entry.alerting or entry.silenced_until is not None:
        return None  # never posted; when it alerts again it is told as what it then is
    if entry.last_posted is None:
        return "new"
    if _rank(entry.severity) < _rank(entry.posted_severity):
        return "escalated"
    if entry.pending in ("new", "escalated"):
        return entry.pending  # told at a lower severity since: still the same change
    if now - entry.last_posted >= timedelta(days=settings.repeat_days):
        return "reminded"
    return None


def _held(entry: Entry, now: datetime, grace: timedelta = UNIT_GRACE) -> dict[str, datetime]:
    """When each unit still holding the entry last saw it: those that saw it within `grace`."""
    seen = dict(entry.unit_seen)
    times = {u: seen.get(u, entry.last_seen) for u in entry.units}
    return {u: at for u, at in times.items() if now - at <= grace}


def _gone(entry: Entry, unit: str, now: datetime) -> Entry:
    """This unit no longer sees the finding (nor does one past UNIT_GRACE); it resolves when no
    unit sees it."""
    held = {u: at for u, at in _held(entry, now).items() if u != unit}
    if held or entry.resolved_at is not None:
        return replace(entry, units=tuple(sorted(held)), unit_seen=tuple(sorted(held.items())))
    # Resolved (also one no longer checked, now that a unit visits and does not see it): told only
    # when it had been told (a never-posted finding resolves quietly).
    told = entry.last_posted is not None
    return replace(
        entry,
        units=(),
        unit_seen=(),
        resolved_at=now,
        unchecked_at=None,
        pending="resolved" if told else None,
    )


def _not_seen(entry: Entry, unit: str, now: datetime, *, partial: bool, settings: AlertSettings) -> Entry:
    """The entry after `unit` visited its subject without seeing it."""
    held_here = unit in entry.units
    after = entry if partial else _gone(entry, unit, now)  # let go by this unit, and any unchecked
    if after.open and (partial or not held_here):
        # Seen by another unit: its pending change stays; a reminder may fall due.
        return replace(after, pending=_pending(after, now, settings))
    return after


def advance(
    state: SubjectAlerts,
    findings: Sequence[Finding],
    *,
    unit: str,
    run: str,
    now: datetime,
    silences: Sequence[Silence] = (),
    settings: AlertSettings = AlertSettings(),
    blocks: Mapping[str, tuple[str, str]] | None = None,
    partial: bool = False,
) -> Outcome:
    """The subject's state after `unit` found `findings` (all about `state.subject`) at `now`.

    `blocks` gives each finding's note text and next step by dedup key. `partial`: the findings
    are a part of what the unit sees (the reference look-up), so nothing absent resolves, and their
    blocks are what the look-up adds to the check's (`Entry.lookup`).
    """
    blocks = blocks or {}
    today = now.date()
    entries: dict[str, Entry] = dict(state.entries)
    current = {f.dedup_key: f for f in findings}
    for key, finding in current.items():
        block, next_step = blocks.get(key, ("", ""))
        silenced = silenced_until(finding, silences, today) or (today if finding.silenced else None)
        if partial:
            added = _looked_up(
                entries.get(key),
                finding,
                unit=unit,
                now=now,
                silenced=silenced,
                lookup=block,
                next_step=next_step,
                settings=settings,
            )
            if added is not None:
                entries[key] = added
            continue
        entries[key] = _seen(
            entries.get(key),
            finding,
            unit=unit,
            now=now,
            silenced=silenced,
            block=block,
            next_step=next_step,
            settings=settings,
        )
    for key, entry in list(entries.items()):
        if key not in current:
            entries[key] = _not_seen(entry, unit, now, partial=partial, settings=settings)
    entries = _pruned(entries, now, settings)
    state = replace(state, entries=entries, last_check=now, all_clear_since=_all_clear(state, entries, now))
    posts: tuple[Post, ...] = ()
    if not state.claimed_by_other(run, now, settings):
        posts = tuple(
            Post(e.pending, e, state.subject)
            for e in sorted(entries.values(), key=lambda e: (_rank(e.severity), e.dedup_key))
            if e.pending is not None
        )
    return Outcome(state, posts)


def _pruned(entries: Mapping[str, Entry], now: datetime, settings: AlertSettings) -> dict[str, Entry]:
    keep = timedelta(days=settings.keep_resolved_days)
    return {
        k: e
        for k, e in entries.items()
        if e.open
        or e.pending is not None
        or (e.resolved_at is not None and now - e.resolved_at < keep)
        or (e.unchecked_at is not None and now - e.unchecked_at < keep)
    }


def _all_clear(state: SubjectAlerts, entries: Mapping[str, Entry], now: datetime) -> datetime | None:
    # A finding no longer checked is not known to be fixed: no "all clear" while it is there.
    if any((e.open or e.unchecked) and (e.alerting or e.silenced_until) for e in entries.values()):
        return None
    return state.all_clear_since or now


def unchecked(state: SubjectAlerts, now: datetime) -> SubjectAlerts | None:
    """The daily sweep of a subject: its open findings that no unit has seen for SWEEP_AFTER are on
    a record no planned check covers any more (an invoice past its pull window or its watched
    periods, last month's tenant unit, a contract that has invoiced). They leave the open findings
    as *no longer checked*: no reminder, no resolution told (nobody saw them fixed); the note says
    when they were last seen. None when there is nothing to sweep."""
    entries = dict(state.entries)
    for key, entry in state.entries.items():
        if entry.open and not _held(entry, now, SWEEP_AFTER):
            # A change not told by now is not told: the finding is no longer news.
            entries[key] = replace(entry, units=(), unit_seen=(), unchecked_at=now, pending=None)
    if entries == state.entries:
        return None
    return replace(state, entries=entries, all_clear_since=_all_clear(state, entries, now))


def claimed(state: SubjectAlerts, run: str, now: datetime) -> SubjectAlerts:
    return replace(state, claim=Claim(run, now))


def posted(state: SubjectAlerts, done: Iterable[Post], now: datetime, run: str) -> SubjectAlerts:
    """The state after the posts went out: their changes are no longer pending; the claim is freed."""
    entries = dict(state.entries)
    for post in done:
        entry = entries.get(post.entry.dedup_key)
        if entry is None or entry.pending != post.change:
            continue  # changed since the claim: what is pending now is posted next time
        if post.change == "resolved":
            entries[entry.dedup_key] = replace(entry, pending=None, last_posted=now)
        else:
            entries[entry.dedup_key] = replace(
                entry, pending=None, last_posted=now, posted_severity=entry.severity
            )
    claim = None if state.claim is None or state.claim.by == run else state.claim
    return replace(state, entries=entries, claim=claim)


def released(state: SubjectAlerts, run: str) -> SubjectAlerts:
    """The claim freed after a failed post: the changes stay pending for the next run."""
    if state.claim is not None and state.claim.by == run:
        return replace(state, claim=None)
    return state


# --- storage form --------------------------------------------------------------------------------


def _dt(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) and value else None


def _iso(value: datetime | date | None) -> str | None:
    return value.isoformat() if value is not None else None


def _claim_value(claim: Claim | None) -> dict[str, Any] | None:
    return None if claim is None else {"by": claim.by, "at": _iso(claim.at)}


def _claim_of(value: Any) -> Claim | None:
    at = _dt(value.get("at")) if isinstance(value, dict) else None
    return Claim(str(value["by"]), at) if isinstance(value, dict) and at is not None else None


def _unit_seen_of(value: Any) -> tuple[tuple[str, datetime], ...]:
    """Stored before it was kept (or unreadable): absent, so the unit counts as seen at last_seen."""
    if not isinstance(value, dict):
        return ()
    pairs = ((str(u), _dt(at)) for u, at in value.items())
    return tuple(sorted((u, at) for u, at in pairs if at is not None))


def to_value(state: SubjectAlerts) -> dict[str, Any]:
    return {
        "subject": state.subject.model_dump(),
        "note_hash": state.note_hash,
        "note_written": state.note_written,
        "note_claim": _claim_value(state.note_claim),
        "all_clear_since": _iso(state.all_clear_since),
        "last_check": _iso(state.last_check),
        "claim": _claim_value(state.claim),
        "entries": {
            key: {
                "code": e.code,
                "severity": e.severity,
                "title": e.title,
                "first_seen": _iso(e.first_seen),
                "last_seen": _iso(e.last_seen),
                "block": e.block,
                "next_step": e.next_step,
                "lookup": e.lookup,
                "units": list(e.units),
                "unit_seen": {u: _iso(at) for u, at in e.unit_seen},
                "alerting": e.alerting,
                "silenced_until": _iso(e.silenced_until),
                "last_posted": _iso(e.last_posted),
                "posted_severity": e.posted_severity,
                "resolved_at": _iso(e.resolved_at),
                "pending": e.pending,
                "unchecked_at": _iso(e.unchecked_at),
            }
            for key, e in state.entries.items()
        },
    }


def from_value(value: Mapping[str, Any]) -> SubjectAlerts:
    entries: dict[str, Entry] = {}
    for key, raw in dict(value.get("entries") or {}).items():
        first = _dt(raw.get("first_seen"))
        last = _dt(raw.get("last_seen"))
        if first is None or last is None:
            continue  # unreadable: seen anew next time
        pending = raw.get("pending")
        silenced = raw.get("silenced_until")
        entries[key] = Entry(
            dedup_key=key,
            code=str(raw.get("code", "")),
            severity=str(raw.get("severity", "error")),
            title=str(raw.get("title", "")),
            first_seen=first,
            last_seen=last,
            block=str(raw.get("block", "")),
            next_step=str(raw.get("next_step", "")),
            lookup=str(raw.get("lookup", "")),
            units=tuple(str(u) for u in raw.get("units") or ()),
            unit_seen=_unit_seen_of(raw.get("unit_seen")),
            alerting=bool(raw.get("alerting", True)),
            silenced_until=date.fromisoformat(silenced) if isinstance(silenced, str) else None,
            last_posted=_dt(raw.get("last_posted")),
            posted_severity=raw.get("posted_severity"),
            resolved_at=_dt(raw.get("resolved_at")),
            pending=pending if pending in CHANGES else None,
            unchecked_at=_dt(raw.get("unchecked_at")),
        )
    return SubjectAlerts(
        subject=Subject.model_validate(value["subject"]),
        entries=entries,
        note_hash=value.get("note_hash"),
        note_written=bool(value.get("note_written", True)),
        note_claim=_claim_of(value.get("note_claim")),
        all_clear_since=_dt(value.get("all_clear_since")),
        last_check=_dt(value.get("last_check")),
        claim=_claim_of(value.get("claim")),
    )
