"""A notifier that keeps what it is given: until the living note and the Teams card land, this is
what the monitor notifies, and what the replay and the tests read back."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from diagnostics.messages import Unit, unit_key
from diagnostics.model import Report


@dataclass(frozen=True)
class NotifiedFinding:
    dedup_key: str
    code: str
    severity: str
    muted: bool


@dataclass(frozen=True)
class Notification:
    unit: Unit
    unit_key: str
    at: datetime
    period: str
    findings: tuple[NotifiedFinding, ...]

    @property
    def open(self) -> tuple[NotifiedFinding, ...]:
        return tuple(f for f in self.findings if not f.muted)


class RecordingNotifier:
    """`diagnostics.ports.Notifier`: records one `Notification` per call, in order."""

    def __init__(self) -> None:
        self.notifications: list[Notification] = []

    async def notify(self, unit: Unit, report: Report, *, at: datetime, partial: bool = False) -> None:
        self.notifications.append(
            Notification(
                unit=unit,
                unit_key=unit_key(unit),
                at=at,
                period=report.period,
                findings=tuple(
                    NotifiedFinding(f.dedup_key, f.code, f.severity, f.muted) for f in report.findings
                ),
            )
        )
