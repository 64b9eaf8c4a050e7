"""The Dataverse shapes the simulator once hid, through the real clients.

Each test reproduces a shape of the real service (Microsoft's documentation or public recordings,
named in the simulator's comments): a choice on a global option set, a `$batch` stopped with
HTTP 400, change-set answers nested in their own multipart, a lookup that comes without its
`lookuplogicalname` annotation, and the double-encoded paging cookie of `@odata.nextLink`.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from azure.core.credentials import AccessToken

from diagnostics.adapters.dataverse import DataverseClient, Query, Write
from diagnostics.adapters.http import RetryPolicy
from diagnostics.errors import AuthError, ServiceError, ServiceUnreachable
from diagnostics.loading import load_period
from diagnostics.metadata import fetch_metadata, resolve
from diagnostics.schema import TABLES, SchemaMap
from diagnostics.service import scan
from diagnostics.settings import Thresholds
from simulator import Simulator, load_fixture
from simulator.connect import connection, sim_credential

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"
CHOICES = [
    f"{table}.{column.logical}"
    for table, definition in TABLES.items()
    for column in definition.columns
    if column.type == "Picklist"
]


async def _no_sleep(_: float) -> None:
    return None


RETRY = RetryPolicy(sleep=_no_sleep, jitter=lambda delay: delay)


def _scenario(name: str) -> dict[str, Any]:
    fixture: dict[str, Any] = json.loads((SCENARIOS / f"{name}.json").read_text(encoding="utf-8"))
    return fixture


def _codes(fixture: dict[str, Any]) -> set[str]:
    with Simulator(load_fixture(fixture)) as sim:
        report = asyncio.run(scan(connection(sim, retry=RETRY), sim.now))
    return {f.code for f in report.findings if not f.muted}


def _dataverse(sim: Simulator, **kwargs: Any) -> DataverseClient:
    credential = sim_credential(sim, connection_verify=sim.ca_file)
    kwargs.setdefault("retry", RETRY)
    return DataverseClient(sim.base_url, credential, verify=sim.ssl_context(), **kwargs)


# --- 1. a choice column on a global option set ---------------------------------------------------


def test_choices_on_global_option_sets_keep_their_labels() -> None:
    fixture = _scenario("sub_not_on_active_contract_none")
    fixture["dataverse"]["global_option_sets"] = {key: key.replace(".", "_") for key in CHOICES}

    # The usage subscription is found (by its type's label) only if GlobalOptionSet is read.
    assert _codes(fixture) == {"SUB_NOT_ON_ACTIVE_CONTRACT"}


async def test_the_simulator_serves_a_global_choice_under_global_option_set() -> None:
    raw = _scenario("sub_not_on_active_contract_none")
    raw["dataverse"]["global_option_sets"] = {
        "work365_subscription.work365_subscription_subscriptiontype": "w365_type"
    }
    path = (
        "EntityDefinitions(LogicalName='work365_subscription')/Attributes/"
        "Microsoft.Dynamics.CRM.PicklistAttributeMetadata?$select=LogicalName&$expand=OptionSet,GlobalOptionSet"
    )
    with Simulator(load_fixture(raw)) as sim:
        async with _dataverse(sim) as dv:
            answer = await dv.get(path)
            meta = await fetch_metadata(dv, SchemaMap())

    by_name = {a["LogicalName"]: a for a in answer["value"]}
    global_choice = by_name["work365_subscription_subscriptiontype"]
    assert global_choice["OptionSet"] is None
    assert global_choice["GlobalOptionSet"]["IsGlobal"] is True
    assert global_choice["GlobalOptionSet"]["Name"] == "w365_type"
    options = resolve(meta, SchemaMap()).options["work365_subscription.work365_subscription_subscriptiontype"]
    assert "Usage Based" in options.values()


# --- 3. a $batch that Dataverse answers with HTTP 400 and a multipart body -----------------------

_STOPPED = (
    "--batchresponse_156d\r\n"
    "Content-Type: application/http\r\n"
    "Content-Transfer-Encoding: binary\r\n"
    "\r\n"
    "HTTP/1.1 {status} Bad Request\r\n"
    "REQ_ID: 5ecd1cb3-1730-4ffc-909c-d44c22270026\r\n"
    "Content-Type: application/json; odata.metadata=minimal\r\n"
    "OData-Version: 4.0\r\n"
    "\r\n"
    '{{"error":{{"code":"{code}","message":"{message}"}}}}\r\n'
    "--batchresponse_156d--\r\n"
)


@pytest.mark.parametrize(
    ("status", "code", "message", "kind", "hint"),
    [
        (400, "0x80044331", "A validation error occurred.", ServiceError, "rejected"),
        (
            403,
            "0x80040220",
            "Principal user is missing prvReadannotation privilege.",
            AuthError,
            "security role",
        ),
    ],
)
async def test_a_batch_answered_400_with_a_multipart_body_reports_the_failed_part(
    credential: Any, status: int, code: str, message: str, kind: type[ServiceError], hint: str
) -> None:
    # The simulator cannot answer a read batch with 400 (the client asks to continue on error), so
    # this shape - from Microsoft's "Handling errors" example - comes from the transport.
    def handler(request: httpx.Request) -> httpx.Response:
        body = _STOPPED.format(status=status, code=code, message=message)
        headers = {"Content-Type": "multipart/mixed; boundary=batchresponse_156d", "OData-Version": "4.0"}
        return httpx.Response(400, headers=headers, content=body.encode())

    transport = httpx.MockTransport(handler)
    async with DataverseClient("https://org.example", credential, retry=RETRY, transport=transport) as dv:
        with pytest.raises(kind) as caught:
            await dv.batch([Query("accounts", ("name",))])

    text = str(caught.value)
    assert f"({code}: {message})" in text
    assert "$batch" in text
    assert hint in text
    assert caught.value.status == status
    assert type(caught.value) is kind


async def test_a_rolled_back_change_set_fails_with_the_write_that_failed() -> None:
    raw = _scenario("sub_not_on_active_contract_none")
    with Simulator(load_fixture(raw)) as sim:
        async with _dataverse(sim) as dv:
            with pytest.raises(ServiceError) as caught:
                await dv.change_set(
                    [
                        Write("POST", "annotations", {"subject": "kept only if all succeed"}),
                        Write("POST", "annotations", {"subject": "x", "not_a_column": 1}),
                    ]
                )
            left = await dv.query(
                Query("annotations", ("subject",), filter="subject eq 'kept only if all succeed'")
            )

    assert "The property 'not_a_column' does not exist" in str(caught.value)
    assert caught.value.status == 400
    assert left == []
    assert sim.request_count("/api/data/v9.2/$batch") == 1


# --- 4. change-set answers nested in their own multipart -----------------------------------------


async def test_a_change_set_is_one_round_trip_and_answers_each_write() -> None:
    raw = _scenario("sub_not_on_active_contract_none")
    note = "6a1f2d9e-0000-4000-8000-0000000000bb"
    with Simulator(load_fixture(raw)) as sim:
        async with _dataverse(sim) as dv:
            ids = await dv.change_set(
                [
                    Write("POST", "annotations", {"subject": "created", "notetext": "a"}),
                    Write("PATCH", f"annotations({note})", {"subject": "upserted", "notetext": "b"}),
                ]
            )
            rows = await dv.query(Query("annotations", ("subject",), orderby="subject"))

    created, upserted = ids
    assert upserted == note
    assert created is not None
    assert re.fullmatch(r"[0-9a-f-]{36}", created)
    assert {r["annotationid"]: r["subject"] for r in rows} == {created: "created", note: "upserted"}
    assert sim.request_count("/api/data/v9.2/$batch") == 1


# --- 5. a lookup without its lookuplogicalname annotation ----------------------------------------

_TARGET = re.compile(r'"[^"]*@Microsoft\.Dynamics\.CRM\.lookuplogicalname": "(?!account")[^"]*", ')


class _WithoutLookupTargets(httpx.AsyncBaseTransport):
    """Forwards to the simulator and drops the target annotation of every lookup not to an account,
    as an answer can come (a proxy, a narrower include-annotations) - the simulator always sends it."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        content = await response.aread()
        stripped = _TARGET.sub("", content.decode("utf-8")).encode("utf-8")
        headers = [(k, v) for k, v in response.headers.items() if k.lower() != "content-length"]
        return httpx.Response(response.status_code, headers=headers, content=stripped)

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_a_lookup_without_its_target_annotation_is_not_taken_for_a_customer() -> None:
    raw = _scenario("sub_not_on_active_contract_none")
    with Simulator(load_fixture(raw)) as sim:
        transport = _WithoutLookupTargets(httpx.AsyncHTTPTransport(verify=sim.ssl_context()))
        async with _dataverse(sim, transport=transport) as dv:
            schema = resolve(await fetch_metadata(dv, SchemaMap()), SchemaMap())
            snapshot = await load_period(
                dv, None, schema, Thresholds(), as_of=datetime(2026, 11, 12, tzinfo=UTC), period="2026-10"
            )

    accounts = {a["accountid"]: a["name"] for a in raw["dataverse"]["rows"]["account"]}
    assert snapshot.account_names  # the customers' names still come with the subscriptions
    assert snapshot.account_names.items() <= accounts.items()
    providers = {p["work365_name"] for p in raw["dataverse"]["rows"]["work365_provider"]}
    assert not providers & set(snapshot.account_names.values())


