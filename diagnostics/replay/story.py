"""What a replay saw, day by day, and its two renderings: the JSON of monitor.md (monitor_version 1)
and a story a billing administrator can read.

Pure: the runner (`diagnostics.replay.run`) fills these records from what the broker and the
simulator recorded; nothing here does I/O.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from diagnostics.model import SEVERITY_RANK, Finding, Report
from diagnostics.render import cut, plain

MONITOR_VERSION = 1
OPEN_SEVERITIES = ("critical", "error", "warning")


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class TenantChange:
    """A timeline entry applied to the simulated tenant."""

    at: datetime
    description: str
    rows: int  # rows added, updated or deleted (notes included)


@dataclass(frozen=True)
class OpenFinding:
    code: str
    severity: str
    subject_type: str
    subject_id: str
    subject_name: str
    title: str
    dedup_key: str

    @classmethod
    def of(cls, finding: Finding) -> OpenFinding:
        subject = finding.subject
        return cls(
            finding.code,
            finding.severity,
            subject.type,
            subject.id,
            subject.name,
            finding.title,
            finding.dedup_key,
        )

    def sentence(self) -> str:
        return f"{self.severity}: {plain(self.title)} [{plain(self.subject_name)}]"


def open_findings(report: Report) -> list[OpenFinding]:
    """The report's findings that alert: not muted, not silenced; worst first."""
    live = [f for f in report.findings if not f.muted and not f.silenced]
    live.sort(key=lambda f: (SEVERITY_RANK[f.severity], f.subject.name, f.code))
    return [OpenFinding.of(f) for f in live]


@dataclass
class Day:
    date: date
    timer_at: datetime
    changes: list[TenantChange] = field(default_factory=list)
    published: int = 0
    references: int = 0  # of `published`: reference look-ups the handlers sent on
    timer_error: str | None = None  # the planner failed (after its retries): why
    handled: int = 0
    rechecks_scheduled: int = 0
    rechecks_cancelled: int = 0
    dead_lettered: int = 0
    notes_written: int = 0
    # Work 365 records the tool changed (auto-fix), read from the simulator: "PATCH table id"
    records_changed: list[str] = field(default_factory=list)
    teams_posts: int = 0
    duplicates_delivered: int = 0
    deliveries_failed: int = 0  # abandoned deliveries: Service Bus retried them
    faults_injected: int = 0
    # The app's own Dataverse round trips (a $batch is one) and the most requests it had in flight
    # at once, the replay's witness scan left out.
    dataverse_requests: int = 0
    max_in_flight: int = 0
    open: list[OpenFinding] = field(default_factory=list)  # as a full scan saw it at the day's check
    opened: list[OpenFinding] = field(default_factory=list)  # open now, not at the day before
    closed: list[OpenFinding] = field(default_factory=list)  # open the day before, not now

    def open_by_severity(self) -> dict[str, int]:
        return {s: sum(1 for f in self.open if f.severity == s) for s in OPEN_SEVERITIES}

    def as_json(self) -> dict[str, Any]:
        return {
            "date": self.date.isoformat(),
            "published": self.published,
            "handled": self.handled,
            "rechecks_scheduled": self.rechecks_scheduled,
            "rechecks_cancelled": self.rechecks_cancelled,
            "dead_lettered": self.dead_lettered,
            "notes_written": self.notes_written,
            "records_changed": self.records_changed,
            "teams_posts": self.teams_posts,
            "open": self.open_by_severity(),
            "timer_at": iso(self.timer_at),
            "timer_error": self.timer_error,
            "published_checks": self.published - self.references,
            "published_references": self.references,
            "tenant_changes": [{"at": iso(c.at), "description": c.description} for c in self.changes],
            "opened": [f.dedup_key for f in self.opened],
            "resolved": [f.dedup_key for f in self.closed],
            "duplicates_delivered": self.duplicates_delivered,
            "deliveries_failed": self.deliveries_failed,
            "faults_injected": self.faults_injected,
            "dataverse_requests": self.dataverse_requests,
            "max_in_flight": self.max_in_flight,
        }


