"""A scan holds one page of an answer at a time: the page a reader has reduced is let go before the
next is fetched, in the client (`batch_pages`) and in the round that reads it (`rounds.run`). Pages
held across the wait for the next one were, at 10,000 customers, the largest part of the scan's peak
(eight partitions read at once, a page of 5,000 rows each)."""

from __future__ import annotations

import gc
import json
import re
import uuid
import weakref
from typing import Any

import httpx

from diagnostics.adapters.dataverse import DataverseClient, Query
from diagnostics.loading.rounds import Answers, Round, run
from diagnostics.metadata import ResolvedSchema
from diagnostics.schema import SchemaMap
from diagnostics.settings import Thresholds
from diagnostics.snapshot_loader import Loader
from tests.adapters.conftest import FakeCredential

BASE = "https://contoso.crm.dynamics.com"
ROOT = f"{BASE}/api/data/v9.2/"
PAGES, ROWS = 4, 30
MARK = "test_page_number"  # a column no decoder reads: it tells which page a decoded row came from


def _page(entity_set: str, number: int) -> dict[str, Any]:
    rows = [
        {
            "work365_subscriptionid": str(uuid.UUID(int=number * 1000 + n + 1)),
            "createdon": "2026-10-01T00:00:00Z",
            MARK: number,
        }
        for n in range(ROWS)
    ]
    if number + 1 < PAGES:
        return {"value": rows, "@odata.nextLink": f"{ROOT}{entity_set}?$skiptoken={number + 1}"}
    return {"value": rows}


def _batch(parts: list[dict[str, Any]]) -> httpx.Response:
    lines: list[str] = []
    for body in parts:
        lines += [
            "--batchresponse_1",
            "Content-Type: application/http",
            "",
            "HTTP/1.1 200 OK",
            "Content-Type: application/json",
            "",
            json.dumps(body),
        ]
    lines.append("--batchresponse_1--")
    return httpx.Response(
        200,
        headers={"Content-Type": "multipart/mixed; boundary=batchresponse_1"},
        content="\r\n".join(lines).encode(),
    )


def _pages_alive() -> list[int]:
    """The page numbers of the decoded pages still held somewhere in this process."""
    return sorted(
        o[0][MARK]
        for o in gc.get_objects()
        if isinstance(o, list) and o and isinstance(o[0], dict) and isinstance(o[0].get(MARK), int)
    )


async def test_a_page_is_let_go_before_the_next_is_fetched() -> None:
    held_while_fetching: list[list[int]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return _batch([_page("work365_subscriptions", 0), _page("work365_subscriptions", 0)])
        found = re.search(r"\$skiptoken=(\d+)", str(request.url))
        assert found is not None
        held_while_fetching.append(_pages_alive())
        return httpx.Response(200, json=_page("work365_subscriptions", int(found[1])))

    loader = Loader(ResolvedSchema(SchemaMap(), {}, {}), Thresholds())
    round_ = Round(loader)
    round_.add("subscriptions", "work365_subscription")
    round_.add("subscriptions", "work365_subscription")  # two answers read at once
    answers = Answers()
    async with DataverseClient(BASE, FakeCredential(), transport=httpx.MockTransport(answer)) as dv:
        await run(dv, round_, answers)

    assert len(held_while_fetching) == 2 * (PAGES - 1)  # the test saw every continuation page
    assert held_while_fetching == [[]] * len(held_while_fetching)
    assert len(answers.get("subscriptions")) == PAGES * ROWS  # read in full (both answers, one id each)


async def test_a_page_body_is_freed_once_read_without_waiting_for_the_garbage_collector() -> None:
    # httpx's response and its stream refer to each other; the client cuts that cycle, so the body
    # goes with the response instead of waiting for a full collection (rare in a scan that holds
    # many records).
    answered: list[weakref.ref[httpx.Response]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        response = httpx.Response(200, json=_page("work365_subscriptions", PAGES - 1))
        answered.append(weakref.ref(response))
        return response

    enabled = gc.isenabled()
    gc.disable()
    try:
        async with DataverseClient(BASE, FakeCredential(), transport=httpx.MockTransport(answer)) as dv:
            rows = await dv.query(Query("work365_subscriptions", ("work365_subscriptionid",)))
            assert len(rows) == ROWS
            assert [ref() for ref in answered] == [None]
    finally:
        if enabled:
            gc.enable()
