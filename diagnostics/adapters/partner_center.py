"""Partner Center REST client: the invoice list, invoices by id, customers and their subscriptions.

The list (`GET /v1/invoices`) accepts app-only credentials, so the existence check pages through
it. Microsoft's documented list answer carries no billing-period dates; only the invoice by id
(`GET /v1/invoices/{id}`) does, and Microsoft documents that read as App+User only
(platform-apis.md 1.3-1.5). `read_invoices` reads the few invoices whose period is needed, a
handful at a time; with an app-only token Partner Center may refuse them, and the caller must
then treat those periods as unknown.
"""

from __future__ import annotations

import asyncio
import re
import ssl
import uuid
from collections.abc import Sequence
from typing import Any

import httpx
from azure.core.credentials import TokenCredential

from diagnostics.adapters.http import (
    BearerTokenAuth,
    ClosingClient,
    RequestHook,
    RetryPolicy,
    Service,
    read_json,
    send,
)
from diagnostics.errors import ServiceError

DEFAULT_BASE_URL = "https://api.partnercenter.microsoft.com"
DEFAULT_SCOPE = "https://api.partnercenter.microsoft.com/.default"
APPLICATION_NAME = "work365-usage-diagnostics"
# Invoices read by id at the same time: few, because Microsoft advises against high parallelism
# (platform-apis.md 1.8) and only the candidates of one billing period are ever read.
MAX_CONCURRENT_READS = 4
# Partner Center invoice ids are letters and digits (G012345678, D0300012345). The id goes into the
# URL path, so anything else (`..`, `/`, `%`, spaces) could address another resource: refused.
_INVOICE_ID = re.compile(r"[A-Za-z0-9]{1,64}")


def _hint(status: int, method: str) -> str:
    if status == 0 or status >= 500:
        return "check DIAG_PARTNER_CENTER_URL and the network; if they are right, retry later"
    if status == 401:
        return (
            "check the Partner Center app's tenant id, client id and secret, and that the app is added "
            "in Partner Center (Account settings → App management)"
        )
    if status == 403:
        return "the app may not read invoices: give it a billing role in Partner Center App management"
    if status == 404:
        return "check DIAG_PARTNER_CENTER_URL"
    if status == 429:
        return "Partner Center throttled the app; retry later"
    return "Partner Center rejected the request"


PARTNER_CENTER = Service("Partner Center", _hint)


