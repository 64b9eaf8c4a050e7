"""Dataverse Web API client: queries with paging, `$batch` of GETs, metadata reads, create, upsert,
update and delete.

It knows OData and Dataverse's habits (page size, nextLink, batch envelopes, error bodies), nothing
about Work 365. Retries, tokens and error mapping come from `diagnostics.adapters.http`.
"""

from __future__ import annotations

import asyncio
import ctypes
import itertools
import json
import re
import ssl
import urllib.request
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from contextlib import aclosing, nullcontext
from dataclasses import dataclass
from functools import cache, partial
from typing import Any, Literal
from urllib.parse import quote

import httpx
from azure.core.credentials import TokenCredential

from diagnostics.adapters.http import (
    BearerTokenAuth,
    ClosingClient,
    RequestHook,
    RetryPolicy,
    Service,
    decode_json,
    http_error,
    read_json,
    send,
)
from diagnostics.adapters.odata_batch import (
    BatchFormatError,
    BatchRequest,
    BatchResponse,
    ChangeSet,
    decode_batch,
    encode_batch,
    is_multipart,
)
from diagnostics.errors import AuthError, InputError, ServiceError

API_PATH = "/api/data/v9.2/"
MAX_PAGE_SIZE = 5000  # Dataverse's default and maximum for odata.maxpagesize
MAX_BATCH_PARTS = 1000  # Dataverse rejects a $batch with more requests
Page = list[dict[str, Any]]  # the rows of one page of a query's answer
_JSON_HEADERS = {
    "Accept": "application/json",
    "OData-MaxVersion": "4.0",
    "OData-Version": "4.0",
}
# Characters left readable in query option values; everything else (spaces, &, #, +, %) is
# percent-encoded so the URL also works as the request line of a batch part.
_SAFE = ",()'$:/@*"
_LOGICAL_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")
_ENTITY_SET = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Dataverse's 403 for a missing privilege: "Principal user (Id=…), is missing prvWriteAccount privilege …"
_MISSING_PRIVILEGE = re.compile(r"\bmissing (prv\w+) privilege")


def _hint(status: int, method: str) -> str:
    if status == 0 or status >= 500:
        return "check --dataverse-url (DIAG_DATAVERSE_URL) and the network; if they are right, retry later"
    if status == 401:
        return (
            "check that the credential signs in to the environment's tenant and that the environment "
            "has an application user for this app"
        )
    if status == 403:
        access = {"GET": "read", "DELETE": "delete"}.get(method, "create and write")
        return f"give the application user {access} access to this table (a security role)"
    if status == 404:
        return "check --dataverse-url and the table and column names in the schema map"
    if status == 429:
        return "Dataverse's service protection limit was hit; retry later or run fewer diagnoses at once"
    return "the request was rejected; check the table and column names in the schema map"


# Dataverse's answer to a valid token of an identity that has no application user in the environment.
CODE_NOT_A_MEMBER = "0x80072560"
DATAVERSE = Service(
    "Dataverse",
    _hint,
    {
        (403, CODE_NOT_A_MEMBER): "create the application user of this app's identity in the environment "
        "(Power Platform admin center → Environments → your environment → Settings → Users + "
        "permissions → Application users → New app user, with the identity's client id) and give it "
        "the security role",
    },
)


def canonical_guid(text: str) -> str:
    """The GUID in its one canonical form (lower case, hyphens, no braces); ValueError otherwise.
    Only this form goes into a URL path or an unquoted `$filter` value."""
    return str(uuid.UUID(str(text)))


def _is_guid(text: str) -> bool:
    try:
        canonical_guid(text)
    except ValueError:
        return False
    return True


def odata_string(text: str) -> str:
    """A quoted OData string literal: quotes doubled, so a value can never end the literal."""
    return "'" + str(text).replace("'", "''") + "'"


def canonical_or_same(text: str) -> str:
    """A GUID in canonical form; any other text unchanged (to be quoted with `odata_string`)."""
    try:
        return canonical_guid(text)
    except ValueError:
        return str(text)


# SQL Server's order of a uniqueidentifier's bytes (as .NET's `Guid.ToByteArray`, Python's
# `UUID.bytes_le`), most significant first: the last group of the text form first, the first group
# last (SqlGuid.CompareTo's order; Dataverse stores ids as uniqueidentifier and compares them so).
_SQL_GUID_ORDER = (10, 11, 12, 13, 14, 15, 8, 9, 6, 7, 4, 5, 0, 1, 2, 3)
# Partitions of one large query when the client has no concurrency cap (the settings' default cap).
DEFAULT_PARTITIONS = 8


