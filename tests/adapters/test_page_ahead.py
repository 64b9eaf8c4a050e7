"""A query's next page is asked for before the page in hand is decoded and given to the caller, so
that Dataverse serves it meanwhile: one page ahead at most, each page asked for once, within the
concurrency cap; a caller that stops early leaves nothing running, and a page that failed ahead
fails when the caller reaches it. At the transport (httpx.MockTransport) and against the
simulator."""

from __future__ import annotations

import asyncio
import gc
import re
from contextlib import aclosing
from typing import Any

import httpx
import pytest

from diagnostics.adapters.dataverse import DataverseClient, Query
from diagnostics.adapters.http import RequestCounter, RetryPolicy
from diagnostics.errors import ServiceError
from simulator import Simulator
from simulator.connect import sim_credential
from tests.adapters.conftest import FakeCredential
from tests.simulator.sim_support import tenant_dict

BASE = "https://contoso.crm.dynamics.com"
ROOT = f"{BASE}/api/data/v9.2/"
PAGES = 4
QUERY = Query("accounts", ("name",))


def _link(number: int) -> str:
    return f"{ROOT}accounts?$select=name&$skiptoken={number}"


def _page(number: int, **extra: Any) -> dict[str, Any]:
    page: dict[str, Any] = {"value": [{"name": f"row {number}"}], **extra}
    if number + 1 < PAGES:
        page["@odata.nextLink"] = _link(number + 1)
    return page


def _number(request: httpx.Request) -> int:
    found = re.search(r"\$skiptoken=(\d+)", str(request.url))
    return int(found[1]) if found else 0


def _client(handler: Any, retry: RetryPolicy | None = None) -> DataverseClient:
    return DataverseClient(BASE, FakeCredential(), retry=retry, transport=httpx.MockTransport(handler))


async def test_the_next_page_is_asked_for_before_the_caller_gets_this_one() -> None:
    events: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        events.append(f"asked {_number(request)}")
        return httpx.Response(200, json=_page(_number(request)))

    async with _client(answer) as dv:
        async for page in dv.pages(QUERY):
            events.append(f"got {page[0]['name']}")

    # One page ahead, never two; every page asked for once.
    assert events == [
        "asked 0",
        "asked 1",
        "got row 0",
        "asked 2",
        "got row 1",
        "asked 3",
        "got row 2",
        "got row 3",
    ]


async def test_a_query_reads_every_page_once() -> None:
    asked: list[int] = []

    def answer(request: httpx.Request) -> httpx.Response:
        asked.append(_number(request))
        return httpx.Response(200, json=_page(_number(request)))

    async with _client(answer) as dv:
        rows = await dv.query(QUERY)

    assert rows == [{"name": f"row {n}"} for n in range(PAGES)]
    assert asked == list(range(PAGES))


async def test_a_page_that_failed_ahead_fails_when_the_caller_reaches_it(retry: RetryPolicy) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if _number(request) == 1:
            return httpx.Response(400, json={"error": {"code": "0x80040203", "message": "bad skiptoken"}})
        return httpx.Response(200, json=_page(_number(request)))

    got: list[Any] = []

    async def read(dv: DataverseClient) -> None:
        async for page in dv.pages(QUERY):
            got.append(page)

    async with _client(answer, retry) as dv:
        with pytest.raises(ServiceError, match="bad skiptoken"):
            await read(dv)

    assert got == [[{"name": "row 0"}]]


async def test_a_caller_that_stops_early_leaves_no_request_running_nor_an_error_unseen(
    retry: RetryPolicy,
) -> None:
    unseen: list[dict[str, Any]] = []
    asyncio.get_running_loop().set_exception_handler(lambda loop, context: unseen.append(context))
    asked: list[int] = []

    def answer(request: httpx.Request) -> httpx.Response:
        asked.append(_number(request))
        if _number(request) == 1:  # the page fetched ahead fails, and nobody reads it
            return httpx.Response(400, json={"error": {"code": "0x1", "message": "never read"}})
        return httpx.Response(200, json=_page(_number(request)))

    async with _client(answer, retry) as dv:
        async with aclosing(dv.pages(QUERY)) as pages:
            async for _ in pages:
                break
        await asyncio.sleep(0)  # the dropped request's last callbacks
    gc.collect()

    assert asked == [0, 1]
    assert unseen == []
    assert [t for t in asyncio.all_tasks() if t is not asyncio.current_task()] == []


async def test_a_next_link_read_wrongly_ahead_is_dropped_for_the_one_the_page_gives() -> None:
    # A row holding a key "@odata.nextLink" after the page's own: read from the raw text, the row's
    # link looks like the page's. The decoded page says which one to follow.
    asked: list[int] = []

    def answer(request: httpx.Request) -> httpx.Response:
        number = _number(request)
        asked.append(number)
        if number == 0:
            body = '{"@odata.nextLink": "%s", "value": [{"name": "row 0", "@odata.nextLink": "%s"}]}'
            return httpx.Response(200, content=(body % (_link(1), _link(9))).encode())
        return httpx.Response(200, json=_page(number))

    async with _client(answer) as dv:
        rows = await dv.query(QUERY)

    assert [r["name"] for r in rows] == [f"row {n}" for n in range(PAGES)]
    assert asked[0] == 0
    assert [n for n in asked if n != 9] == list(range(PAGES))  # page 9 asked for at most once, unread


def test_pages_asked_for_ahead_stay_within_the_concurrency_cap() -> None:
    raw = tenant_dict()
    raw["dataverse"]["rows"]["account"] = [{"name": f"account {i:03d}"} for i in range(60)]
    with Simulator(raw) as sim:
        sim.inject(latency=0.01)
        counter = RequestCounter()

        async def read() -> list[list[dict[str, Any]]]:
            async with DataverseClient(
                sim.dataverse_url,
                sim_credential(sim, connection_verify=str(sim.ca_file)),
                verify=sim.ssl_context(),
                on_request=counter,
                max_concurrency=2,
                page_size=10,
            ) as dv:
                sim.max_in_flight = 0
                # Three readers of six pages each, at once: each would have a page ahead.
                return await asyncio.gather(*(dv.query(Query("accounts", ("name",))) for _ in range(3)))

        answers = asyncio.run(read())
        in_flight = sim.max_in_flight

    assert [len(rows) for rows in answers] == [60, 60, 60]
    assert counter.count == 3 * 6  # each page once
    assert in_flight <= 2
