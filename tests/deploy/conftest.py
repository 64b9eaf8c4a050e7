"""Fixtures of the deployment tests: the sample tenant in the simulator, reached through the real
clients, and a container whose bus, state store and notifier are the port fakes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from diagnostics.app.container import Container
from diagnostics.settings import load_settings
from simulator import Simulator, load_fixture
from simulator.connect import connection
from tests.app.conftest import NO_WAIT
from tests.fakes import FakeBus, FakeClock, InMemoryStateStore, RecordingNotifier

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "simulator" / "samples" / "sample-tenant.json"
GUIDE = ROOT / "docs" / "deploy.md"


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(load_fixture(SAMPLE)) as running:
        yield running


@pytest.fixture
async def container(sim: Simulator) -> AsyncIterator[Container]:
    built = Container.from_connection(
        connection(sim, retry=NO_WAIT),
        settings=load_settings({}),
        bus=FakeBus(),
        state=InMemoryStateStore(),
        notifier=RecordingNotifier(),
        clock=FakeClock(sim.now),
    )
    yield built
    await built.aclose()


def guide() -> str:
    """The set-up guide with its whitespace collapsed (a quoted message may wrap in the source)."""
    return " ".join(GUIDE.read_text(encoding="utf-8").split())
