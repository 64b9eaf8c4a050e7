"""The cyclic garbage collector is paused while rounds are read (their rows and records hold no
cycles; traversing the growing heap again and again was a quarter of a large scan's CPU), resumed
once no round is being read, whichever of several rounds read at once ends last, and left off if it
was off."""

from __future__ import annotations

import asyncio
import gc
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from diagnostics.adapters.dataverse import DataverseClient
from diagnostics.loading.rounds import Answers, Round, run
from diagnostics.metadata import ResolvedSchema
from diagnostics.schema import SchemaMap
from diagnostics.settings import Thresholds
from diagnostics.snapshot_loader import Loader
from tests.adapters.conftest import FakeCredential

BASE = "https://contoso.crm.dynamics.com"
ROOT = f"{BASE}/api/data/v9.2/"


def _batch(body: dict[str, Any]) -> httpx.Response:
    lines = ["--b", "Content-Type: application/http", "", "HTTP/1.1 200 OK", "", json.dumps(body), "--b--"]
    return httpx.Response(
        200, headers={"Content-Type": "multipart/mixed; boundary=b"}, content="\r\n".join(lines).encode()
    )


@contextmanager
def _collector(enabled: bool) -> Iterator[None]:
    was = gc.isenabled()
    (gc.enable if enabled else gc.disable)()
    try:
        yield
    finally:
        (gc.enable if was else gc.disable)()


async def _read_rounds(count: int, seen: list[bool]) -> None:
    """`count` rounds read at once, each of two pages; `seen`: whether the collector ran at each
    request."""
    gate = asyncio.Event()

    async def answer(request: httpx.Request) -> httpx.Response:
        seen.append(gc.isenabled())
        if request.method == "POST":
            return _batch({"value": [], "@odata.nextLink": f"{ROOT}work365_providers?$skiptoken=1"})
        if len(seen) < 2 * count:
            await gate.wait()  # every round is being read before any ends
        gate.set()
        return httpx.Response(200, json={"value": []})

    loader = Loader(ResolvedSchema(SchemaMap(), {}, {}), Thresholds())
    async with DataverseClient(BASE, FakeCredential(), transport=httpx.MockTransport(answer)) as dv:
        rounds = []
        for _ in range(count):
            round_ = Round(loader)
            round_.add("providers", "work365_provider")
            rounds.append(round_)
        await asyncio.gather(*(run(dv, round_, Answers()) for round_ in rounds))


async def test_the_collector_is_paused_while_rounds_are_read_and_resumed_after() -> None:
    seen: list[bool] = []
    with _collector(enabled=True):
        await _read_rounds(3, seen)
        assert gc.isenabled()
    assert seen == [False] * 6


async def test_a_collector_that_was_off_stays_off() -> None:
    seen: list[bool] = []
    with _collector(enabled=False):
        await _read_rounds(2, seen)
        assert not gc.isenabled()
    assert seen == [False] * 4
