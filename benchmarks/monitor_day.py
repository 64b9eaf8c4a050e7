"""Benchmark: monitored days of a generated tenant (issue 9, "one monitored day of the 10k tenant").

The replay (`diagnostics.replay`) runs the Function app's own functions over the local broker and
the simulator for the first `days` simulated days of a generated tenant with its timeline; each
day's Dataverse round trips (a `$batch` is one) and the most requests in flight are the app's, as
the simulator counted them, the replay's own witness scan left out. The figure is the busiest day:
the first day plans every invoice (no watermark yet) and, as the days go on, more contracts come
within DIAG_AT_RISK_DAYS of their invoice date (checked in batches of up to 100, `ContractsUnit`).
Each day's note writes (one upsert each) are listed too: on a first day they are most of the rest.

`python -m benchmarks.monitor_day --customers N [--days D]` prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from diagnostics.replay import ReplayOptions, run_replay
from diagnostics.settings import load_settings
from simulator.generate import generate

# Real seconds one simulated day's deliveries may take (thousands of units on the 10k tenant).
DRAIN_LIMIT = 3600.0


def measure(
    customers: int, days: int = 4, seed: int = 1, *, subscriptions: int = 2, usage: int = 3
) -> dict[str, Any]:
    """The busiest of the first `days` monitored days of a generated tenant of `customers`, each
    with `subscriptions` subscriptions of `usage` usage rows. An invoice of more than 50,000 usage
    rows (Dataverse's aggregate limit) is checked as its head and the slices the head cuts, each a
    unit of its own: `largest_invoice_usage_rows` says whether the tenant has one."""
    settings = load_settings()
    generated = generate(customers, seed, subscriptions=subscriptions, usage=usage, timeline_days=days)
    per_invoice = Counter(
        u.get("work365_usagesummary_providerinvoice")
        for u in generated.fixture["dataverse"]["rows"]["work365_usagesummary"]
    )
    per_invoice.pop(None, None)
    with tempfile.TemporaryDirectory(prefix="work365-bench-") as folder:
        fixture = Path(folder) / "tenant.json"
        fixture.write_text(json.dumps(generated.fixture), encoding="utf-8")
        root = logging.getLogger()
        level = root.level
        root.setLevel(logging.CRITICAL)
        started = time.perf_counter()
        try:
            replay = run_replay(ReplayOptions(fixture, days, drain_limit=DRAIN_LIMIT), settings)
        finally:
            root.setLevel(level)
        seconds = time.perf_counter() - started
    busiest = max(replay.days, key=lambda d: d.dataverse_requests)
    return {
        "customers": customers,
        "days": days,
        "largest_invoice_usage_rows": max(per_invoice.values(), default=0),
        "busiest_day": busiest.date.isoformat(),
        "dataverse_requests": busiest.dataverse_requests,
        "units": busiest.published,
        "requests_by_day": [d.dataverse_requests for d in replay.days],
        "units_by_day": [d.published for d in replay.days],
        # What the requests go to besides the units' reads: a note upsert is one request each.
        "checks_by_day": [d.published - d.references for d in replay.days],
        "references_by_day": [d.references for d in replay.days],
        "notes_written_by_day": [d.notes_written for d in replay.days],
        "teams_posts_by_day": [d.teams_posts for d in replay.days],
        "max_in_flight": replay.max_in_flight(),
        "cap": settings.dataverse_max_concurrency,
        "seconds": seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.monitor_day")
    parser.add_argument("--customers", type=int, default=1_000)
    parser.add_argument("--days", type=int, default=4)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--subscriptions", type=int, default=2, help="subscriptions per customer")
    parser.add_argument(
        "--usage", type=int, default=3, help="usage rows per subscription (an invoice over 50,000 is sliced)"
    )
    args = parser.parse_args()
    print(
        json.dumps(
            measure(args.customers, args.days, args.seed, subscriptions=args.subscriptions, usage=args.usage)
        )
    )


if __name__ == "__main__":
    main()
