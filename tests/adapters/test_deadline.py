"""Retries within the deadline of a unit of work: pauses that do not fit are not taken."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from diagnostics.adapters.dataverse import DataverseClient, Query
from diagnostics.adapters.http import Deadline, RetryPolicy, current_deadline, within_deadline
from diagnostics.errors import DeadlineExceeded, ServiceUnreachable, Throttled

BASE = "https://contoso.crm.dynamics.com"
Q = Query("accounts", ("name",))
OK = {"value": [{"name": "A"}]}


class Clock:
    """A monotonic clock that moves only when the retry loop 'sleeps'."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.delays: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        self.delays.append(delay)
        self.now += delay


def scripted(*steps: httpx.Response) -> tuple[Callable[[httpx.Request], httpx.Response], list[httpx.Request]]:
    remaining = list(steps)
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return remaining.pop(0)

    return handler, seen


def client(handler: Any, credential: Any, clock: Clock) -> DataverseClient:
    retry = RetryPolicy(sleep=clock.sleep, jitter=lambda d: d)
    return DataverseClient(BASE, credential, retry=retry, transport=httpx.MockTransport(handler))


async def test_a_retry_after_that_does_not_fit_the_deadline_fails_fast_as_throttled(credential: Any) -> None:
    clock = Clock()
    handler, seen = scripted(httpx.Response(429, headers={"Retry-After": "30"}), httpx.Response(200, json=OK))
    with within_deadline(Deadline.after(10, clock)):
        async with client(handler, credential, clock) as dv:
            with pytest.raises(
                Throttled, match=r"asked to wait 30 s, longer than the 10 s left of this unit's"
            ):
                await dv.query(Q)
    assert len(seen) == 1
    assert clock.delays == []


async def test_a_retry_after_that_fits_is_waited_for(credential: Any) -> None:
    clock = Clock()
    handler, _ = scripted(httpx.Response(429, headers={"Retry-After": "3"}), httpx.Response(200, json=OK))
    with within_deadline(Deadline.after(10, clock)):
        async with client(handler, credential, clock) as dv:
            assert await dv.query(Q) == OK["value"]
    assert clock.delays == [3.0]


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf", "1e999", "Thu, 01 Jan 1970 00:00:00 GMT"])
async def test_a_retry_after_that_is_not_a_finite_positive_number_backs_off(
    credential: Any, value: str
) -> None:
    clock = Clock()
    handler, _ = scripted(httpx.Response(429, headers={"Retry-After": value}), httpx.Response(200, json=OK))
    async with client(handler, credential, clock) as dv:
        assert await dv.query(Q) == OK["value"]
    assert clock.delays == [0.5]


async def test_back_off_stops_at_the_deadline_with_the_service_error(credential: Any) -> None:
    clock = Clock()
    handler, seen = scripted(*[httpx.Response(503)] * 5)
    with within_deadline(Deadline.after(2, clock)):
        async with client(handler, credential, clock) as dv:
            with pytest.raises(ServiceUnreachable, match="answered 503 after 3 attempts"):
                await dv.query(Q)
    # 0.5 + 1 s waited; the next 2 s pause would pass the deadline, so it is not taken.
    assert clock.delays == [0.5, 1.0]
    assert len(seen) == 3


async def test_nothing_is_sent_once_the_deadline_has_passed(credential: Any) -> None:
    clock = Clock()
    handler, seen = scripted(httpx.Response(200, json=OK))
    deadline = Deadline.after(5, clock)
    clock.now += 6
    with within_deadline(deadline):
        async with client(handler, credential, clock) as dv:
            with pytest.raises(DeadlineExceeded, match="the 5 s deadline of this unit of work has passed"):
                await dv.query(Q)
    assert seen == []


async def test_each_attempt_times_out_by_the_deadline(credential: Any) -> None:
    clock = Clock()
    handler, seen = scripted(httpx.Response(200, json=OK))
    with within_deadline(Deadline.after(4, clock)):
        async with client(handler, credential, clock) as dv:
            await dv.query(Q)
    timeouts = seen[0].extensions["timeout"]
    assert set(timeouts) == {"connect", "read", "write", "pool"}
    assert all(0 < value <= 4 for value in timeouts.values())


async def test_the_sooner_deadline_wins_and_reaches_the_tasks_started_inside() -> None:
    clock = Clock()
    outer = Deadline.after(5, clock)
    with within_deadline(outer):
        with within_deadline(Deadline.after(60, clock)) as inner:
            assert inner is outer

            async def seen() -> Deadline | None:
                return current_deadline()

            assert await asyncio.gather(seen(), asyncio.to_thread(current_deadline)) == [outer, outer]
        with within_deadline(Deadline.after(1, clock)) as sooner:
            assert sooner is not outer
            assert current_deadline() is sooner
    assert current_deadline() is None
    with within_deadline(None) as none:
        assert none is None
