"""Injected faults (429 with Retry-After, 5xx, dropped connections, latency) and request counting."""

from __future__ import annotations

import time

import httpx
import pytest
from sim_support import API

from simulator import Simulator

ACCOUNTS = API + "accounts"


@pytest.fixture(autouse=True)
def _no_faults_left(sim: Simulator) -> None:
    sim.clear_faults()
    sim.reset_counts()


def test_429_with_retry_after_for_a_number_of_requests(sim: Simulator, client: httpx.Client) -> None:
    sim.inject(status=429, retry_after=2, times=2, path_prefix="/api/data")
    first, second, third = (client.get(ACCOUNTS) for _ in range(3))
    assert (first.status_code, first.headers["Retry-After"]) == (429, "2")
    assert first.json()["error"]["code"] == "0x80072322"
    assert second.status_code == 429
    assert third.status_code == 200
    assert sim.request_count() == 3
    assert sim.requests[("GET", ACCOUNTS)] == 3


def test_path_prefix_limits_a_fault(sim: Simulator, client: httpx.Client) -> None:
    sim.inject(status=503, path_prefix="/v1/invoices", times=1)
    assert client.get(ACCOUNTS).status_code == 200
    failed = client.get("/v1/invoices")
    assert failed.status_code == 503
    assert client.get("/v1/invoices").status_code == 200
    assert sim.request_count("/v1") == 2
    assert sim.request_count("/api/data") == 1


def test_partner_center_429_has_its_own_body(sim: Simulator, client: httpx.Client) -> None:
    sim.inject(status=429, retry_after=0.5, times=1, path_prefix="/v1")
    response = client.get("/v1/invoices")
    assert response.headers["Retry-After"] == "0.5"
    assert response.json() == {
        "statusCode": 429,
        "message": "Rate limit is exceeded. Try again in 0.5 seconds.",
    }


def test_a_fault_without_times_lasts_until_cleared(sim: Simulator, client: httpx.Client) -> None:
    sim.inject(status=500)
    assert [client.get(ACCOUNTS).status_code for _ in range(3)] == [500, 500, 500]
    sim.clear_faults()
    assert client.get(ACCOUNTS).status_code == 200


def test_dropped_connection(sim: Simulator, client: httpx.Client) -> None:
    sim.inject(drop=True, times=1, path_prefix=ACCOUNTS)
    with pytest.raises(httpx.TransportError):
        client.get(ACCOUNTS)
    assert client.get(ACCOUNTS).status_code == 200  # the client reconnects
    assert sim.requests[("GET", ACCOUNTS)] == 2


def test_latency_and_jitter(sim: Simulator, client: httpx.Client) -> None:
    sim.inject(latency=0.15, jitter=0.05, times=1)
    started = time.perf_counter()
    assert client.get(ACCOUNTS).status_code == 200
    assert 0.15 <= time.perf_counter() - started < 1.0
    started = time.perf_counter()
    client.get(ACCOUNTS)
    assert time.perf_counter() - started < 0.15


def test_bad_fault_arguments_are_refused(sim: Simulator) -> None:
    with pytest.raises(ValueError, match="not an error status"):
        sim.inject(status=200)
    with pytest.raises(ValueError, match="times"):
        sim.inject(status=500, times=0)
