"""The cyclic garbage collector is paused while rounds are read (their rows and records hold no
cycles; traversing the growing heap again and again was a quarter of a large scan's CPU), resumed
once no round is being read, whichever of several rounds read at once ends last, and left off if it
was off."""

from __future__ import annotations

import asyncio
import gc
import json
import re
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
    """`count` rounds read at once; the first reads a page more, after the others have ended.
    `seen`: whether the collector ran at each request."""
    others_done = asyncio.Event()

    async def answer(request: httpx.Request) -> httpx.Response:
        seen.append(gc.isenabled())
        if request.method == "POST":
            which = re.search(r"name%20eq%20'r(\d+)'", request.content.decode())
            assert which is not None
            return _batch(
                {"value": [], "@odata.nextLink": f"{ROOT}work365_providers?r={which[1]}&$skiptoken=1"}
            )
        if request.url.params["r"] == "0" and request.url.params["$skiptoken"] == "1":
            await others_done.wait()
            return httpx.Response(
                200, json={"value": [], "@odata.nextLink": f"{ROOT}work365_providers?r=0&$skiptoken=2"}
            )
        return httpx.Response(200, json={"value": []})

    loader = Loader(ResolvedSchema(SchemaMap(), {}, {}), Thresholds())

    def round_(number: int) -> Round:
        made = Round(loader)
        made.add(
            "providers", "work365_provider", f"{loader.c('work365_provider', 'work365_name')} eq 'r{number}'"
        )
        return made

    async def others(dv: DataverseClient) -> None:
        await asyncio.gather(*(run(dv, round_(n), Answers()) for n in range(1, count)))
        others_done.set()

    async with DataverseClient(BASE, FakeCredential(), transport=httpx.MockTransport(answer)) as dv:
        await asyncio.gather(run(dv, round_(0), Answers()), others(dv))


async def test_the_collector_is_paused_while_rounds_are_read_and_resumed_after() -> None:
    seen: list[bool] = []
    with _collector(enabled=True):
        await _read_rounds(3, seen)
        assert gc.isenabled()
    assert seen == [False] * 7  # the first round's last page too, read after the others ended


async def test_a_collector_that_was_off_stays_off() -> None:
    seen: list[bool] = []
    with _collector(enabled=False):
        await _read_rounds(2, seen)
        assert not gc.isenabled()
    assert seen == [False] * 5
