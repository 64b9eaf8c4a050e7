"""A scan keeps Python's cyclic garbage collector paused from its first read to its report: resumed
between rounds it would traverse everything read so far, and during the checks the whole snapshot
(records and usage groups hold no cycles). It runs again once the scan is done. Against the
simulator, with the real clients."""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import time
from typing import Any

from diagnostics.adapters.http import RequestCounter, RequestRecord
from diagnostics.service import scan
from simulator import Simulator
from simulator.connect import connection
from tests.loading.test_invoice_unit import FIXTURE


class _Timed(RequestCounter):
    """The request records, with when each answer came."""

    def __init__(self) -> None:
        super().__init__()
        self.times: list[float] = []

    def __call__(self, record: RequestRecord) -> None:
        super().__call__(record)
        if record.service == "Dataverse":
            self.times.append(time.perf_counter())


def test_the_collector_does_not_run_from_a_scans_first_read_to_its_last_and_runs_after() -> None:
    collections: list[float] = []

    def seen(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            collections.append(time.perf_counter())

    # A collector due at every allocation: whenever it is on, it runs.
    threshold, enabled = gc.get_threshold(), gc.isenabled()
    gc.enable()
    gc.set_threshold(1)
    gc.callbacks.append(seen)
    try:
        with Simulator(FIXTURE) as sim:
            timed = _Timed()
            report = asyncio.run(scan(dataclasses.replace(connection(sim), requests=timed), sim.now))
            done = time.perf_counter()
            _ = [object() for _ in range(10)]  # allocations: the collector's cue
    finally:
        gc.callbacks.remove(seen)
        gc.set_threshold(*threshold)
        (gc.enable if enabled else gc.disable)()

    assert report.findings  # the scan read the tenant and ran its checks
    assert len(timed.times) >= 3  # the schema's reads and two rounds
    first, last = timed.times[0], timed.times[-1]
    assert [t for t in collections if first <= t <= last] == []
    assert any(t > done for t in collections)
