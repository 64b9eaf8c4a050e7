"""A running simulator per test (writes change it) and a retry policy that never waits."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from writes_support import Sleeps, tenant

from diagnostics.adapters.http import RetryPolicy
from simulator import Simulator, load_fixture


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
