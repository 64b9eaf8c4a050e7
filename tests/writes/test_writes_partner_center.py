"""Partner Center's customers and their subscriptions, by the real client against the simulator's
`partner_center.customers` / `.subscriptions` (our fixture extension), paged by seek as Partner
Center does; and the paging rules checked at the transport."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from azure.core.credentials import AccessToken
from writes_support import tenant

from diagnostics.adapters.http import RetryPolicy
from diagnostics.adapters.partner_center import DEFAULT_BASE_URL, PartnerCenterClient
from diagnostics.errors import NotFoundError, ServiceError
from diagnostics.references.candidates import (
    MAX_CONCURRENT_SUBSCRIPTION_LISTS,
    partner_subscription_words,
    read_partner_subscriptions,
)
from simulator import Simulator, load_fixture
from simulator.connect import sim_credential
from simulator.fixture import FixtureError

CUSTOMERS = [
    {
        "id": f"0000000{n}-aaaa-4bbb-8ccc-00000000000{n}",
        "companyProfile": {"companyName": f"Customer {n}", "domain": f"customer{n}.onmicrosoft.com"},
    }
    for n in range(5)
]
AZURE_PLAN = {
    "id": "a1b2c3d4-0000-4000-8000-000000000001",
    "offerId": "DZH318Z0BPS6:0001",
    "offerName": "Azure plan",
    "friendlyName": "Azure plan",
}


def _doc(**partner_center: Any) -> dict[str, Any]:
    doc = tenant()
    doc["partner_center"] = {"enabled": True, "customers": CUSTOMERS, **partner_center}
    return doc


def _client(sim: Simulator, retry: RetryPolicy, **kwargs: Any) -> PartnerCenterClient:
    credential = sim_credential(sim, connection_verify=sim.ca_file)
    return PartnerCenterClient(
        sim.partner_center_url, credential, verify=sim.ssl_context(), retry=retry, **kwargs
    )


async def test_customers_are_read_page_by_page_with_the_continuation_token(retry: RetryPolicy) -> None:
    with Simulator(load_fixture(_doc())) as sim:
        async with _client(sim, retry, page_size=2) as pc:
            customers = await pc.list_customers()
        pages = sim.request_count("/v1/customers")

    assert [c["id"] for c in customers] == [c["id"] for c in CUSTOMERS]
    assert [c["companyProfile"]["companyName"] for c in customers] == [f"Customer {n}" for n in range(5)]
    assert customers[3]["companyProfile"]["domain"] == "customer3.onmicrosoft.com"
    assert customers[0]["companyProfile"]["tenantId"] == CUSTOMERS[0]["id"]
    assert pages == 3  # 2 + 2 + 1


async def test_a_customers_subscriptions(retry: RetryPolicy) -> None:
    customer = CUSTOMERS[1]["id"]
    with Simulator(load_fixture(_doc(subscriptions={customer: [AZURE_PLAN]}))) as sim:
        async with _client(sim, retry) as pc:
            (subscription,) = await pc.list_subscriptions(customer.upper())
            none = await pc.list_subscriptions(CUSTOMERS[2]["id"])
            with pytest.raises(NotFoundError, match="answered 404"):
                await pc.list_subscriptions("99999999-9999-4999-8999-999999999999")
            with pytest.raises(ServiceError, match="is not a GUID"):
                await pc.list_subscriptions("../invoices")
    assert (subscription["id"], subscription["offerName"], subscription["status"]) == (
        AZURE_PLAN["id"],
        "Azure plan",
        "active",
    )
    assert none == []


async def test_without_customers_the_list_is_empty_and_unreachable_is_said(retry: RetryPolicy) -> None:
    with Simulator(load_fixture(_doc(customers=[]))) as sim:
        async with _client(sim, retry) as pc:
            assert await pc.list_customers() == []
    with Simulator(load_fixture(_doc(unreachable=True))) as sim:
        async with _client(sim, RetryPolicy(max_attempts=1)) as pc:
            with pytest.raises(ServiceError, match="Partner Center GET /v1/customers answered 503"):
                await pc.list_customers()


async def test_a_seek_link_that_never_moves_on_is_refused(retry: RetryPolicy) -> None:
    """The next link of a seek page is always the same URI; only its token moves. A server that
    repeats the token too would be read forever."""
    asked: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        asked.append(request)
        next_link = {
            "uri": "/customers?size=1&seekOperation=Next",
            "method": "GET",
            "headers": [{"key": "MS-ContinuationToken", "value": "same"}],
        }
        return httpx.Response(
            200, json={"totalCount": 1, "items": [CUSTOMERS[0]], "links": {"next": next_link}}
        )

    class Credential:
        def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
            return AccessToken("t", 2**31)

    pc = PartnerCenterClient(
        DEFAULT_BASE_URL, Credential(), retry=retry, transport=httpx.MockTransport(handler)
    )
    async with pc:
        with pytest.raises(ServiceError, match=r"repeated the next link .* while listing customers"):
            await pc.list_customers()
    assert len(asked) == 2  # the first page, then the one whose link came back unchanged
    assert asked[1].headers["MS-ContinuationToken"] == "same"
    assert asked[1].url.params["seekOperation"] == "Next"


@pytest.mark.parametrize(
    ("section", "says"),
    [
        ({"customers": [{"id": "tailspin", "companyProfile": {"companyName": "x"}}]}, "not a GUID"),
        ({"customers": [{"id": CUSTOMERS[0]["id"]}]}, "companyProfile must be an object"),
        ({"customers": [CUSTOMERS[0], CUSTOMERS[0]]}, "the same customer id twice"),
        ({"subscriptions": {"99999999-9999-4999-8999-999999999999": []}}, "is not the id of one of"),
        ({"subscriptions": {CUSTOMERS[0]["id"]: [{"offerName": "x"}]}}, 'each with an "id"'),
    ],
)
def test_a_wrong_customers_section_is_a_clear_fixture_error(section: dict[str, Any], says: str) -> None:
    with pytest.raises(FixtureError, match=says):
        load_fixture(_doc(**section))


async def test_a_customer_partner_center_does_not_know_is_said_so_not_blamed_on_the_url(
    retry: RetryPolicy,
) -> None:
    unknown = "99999999-9999-4999-8999-999999999999"
    with Simulator(load_fixture(_doc(subscriptions={CUSTOMERS[1]["id"]: [AZURE_PLAN]}))) as sim:
        async with _client(sim, retry) as pc:
            listed = await read_partner_subscriptions(pc, [unknown, CUSTOMERS[1]["id"]])
    words, likely = partner_subscription_words(listed[unknown], "d41c8e2f-3b6a-4f9d-8e17-5a2c9b0f7d63")
    assert words == (
        "Partner Center's subscriptions of the customer cannot be listed: "
        "Partner Center does not know this customer"
    )
    assert not likely
    (plan,) = listed[CUSTOMERS[1]["id"]]  # a known customer's list is still read
    assert isinstance(plan, dict)
    assert plan["id"] == AZURE_PLAN["id"]


async def test_the_customers_subscription_lists_are_read_at_once_a_few_at_a_time(retry: RetryPolicy) -> None:
    unknown, refused, malformed = "99999999-9999-4999-8999-999999999999", CUSTOMERS[2]["id"], "not-a-guid"
    plans = {
        c["id"]: [{**AZURE_PLAN, "id": f"a1b2c3d4-0000-4000-8000-00000000010{n}"}]
        for n, c in enumerate(CUSTOMERS)
    }
    with Simulator(load_fixture(_doc(subscriptions=plans))) as sim:
        # Each list is served late, so that reads allowed at the same time are in flight together.
        sim.inject(latency=0.2, path_prefix="/v1/customers/")
        sim.inject(status=403, path_prefix=f"/v1/customers/{refused}/subscriptions")
        async with _client(sim, retry) as pc:
            sim.take_max_in_flight()
            listed = await read_partner_subscriptions(
                pc, [c["id"].upper() for c in CUSTOMERS] + [unknown, malformed]
            )
            most = sim.take_max_in_flight()
            with pytest.raises(ValueError, match="at least 1"):
                await read_partner_subscriptions(pc, [unknown], concurrency=0)
        lists = sim.request_count("/v1/customers/")

    assert lists == len(CUSTOMERS) + 1  # one request per customer (the malformed id is not sent)
    assert most == MAX_CONCURRENT_SUBSCRIPTION_LISTS  # at once, yet no more than the cap
    assert list(listed) == sorted([c["id"] for c in CUSTOMERS] + [unknown, malformed])
    assert listed[malformed] == (
        "could not be read (Partner Center customer id 'not-a-guid' is not a GUID (the customer's tenant "
        "id): not read)"
    )
    assert isinstance(listed[refused], str)
    assert listed[refused].startswith("could not be read (")  # said so, not reported clean
    assert listed[unknown] == "cannot be listed: Partner Center does not know this customer"
    for n, customer in enumerate(CUSTOMERS):
        if customer["id"] != refused:
            (plan,) = listed[customer["id"]]
            assert isinstance(plan, dict)
            assert plan["id"] == f"a1b2c3d4-0000-4000-8000-00000000010{n}"
