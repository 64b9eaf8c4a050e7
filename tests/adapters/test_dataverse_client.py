from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from diagnostics.adapters.dataverse import DataverseClient, Query
from diagnostics.adapters.http import RetryPolicy
from diagnostics.errors import AuthError, NotFoundError, ServiceError, ServiceUnreachable

BASE = "https://contoso.crm.dynamics.com"
ROOT = f"{BASE}/api/data/v9.2/"

Handler = Callable[[httpx.Request], httpx.Response]


def client(handler: Handler, credential: Any, retry: RetryPolicy, **kwargs: Any) -> DataverseClient:
    return DataverseClient(BASE, credential, retry=retry, transport=httpx.MockTransport(handler), **kwargs)


def recording(handler: Handler) -> tuple[Handler, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        request.read()
        seen.append(request)
        return handler(request)

    return record, seen


# --- query ---------------------------------------------------------------------------------------


async def test_query_sends_select_filter_prefer_and_bearer_token(credential: Any, retry: RetryPolicy) -> None:
    handler, seen = recording(lambda r: httpx.Response(200, json={"value": [{"name": "A"}]}))
    q = Query(
        "w365_providerinvoices",
        ("w365_name", "statuscode"),
        filter="w365_name eq 'G0 01&x' and statuscode ne null",
        orderby="createdon desc",
        expand="w365_provider($select=w365_name)",
        annotations=True,
    )

    async with client(handler, credential, retry, page_size=250) as dv:
        rows = await dv.query(q)

    assert rows == [{"name": "A"}]
    (request,) = seen
    assert request.method == "GET"
    assert request.url.path == "/api/data/v9.2/w365_providerinvoices"
    assert request.url.params["$select"] == "w365_name,statuscode"
    assert request.url.params["$filter"] == "w365_name eq 'G0 01&x' and statuscode ne null"
    assert request.url.params["$orderby"] == "createdon desc"
    assert request.url.params["$expand"] == "w365_provider($select=w365_name)"
    assert "$top" not in request.url.params
    # Spaces and & inside values are encoded, so the URL also serves as a batch request line.
    assert " " not in str(request.url)
    assert "%26x" in str(request.url)
    assert request.headers["Prefer"] == 'odata.maxpagesize=250,odata.include-annotations="*"'
    assert request.headers["Authorization"] == "Bearer token-1"
    assert request.headers["Accept"] == "application/json"
    assert request.headers["OData-MaxVersion"] == "4.0"
    assert request.headers["OData-Version"] == "4.0"
    assert credential.scopes == [(f"{BASE}/.default",)]


async def test_query_with_top_asks_for_no_page_size(credential: Any, retry: RetryPolicy) -> None:
    handler, seen = recording(lambda r: httpx.Response(200, json={"value": []}))

    async with client(handler, credential, retry) as dv:
        await dv.query(Query("accounts", ("name",), top=3))

    assert seen[0].url.params["$top"] == "3"
    assert "Prefer" not in seen[0].headers


def test_query_needs_a_select() -> None:
    with pytest.raises(ValueError, match="select"):
        Query("accounts", ())


def test_page_size_is_capped_at_dataverse_maximum(credential: Any) -> None:
    with pytest.raises(ValueError, match="5000"):
        DataverseClient(BASE, credential, page_size=5001)


async def test_query_follows_next_links_as_given_with_the_same_prefer(
    credential: Any, retry: RetryPolicy
) -> None:
    link2 = f"{ROOT}accounts?$select=name&$skiptoken=%3Ccookie%20pagenumber=%222%22%20/%3E"
    link3 = f"{ROOT}accounts?$select=name&$skiptoken=%3Ccookie%20pagenumber=%223%22%20/%3E"

    def answer(request: httpx.Request) -> httpx.Response:
        if "skiptoken" not in str(request.url):
            return httpx.Response(200, json={"value": [{"n": 1}, {"n": 2}], "@odata.nextLink": link2})
        if "%222%22" in str(request.url):
            return httpx.Response(200, json={"value": [{"n": 3}], "@odata.nextLink": link3})
        return httpx.Response(200, json={"value": [{"n": 4}]})

    handler, seen = recording(answer)
    async with client(handler, credential, retry, page_size=2) as dv:
        rows = await dv.query(Query("accounts", ("name",)))

    assert [r["n"] for r in rows] == [1, 2, 3, 4]
    assert [str(r.url) for r in seen[1:]] == [link2, link3]
    assert {r.headers["Prefer"] for r in seen} == {"odata.maxpagesize=2"}


async def test_query_refuses_a_next_link_to_another_host(credential: Any, retry: RetryPolicy) -> None:
    handler, seen = recording(
        lambda r: httpx.Response(
            200, json={"value": [], "@odata.nextLink": "https://evil.example/api/data/v9.2/accounts"}
        )
    )

    async with client(handler, credential, retry) as dv:
        with pytest.raises(ServiceError, match="nextLink outside"):
            await dv.query(Query("accounts", ("name",)))

    assert len(seen) == 1  # the token never went to the other host


async def test_get_reads_a_metadata_path(credential: Any, retry: RetryPolicy) -> None:
    handler, seen = recording(lambda r: httpx.Response(200, json={"value": [{"LogicalName": "account"}]}))

    async with client(handler, credential, retry) as dv:
        body = await dv.get("EntityDefinitions?$select=LogicalName")

    assert body == {"value": [{"LogicalName": "account"}]}
    assert seen[0].url.path == "/api/data/v9.2/EntityDefinitions"
    assert seen[0].url.params["$select"] == "LogicalName"


async def test_a_body_that_is_not_json_is_a_service_error(credential: Any, retry: RetryPolicy) -> None:
    handler, _ = recording(lambda r: httpx.Response(200, text="<html>sign in</html>"))

    async with client(handler, credential, retry) as dv:
        with pytest.raises(
            ServiceError, match="answered 200 without JSON: it is not a Dataverse environment"
        ):
            await dv.get("WhoAmI")


# --- errors --------------------------------------------------------------------------------------


def _error(status: int, code: str, message: str) -> Handler:
    return lambda r: httpx.Response(status, json={"error": {"code": code, "message": message}})


@pytest.mark.parametrize(
    ("status", "kind", "hint"),
    [
        (401, AuthError, "application user for this app"),
        (403, AuthError, "give the application user read access"),
        (404, NotFoundError, "check --dataverse-url"),
        (400, ServiceError, "schema map"),
    ],
)
async def test_4xx_answers_map_to_one_line_errors_without_retrying(
    credential: Any, retry: RetryPolicy, status: int, kind: type[ServiceError], hint: str
) -> None:
    handler, seen = recording(_error(status, "0x80040220", "Principal user is missing\nprvReadAccount"))

    async with client(handler, credential, retry) as dv:
        with pytest.raises(kind) as caught:
            await dv.query(Query("accounts", ("name",), filter="name eq 'secret-ish'"))

    message = str(caught.value)
    assert type(caught.value) is kind
    assert message.startswith(f"Dataverse GET /api/data/v9.2/accounts answered {status} (0x80040220: ")
    assert "Principal user is missing prvReadAccount" in message
    assert hint in message
    assert "\n" not in message
    assert "secret-ish" not in message  # the query string stays out of messages
    assert caught.value.status == status
    assert caught.value.code == "0x80040220"
    assert len(seen) == 1


async def test_a_write_refused_asks_for_write_access(credential: Any, retry: RetryPolicy) -> None:
    handler, _ = recording(_error(403, "0x80040220", "no"))

    async with client(handler, credential, retry) as dv:
        with pytest.raises(AuthError, match="create and write access"):
            await dv.create("annotations", {"subject": "x"})


async def test_an_error_body_without_code_still_gives_status_and_hint(
    credential: Any, retry: RetryPolicy
) -> None:
    handler, _ = recording(lambda r: httpx.Response(404, text="Not Found"))

    async with client(handler, credential, retry) as dv:
        with pytest.raises(NotFoundError) as caught:
            await dv.get("nosuchset")

    # Dataverse answers every error with a code: a bare 404 names the server as not Dataverse.
    assert str(caught.value) == (
        "the server at https://contoso.crm.dynamics.com answered 404 without a Dataverse error: it is not "
        "a Dataverse environment; check --dataverse-url (DIAG_DATAVERSE_URL), e.g. https://contoso.crm.dynamics.com"
    )


# --- writes --------------------------------------------------------------------------------------


async def test_create_posts_json_and_returns_the_new_id(credential: Any, retry: RetryPolicy) -> None:
    new_id = "6a1f2d9e-0000-4000-8000-000000000001"
    handler, seen = recording(
        lambda r: httpx.Response(204, headers={"OData-EntityId": f"{ROOT}annotations({new_id})"})
    )
    body = {"subject": "Diagnosis", "objectid_account@odata.bind": "/accounts(1)"}

    async with client(handler, credential, retry) as dv:
        assert await dv.create("annotations", body) == new_id

    (request,) = seen
    assert (request.method, request.url.path) == ("POST", "/api/data/v9.2/annotations")
    assert request.headers["Content-Type"] == "application/json"
    assert json.loads(request.content) == body


async def test_create_without_an_entity_id_header_is_an_error(credential: Any, retry: RetryPolicy) -> None:
    handler, _ = recording(lambda r: httpx.Response(204))

    async with client(handler, credential, retry) as dv:
        with pytest.raises(ServiceError, match="OData-EntityId"):
            await dv.create("annotations", {"subject": "x"})


async def test_upsert_patches_the_row_with_the_given_id(credential: Any, retry: RetryPolicy) -> None:
    handler, seen = recording(lambda r: httpx.Response(204))

    async with client(handler, credential, retry) as dv:
        await dv.upsert("annotations", "6a1f2d9e-0000-4000-8000-000000000002", {"notetext": "x"})

    (request,) = seen
    assert request.method == "PATCH"
    assert request.url.path == "/api/data/v9.2/annotations(6a1f2d9e-0000-4000-8000-000000000002)"
    assert json.loads(request.content) == {"notetext": "x"}
    assert "If-Match" not in request.headers
    assert "If-None-Match" not in request.headers


async def test_create_is_not_retried_after_a_5xx_but_upsert_is(
    credential: Any, retry: RetryPolicy, sleeps: Any
) -> None:
    # A 503 on a create may have created the row; repeating it could make a duplicate.
    statuses = iter([503, 503, 204])
    handler, seen = recording(
        lambda r: httpx.Response(next(statuses), headers={"OData-EntityId": f"{ROOT}annotations(1)"})
    )

    async with client(handler, credential, retry) as dv:
        with pytest.raises(ServiceUnreachable):
            await dv.create("annotations", {"subject": "x"})
        assert len(seen) == 1
        await dv.upsert("annotations", "6a1f2d9e-0000-4000-8000-000000000001", {"subject": "x"})

    assert len(seen) == 3
    assert sleeps.delays == [0.5]


async def test_create_is_retried_after_a_429(credential: Any, retry: RetryPolicy, sleeps: Any) -> None:
    responses = iter(
        [
            httpx.Response(429, headers={"Retry-After": "2"}),
            httpx.Response(
                204, headers={"OData-EntityId": f"{ROOT}annotations(6A1F2D9E-0000-4000-8000-0000000000AB)"}
            ),
        ]
    )
    handler, _ = recording(lambda r: next(responses))

    async with client(handler, credential, retry) as dv:
        assert await dv.create("annotations", {"subject": "x"}) == "6a1f2d9e-0000-4000-8000-0000000000ab"

    assert sleeps.delays == [2.0]


# --- $batch --------------------------------------------------------------------------------------


def _batch_answer(
    parts: list[tuple[int, dict[str, Any]]], boundary: str = "batchresponse_9"
) -> httpx.Response:
    lines: list[str] = []
    for status, body in parts:
        lines += [
            f"--{boundary}",
            "Content-Type: application/http",
            "Content-Transfer-Encoding: binary",
            "",
            f"HTTP/1.1 {status} X",
            "Content-Type: application/json; odata.metadata=minimal",
            "",
            json.dumps(body),
        ]
    lines.append(f"--{boundary}--")
    return httpx.Response(
        200,
        headers={"Content-Type": f"multipart/mixed; boundary={boundary}"},
        content="\r\n".join(lines).encode(),
    )


def _request_lines(request: httpx.Request) -> list[str]:
    return re.findall(r"^GET (\S+) HTTP/1\.1\r$", request.content.decode(), flags=re.MULTILINE)


async def test_batch_sends_one_envelope_and_returns_parts_in_order_with_a_failed_part(
    credential: Any, retry: RetryPolicy
) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return _batch_answer(
            [
                (200, {"value": [{"name": "A"}]}),
                (404, {"error": {"code": "0x80060888", "message": "Resource not found for the segment"}}),
                (200, {"value": [{"subject": "n"}]}),
            ]
        )

    handler, seen = recording(answer)
    queries = [
        Query("accounts", ("name",), filter="name eq 'A'"),
        Query("w365_nosuchsets", ("x",)),
        Query("annotations", ("subject",), top=1, annotations=True),
    ]

    async with client(handler, credential, retry, page_size=500) as dv:
        results = await dv.batch(queries)

    (request,) = seen
    assert (request.method, request.url.path) == ("POST", "/api/data/v9.2/$batch")
    boundary = re.fullmatch(r'multipart/mixed; boundary="(batch_[\w-]+)"', request.headers["Content-Type"])
    assert boundary is not None
    assert request.headers["Prefer"] == "odata.continue-on-error"
    assert request.headers["Authorization"] == "Bearer token-1"
    text = request.content.decode()
    assert text.count(f"--{boundary.group(1)}\r\n") == 3
    assert text.endswith(f"--{boundary.group(1)}--\r\n")
    assert "\n" not in text.replace("\r\n", "")  # CRLF everywhere
    assert _request_lines(request) == [
        f"{ROOT}accounts?$select=name&$filter=name%20eq%20'A'",
        f"{ROOT}w365_nosuchsets?$select=x",
        f"{ROOT}annotations?$select=subject&$top=1",
    ]
    assert text.count("Prefer: odata.maxpagesize=500\r\n") == 2
    assert 'Prefer: odata.include-annotations="*"\r\n' in text

    assert results[0] == [{"name": "A"}]
    assert isinstance(results[1], NotFoundError)
    assert str(results[1]).startswith(
        "Dataverse GET /api/data/v9.2/w365_nosuchsets answered 404 (0x80060888: Resource not found"
    )
    assert results[2] == [{"subject": "n"}]


async def test_batch_follows_a_part_next_link_with_plain_gets(credential: Any, retry: RetryPolicy) -> None:
    link = f"{ROOT}accounts?$select=name&$skiptoken=2"

    def answer(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return _batch_answer(
                [(200, {"value": [{"n": 1}], "@odata.nextLink": link}), (200, {"value": []})]
            )
        return httpx.Response(200, json={"value": [{"n": 2}]})

    handler, seen = recording(answer)
    async with client(handler, credential, retry, page_size=1) as dv:
        results = await dv.batch([Query("accounts", ("name",)), Query("contacts", ("fullname",))])

    assert results == [[{"n": 1}, {"n": 2}], []]
    assert [(r.method, str(r.url)) for r in seen] == [("POST", f"{ROOT}$batch"), ("GET", link)]
    assert seen[1].headers["Prefer"] == "odata.maxpagesize=1"


async def test_a_failed_next_page_fails_only_its_part(credential: Any, retry: RetryPolicy) -> None:
    link = f"{ROOT}accounts?$select=name&$skiptoken=2"

    def answer(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return _batch_answer(
                [(200, {"value": [], "@odata.nextLink": link}), (200, {"value": [{"n": 1}]})]
            )
        return httpx.Response(403, json={"error": {"code": "0x80040220", "message": "denied"}})

    handler, _ = recording(answer)
    async with client(handler, credential, retry) as dv:
        results = await dv.batch([Query("accounts", ("name",)), Query("contacts", ("fullname",))])

    assert isinstance(results[0], AuthError)
    assert results[1] == [{"n": 1}]


async def test_more_than_1000_queries_take_two_round_trips(credential: Any, retry: RetryPolicy) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        numbers = [int(m) for m in re.findall(r"\$filter=n%20eq%20(\d+)", request.content.decode())]
        return _batch_answer([(200, {"value": [{"n": n}]}) for n in numbers])

    handler, seen = recording(answer)
    queries = [Query("rows", ("n",), filter=f"n eq {i}") for i in range(1001)]

    async with client(handler, credential, retry) as dv:
        results = await dv.batch(queries)

    assert [len(_request_lines(r)) for r in seen] == [1000, 1]
    assert results == [[{"n": i}] for i in range(1001)]


async def test_an_empty_batch_sends_nothing(credential: Any, retry: RetryPolicy) -> None:
    handler, seen = recording(lambda r: httpx.Response(500))

    async with client(handler, credential, retry) as dv:
        assert await dv.batch([]) == []

    assert seen == []


async def test_a_part_left_unanswered_is_an_error_for_that_part(credential: Any, retry: RetryPolicy) -> None:
    handler, _ = recording(lambda r: _batch_answer([(200, {"value": []})]))

    async with client(handler, credential, retry) as dv:
        results = await dv.batch([Query("a", ("x",)), Query("b", ("y",))])

    assert results[0] == []
    assert isinstance(results[1], ServiceError)
    assert "part 2 of 2 unanswered" in str(results[1])


async def test_batch_get_returns_each_metadata_body(credential: Any, retry: RetryPolicy) -> None:
    handler, seen = recording(
        lambda r: _batch_answer(
            [
                (200, {"LogicalName": "account"}),
                (400, {"error": {"code": "0x0", "message": "Bad $select"}}),
            ]
        )
    )

    async with client(handler, credential, retry) as dv:
        results = await dv.batch_get(
            [
                "EntityDefinitions(LogicalName='account')?$select=LogicalName",
                "EntityDefinitions(LogicalName='x')?$select=Nope",
            ]
        )

    assert _request_lines(seen[0]) == [
        f"{ROOT}EntityDefinitions(LogicalName='account')?$select=LogicalName",
        f"{ROOT}EntityDefinitions(LogicalName='x')?$select=Nope",
    ]
    assert results[0] == {"LogicalName": "account"}
    assert type(results[1]) is ServiceError
    assert "answered 400 (0x0: Bad $select)" in str(results[1])


async def test_a_whole_batch_refused_raises(credential: Any, retry: RetryPolicy) -> None:
    handler, _ = recording(_error(401, "0x80044306", "not a user"))

    async with client(handler, credential, retry) as dv:
        with pytest.raises(AuthError, match=r"POST /api/data/v9\.2/\$batch answered 401"):
            await dv.batch([Query("accounts", ("name",))])


async def test_a_whole_batch_unreachable_raises_after_retries(
    credential: Any, retry: RetryPolicy, sleeps: Any
) -> None:
    handler, seen = recording(lambda r: httpx.Response(503))

    async with client(handler, credential, retry) as dv:
        with pytest.raises(ServiceUnreachable, match="after 5 attempts"):
            await dv.batch([Query("accounts", ("name",))])

    assert len(seen) == 5
    assert sleeps.delays == [0.5, 1.0, 2.0, 4.0]


async def test_an_unreadable_batch_answer_raises(credential: Any, retry: RetryPolicy) -> None:
    handler, _ = recording(lambda r: httpx.Response(200, json={"value": []}))

    async with client(handler, credential, retry) as dv:
        with pytest.raises(ServiceError, match="unreadable batch"):
            await dv.batch([Query("accounts", ("name",))])