class PartnerCenterClient(ClosingClient):
    """Async client for Partner Center's v1 REST API with an app-only token.

    `base_url` is normally `DEFAULT_BASE_URL`; tests and the demo point it at the simulator.
    """

    def __init__(
        self,
        base_url: str,
        credential: TokenCredential,
        *,
        scope: str = DEFAULT_SCOPE,
        verify: ssl.SSLContext | bool = True,
        retry: RetryPolicy | None = None,
        page_size: int = 100,
        timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
        on_request: RequestHook | None = None,
    ) -> None:
        if page_size < 1:
            raise ValueError(f"page_size must be at least 1, got {page_size}")
        self._page_size = page_size
        self._retry = retry or RetryPolicy()
        self._on_request = on_request
        self._client = httpx.AsyncClient(
            base_url=f"{base_url.rstrip('/')}/v1/",
            auth=BearerTokenAuth(credential, scope),
            headers={"Accept": "application/json", "MS-PartnerCenter-Application": APPLICATION_NAME},
            verify=verify,
            timeout=timeout,
            transport=transport,
        )

    async def list_invoices(self) -> list[dict[str, Any]]:
        """Every invoice of the partner, following `links.next` until there is none."""
        return await self._list(f"invoices?size={self._page_size}&offset=0", "invoices")

    async def list_customers(self) -> list[dict[str, Any]]:
        """Every customer of the partner (`GET /v1/customers`, app-only credentials accepted), as
        Partner Center gives them: `id` (the customer's tenant id), `companyProfile.companyName`,
        `companyProfile.domain`, ….

        Partner Center pages customers by seek, not by offset: each page's `links.next` carries
        `seekOperation=Next` in its URI and the continuation token in an `MS-ContinuationToken`
        header, which is sent back as given (Microsoft's "Get a list of customers").
        """
        return await self._list(f"customers?size={self._page_size}", "customers")

    async def list_subscriptions(self, customer_id: str) -> list[dict[str, Any]]:
        """A customer's subscriptions (`GET /v1/customers/{id}/subscriptions`): `id`, `offerId`,
        `offerName`, `friendlyName`, `status`, …. The id must be a GUID (it goes into the path)."""
        try:
            tenant = str(uuid.UUID(str(customer_id)))
        except ValueError:
            raise ServiceError(
                f"Partner Center customer id {str(customer_id)[:40]!r} is not a GUID (the customer's tenant "
                "id): not read"
            ) from None
        return await self._list(f"customers/{tenant}/subscriptions", "subscriptions")

    async def _list(self, uri: str, what: str) -> list[dict[str, Any]]:
        """Every item of a collection, following `links.next` (with the headers it names) to the end."""
        # One correlation id ties the pages of this listing together in Partner Center's logs.
        correlation_id = str(uuid.uuid4())
        extra: dict[str, str] = {}
        seen: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
        collected: list[dict[str, Any]] = []
        while True:
            page = await self._get(uri, extra, correlation_id)
            items = page.get("items")
            if not isinstance(items, list):
                raise ServiceError(
                    f"Partner Center GET /v1/{uri.partition('?')[0]} answered without an 'items' list"
                )
            collected += items
            following = _next_link(page)
            if following is None:
                return collected
            uri, extra = following
            # A server that keeps answering the same next link would page forever (a seek link's
            # URI is always the same: its continuation token tells the pages apart).
            key = (uri, tuple(sorted(extra.items())))
            if key in seen:
                raise ServiceError(f"Partner Center repeated the next link {uri[:80]} while listing {what}")
            seen.add(key)

    async def get_invoice(self, invoice_id: str) -> dict[str, Any]:
        """One invoice by id, with its billing period (App+User credentials only, per Microsoft).

        An id that is not letters and digits raises `ServiceError` before any request is sent.
        """
        if not isinstance(invoice_id, str) or not _INVOICE_ID.fullmatch(invoice_id):
            raise ServiceError(
                f"Partner Center invoice id {str(invoice_id)[:40]!r} is not letters and digits "
                "(like G012345678): not read; check the invoice id in Dataverse"
            )
        return await self._get(f"invoices/{invoice_id}", {}, str(uuid.uuid4()))

    async def read_invoices(self, invoice_ids: Sequence[str]) -> list[dict[str, Any] | ServiceError]:
        """`get_invoice` for each id, at most `MAX_CONCURRENT_READS` at a time; results in order.

        A failed read is returned as its exception, so the caller keeps the other invoices.
        """
        gate = asyncio.Semaphore(MAX_CONCURRENT_READS)

        async def read(invoice_id: str) -> dict[str, Any] | ServiceError:
            async with gate:
                try:
                    return await self.get_invoice(invoice_id)
                except ServiceError as exc:
                    return exc

        return list(await asyncio.gather(*(read(i) for i in invoice_ids)))

    async def _get(self, uri: str, extra: dict[str, str], correlation_id: str) -> dict[str, Any]:
        # MS-RequestId is fixed per request, so retries of it are recognisable as the same request.
        headers = {**extra, "MS-RequestId": str(uuid.uuid4()), "MS-CorrelationId": correlation_id}
        request = self._client.build_request("GET", uri, headers=headers)
        response = await send(
            self._client,
            request,
            service=PARTNER_CENTER,
            retry=self._retry,
            on_request=self._on_request,
        )
        return read_json(response, PARTNER_CENTER)


def _next_link(page: dict[str, Any]) -> tuple[str, dict[str, str]] | None:
    """The next page's URI (relative to /v1) and the headers Partner Center asks to send with it."""
    links = page.get("links")
    following = links.get("next") if isinstance(links, dict) else None
    if not isinstance(following, dict):
        return None
    uri = following.get("uri")
    if not isinstance(uri, str) or not uri or httpx.URL(uri).scheme or httpx.URL(uri).host:
        # An absolute link could point at another host, which must not receive the token.
        raise ServiceError(f"Partner Center gave a next link that is not relative to /v1: {str(uri)[:80]}")
    headers = {
        str(h["key"]): str(h["value"])
        for h in following.get("headers") or []
        if isinstance(h, dict) and "key" in h and "value" in h
    }
    return uri.lstrip("/"), headers
