from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from diagnostics.adapters.http import RetryPolicy
from diagnostics.adapters.partner_center import DEFAULT_BASE_URL, DEFAULT_SCOPE, PartnerCenterClient
from diagnostics.errors import AuthError, ServiceError, ServiceUnreachable

Handler = Callable[[httpx.Request], httpx.Response]


def partner_center(
    handler: Handler, credential: Any, retry: RetryPolicy, **kwargs: Any
) -> PartnerCenterClient:
    return PartnerCenterClient(
        DEFAULT_BASE_URL, credential, retry=retry, transport=httpx.MockTransport(handler), **kwargs
    )


def recording(handler: Handler) -> tuple[Handler, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return handler(request)

    return record, seen


def page(ids: list[str], next_uri: str | None, headers: list[dict[str, str]] | None = None) -> dict[str, Any]:
    links: dict[str, Any] = {"self": {"uri": "/invoices", "method": "GET", "headers": []}}
    if next_uri is not None:
        links["next"] = {"uri": next_uri, "method": "GET", "headers": headers or []}
    return {
        "totalCount": len(ids),
        "items": [{"id": i, "invoiceType": "OneTime"} for i in ids],
        "links": links,
        "attributes": {"objectType": "Collection"},
    }


async def test_list_invoices_pages_through_next_links(credential: Any, retry: RetryPolicy) -> None:
    pages = {
        "0": page(["G001", "G002"], "/invoices?size=2&offset=2"),
        "2": page(["G003", "D004"], "/invoices?size=2&offset=4"),
        "4": page(["G005"], None),
    }
    handler, seen = recording(lambda r: httpx.Response(200, json=pages[r.url.params["offset"]]))

    async with partner_center(handler, credential, retry, page_size=2) as pc:
        invoices = await pc.list_invoices()

    assert [i["id"] for i in invoices] == ["G001", "G002", "G003", "D004", "G005"]
    assert [str(r.url) for r in seen] == [
        f"{DEFAULT_BASE_URL}/v1/invoices?size=2&offset=0",
        f"{DEFAULT_BASE_URL}/v1/invoices?size=2&offset=2",
        f"{DEFAULT_BASE_URL}/v1/invoices?size=2&offset=4",
    ]
    request_ids = [r.headers["MS-RequestId"] for r in seen]
    assert len(set(request_ids)) == 3
    assert all(uuid.UUID(i) for i in request_ids)
    correlation_ids = {r.headers["MS-CorrelationId"] for r in seen}
    assert len(correlation_ids) == 1
    assert uuid.UUID(correlation_ids.pop())
    assert {r.headers["MS-PartnerCenter-Application"] for r in seen} == {"work365-usage-diagnostics"}
    assert {r.headers["Authorization"] for r in seen} == {"Bearer token-1"}
    assert {r.headers["Accept"] for r in seen} == {"application/json"}
    assert credential.scopes == [(DEFAULT_SCOPE,)]


async def test_the_next_link_headers_are_sent_with_the_next_page(credential: Any, retry: RetryPolicy) -> None:
    first = page(["G1"], "/invoices?size=1&offset=1", [{"key": "MS-ContinuationToken", "value": "abc"}])
    handler, seen = recording(
        lambda r: httpx.Response(200, json=first if r.url.params["offset"] == "0" else page(["G2"], None))
    )

    async with partner_center(handler, credential, retry, page_size=1) as pc:
        assert len(await pc.list_invoices()) == 2

    assert "MS-ContinuationToken" not in seen[0].headers
    assert seen[1].headers["MS-ContinuationToken"] == "abc"


async def test_a_retried_request_keeps_its_request_id(
    credential: Any, retry: RetryPolicy, sleeps: Any
) -> None:
    answers = iter([httpx.Response(503), httpx.Response(429, headers={"Retry-After": "5"})])
    handler, seen = recording(lambda r: next(answers, httpx.Response(200, json=page(["G1"], None))))

    async with partner_center(handler, credential, retry) as pc:
        assert len(await pc.list_invoices()) == 1

    assert len(seen) == 3
    assert len({r.headers["MS-RequestId"] for r in seen}) == 1
    assert sleeps.delays == [0.5, 5.0]


async def test_a_custom_scope_and_base_url_are_used(credential: Any, retry: RetryPolicy) -> None:
    handler, seen = recording(lambda r: httpx.Response(200, json=page([], None)))

    async with PartnerCenterClient(
        "https://127.0.0.1:8443/",
        credential,
        scope="api://sim/.default",
        retry=retry,
        transport=httpx.MockTransport(handler),
    ) as pc:
        assert await pc.list_invoices() == []

    assert str(seen[0].url) == "https://127.0.0.1:8443/v1/invoices?size=100&offset=0"
    assert credential.scopes == [("api://sim/.default",)]


@pytest.mark.parametrize(
    ("status", "kind", "hint"),
    [
        (401, AuthError, "App management"),
        (403, AuthError, "billing role"),
        (400, ServiceError, "rejected the request"),
    ],
)
async def test_errors_name_partner_center_and_say_what_to_check(
    credential: Any, retry: RetryPolicy, status: int, kind: type[ServiceError], hint: str
) -> None:
    handler, seen = recording(
        lambda r: httpx.Response(status, json={"code": 900, "description": "Unauthorized request"})
    )

    async with partner_center(handler, credential, retry) as pc:
        with pytest.raises(kind) as caught:
            await pc.list_invoices()

    message = str(caught.value)
    assert type(caught.value) is kind
    assert message.startswith(
        f"Partner Center GET /v1/invoices answered {status} (900: Unauthorized request): "
    )
    assert hint in message
    assert "offset" not in message
    assert len(seen) == 1


async def test_partner_center_down_is_unreachable(credential: Any, retry: RetryPolicy) -> None:
    handler, seen = recording(lambda r: httpx.Response(503))

    async with partner_center(handler, credential, retry) as pc:
        with pytest.raises(
            ServiceUnreachable, match="answered 503 after 5 attempts: check DIAG_PARTNER_CENTER_URL"
        ):
            await pc.list_invoices()

    assert len(seen) == 5


@pytest.mark.parametrize("uri", ["https://evil.example/v1/invoices?offset=2", "//evil.example/x"])
async def test_an_absolute_next_link_is_refused(credential: Any, retry: RetryPolicy, uri: str) -> None:
    handler, seen = recording(lambda r: httpx.Response(200, json=page(["G1"], uri)))

    async with partner_center(handler, credential, retry) as pc:
        with pytest.raises(ServiceError, match="not relative to /v1"):
            await pc.list_invoices()

    assert len(seen) == 1


async def test_a_repeated_next_link_stops_the_listing(credential: Any, retry: RetryPolicy) -> None:
    handler, seen = recording(lambda r: httpx.Response(200, json=page(["G1"], "/invoices?size=1&offset=1")))

    async with partner_center(handler, credential, retry) as pc:
        with pytest.raises(ServiceError, match="repeated the next link"):
            await pc.list_invoices()

    assert len(seen) == 2


async def test_a_page_without_items_is_an_error(credential: Any, retry: RetryPolicy) -> None:
    handler, _ = recording(lambda r: httpx.Response(200, json={"totalCount": 0}))

    async with partner_center(handler, credential, retry) as pc:
        with pytest.raises(ServiceError, match="without an 'items' list"):
            await pc.list_invoices()


@pytest.mark.parametrize(
    "invoice_id", ["..", "G01/../x", "G01%2F", "G0 1", "", "G01?x=1", "G01#", "Ğ01", "G01\n"]
)
async def test_an_invoice_id_that_is_not_letters_and_digits_sends_no_request(
    credential: Any, retry: RetryPolicy, invoice_id: str
) -> None:
    handler, seen = recording(lambda r: httpx.Response(200, json={"id": "G01"}))

    async with partner_center(handler, credential, retry) as pc:
        with pytest.raises(ServiceError) as raised:
            await pc.get_invoice(invoice_id)
        [refused] = await pc.read_invoices([invoice_id])

    assert seen == []
    assert isinstance(refused, ServiceError)
    message = str(raised.value)
    assert "\n" not in message
    assert "not letters and digits" in message


@pytest.mark.parametrize("invoice_id", ["G012345678", "D0300012345"])
async def test_a_partner_center_invoice_id_is_read_at_its_path(
    credential: Any, retry: RetryPolicy, invoice_id: str
) -> None:
    handler, seen = recording(lambda r: httpx.Response(200, json={"id": invoice_id}))

    async with partner_center(handler, credential, retry) as pc:
        invoice = await pc.get_invoice(invoice_id)

    assert invoice == {"id": invoice_id}
    assert [str(r.url) for r in seen] == [f"{DEFAULT_BASE_URL}/v1/invoices/{invoice_id}"]
