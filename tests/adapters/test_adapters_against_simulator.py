"""The adapters against the loopback simulator, signed in with the real azure-identity credential.

The simulator serves TLS with a throw-away certificate; `connection_verify=sim.ca_file` makes the
credential (azure-core's requests transport) trust it, and `verify=sim.ssl_context()` does the same
for httpx. Nothing is patched.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import pytest

from diagnostics.adapters.dataverse import DataverseClient, Query
from diagnostics.adapters.http import RequestCounter, RetryPolicy
from diagnostics.adapters.partner_center import DEFAULT_SCOPE, PartnerCenterClient
from diagnostics.errors import AuthError, NotFoundError, ServiceUnreachable
from simulator import Simulator, load_fixture
from simulator.connect import sim_credential

ACCOUNTS = [{"accountid": f"00000000-0000-4000-8000-{n:012d}", "name": f"Customer {n:02d}"} for n in range(7)]
INVOICES: list[dict[str, Any]] = [
    {
        "id": f"G0{n:08d}",
        "invoiceDate": "2026-11-08T00:00:00Z",
        "billingPeriodStartDate": "2026-10-01T00:00:00Z",
        "billingPeriodEndDate": "2026-10-31T00:00:00Z",
        "totalCharges": 10.0 * n,
        "currencyCode": "USD",
        "invoiceType": "OneTime",
        "documentType": "Invoice",
    }
    for n in range(5)
]


def _fixture(**partner_center: Any) -> dict[str, Any]:
    return {
        "fixture_version": 1,
        "description": "adapter integration tests: seven accounts, five invoices",
        "now": "2026-11-12T09:00:00Z",
        "dataverse": {"rows": {"account": ACCOUNTS}},
        "partner_center": {"enabled": True, "invoices": INVOICES, **partner_center},
    }


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(load_fixture(_fixture())) as simulator:
        yield simulator


def _dataverse(sim: Simulator, retry: RetryPolicy, **kwargs: Any) -> DataverseClient:
    credential = sim_credential(sim, connection_verify=sim.ca_file)
    return DataverseClient(sim.base_url, credential, verify=sim.ssl_context(), retry=retry, **kwargs)


async def test_query_pages_through_the_simulator_with_a_real_token(
    sim: Simulator, retry: RetryPolicy
) -> None:
    counter = RequestCounter()

    async with _dataverse(sim, retry, page_size=2, on_request=counter) as dv:
        rows = await dv.query(Query("accounts", ("name",), orderby="name"))

    assert [r["name"] for r in rows] == [a["name"] for a in ACCOUNTS]
    assert sim.request_count("/api/data/v9.2/accounts") == math.ceil(len(ACCOUNTS) / 2)
    assert counter.count == math.ceil(len(ACCOUNTS) / 2)
    assert [t.scope for t in sim.tokens] == [f"{sim.base_url}/.default"]


async def test_batch_is_one_round_trip_with_a_failed_part(sim: Simulator, retry: RetryPolicy) -> None:
    async with _dataverse(sim, retry, page_size=3) as dv:
        results = await dv.batch(
            [
                Query("accounts", ("name",), filter="name eq 'Customer 03'"),
                Query("nosuchtables", ("name",)),
                Query("accounts", ("accountid",)),
            ]
        )

    assert isinstance(results[0], list)
    assert [r["name"] for r in results[0]] == ["Customer 03"]
    assert isinstance(results[1], NotFoundError)
    assert "nosuchtables" in str(results[1])
    assert isinstance(results[2], list)
    assert len(results[2]) == len(ACCOUNTS)
    assert sim.request_count("/api/data/v9.2/$batch") == 1
    # The third part had 7 rows in pages of 3: its two further pages were plain GETs.
    assert sim.request_count("/api/data/v9.2/accounts") == 2


async def test_metadata_reads_in_a_batch(sim: Simulator, retry: RetryPolicy) -> None:
    async with _dataverse(sim, retry) as dv:
        (account, missing) = await dv.batch_get(
            [
                "EntityDefinitions(LogicalName='account')?$select=LogicalName,EntitySetName",
                "EntityDefinitions(LogicalName='nosuchtable')?$select=LogicalName",
            ]
        )

    assert isinstance(account, dict)
    assert (account["LogicalName"], account["EntitySetName"]) == ("account", "accounts")
    assert isinstance(missing, NotFoundError)


async def test_429_with_retry_after_is_honoured(sim: Simulator, retry: RetryPolicy, sleeps: Any) -> None:
    sim.inject(status=429, retry_after=1, times=2, path_prefix="/api/data")

    async with _dataverse(sim, retry) as dv:
        rows = await dv.query(Query("accounts", ("name",)))

    assert len(rows) == len(ACCOUNTS)
    assert sleeps.delays == [1.0, 1.0]
    assert sim.request_count("/api/data/v9.2/accounts") == 3


async def test_a_dropped_connection_is_retried(sim: Simulator, retry: RetryPolicy, sleeps: Any) -> None:
    sim.inject(drop=True, times=1, path_prefix="/api/data")

    async with _dataverse(sim, retry) as dv:
        assert len(await dv.query(Query("accounts", ("name",)))) == len(ACCOUNTS)

    assert sleeps.delays == [0.5]


async def test_5xx_every_time_is_unreachable(sim: Simulator, retry: RetryPolicy) -> None:
    sim.inject(status=503, path_prefix="/api/data")

    async with _dataverse(sim, retry) as dv:
        with pytest.raises(ServiceUnreachable, match="answered 503 after 5 attempts"):
            await dv.query(Query("accounts", ("name",)))

    assert sim.request_count("/api/data/v9.2/accounts") == 5


async def test_create_and_upsert_a_note(sim: Simulator, retry: RetryPolicy) -> None:
    note_id = "6a1f2d9e-0000-4000-8000-0000000000aa"

    async with _dataverse(sim, retry) as dv:
        created = await dv.create("annotations", {"subject": "first", "notetext": "a"})
        await dv.upsert("annotations", note_id, {"subject": "second", "notetext": "b"})
        await dv.upsert("annotations", note_id, {"subject": "second", "notetext": "c"})
        rows = await dv.query(Query("annotations", ("subject", "notetext"), orderby="subject"))

    by_id = {r["annotationid"]: (r["subject"], r["notetext"]) for r in rows}
    assert by_id == {created: ("first", "a"), note_id: ("second", "c")}


async def test_a_wrong_secret_is_an_auth_error_naming_the_aadsts_code(
    sim: Simulator, retry: RetryPolicy
) -> None:
    credential = sim_credential(sim, secret="not-the-secret", connection_verify=sim.ca_file)

    async with DataverseClient(sim.base_url, credential, verify=sim.ssl_context(), retry=retry) as dv:
        with pytest.raises(AuthError) as caught:
            await dv.query(Query("accounts", ("name",)))

    assert "(AADSTS7000215)" in str(caught.value)
    assert "not-the-secret" not in str(caught.value)
    assert sim.request_count("/api/data") == 0


async def test_without_trusting_the_simulator_ca_sign_in_fails_as_unreachable(
    sim: Simulator, retry: RetryPolicy
) -> None:
    # No connection_verify: the self-signed certificate is refused. retry_total=0 skips azure-core's
    # own retries of the failed connection, which would only make the test slow.
    credential = sim_credential(sim, retry_total=0)

    async with DataverseClient(sim.base_url, credential, verify=sim.ssl_context(), retry=retry) as dv:
        with pytest.raises(ServiceUnreachable, match="CERTIFICATE_VERIFY_FAILED"):
            await dv.query(Query("accounts", ("name",)))


async def test_list_invoices_pages_partner_center(sim: Simulator, retry: RetryPolicy) -> None:
    credential = sim_credential(sim, connection_verify=sim.ca_file)

    async with PartnerCenterClient(
        sim.partner_center_url, credential, verify=sim.ssl_context(), retry=retry, page_size=2
    ) as pc:
        invoices = await pc.list_invoices()

    assert sorted(i["id"] for i in invoices) == sorted(i["id"] for i in INVOICES)
    assert sim.request_count("/v1/invoices") == 3
    assert [t.scope for t in sim.tokens] == [DEFAULT_SCOPE]


async def test_partner_center_unreachable(retry: RetryPolicy) -> None:
    with Simulator(load_fixture(_fixture(unreachable=True))) as sim:
        credential = sim_credential(sim, connection_verify=sim.ca_file)
        async with PartnerCenterClient(
            sim.partner_center_url, credential, verify=sim.ssl_context(), retry=retry
        ) as pc:
            with pytest.raises(ServiceUnreachable, match="Partner Center GET /v1/invoices answered 503"):
                await pc.list_invoices()
