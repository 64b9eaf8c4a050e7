"""The soak (issue 9, item 5): the replay over a generated tenant with a timeline, run twice - fault
free, and with faults and duplicate deliveries - and what must hold between the two runs.

Everything compared is what the broker and the simulator recorded (the broker's ledger of every
message it accepted, the notes the simulator holds, the Teams posts it received), never the app's
own bookkeeping. `make test` runs a short soak; `make soak` the long one (DIAG_SOAK_CUSTOMERS,
DIAG_SOAK_DAYS; DIAG_SOAK_USAGE, usage rows per subscription, 3 by default: at 1,000 customers and 30
the Microsoft invoice has over 50,000 rows and is checked in slices).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from diagnostics.replay import ReplayOptions, run_replay
from diagnostics.replay.story import Day, Replay
from diagnostics.settings import Settings, load_settings
from simulator.generate import Generated, Shares, generate

FAULT_RATE, DUPLICATE_RATE = 0.2, 0.5
SEED = 11
# A few percent of each fault, so that even the short soak's tenant has several of each.
SHARES = Shares(markup_missing=0.02, no_contract=0.02, archived=0.02, too_early=0.03)
DRAIN_LIMIT = 3600.0  # real seconds a day's deliveries may take: thousands of units on the long soak
SETTLED = {"completed", "dead-lettered", "cancelled", "scheduled"}  # anything else is lost


@dataclass(frozen=True)
class Size:
    customers: int
    days: int
    usage: int = 3  # usage rows per subscription (two subscriptions per customer)


SHORT = Size(customers=150, days=6)
LONG = Size(customers=2_000, days=30)


def size() -> Size:
    """The short soak, unless DIAG_SOAK_CUSTOMERS / DIAG_SOAK_DAYS ask for another (`make soak`)."""
    return Size(
        int(os.environ.get("DIAG_SOAK_CUSTOMERS", SHORT.customers)),
        int(os.environ.get("DIAG_SOAK_DAYS", SHORT.days)),
        int(os.environ.get("DIAG_SOAK_USAGE", SHORT.usage)),
    )


def tenant(size: Size, folder: Path) -> tuple[Generated, Path]:
    """The generated tenant with a timeline as long as the soak, written as a fixture file."""
    generated = generate(
        size.customers, SEED, subscriptions=2, usage=size.usage, shares=SHARES, timeline_days=size.days
    )
    path = folder / f"soak-{size.customers}-{size.days}-{size.usage}.json"
    path.write_text(json.dumps(generated.fixture), encoding="utf-8")
    return generated, path


@dataclass(frozen=True)
class Run:
    replay: Replay
    seconds: float


def replay(fixture: Path, days: int, settings: Settings, *, faults: bool) -> Run:
    options = ReplayOptions(
        fixture,
        days,
        FAULT_RATE if faults else 0.0,
        DUPLICATE_RATE if faults else 0.0,
        SEED,
        drain_limit=DRAIN_LIMIT,
    )
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.CRITICAL)  # as the command does: retried deliveries are expected here
    started = time.perf_counter()
    try:
        done = run_replay(options, settings, progress=_progress(faults, started))
    finally:
        root.setLevel(level)
    return Run(done, time.perf_counter() - started)


def _progress(faults: bool, started: float) -> Callable[[Day], None]:
    """A line per simulated day (shown by `make soak`, which runs pytest -s)."""
    run = "faults" if faults else "fault-free"

    def show(day: Day) -> None:
        print(
            f"  {run} {day.date}: {time.perf_counter() - started:.0f} s, {day.published} published, "
            f"{day.handled} handled, {day.dataverse_requests} Dataverse requests, "
            f"{day.max_in_flight} in flight at most",
            flush=True,
        )

    return show


def soak_settings() -> Settings:
    return load_settings()


# --- what is compared --------------------------------------------------------------------------


def unsettled(replay: Replay) -> list[str]:
    """Messages the broker accepted that ended neither completed, dead-lettered, cancelled, nor
    waiting for their scheduled time: lost on the way."""
    return [
        f"{queue}: message {message_id} (#{number}) is {outcome}"
        for queue, ledger in replay.messages.items()
        for number, (message_id, outcome) in ledger.items()
        if outcome not in SETTLED
    ]


def message_ids(replay: Replay) -> dict[str, set[str | None]]:
    return {queue: {mid for mid, _ in ledger.values()} for queue, ledger in replay.messages.items()}


# The note's last line says when its content last changed. A write the notifier could not make in
# one run (the alert state kept changing under it, or another delivery held the claim) is made by the
# subject's next check, as designed, so under faults that time may be a later check's; what the note
# says above it must be the same.
FOOTER = "\nLast change seen by the check at "


def notes_by_subject(replay: Replay) -> dict[tuple[str, str], tuple[tuple[str, ...], str, str]]:
    """Subject -> (its annotation ids, final subject line, final text above the footer)."""
    return {
        (n.subject_type, n.subject_id): (n.annotation_ids, n.subject_line, n.text.split(FOOTER)[0])
        for n in replay.notes
    }


def announced(replay: Replay) -> Counter[tuple[str, str]]:
    """Every (change, dedup key) the Teams posts announced, counted."""
    out: Counter[tuple[str, str]] = Counter()
    for post in replay.teams_posts:
        for change in ("new", "escalated", "reminded", "resolved"):
            out.update((change, key) for key in getattr(post, change))
    return out


def changes(replay: Replay) -> Counter[tuple[str, str]]:
    """The announced changes that must be the same with faults as without: new, escalated,
    resolved. Reminders keep a cadence instead (`late_or_early_reminders`): a post that failed is
    made by the next run, a day later, and the reminders after it follow from there."""
    return Counter({k: n for k, n in announced(replay).items() if k[0] != "reminded"})


def early_reminders(replay: Replay, repeat_days: int) -> list[str]:
    """Findings Teams was reminded of sooner than `repeat_days` after their last announcement.
    (Reminders are "at most" that often: one comes when a check of the subject notifies, so their
    number may differ between the runs; a lost new, escalated or resolved post is `changes`'.)"""
    times: dict[str, list[datetime]] = {}
    early = []
    for post in sorted(replay.teams_posts, key=lambda p: p.at):
        for change in ("new", "escalated", "reminded", "resolved"):
            for key in getattr(post, change):
                last = times.setdefault(key, [])
                if (
                    change == "reminded"
                    and last
                    and post.at - last[-1] < timedelta(days=repeat_days, hours=-1)
                ):
                    early.append(
                        f"{key}: reminded {post.at:%Y-%m-%d}, {post.at - last[-1]} after the last post"
                    )
                last.append(post.at)
    return early


def announced_twice_a_day(replay: Replay) -> list[str]:
    """The same change of the same finding announced twice on one simulated day: a duplicate post."""
    seen: Counter[tuple[str, str, str]] = Counter()
    for post in replay.teams_posts:
        for change in ("new", "escalated", "reminded", "resolved"):
            seen.update((post.at.date().isoformat(), change, key) for key in getattr(post, change))
    return [f"{day} {change} {key} x{n}" for (day, change, key), n in seen.items() if n > 1]


def final_diagnosis(replay: Replay) -> list[dict[str, Any]]:
    """The final scan's findings, as JSON, in a stable order."""
    report = replay.final_report
    assert report is not None, "the replay ended without its final scan"
    findings = [f.model_dump(mode="json") for f in report.findings]
    return sorted(findings, key=lambda f: json.dumps(f, sort_keys=True))


def summary(size: Size, clean: Run, faulty: Run) -> Iterator[str]:
    for name, run in (("fault-free", clean), ("faults", faulty)):
        r = run.replay
        days = r.days
        yield (
            f"soak {size.customers} customers x {size.days} days, {name}: {run.seconds:.0f} s; "
            f"messages {r.message_outcomes()}; notes {len(r.notes)}; Teams posts {len(r.teams_posts)}; "
            f"dead letters {len(r.dead_letters)}; faults injected {sum(d.faults_injected for d in days)}; "
            f"duplicates delivered {sum(d.duplicates_delivered for d in days)}; "
            f"max in flight {r.max_in_flight()}; "
            f"Dataverse requests/day max {max(d.dataverse_requests for d in days)}"
        )
