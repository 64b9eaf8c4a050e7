"""The simulator keeps up with a large tenant: a continuation page is cut from the result its first
page computed (not a re-filter of the table), a write makes that result stale, and the simulator
records the most requests it served at once."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest

from simulator import Simulator
from tests.simulator.sim_support import API, tenant_dict

ACCOUNTS = API + "accounts"
PAGE = {"Prefer": "odata.maxpagesize=4"}
QUERY = {"$select": "name", "$orderby": "name", "$filter": "startswith(name,'acc')"}


@pytest.fixture
def running() -> Iterator[tuple[Simulator, httpx.Client]]:
    raw = tenant_dict()
    raw["dataverse"]["rows"]["account"] = [{"name": f"account {i:02d}"} for i in range(10)]
    with (
        Simulator(raw, tls=False) as sim,
        httpx.Client(
            base_url=sim.base_url, headers={"Authorization": f"Bearer {sim.issue_token()}"}
        ) as client,
    ):
        yield sim, client


def _names(page: httpx.Response) -> list[str]:
    assert page.status_code == 200, page.text
    return [r["name"] for r in page.json()["value"]]


def _id_of(client: httpx.Client, name: str) -> str:
    found = client.get(ACCOUNTS, params={"$select": "accountid", "$filter": f"name eq '{name}'"})
    return str(found.json()["value"][0]["accountid"])


def test_pages_of_a_query_are_the_whole_ordered_result_once(
    running: tuple[Simulator, httpx.Client],
) -> None:
    _, client = running
    pages = [client.get(ACCOUNTS, params=QUERY, headers=PAGE)]
    while "@odata.nextLink" in pages[-1].json():
        pages.append(client.get(pages[-1].json()["@odata.nextLink"], headers=PAGE))
    assert [_names(p) for p in pages] == [
        [f"account {i:02d}" for i in range(4)],
        [f"account {i:02d}" for i in range(4, 8)],
        ["account 08", "account 09"],
    ]


def test_a_continuation_reads_the_result_of_its_first_page(
    running: tuple[Simulator, httpx.Client],
) -> None:
    sim, client = running
    first = client.get(ACCOUNTS, params=QUERY, headers=PAGE)
    # A row changed behind the API's back (not a write): the continuation still serves the
    # result computed for the first page, as a paging snapshot does.
    table = sim.tenant.table_for_set("accounts")
    assert table is not None
    row = next(r for r in table.rows.values() if r.values["name"] == "account 05")
    row.values["name"] = "zzz renamed"
    second = client.get(first.json()["@odata.nextLink"], headers=PAGE)
    assert _names(second) == ["account 04", "zzz renamed", "account 06", "account 07"]


def test_a_write_between_pages_is_seen_by_the_next_page(running: tuple[Simulator, httpx.Client]) -> None:
    _, client = running
    first = client.get(ACCOUNTS, params=QUERY, headers=PAGE)
    gone = _id_of(client, "account 05")
    assert client.delete(f"{ACCOUNTS}({gone})").status_code == 204
    second = client.get(first.json()["@odata.nextLink"], headers=PAGE)
    assert _names(first) == [f"account {i:02d}" for i in range(4)]
    assert _names(second) == ["account 04", "account 06", "account 07", "account 08"]


def test_the_most_requests_in_flight_are_recorded(running: tuple[Simulator, httpx.Client]) -> None:
    sim, _ = running
    sim.inject(latency=0.05)
    token = sim.issue_token()

    async def together(n: int) -> list[int]:
        async with httpx.AsyncClient(
            base_url=sim.base_url, headers={"Authorization": f"Bearer {token}"}
        ) as client:
            answers = await asyncio.gather(
                *(client.get(ACCOUNTS, params={"$select": "name"}) for _ in range(n))
            )
        return [a.status_code for a in answers]

    assert asyncio.run(together(6)) == [200] * 6
    assert sim.max_in_flight == 6
    assert sim.in_flight == 0