@dataclass(frozen=True)
class NoteRecord:
    subject_type: str
    subject_id: str
    subject_name: str
    annotation_ids: tuple[str, ...]
    writes: int
    subject_line: str
    text: str

    def as_json(self) -> dict[str, Any]:
        return {
            "subject": {"type": self.subject_type, "id": self.subject_id, "name": self.subject_name},
            "annotation_ids": list(self.annotation_ids),
            "writes": self.writes,
            "subject_line": self.subject_line,
            "text": self.text,
        }


@dataclass(frozen=True)
class TeamsPostRecord:
    at: datetime
    bytes: int
    new: tuple[str, ...] = ()
    escalated: tuple[str, ...] = ()
    reminded: tuple[str, ...] = ()
    resolved: tuple[str, ...] = ()

    def as_json(self) -> dict[str, Any]:
        return {
            "at": iso(self.at),
            "new": list(self.new),
            "escalated": list(self.escalated),
            "reminded": list(self.reminded),
            "resolved": list(self.resolved),
            "bytes": self.bytes,
        }


@dataclass(frozen=True)
class DeadLetterRecord:
    queue: str
    reason: str
    description: str
    message_id: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "queue": self.queue,
            "reason": self.reason,
            "description": self.description,
            "message_id": self.message_id,
        }


@dataclass
class Replay:
    fixture: str
    description: str
    start: datetime
    end: datetime
    fault_rate: float
    duplicate_rate: float
    seed: int
    days: list[Day] = field(default_factory=list)
    notes: list[NoteRecord] = field(default_factory=list)
    teams_posts: list[TeamsPostRecord] = field(default_factory=list)
    dead_letters: list[DeadLetterRecord] = field(default_factory=list)
    final_report: Report | None = None
    findings: list[OpenFinding] = field(default_factory=list)  # open at the end
    # Each Teams post's raw body as received, for tests that render the cards; not in the JSON.
    teams_bodies: list[bytes] = field(default_factory=list, repr=False)
    # Every message each queue accepted: sequence number -> (message id, where it ended: completed,
    # dead-lettered, cancelled, expired, or pending), as the broker recorded it.
    messages: dict[str, dict[int, tuple[str | None, str]]] = field(default_factory=dict, repr=False)

    def max_in_flight(self) -> int:
        return max((day.max_in_flight for day in self.days), default=0)

    def message_outcomes(self) -> dict[str, dict[str, int]]:
        """Per queue, how many messages ended how."""
        return {
            queue: dict(Counter(outcome for _, outcome in ledger.values()))
            for queue, ledger in self.messages.items()
        }

    def as_json(self) -> dict[str, Any]:
        final = self.final_report
        return {
            "monitor_version": MONITOR_VERSION,
            "start": iso(self.start),
            "end": iso(self.end),
            "days": [day.as_json() for day in self.days],
            "notes": [note.as_json() for note in self.notes],
            "teams_posts": [post.as_json() for post in self.teams_posts],
            "dead_letters": [letter.as_json() for letter in self.dead_letters],
            "open_findings": [
                f.model_dump(mode="json")
                for f in (final.findings if final else ())
                if not f.muted and not f.silenced
            ],
            "fixture": self.fixture,
            "fault_rate": self.fault_rate,
            "duplicate_rate": self.duplicate_rate,
            "seed": self.seed,
            "max_in_flight": self.max_in_flight(),
            "messages": self.message_outcomes(),
        }


def to_json(replay: Replay) -> str:
    return json.dumps(replay.as_json(), indent=2, ensure_ascii=False)


# --- the story -------------------------------------------------------------------------------------


def _count(n: int, noun: str, plural: str | None = None) -> str:
    return f"{n} {noun if n == 1 else plural or noun + 's'}"


def _open_line(day: Day) -> str:
    counts = day.open_by_severity()
    parts = [_count(n, s, "errors" if s == "error" else None) for s, n in counts.items() if n]
    return ", ".join(parts) if parts else "nothing at warning or above"