# --- the paging cookie of @odata.nextLink --------------------------------------------------------


@pytest.fixture
def many_accounts() -> Iterator[Simulator]:
    raw = _scenario("sub_not_on_active_contract_none")
    raw["dataverse"]["rows"]["account"] = [{"name": f"customer {n:02d}"} for n in range(7)]
    with Simulator(load_fixture(raw)) as sim:
        yield sim


async def test_paging_follows_dataverses_double_encoded_cookie(many_accounts: Simulator) -> None:
    sim = many_accounts
    links: list[str] = []

    class Recording(httpx.AsyncBaseTransport):
        def __init__(self) -> None:
            self.inner = httpx.AsyncHTTPTransport(verify=sim.ssl_context())

        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            links.append(request.url.raw_path.decode("ascii"))
            return await self.inner.handle_async_request(request)

        async def aclose(self) -> None:
            await self.inner.aclose()

    async with _dataverse(sim, page_size=3, transport=Recording()) as dv:
        rows = await dv.query(Query("accounts", ("name",), filter="name ne 'nobody'", orderby="name"))

    assert [r["name"] for r in rows] == [f"customer {n:02d}" for n in range(7)]
    assert len(links) == 3
    # The inner cookie travels encoded twice, exactly as Dataverse wrote it.
    assert (
        "pagingcookie=%22%253ccookie%2520page%253d%25221%2522%253e%253caccountid%2520last%253d%2522%257b"
        in links[1]
    )
    assert "pagenumber=%223%22" in links[2]


# --- the environment's proxy still applies ---------------------------------------------------------


async def test_the_environments_proxy_and_its_exceptions_still_apply(
    many_accounts: Simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The client brings its own transport (for the stopped-batch answers); httpx then ignores
    # HTTPS_PROXY unless the client applies it. A proxy that refuses connections shows it is used.
    sim = many_accounts
    token = sim.issue_token(f"{sim.base_url}/.default")  # signed in before the proxy is set

    class Issued:
        def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
            return AccessToken(token, int(time.time()) + 3600)

    def client() -> DataverseClient:
        once = RetryPolicy(max_attempts=1, sleep=_no_sleep)
        return DataverseClient(sim.base_url, Issued(), verify=sim.ssl_context(), retry=once)

    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("NO_PROXY", "")
    async with client() as dv:
        with pytest.raises(
            ServiceUnreachable, match=r"Dataverse GET /api/data/v9\.2/accounts could not be reached"
        ):
            await dv.query(Query("accounts", ("name",)))

    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    async with client() as dv:
        assert len(await dv.query(Query("accounts", ("name",)))) == 7