# A GUID in the one form Dataverse writes (and `canonical_guid` makes): read without parsing.
_CANONICAL_GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def sql_guid_key(guid: str) -> bytes:
    """The GUID as bytes that sort as SQL Server sorts uniqueidentifier values."""
    if _CANONICAL_GUID.fullmatch(guid):
        return bytes.fromhex(_sql_order(guid))
    raw = uuid.UUID(guid).bytes_le
    return bytes(raw[i] for i in _SQL_GUID_ORDER)


def _sql_order(g: str) -> str:
    """`sql_guid_key` of a canonical GUID as hex text (which sorts as the bytes do), read off the
    text (`_SQL_GUID_ORDER`: the last group, the fourth, then the first three byte by byte
    reversed) rather than parsed: a scan sorts 50,000 subscription ids."""
    return g[24:] + g[19:23] + g[16:18] + g[14:16] + g[11:13] + g[9:11] + g[6:8] + g[4:6] + g[2:4] + g[:2]


def guid_ranges(column: str, known: Sequence[str], parts: int) -> list[str]:
    """`$filter` clauses that split the rows of a query by the GUID in `column` into at most `parts`
    ranges, and one more for the rows where it is empty: every row is in exactly one of them.

    Why ranges of a lookup's GUIDs, cut where the ids the caller already knows are evenly spread:
    - the ranges are complete and disjoint for any ids, because each is `ge` one bound and `lt` the
      next in one total order: SQL Server's order of uniqueidentifier, in which the bounds are sorted
      here (`sql_guid_key`), and in which Dataverse compares GUIDs (its own paging cookie pages by
      `id > last id` in that order);
    - they are balanced whatever the ids look like: Dataverse's ids are sequential-ish (one server's
      ids share their most significant bytes), so fixed cuts of the GUID space would put every row
      in one range, and `createdon` is no help either (a month of usage is imported in one run, all
      rows within minutes). The ids the caller knows (the subscriptions a usage table points at)
      show where the rows are, at no extra request.
    """
    guids: set[str] = set()
    for g in known:
        if _CANONICAL_GUID.fullmatch(g):  # as the loaders read ids (`Row.guid`)
            guids.add(g)
        elif _is_guid(g):
            guids.add(canonical_guid(g))
    ordered = sorted(guids, key=_sql_order)
    count = min(parts, len(ordered))
    if count < 2:
        return []
    bounds = [ordered[len(ordered) * i // count] for i in range(1, count)]
    clauses = [f"{column} eq null", f"{column} lt {bounds[0]}"]
    clauses += [f"{column} ge {low} and {column} lt {high}" for low, high in itertools.pairwise(bounds)]
    clauses.append(f"{column} ge {bounds[-1]}")
    return clauses


@dataclass(frozen=True)
class Query:
    """One OData query on an entity set. `select` is mandatory: only needed columns are read."""

    entity_set: str
    select: tuple[str, ...]
    filter: str | None = None
    orderby: str | None = None
    top: int | None = None
    expand: str | None = None
    annotations: bool = False  # ask for formatted values and lookup names (`include-annotations`)
    # An aggregation such as `groupby((col),aggregate($count as n))`: its columns replace `select`.
    apply: str | None = None

    def __post_init__(self) -> None:
        if not self.select and not self.apply:
            raise ValueError(f"Query on {self.entity_set!r} needs at least one column in select")

    def url(self) -> str:
        """The query relative to the API root, percent-encoded."""
        options = [
            ("$select", None if self.apply else ",".join(self.select)),
            ("$apply", self.apply),
            ("$filter", self.filter),
            ("$orderby", self.orderby),
            ("$top", None if self.top is None else str(self.top)),
            ("$expand", self.expand),
        ]
        query = "&".join(f"{name}={quote(value, safe=_SAFE)}" for name, value in options if value)
        return f"{self.entity_set}?{query}"


def _prefer(page_size: int | None, annotations: bool) -> dict[str, str]:
    """The Prefer header; no page size with $top, which Dataverse does not combine with paging."""
    preferences = []
    if page_size is not None:
        preferences.append(f"odata.maxpagesize={page_size}")
    if annotations:
        preferences.append('odata.include-annotations="*"')
    return {"Prefer": ",".join(preferences)} if preferences else {}


@dataclass(frozen=True)
class Write:
    """One write of a change set. `path` is relative to the API root (`annotations`, `annotations(<id>)`)."""

    method: Literal["POST", "PATCH", "DELETE"]
    path: str
    body: dict[str, Any] | None = None


class _BatchErrorTransport(httpx.AsyncBaseTransport):
    """Hands on the failed part of a `$batch` that Dataverse stopped, in place of its multipart.

    Without `Prefer: odata.continue-on-error` (and always for a change set that rolled back),
    Dataverse answers the whole `$batch` with HTTP 400 and a multipart body whose one part is the
    failed request's own answer, e.g. `HTTP/1.1 400 Bad Request` with `{"error": {...}}` inside
    (Microsoft's "Execute batch operations using the Web API", "Handling errors"; the documentation
    is the only source for this shape). The shared error mapping reads JSON error bodies, so the
    part's status, headers and body are passed on as the answer: its code and message reach the
    user, and its status picks the hint (a 403 part is a missing privilege, not a malformed batch).
    """

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self._inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self._inner.handle_async_request(request)
        content_type = response.headers.get("Content-Type", "")
        if (
            response.status_code < 400
            or not request.url.path.endswith("/$batch")
            or not is_multipart(content_type)
        ):
            return response
        content = await response.aread()
        await response.aclose()
        try:
            failed = next((a for a in decode_batch(content_type, content) if a.status >= 400), None)
        except BatchFormatError:
            failed = None
        if failed is None:  # unreadable: pass the answer on as it came
            return httpx.Response(response.status_code, headers=response.headers, content=content)
        headers = {
            name: value
            for name, value in [*response.headers.items(), *failed.headers.items()]
            if name.lower() not in ("content-length", "content-encoding", "transfer-encoding")
        }
        return httpx.Response(failed.status, headers=headers, content=failed.body.encode())

    async def aclose(self) -> None:
        await self._inner.aclose()


_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter
_MMAP_THRESHOLD = 128 * 1024  # glibc's own starting value


@cache  # once per process
def _large_blocks_returned_when_freed() -> None:
    """glibc's malloc gives a block above its mmap threshold (128 KiB at first) a mapping of its own,
    returned to the system when the block is freed, but on the first such free it raises the
    threshold to that block's size (up to 32 MiB): from then on a page's body (megabytes, several at
    once while pages are read ahead) comes from the heap, which the objects decoded meanwhile
    fragment and which keeps its high-water mark: 15 to 20 MB of a 10,000-customer scan's peak.
    Setting the threshold once stops that rise. Elsewhere than glibc there is nothing to set."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError, TypeError):
        return
    mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)


def _default_transport(base_url: str, verify: ssl.SSLContext | bool) -> httpx.AsyncHTTPTransport:
    """httpx's own transport with the TLS settings and the proxy the environment names for this
    host (HTTPS_PROXY, NO_PROXY): httpx applies those only to a client without a transport of its
    own, and this client always has one (`_BatchErrorTransport`)."""
    url = httpx.URL(base_url)
    proxies = urllib.request.getproxies()
    proxy = None if urllib.request.proxy_bypass(url.host) else proxies.get(url.scheme) or proxies.get("all")
    return httpx.AsyncHTTPTransport(verify=verify, proxy=proxy)


class DataverseClient(ClosingClient):
    """Async client for one Dataverse environment (`base_url` such as https://contoso.crm.dynamics.com)."""

    def __init__(
        self,
        base_url: str,
        credential: TokenCredential,
        *,
        verify: ssl.SSLContext | bool = True,
        retry: RetryPolicy | None = None,
        page_size: int = MAX_PAGE_SIZE,
        timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
        on_request: RequestHook | None = None,
        max_concurrency: int | None = None,
    ) -> None:
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be between 1 and {MAX_PAGE_SIZE}, got {page_size}")
        _large_blocks_returned_when_freed()
        base = base_url.rstrip("/")
        self.root = f"{base}{API_PATH}"
        self._page_size = page_size
        self._retry = retry or RetryPolicy()
        self._on_request = on_request
        self._navigation: dict[tuple[str, str, str | None], str] = {}  # navigation_property's answers
        # At most this many requests in flight from this client (retry pauses included): Dataverse
        # refuses a user's 53rd concurrent request (service protection).
        self.max_concurrency = max_concurrency
        self._limit = asyncio.Semaphore(max_concurrency) if max_concurrency else None
        self._client = httpx.AsyncClient(
            base_url=self.root,
            auth=BearerTokenAuth(credential, f"{base}/.default"),
            headers=_JSON_HEADERS,
            timeout=timeout,
            transport=_BatchErrorTransport(transport or _default_transport(base, verify)),
        )

    # --- reads ---------------------------------------------------------------------------------

    async def query(self, q: Query) -> list[dict[str, Any]]:
        """Every row the query matches, following `@odata.nextLink` page by page."""
        rows: list[dict[str, Any]] = []
        async for page in self.pages(q):
            rows += page
        return rows

    async def pages(self, q: Query) -> AsyncGenerator[Page, None]:
        """The query's rows page by page, following `@odata.nextLink` as the caller iterates: a caller
        that reduces each page as it comes holds one page, never the whole answer (and the next
        page's body as it arrives, see `_follow`)."""
        prefer = self._prefer(q)
        # aclosing: a caller that stops early stops the page fetched ahead at once
        async with aclosing(self._follow(self._body(await self._get(q.url(), prefer)), prefer)) as pages:
            async for page in pages:
                yield page
                del page  # not held while the next page is fetched

    async def get(self, path_and_query: str) -> dict[str, Any]:
        """One GET relative to the API root (e.g. `EntityDefinitions?$select=LogicalName`)."""
        return await self._get_json(path_and_query, {})

    async def batch(self, queries: Sequence[Query]) -> list[list[dict[str, Any]] | ServiceError]:
        """Run the queries in `$batch` requests (up to 1,000 a round trip); results in order.

        A query that failed is returned as its exception, so the caller can do without that part;
        a failure of a whole batch request (network or 5xx after retries, 401) raises.
        """
        prefers = [self._prefer(q) for q in queries]
        answers = await self._batch([(q.url(), prefer) for q, prefer in zip(queries, prefers, strict=True)])
        results: list[list[dict[str, Any]] | ServiceError] = []
        for answer, prefer in zip(answers, prefers, strict=True):
            if isinstance(answer, ServiceError):
                results.append(answer)
                continue
            # Further pages are plain GETs: a nextLink cannot be put back into a batch usefully,
            # because each page needs the one before it.
            try:
                results.append(await self._rest_of_pages(answer, prefer))
            except ServiceError as exc:
                results.append(exc)
        return results

    async def batch_pages(self, queries: Sequence[Query]) -> list[AsyncIterator[Page] | ServiceError]:
        """`batch`, with each answer as its pages: the first page comes in the `$batch` (one round trip
        for all the queries), the others are fetched as the caller iterates, so that the caller can
        read several answers at once (within the client's concurrency cap) and reduce each page as
        it comes. A query that failed is its exception; one that fails on a later page raises it
        from the iteration. A first page is decoded only when its answer is iterated."""
        prefers = [self._prefer(q) for q in queries]
        parts = [(q.url(), prefer) for q, prefer in zip(queries, prefers, strict=True)]
        answers: list[tuple[BatchRequest, BatchResponse] | ServiceError] = []
        for start in range(0, len(parts), MAX_BATCH_PARTS):
            answers += await self._batch_answers(parts[start : start + MAX_BATCH_PARTS])
        return [
            answer if isinstance(answer, ServiceError) else self._pages_of_part(*answer, prefer)
            for answer, prefer in zip(answers, prefers, strict=True)
        ]

    async def batch_get(self, paths: Sequence[str]) -> list[dict[str, Any] | ServiceError]:
        """`get` for many paths in `$batch` requests; a failed part is returned as its exception."""
        return await self._batch([(path, {}) for path in paths])

    # --- writes --------------------------------------------------------------------------------

    async def create(self, entity_set: str, body: dict[str, Any]) -> str:
        """Create a row; return its id (a canonical GUID), read from the `OData-EntityId` header."""
        request = self._client.build_request("POST", entity_set, json=body)
        response = await self._send(request, idempotent=False)
        entity_id = _entity_id(response.headers.get("OData-EntityId", ""))
        if entity_id is None:
            raise ServiceError(
                f"Dataverse POST {request.url.path} answered {response.status_code} without the new "
                "row's id in OData-EntityId",
                status=response.status_code,
            )
        return entity_id

    async def upsert(self, entity_set: str, id: str, body: dict[str, Any]) -> None:
        """Create or update the row with this id (PATCH without conditions; safe to repeat).
        The id must be a GUID: anything else could address another row or another entity set."""
        try:
            key = canonical_guid(id)
        except ValueError:
            raise InputError(f"upsert of {entity_set}: the id {str(id)[:40]!r} is not a GUID") from None
        request = self._client.build_request("PATCH", f"{entity_set}({key})", json=body)
        await self._send(request)

    async def update(self, entity_set: str, id: str, body: dict[str, Any]) -> None:
        """Update the row with this id; never create one.

        PATCH with `If-Match: *`: a row that does not exist answers 404 (`NotFoundError`) instead of
        being created. A lookup is set with `"<navigation>@odata.bind": "/<entity set>(<id>)"`,
        where <navigation> is the lookup's navigation property (`navigation_property`), not its
        column name, and None clears it. Repeating it writes the same values, so it is retried
        like a read. A missing privilege raises `AuthError` naming it.
        """
        key = self._write_key("update", entity_set, id)
        request = self._client.build_request(
            "PATCH", f"{entity_set}({key})", json=body, headers={"If-Match": "*"}
        )
        await self._send_write(request)

    async def delete(self, entity_set: str, id: str) -> None:
        """Delete the row with this id (Dataverse deletes its notes with it).

        A row that does not exist answers 404 (`NotFoundError`); that is also what a retry finds when
        an earlier attempt deleted the row but its answer was lost, so a caller that only needs the
        row gone may take `NotFoundError` as done. A missing privilege raises `AuthError` naming it.
        """
        key = self._write_key("delete", entity_set, id)
        await self._send_write(self._client.build_request("DELETE", f"{entity_set}({key})"))

    async def navigation_property(self, table: str, lookup: str, target: str | None = None) -> str:
        """The navigation property that sets the lookup column `lookup` of `table` in `@odata.bind`
        (environment logical names; `target` picks one table of a polymorphic lookup).

        It is not the column's logical name: Dataverse names it after the relationship
        (`ReferencingEntityNavigationPropertyName` of the table's many-to-one relationship whose
        `ReferencingAttribute` is the column), which for a custom lookup is the column's mixed-case
        schema name (`work365_ProviderAccount_Account`, not `work365_provideraccount_account`), and
        Dataverse rejects a name in the wrong case. So it is read from the table's metadata, once
        per client (one GET), never guessed.
        """
        for name in (table, lookup, target or "x"):
            if not _LOGICAL_NAME.match(name):
                raise InputError(
                    f"{name[:60]!r} is not a Dataverse logical name (lower-case letters, digits, _)"
                )
        cache_key = (table, lookup, target)
        if cache_key not in self._navigation:
            answer = await self.get(
                f"EntityDefinitions(LogicalName='{table}')/ManyToOneRelationships"
                "?$select=ReferencingAttribute,ReferencedEntity,ReferencingEntityNavigationPropertyName"
                f"&$filter=ReferencingAttribute eq '{lookup}'"
            )
            names = [
                str(r["ReferencingEntityNavigationPropertyName"])
                for r in answer.get("value") or []
                if isinstance(r, dict)
                and r.get("ReferencingAttribute") == lookup
                and (target is None or r.get("ReferencedEntity") == target)
                and r.get("ReferencingEntityNavigationPropertyName")
            ]
            if len(names) != 1:
                what = "no" if not names else f"{len(names)}"
                to = f" to {target}" if target else ""
                raise InputError(
                    f"Dataverse metadata shows {what} relationship(s) of {table}.{lookup}{to}: check the "
                    "table and column names in the schema map (`schema verify`)"
                )
            self._navigation[cache_key] = names[0]
        return self._navigation[cache_key]

    async def change_set(self, writes: Sequence[Write]) -> list[str | None]:
        """Apply the writes in one transaction, in one `$batch` round trip: all of them or none.

        Returns, per write, the row id from its `OData-EntityId` (None when the answer has none).
        A failed change set raises that write's error; nothing was written then.
        """
        if not writes:
            return []
        if len(writes) > MAX_BATCH_PARTS:
            raise ValueError(f"a change set holds at most {MAX_BATCH_PARTS} writes, got {len(writes)}")
        requests = [
            BatchRequest(self.root + w.path.lstrip("/"), {}, w.method, w.body, content_id=str(n))
            for n, w in enumerate(writes, start=1)
        ]
        boundary = f"batch_{uuid.uuid4()}"
        request = self._client.build_request(
            "POST",
            "$batch",
            content=encode_batch(boundary, [ChangeSet(f"changeset_{uuid.uuid4()}", requests)]),
            headers={"Content-Type": f'multipart/mixed; boundary="{boundary}"'},
        )
        answers = {
            a.content_id: a for a in self._decode(request, await self._send(request, idempotent=False))
        }
        ids: list[str | None] = []
        for write, batch_request in zip(writes, requests, strict=True):
            answer = answers.get(batch_request.content_id)
            path = httpx.URL(batch_request.url).path
            if answer is None:
                raise ServiceError(f"Dataverse $batch left the change set's {write.method} {path} unanswered")
            if answer.status >= 400:
                raise http_error(DATAVERSE, write.method, path, answer.status, answer.body)
            ids.append(_entity_id(answer.headers.get("odata-entityid", "")))
        return ids

    # --- internals -----------------------------------------------------------------------------

    @staticmethod
    def _write_key(what: str, entity_set: str, id: str) -> str:
        """The id as a canonical GUID: anything else could address another row or entity set."""
        if not _ENTITY_SET.match(entity_set):
            raise InputError(f"{what}: {entity_set[:60]!r} is not an entity set name")
        try:
            return canonical_guid(id)
        except ValueError:
            raise InputError(f"{what} of {entity_set}: the id {str(id)[:40]!r} is not a GUID") from None

    async def _send_write(self, request: httpx.Request) -> None:
        """Send an idempotent write (PATCH with If-Match, DELETE); a 403 names the missing privilege."""
        try:
            await self._send(request)
        except AuthError as exc:
            missing = _MISSING_PRIVILEGE.search(str(exc)) if exc.status == 403 else None
            if missing is None:
                raise
            raise AuthError(
                f"Dataverse {request.method} {request.url.path} answered 403: the application user lacks "
                f"the privilege {missing[1]}; add it to the user's security role (Power Platform admin "
                "center → Settings → Users + permissions → Security roles)",
                status=exc.status,
                code=exc.code,
            ) from exc

    def _prefer(self, q: Query) -> dict[str, str]:
        return _prefer(None if q.top is not None else self._page_size, q.annotations)

    async def _send(self, request: httpx.Request, *, idempotent: bool = True) -> httpx.Response:
        async with self._limit or nullcontext():
            response = await send(
                self._client,
                request,
                service=DATAVERSE,
                retry=self._retry,
                on_request=self._on_request,
                idempotent=idempotent,
            )
        return _unbound(response)

    async def _get_json(self, url: str, headers: dict[str, str]) -> dict[str, Any]:
        return self._json_of(await self._get(url, headers))

    async def _get(
        self, url: str, headers: dict[str, str], sent: asyncio.Event | None = None
    ) -> httpx.Response:
        """A GET's answer, not yet decoded. `sent` is set once the request has gone out, or at once
        when it has to wait for a place within the concurrency cap."""
        # If-None-Match: null keeps intermediaries from answering with a cached copy.
        request = self._client.build_request("GET", url, headers={"If-None-Match": "null", **headers})
        if sent is not None:
            request.extensions["trace"] = _setting_when_sent(sent)
            if self._limit is not None and self._limit.locked():
                sent.set()
        try:
            return await self._send(request)
        except ServiceError as exc:
            # Dataverse puts a code in every error it answers; a 4xx without one comes from a server
            # that is not Dataverse (a web site, a proxy's page), which no schema map can fix.
            if exc.code is None and exc.status in (400, 404, 405, 406, 410):
                what = f"answered {exc.status} without a Dataverse error"
                raise type(exc)(self._not_dataverse(what), status=exc.status) from exc
            raise

    def _json_of(self, response: httpx.Response) -> dict[str, Any]:
        try:
            return read_json(response, DATAVERSE)
        except ServiceError:
            what = f"answered {response.status_code} without JSON"
            raise ServiceError(self._not_dataverse(what), status=response.status_code) from None

    def _body(self, response: httpx.Response) -> _Body:
        return _Body(response.content, partial(self._json_of, response))

    def _not_dataverse(self, what: str) -> str:
        return (
            f"the server at {self.root.removesuffix(API_PATH)} {what}: it is not a Dataverse environment; "
            "check --dataverse-url (DIAG_DATAVERSE_URL), e.g. https://contoso.crm.dynamics.com"
        )

    async def _rest_of_pages(self, first: dict[str, Any], prefer: dict[str, str]) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        async with aclosing(self._follow(_Body(None, lambda: first), prefer)) as pages:
            async for page in pages:
                rows += page
        return rows

    async def _pages_of_part(
        self, request: BatchRequest, answer: BatchResponse, prefer: dict[str, str]
    ) -> AsyncIterator[Page]:
        pages = self._follow(_Body(answer.body, partial(_part_or_raise, request, answer)), prefer)
        del answer  # its body, decoded by `_follow`, which then lets it go
        async with aclosing(pages):
            async for page in pages:
                yield page
                del page  # not held while the next page is fetched

    async def _follow(self, body: _Body, prefer: dict[str, str]) -> AsyncGenerator[Page, None]:
        """The page `body` and those after it, following `@odata.nextLink`. No page is held once the
        caller has moved on.

        Each next page is asked for before this one is decoded: its link is read from the body as
        it came (`_next_link_in`) and the request sent, then the page decoded and given to the
        caller, so that Dataverse serves the next page while this process decodes and reduces
        this one (a scan's pages were fetched and decoded in turn: half the time nothing was in
        flight). At most one page ahead, its body held as it arrives, and within the concurrency
        cap like any request. The decoded page has the final say: a link read otherwise there
        (never, from Dataverse) drops the page fetched ahead and fetches the right one."""
        ahead: asyncio.Task[httpx.Response] | None = None
        try:
            while True:
                guess = None if body.raw is None else _next_link_in(body.raw)
                if guess is not None and guess.startswith(self.root):
                    sent = asyncio.Event()
                    ahead = asyncio.ensure_future(self._get(guess, prefer, sent))
                    await _sent_or_done(sent, ahead)
                page = body.decode()
                del body
                rows, next_link = _rows(page), page.get("@odata.nextLink")
                del page
                if ahead is not None and next_link != guess:
                    _drop(ahead)
                    ahead = None
                yield rows
                rows = []  # the page just yielded is the caller's to drop
                if not next_link:
                    return
                # The link is followed as given (it carries the $skiptoken), but only within this
                # environment: the bearer token must not travel to another host.
                if not isinstance(next_link, str) or not next_link.startswith(self.root):
                    raise ServiceError(
                        f"Dataverse returned a nextLink outside {self.root}: {str(next_link)[:80]}"
                    )
                fetching, ahead = ahead, None
                body = self._body(await (fetching or self._get(next_link, prefer)))
        finally:
            if ahead is not None:  # the caller stopped early, or this page could not be read
                _drop(ahead)

    async def _batch(
        self, parts: Sequence[tuple[str, dict[str, str]]]
    ) -> list[dict[str, Any] | ServiceError]:
        results: list[dict[str, Any] | ServiceError] = []
        for start in range(0, len(parts), MAX_BATCH_PARTS):
            results += await self._batch_round(parts[start : start + MAX_BATCH_PARTS])
        return results

    async def _batch_round(
        self, parts: Sequence[tuple[str, dict[str, str]]]
    ) -> list[dict[str, Any] | ServiceError]:
        return [
            answer if isinstance(answer, ServiceError) else _part_result(*answer)
            for answer in await self._batch_answers(parts)
        ]

    async def _batch_answers(
        self, parts: Sequence[tuple[str, dict[str, str]]]
    ) -> list[tuple[BatchRequest, BatchResponse] | ServiceError]:
        """One `$batch` request: each part's request and answer, or why it has none."""
        boundary = f"batch_{uuid.uuid4()}"
        requests = [
            BatchRequest(self.root + url.lstrip("/"), {"Accept": "application/json", **headers})
            for url, headers in parts
        ]
        request = self._client.build_request(
            "POST",
            "$batch",
            content=encode_batch(boundary, requests),
            headers={
                "Content-Type": f'multipart/mixed; boundary="{boundary}"',
                # Without it Dataverse stops at the first failed part and leaves out the rest.
                "Prefer": "odata.continue-on-error",
            },
        )
        answers = self._decode(request, await self._send(request))
        results: list[tuple[BatchRequest, BatchResponse] | ServiceError] = []
        for index, batch_request in enumerate(requests):
            if index >= len(answers):
                results.append(
                    ServiceError(
                        f"Dataverse $batch left part {index + 1} of {len(requests)} unanswered "
                        f"(GET {httpx.URL(batch_request.url).path})"
                    )
                )
            else:
                results.append((batch_request, answers[index]))
        return results

    @staticmethod
    def _decode(request: httpx.Request, response: httpx.Response) -> list[BatchResponse]:
        try:
            return decode_batch(response.headers.get("Content-Type", ""), response.content)
        except BatchFormatError as exc:
            raise ServiceError(
                f"Dataverse POST {request.url.path} answered an unreadable batch: {exc}"
            ) from exc


def _unbound(response: httpx.Response) -> httpx.Response:
    """The answer, read, without its stream. httpx's response and its stream refer to each other: a
    cycle that only the cyclic garbage collector frees, and a full collection is rare once a scan
    holds many records, so every page's body would stay in memory long after it was decoded (30 MB
    of them at 10,000 customers). Without the cycle the body goes as soon as it has been read."""
    response.stream = httpx.ByteStream(b"")  # read and closed already: `content` holds the body
    return response


def _entity_id(entity_url: str) -> str | None:
    """The row id of an `OData-EntityId`, as a canonical GUID; None when it holds none."""
    opened, closed = entity_url.rfind("("), entity_url.rfind(")")
    if not 0 <= opened < closed - 1:
        return None
    try:
        return canonical_guid(entity_url[opened + 1 : closed])
    except ValueError:
        return None


def _part_result(request: BatchRequest, answer: BatchResponse) -> dict[str, Any] | ServiceError:
    path = httpx.URL(request.url).path
    if answer.status >= 400:
        return http_error(DATAVERSE, "GET", path, answer.status, answer.body)
    try:
        data = decode_json(answer.body)
    except (ValueError, RecursionError):  # RecursionError: JSON nested too deeply to decode
        data = None
    if not isinstance(data, dict):
        return ServiceError(
            f"Dataverse GET {path} (in $batch) answered {answer.status} without a JSON object",
            status=answer.status,
        )
    return data


def _part_or_raise(request: BatchRequest, answer: BatchResponse) -> dict[str, Any]:
    result = _part_result(request, answer)
    if isinstance(result, ServiceError):
        raise result
    return result


@dataclass(frozen=True)
class _Body:
    """A page as it came (`raw`; None when there is none, the page decoded already) and how to
    decode it (raising the answer's `ServiceError`)."""

    raw: bytes | str | None
    decode: Callable[[], dict[str, Any]]


_NEXT_LINK_KEY = '"@odata.nextLink"'
_NEXT_LINK = re.compile(r'"@odata\.nextLink"\s*:\s*("(?:[^"\\]|\\.)*")')
_NEXT_LINK_B = re.compile(_NEXT_LINK.pattern.encode())


def _next_link_in(raw: bytes | str) -> str | None:
    """The `@odata.nextLink` of a page, read from its JSON text without decoding the rest: Dataverse
    writes it last, after the rows. The key in quotes cannot occur inside a string value (its
    quotes would be escaped there); a link read wrongly only costs a page fetched for nothing, as
    the decoded page says which one to follow."""
    if isinstance(raw, bytes):
        at = raw.rfind(_NEXT_LINK_KEY.encode())
        found: re.Match[bytes] | re.Match[str] | None = _NEXT_LINK_B.match(raw, at) if at >= 0 else None
    else:
        at = raw.rfind(_NEXT_LINK_KEY)
        found = _NEXT_LINK.match(raw, at) if at >= 0 else None
    if found is None:
        return None
    try:
        link = json.loads(found[1])
    except ValueError:
        return None
    return link if isinstance(link, str) else None


# How long a page waits for the request of the next to go out before it is decoded anyway: a
# request goes out within a few turns of the event loop, unless it has to open a connection.
_SEND_WAIT = 0.02


def _setting_when_sent(sent: asyncio.Event) -> Callable[[str, dict[str, Any]], Awaitable[None]]:
    async def trace(name: str, info: dict[str, Any]) -> None:  # httpcore's `trace` extension
        if name.endswith(("send_request_body.complete", "receive_response_headers.started")):
            sent.set()

    return trace


async def _sent_or_done(sent: asyncio.Event, task: asyncio.Task[Any]) -> None:
    waiting = asyncio.ensure_future(sent.wait())
    try:
        await asyncio.wait((waiting, task), timeout=_SEND_WAIT, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiting.cancel()


def _drop(task: asyncio.Task[Any]) -> None:
    """A page fetched ahead that nobody will read: its request cancelled, and its failure, if it
    failed already, not reported as never retrieved."""
    task.cancel()
    task.add_done_callback(_retrieved)


def _retrieved(task: asyncio.Task[Any]) -> None:
    if not task.cancelled():
        task.exception()


def _rows(page: dict[str, Any]) -> list[dict[str, Any]]:
    rows = page.get("value")
    if not isinstance(rows, list):
        raise ServiceError("Dataverse answered a query without a 'value' list of rows")
    return rows
