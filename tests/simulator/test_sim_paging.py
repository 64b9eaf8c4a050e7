"""Paging (Prefer: odata.maxpagesize, @odata.nextLink) and the 5,000-row and 50,000-row limits."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from sim_support import API, tenant_dict

from simulator import Simulator

ACCOUNTS = API + "accounts"
ROWS = 12_001


@pytest.fixture(scope="module")
def big() -> Iterator[tuple[Simulator, httpx.Client]]:
    raw = tenant_dict()
    raw["dataverse"]["rows"]["account"] = [{"name": f"account {i:05d}"} for i in range(ROWS)]
    with (
        Simulator(raw, tls=False) as sim,
        httpx.Client(
            base_url=sim.base_url, headers={"Authorization": f"Bearer {sim.issue_token()}"}
        ) as client,
    ):
        yield sim, client


def _pages(
    client: httpx.Client, url: str, prefer: str | None, params: dict[str, str] | None = None
) -> list[dict]:
    headers = {"Prefer": prefer} if prefer else {}
    pages = [client.get(url, params=params, headers=headers)]
    while "@odata.nextLink" in pages[-1].json():
        pages.append(client.get(pages[-1].json()["@odata.nextLink"], headers=headers))
    assert all(p.status_code == 200 for p in pages)
    return [p.json() for p in pages]


def test_12001_rows_come_in_three_pages_of_at_most_5000(big: tuple[Simulator, httpx.Client]) -> None:
    sim, client = big
    sim.reset_counts()
    pages = _pages(client, ACCOUNTS, "odata.maxpagesize=5000", {"$select": "name", "$orderby": "name desc"})
    assert [len(p["value"]) for p in pages] == [5000, 5000, 2001]
    names = [r["name"] for p in pages for r in p["value"]]
    assert names == sorted((f"account {i:05d}" for i in range(ROWS)), reverse=True)
    assert "$skiptoken=" in pages[0]["@odata.nextLink"]
    assert pages[0]["@odata.nextLink"].startswith(sim.base_url + ACCOUNTS + "?")
    assert "%24select=name" in pages[0]["@odata.nextLink"] or "$select=name" in pages[0]["@odata.nextLink"]
    assert sim.request_count() == 3
    assert sim.requests[("GET", ACCOUNTS)] == 3


def test_default_and_maximum_page_size_is_5000(big: tuple[Simulator, httpx.Client]) -> None:
    _, client = big
    assert [len(p["value"]) for p in _pages(client, ACCOUNTS, None, {"$select": "name"})] == [
        5000,
        5000,
        2001,
    ]
    capped = client.get(ACCOUNTS, params={"$select": "name"}, headers={"Prefer": "odata.maxpagesize=20000"})
    assert len(capped.json()["value"]) == 5000
    assert capped.headers["Preference-Applied"] == "odata.maxpagesize=5000"


def test_small_pages_with_filter_and_count(big: tuple[Simulator, httpx.Client]) -> None:
    _, client = big
    params = {"$select": "name", "$filter": "startswith(name,'account 0000')", "$count": "true"}
    both = 'odata.include-annotations="OData.Community.Display.V1.FormattedValue",odata.maxpagesize=4'
    first = client.get(ACCOUNTS, params=params, headers={"Prefer": both})
    assert first.headers["Preference-Applied"] == both
    assert len(first.json()["value"]) == 4
    pages = _pages(client, ACCOUNTS, "odata.maxpagesize=4", params)
    assert [len(p["value"]) for p in pages] == [4, 4, 2]
    assert pages[0]["@odata.count"] == 10
    big_count = client.get(
        ACCOUNTS, params={"$count": "true", "$top": "1"}, headers={"Prefer": 'odata.include-annotations="*"'}
    )
    assert big_count.json()["@odata.count"] == 5000  # Dataverse caps the count at 5,000
    assert big_count.json()["@Microsoft.Dynamics.CRM.totalrecordcountlimitexceeded"] is True


def test_a_forged_skiptoken_is_a_400(big: tuple[Simulator, httpx.Client]) -> None:
    _, client = big
    assert client.get(ACCOUNTS, params={"$skiptoken": "page2"}).status_code == 400
    no_key = '<cookie pagenumber="2" pagingcookie="%3ccookie%20page%3d%221%22%3e%3c%2fcookie%3e" />'
    assert client.get(ACCOUNTS, params={"$skiptoken": no_key}).status_code == 400


def test_the_next_link_carries_dataverses_double_encoded_paging_cookie() -> None:
    raw = tenant_dict()
    raw["dataverse"]["rows"]["account"] = [{"name": f"n{i}"} for i in range(5)]
    with (
        Simulator(raw, tls=False) as sim,
        httpx.Client(
            base_url=sim.base_url, headers={"Authorization": f"Bearer {sim.issue_token()}"}
        ) as client,
    ):
        prefer = {"Prefer": "odata.maxpagesize=2"}
        first = client.get(ACCOUNTS, params={"$select": "name", "$orderby": "name"}, headers=prefer).json()
        ids = [r["accountid"].upper() for r in first["value"]]
        link = first["@odata.nextLink"]
        # As in Microsoft's paging examples: the outer cookie encoded once, the inner one twice,
        # naming the previous page's last and first keys in braces.
        assert (
            "$skiptoken=%3Ccookie%20pagenumber=%222%22%20pagingcookie=%22%253ccookie%2520page%253d%25221%2522"
            in link
        )
        assert f"last%253d%2522%257b{ids[1]}%257d%2522%2520first%253d%2522%257b{ids[0]}%257d" in link
        assert link.endswith("%22%20istracking=%22False%22%20/%3E")
        second = client.get(link, headers=prefer).json()
        assert [r["name"] for r in second["value"]] == ["n2", "n3"]
        # The page follows the last row seen, even when rows before it went away meanwhile.
        assert client.delete(API + f"accounts({first['value'][0]['accountid']})").status_code == 204
        again = client.get(link, headers=prefer).json()
        assert [r["name"] for r in again["value"]] == ["n2", "n3"]


def test_aggregate_over_more_than_50000_rows_fails_like_dataverse() -> None:
    raw = tenant_dict()
    raw["dataverse"]["rows"]["work365_usagesummary"] = [{} for _ in range(50_001)]
    with (
        Simulator(raw, tls=False) as sim,
        httpx.Client(
            base_url=sim.base_url, headers={"Authorization": f"Bearer {sim.issue_token()}"}
        ) as client,
    ):
        url = API + "work365_usagesummaries"
        failed = client.get(url, params={"$apply": "aggregate($count as count)"})
        assert failed.status_code == 400
        assert failed.json()["error"] == {
            "code": "0x8004E023",
            "message": "AggregateQueryRecordLimit exceeded. Cannot perform this operation.",
        }
        grouped = client.get(url, params={"$apply": "groupby((statuscode),aggregate($count as count))"})
        assert grouped.json()["error"]["code"] == "0x8004E023"
        narrowed = client.get(
            url, params={"$apply": "aggregate($count as count)", "$filter": "statecode eq 1"}
        )
        assert narrowed.json()["value"] == [{"count": 0}]
