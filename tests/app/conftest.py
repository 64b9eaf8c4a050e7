"""Fixtures of the monitor's use-case tests: the simulator with the sample tenant, reached through
the real clients, and a container whose bus, state store and notifier are the port fakes."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from datetime import date
from pathlib import Path

import pytest

from diagnostics.adapters.http import RetryPolicy
from diagnostics.app.container import Container
from diagnostics.settings import load_settings
from simulator import Simulator, load_fixture
from simulator.connect import connection
from tests.fakes import FakeBus, FakeClock, InMemoryStateStore, RecordingNotifier

BLOCKED = "3a496486-0f7b-56ee-afa0-d8b3fea8006c"  # October's Microsoft invoice, Error, references
DAY = date(2026, 11, 12)
SAMPLE = Path(__file__).resolve().parents[2] / "simulator" / "samples" / "sample-tenant.json"


async def _no_sleep(_: float) -> None:
    return None


NO_WAIT = RetryPolicy(max_attempts=2, sleep=_no_sleep, jitter=lambda d: d)


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    with Simulator(load_fixture(SAMPLE)) as running:
        yield running


@contextlib.asynccontextmanager
async def container_on(sim: Simulator, settings: dict[str, str] | None = None) -> AsyncIterator[Container]:
    """A container on the simulator's real clients, with the port fakes and the simulator's clock."""
    built = Container.from_connection(
        connection(sim, retry=NO_WAIT),
        settings=load_settings(settings or {}),
        bus=FakeBus(),
        state=InMemoryStateStore(),
        notifier=RecordingNotifier(),
        clock=FakeClock(sim.now),
    )
    try:
        yield built
    finally:
        await built.aclose()


@pytest.fixture
async def container(sim: Simulator) -> AsyncIterator[Container]:
    async with container_on(sim, {"DIAG_DATAVERSE_MAX_CONCURRENCY": "4"}) as built:
        yield built


def parts(container: Container) -> tuple[FakeBus, InMemoryStateStore, RecordingNotifier]:
    assert isinstance(container.bus, FakeBus)
    assert isinstance(container.state, InMemoryStateStore)
    assert isinstance(container.notifier, RecordingNotifier)
    return container.bus, container.state, container.notifier


# A simulator of their own for tests that advance the tenant's timeline.


@pytest.fixture
def changing_sim() -> Iterator[Simulator]:
    with Simulator(load_fixture(SAMPLE)) as running:
        yield running


@pytest.fixture
async def changing(changing_sim: Simulator) -> AsyncIterator[Container]:
    async with container_on(changing_sim) as built:
        yield built
