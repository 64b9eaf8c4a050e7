"""Fixtures of the monitor's use-case tests: the simulator with the sample tenant, reached through
the real clients, and a container whose bus, state store and notifier are the port fakes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from diagnostics.adapters.http import RetryPolicy
from diagnostics.app.container import Container
from diagnostics.settings import load_settings
from simulator import Simulator, load_fixture
from simulator.connect import connection
from tests.fakes import FakeBus, FakeClock, InMemoryStateStore, RecordingNotifier

SAMPLE = Path(__file__).resolve().parents[2] / "simulator" / "samples" / "sample-tenant.json"


async def _no_sleep(_: float) -> None:
    return None


NO_WAIT = RetryPolicy(max_attempts=2, sleep=_no_sleep, jitter=lambda d: d)


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    with Simulator(load_fixture(SAMPLE)) as running:
        yield running


@pytest.fixture
async def container(sim: Simulator) -> AsyncIterator[Container]:
    built = Container.from_connection(
        connection(sim, retry=NO_WAIT),
        settings=load_settings({"DIAG_DATAVERSE_MAX_CONCURRENCY": "4"}),
        bus=FakeBus(),
        state=InMemoryStateStore(),
        notifier=RecordingNotifier(),
        clock=FakeClock(sim.now),
    )
    yield built
    await built.aclose()
