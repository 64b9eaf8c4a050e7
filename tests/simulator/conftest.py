"""Shared fixtures for the simulator's tests: one small tenant, a running simulator, an httpx client."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from sim_support import client_for, tenant_dict

from simulator import Simulator, load_fixture


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    with Simulator(load_fixture(tenant_dict())) as running:
        yield running


@pytest.fixture(scope="module")
def client(sim: Simulator) -> Iterator[httpx.Client]:
    with client_for(sim) as http:
        yield http
