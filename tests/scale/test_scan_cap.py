"""A scan keeps to its connection's cap on Dataverse requests in flight (DIAG_DATAVERSE_MAX_CONCURRENCY
for the command line, as for a worker): its usage partitions and its round's `$batch` share it.
The simulator records the most requests it served at once; nothing here is timed."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import replace

import pytest

from diagnostics.connect import real_connection
from diagnostics.service import scan
from diagnostics.settings import Settings
from simulator import Simulator, load_fixture
from simulator.connect import connection
from simulator.generate import generate


@pytest.fixture(scope="module")
def partitioned() -> Iterator[Simulator]:
    # 3,000 usage subscriptions: three usage partitions read at once beside the round's $batch.
    generated = generate(300, seed=11, subscriptions=10, usage=1)
    with Simulator(load_fixture(generated.fixture)) as sim:
        sim.inject(latency=0.05, path_prefix="/api/data")  # requests overlap only while they wait
        yield sim


def _most_in_flight(sim: Simulator, cap: int | None) -> int:
    sim.take_max_in_flight(dataverse=True)
    asyncio.run(scan(replace(connection(sim), max_concurrency=cap), sim.now))
    return sim.take_max_in_flight(dataverse=True)


def test_a_scan_sends_its_partitions_at_once_without_a_cap(partitioned: Simulator) -> None:
    assert _most_in_flight(partitioned, None) >= 3


@pytest.mark.parametrize("cap", [1, 2])
def test_a_scan_keeps_to_its_cap(partitioned: Simulator, cap: int) -> None:
    assert _most_in_flight(partitioned, cap) == cap


def test_the_command_line_connection_takes_the_setting() -> None:
    settings = Settings(dataverse_url="https://contoso.crm.dynamics.com", dataverse_max_concurrency=5)
    assert real_connection(settings, None, None).max_concurrency == 5