def _monitor_line(day: Day) -> str:
    timer = f"timer at {day.timer_at:%H:%M}" + (
        f" failed ({plain(day.timer_error)})" if day.timer_error else ""
    )
    parts = [f"{timer}; {_count(day.published - day.references, 'check')} published"]
    if day.references:
        parts.append(f"{_count(day.references, 'reference look-up')} sent on")
    parts.append(f"{day.handled} handled")
    if day.rechecks_scheduled:
        parts.append(f"{_count(day.rechecks_scheduled, 're-check')} scheduled for the next day")
    if day.rechecks_cancelled:
        parts.append(f"{_count(day.rechecks_cancelled, 're-check')} cancelled")
    if day.dead_lettered:
        parts.append(f"{day.dead_lettered} dead-lettered")
    parts.append(f"{_count(day.notes_written, 'note')} written")
    if day.records_changed:
        parts.append(f"records changed by auto-fix: {', '.join(day.records_changed)}")
    parts.append(_count(day.teams_posts, "Teams post"))
    return "; ".join(parts)


def _robustness_line(day: Day) -> str | None:
    parts = []
    if day.faults_injected:
        parts.append(f"{_count(day.faults_injected, 'request')} failed on purpose")
    if day.deliveries_failed:
        parts.append(f"{_count(day.deliveries_failed, 'delivery', 'deliveries')} retried by Service Bus")
    if day.duplicates_delivered:
        parts.append(f"{_count(day.duplicates_delivered, 'message')} delivered twice")
    return "; ".join(parts) if parts else None


def _day_lines(day: Day) -> list[str]:
    lines = [f"{day.date:%a %d %b %Y}"]
    if day.changes:
        lines.append("  In the tenant:")
        lines += [
            f"    {c.at:%H:%M}  {plain(c.description) or f'{c.rows} rows changed'}" for c in day.changes
        ]
    lines.append(f"  The monitor: {_monitor_line(day)}")
    robustness = _robustness_line(day)
    if robustness:
        lines.append(f"  Under stress: {robustness}")
    lines += [f"    new      {cut(f.sentence(), 140)}" for f in day.opened]
    lines += [f"    resolved {cut(f.sentence(), 140)}" for f in day.closed]
    lines.append(f"  Open: {_open_line(day)}")
    return lines


def to_text(replay: Replay) -> str:
    first = (
        f"Monitor replay of {Path(replay.fixture).name}"
        + (f": {plain(replay.description)}" if replay.description else "")
        + "\n"
        + f"Simulated {replay.start:%Y-%m-%d %H:%M} → {replay.end:%Y-%m-%d %H:%M} UTC"
        + f" ({_count(len(replay.days), 'day')}); faults {replay.fault_rate:.0%}, duplicates"
        + f" {replay.duplicate_rate:.0%}, seed {replay.seed}"
    )
    lines = [first, ""]
    for day in replay.days:
        lines += [*_day_lines(day), ""]
    if replay.dead_letters:
        lines.append("Dead-lettered (a person must look at these):")
        lines += [
            f"  {d.queue}: {plain(d.reason)} — {cut(plain(d.description), 160)}" for d in replay.dead_letters
        ]
        lines.append("")
    if replay.notes:
        lines.append("Notes in Dataverse:")
        lines += [
            # A record with no name left is one deleted since (a re-imported invoice): its note went with it.
            f"  {plain(n.subject_name) or f'{n.subject_id} (record deleted)'}: {plain(n.subject_line)} "
            f"({_count(n.writes, 'write')})"
            for n in replay.notes
        ]
        lines.append("")
    if replay.teams_posts:
        size = sum(p.bytes for p in replay.teams_posts)
        lines.append(f"Teams: {_count(len(replay.teams_posts), 'post')} ({size:,} bytes)")
        lines.append("")
    lines.append(f"Open at the end ({len(replay.findings)}):")
    lines += [f"  {cut(f.sentence(), 150)}" for f in replay.findings] or ["  nothing"]
    return "\n".join(lines) + "\n"
