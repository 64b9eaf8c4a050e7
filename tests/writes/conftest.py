"""A running simulator per test (writes change it) and a retry policy that never waits."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from writes_support import tenant

from diagnostics.adapters.http import RetryPolicy
from simulator import Simulator, load_fixture


class Sleeps:
    """Stands in for asyncio.sleep: records each pause and returns at once."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def retry(sleeps: Sleeps) -> RetryPolicy:
    return RetryPolicy(sleep=sleeps, jitter=lambda delay: delay)


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(load_fixture(tenant())) as running:
        yield running
