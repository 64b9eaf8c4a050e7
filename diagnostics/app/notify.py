"""Notify only when a unit's findings changed: a fingerprint (dedup key + severity of every finding)
per unit in the state store (kind "findings"), so that duplicate deliveries and re-checks that find
the same thing do not notify again."""

from __future__ import annotations

import contextlib
from datetime import datetime

from diagnostics.messages import Unit, unit_key
from diagnostics.model import Report
from diagnostics.ports import ConflictError, Notifier, StateStore

FINDINGS = "findings"  # state kind


def fingerprint(report: Report) -> list[str]:
    return sorted({f"{f.dedup_key}|{f.severity}" for f in report.findings})


async def notify_if_changed(
    notifier: Notifier, state: StateStore, unit: Unit, report: Report, *, at: datetime
) -> bool:
    """Notify when the findings differ from the last notified ones; True when it notified.

    Notify first, record after: a failure between the two notifies again on the next delivery
    (notifiers upsert, so that is safe), never loses a change.
    """
    key = unit_key(unit)
    stored = await state.get(FINDINGS, key)
    current = fingerprint(report)
    previous = list(stored.value.get("fingerprint", [])) if stored else []
    if current == previous:
        return False
    await notifier.notify(unit, report, at=at)
    with contextlib.suppress(ConflictError):  # a concurrent delivery of the same unit recorded it
        await state.put(
            FINDINGS,
            key,
            {"fingerprint": current, "at": at.isoformat()},
            etag=stored.etag if stored else None,
        )
    return True
