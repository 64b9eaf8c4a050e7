"""The state store on Azure Table Storage: the monitor's store in Azure (the Function app's own
storage account, signed in with the app's identity), tested against Azurite.

One table (`DIAG_STATE_TABLE`, default `diagnostics`); one entity per item: PartitionKey = kind,
RowKey = key, the value as JSON. Optimistic concurrency is Table Storage's own: the entity's ETag
is the item's ETag, a create is an insert (409 when it exists), an update and a delete with an ETag
send `If-Match` (412 when it changed). Every such refusal is `ConflictError`.

Keys. The port's rules are checked as the file store checks them (no '/', '\\', '#', '?' or control
character: ValueError). Every other character is stored encoded: anything outside [A-Za-z0-9_.-]
becomes `~XX` per UTF-8 byte (':' → '~3A'). Table Storage forbids some characters, and the async
client signs some punctuation (':', "'", '(', '=', …) differently from how it sends it, which Azurite
and shared-key accounts refuse; encoded keys avoid both and still read well in Storage Explorer.

Values. A string property holds at most 64 KiB (32 K UTF-16 characters) and an entity 1 MiB. The JSON
is written ASCII-only (so one character is one UTF-16 unit) and split across `Value`, `Value1`, …
of 32,000 characters each, up to 14 parts (448,000 characters); a larger value is refused with a
ValueError before anything is sent. The alert state and the watermark are a few hundred bytes.

Errors keep their kind: throttling, 5xx and network errors (after the client's few retries) raise
`Throttled`/`ServiceUnreachable`, so the Service Bus delivery that needed the state fails and is
retried; a refused identity raises `AuthError` naming the role to grant.

Transport: azure-core's asyncio transport over `requests` (already installed with azure-core), not
aiohttp, which the app does not ship (as for Service Bus, the identity's sign-in runs in a thread).
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from azure.core import MatchConditions
from azure.core.credentials import AccessToken, AzureNamedKeyCredential, TokenCredential
from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.core.pipeline.transport import AsyncHttpTransport, AsyncioRequestsTransport
from azure.data.tables import UpdateMode
from azure.data.tables.aio import TableClient, TableServiceClient

from diagnostics.adapters.http import one_line
from diagnostics.adapters.servicebus import AsyncCredential
from diagnostics.errors import AuthError, ConfigError, ServiceUnreachable, Throttled
from diagnostics.ports import ConflictError, Stored

T = TypeVar("T")

ROLE = "Storage Table Data Contributor"
PART_CHARS = 32_000  # < 32,768 UTF-16 units: one part fits a 64 KiB string property
MAX_PARTS = 14  # 14 x 64,000 bytes stays under the 1 MiB entity limit with the keys and names
MAX_VALUE_CHARS = PART_CHARS * MAX_PARTS
MAX_KEY_CHARS = 512  # Table Storage allows 1 KiB (UTF-16) per key
PAGE_SIZE = 1000  # Table Storage's largest page

_FORBIDDEN = frozenset("/\\#?")
_SAFE = re.compile(r"[A-Za-z0-9_.-]")
_ESCAPED = re.compile(r"(?:~[0-9A-F]{2})+")
_TABLE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9]{2,62}$")


# --- keys -----------------------------------------------------------------------------------------


def check_key(kind: str, key: str) -> None:
    """The port's key rules (the same as the file store's, so code that works on one works on both)."""
    for name, text in (("kind", kind), ("key", key)):
        if not text or _FORBIDDEN & set(text) or any(ord(ch) < 32 or 127 <= ord(ch) < 160 for ch in text):
            raise ValueError(
                f"state {name} {text[:80]!r} is empty or has '/', '\\', '#', '?' or a control character"
            )


def encode_key(text: str) -> str:
    """`text` in [A-Za-z0-9_.-] plus `~XX` escapes (one per UTF-8 byte); reversible, order-free."""
    encoded = "".join(
        ch if _SAFE.fullmatch(ch) else "".join(f"~{byte:02X}" for byte in ch.encode("utf-8")) for ch in text
    )
    if len(encoded) > MAX_KEY_CHARS:
        raise ValueError(
            f"state key {text[:80]!r} is too long for Table Storage ({len(encoded)} characters encoded, "
            f"at most {MAX_KEY_CHARS}): use a shorter key"
        )
    return encoded


def decode_key(encoded: str) -> str:
    return _ESCAPED.sub(lambda m: bytes.fromhex(m.group().replace("~", "")).decode("utf-8"), encoded)


# --- values ---------------------------------------------------------------------------------------


def _property_name(part: int) -> str:
    return "Value" if part == 0 else f"Value{part}"


def value_properties(kind: str, key: str, value: dict[str, Any]) -> dict[str, str]:
    """The JSON of `value` in as many string properties as it needs (at most MAX_PARTS)."""
    text = json.dumps(value, ensure_ascii=True, separators=(",", ":"), allow_nan=False)
    if len(text) > MAX_VALUE_CHARS:
        raise ValueError(
            f"state {kind}/{key}: the value is {len(text):,} characters of JSON, more than Table "
            f"Storage's entity holds ({MAX_VALUE_CHARS:,}); keep large data out of the state store"
        )
    parts = [text[start : start + PART_CHARS] for start in range(0, len(text), PART_CHARS)] or [""]
    return {_property_name(n): part for n, part in enumerate(parts)}


def value_of(entity: dict[str, Any]) -> dict[str, Any]:
    parts: list[str] = []
    while (part := entity.get(_property_name(len(parts)))) is not None:
        parts.append(str(part))
    value = json.loads("".join(parts))
    if not isinstance(value, dict):
        raise TypeError("a state entity's value is not a JSON object")
    return value


# --- errors ---------------------------------------------------------------------------------------


class TableMissing(Exception):
    """The table is gone (deleted after this worker created it)."""


def _table_missing(exc: AzureError) -> bool:
    return getattr(exc, "error_code", None) == "TableNotFound"


def _status(exc: AzureError) -> int | None:
    status = getattr(exc, "status_code", None)
    return status if isinstance(status, int) else None


def mapped_error(exc: AzureError, what: str, table: str) -> Exception:
    """The app's error kind for a Table Storage failure (conflicts are handled by the caller)."""
    status = _status(exc)
    reason = one_line(str(getattr(exc, "message", None) or exc or type(exc).__name__), limit=160)
    if isinstance(exc, ClientAuthenticationError) or status in (401, 403):
        return AuthError(
            f"Table Storage refused {what} ({reason}): give the app's identity '{ROLE}' on the "
            "storage account (AzureWebJobsStorage), or check the connection string",
            status=status,
        )
    if status in (429, 503) or (status == 500 and "busy" in reason.lower()):
        return Throttled(
            f"Table Storage is busy ({what}: {reason}); the delivery is retried later", status=status
        )
    if status is not None and status >= 500:
        return ServiceUnreachable(
            f"Table Storage failed {what} ({reason}); the delivery is retried later", status=status
        )
    if isinstance(exc, HttpResponseError) and status is not None:
        return ConfigError(f"Table Storage refused {what} on table {table!r} ({status}: {reason})")
    return ServiceUnreachable(
        f"Table Storage cannot be reached ({what}: {reason}): check AzureWebJobsStorage and the network; "
        "the delivery is retried later"
    )


class _AppIdentity(AsyncCredential):
    """The app's identity; a failed sign-in says so (not "grant the role", which would mislead)."""

    async def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        try:
            return await super().get_token(*scopes, **kwargs)
        except ClientAuthenticationError as exc:  # CredentialUnavailableError included
            raise _sign_in_failed(exc) from None
        except AzureError as exc:
            raise ServiceUnreachable(
                f"Table Storage: the identity endpoint did not answer ({one_line(str(exc), limit=160)}); "
                "the delivery is retried later"
            ) from None
        except Exception as exc:  # an answer the identity library could not read: no traceback
            raise _sign_in_failed(exc) from None


def _sign_in_failed(exc: Exception) -> AuthError:
    reason = one_line(str(exc) or type(exc).__name__, limit=160)
    return AuthError(
        f"Table Storage: the app's identity could not sign in ({reason}): turn on the Function app's "
        "managed identity (AzureWebJobsStorage__clientId for a user-assigned one), or locally set "
        "AzureWebJobsStorage to a connection string"
    )


# --- the store ------------------------------------------------------------------------------------


class TableStateStore:
    """`diagnostics.ports.StateStore` on one Azure Storage table."""

    def __init__(self, service: TableServiceClient, table: str) -> None:
        if not _TABLE_NAME.match(table):
            raise ConfigError(
                f"setting DIAG_STATE_TABLE: {table!r} is not a table name (3-63 letters and digits, "
                "starting with a letter)"
            )
        self.service = service
        self.table = table
        self.client: TableClient = service.get_table_client(table)
        self._ready = False
        self._ready_lock = asyncio.Lock()

    # --- construction -----------------------------------------------------------------------------

    @staticmethod
    def _client_options(retry_total: int, transport: AsyncHttpTransport[Any, Any] | None) -> dict[str, Any]:
        return {
            "transport": transport or AsyncioRequestsTransport(),
            # A few quick retries inside one delivery; after that Service Bus retries the delivery.
            "retry_total": retry_total,
            "retry_backoff_factor": 0.5,
            "retry_backoff_max": 8,
            "connection_timeout": 10,
            "read_timeout": 30,
        }

    @classmethod
    def from_connection_string(
        cls,
        connection_string: str,
        table: str,
        *,
        retry_total: int = 3,
        transport: AsyncHttpTransport[Any, Any] | None = None,
    ) -> TableStateStore:
        """A connection string (`UseDevelopmentStorage=true` is Azurite on its default port)."""
        try:
            service = TableServiceClient.from_connection_string(
                connection_string, **cls._client_options(retry_total, transport)
            )
        except (ValueError, KeyError) as exc:
            raise ConfigError(
                f"setting AzureWebJobsStorage: not a storage connection string ({one_line(str(exc))})"
            ) from None
        return cls(service, table)

    @classmethod
    def from_endpoint(
        cls,
        endpoint: str,
        credential: TokenCredential | AzureNamedKeyCredential,
        table: str,
        *,
        retry_total: int = 3,
        transport: AsyncHttpTransport[Any, Any] | None = None,
    ) -> TableStateStore:
        """The table service URI and the app's identity (a sync TokenCredential, signed in from a
        thread), or an account name and key."""
        signer: Any = credential
        if not isinstance(credential, AzureNamedKeyCredential):
            signer = _AppIdentity(credential)
        service = TableServiceClient(
            endpoint, credential=signer, **cls._client_options(retry_total, transport)
        )
        return cls(service, table)

    async def aclose(self) -> None:
        await self.service.close()

    # --- the port ---------------------------------------------------------------------------------

    async def get(self, kind: str, key: str) -> Stored | None:
        pk, rk = self._keys(kind, key)

        async def read() -> Stored | None:
            try:
                entity = await self.client.get_entity(pk, rk)
            except ResourceNotFoundError as exc:
                if _table_missing(exc):
                    raise TableMissing from exc
                return None
            return self._stored(kind, key, entity)

        return await self._call(f"reading {kind}/{key}", read)

    async def put(self, kind: str, key: str, value: dict[str, Any], *, etag: str | None) -> str:
        pk, rk = self._keys(kind, key)
        entity: dict[str, Any] = {"PartitionKey": pk, "RowKey": rk, **value_properties(kind, key, value)}

        async def write() -> str:
            try:
                if etag is None:
                    result = await self.client.create_entity(entity)
                else:
                    result = await self.client.update_entity(
                        entity,
                        mode=UpdateMode.REPLACE,
                        etag=etag,
                        match_condition=MatchConditions.IfNotModified,
                    )
            except ResourceExistsError:
                raise ConflictError(f"state {kind}/{key} already exists") from None
            except ResourceModifiedError:
                raise ConflictError(f"state {kind}/{key} changed since it was read") from None
            except ResourceNotFoundError as exc:
                if etag is None or _table_missing(exc):
                    raise TableMissing from exc  # an insert finds no table, never no entity
                raise ConflictError(f"state {kind}/{key} was deleted since it was read") from None
            return str(result["etag"])

        return await self._call(f"writing {kind}/{key}", write)

    async def delete(self, kind: str, key: str, *, etag: str | None = None) -> None:
        pk, rk = self._keys(kind, key)

        async def remove() -> None:
            try:
                if etag is None:
                    await self.client.delete_entity(pk, rk)  # a missing entity is not an error
                else:
                    await self.client.delete_entity(
                        pk, rk, etag=etag, match_condition=MatchConditions.IfNotModified
                    )
            except ResourceModifiedError:
                raise ConflictError(f"state {kind}/{key} changed since it was read") from None
            except ResourceNotFoundError as exc:
                if _table_missing(exc):
                    raise TableMissing from exc
                # already gone: deleting is idempotent, as in the file store

        await self._call(f"deleting {kind}/{key}", remove)

    async def list(self, kind: str) -> list[tuple[str, Stored]]:
        pk, _ = self._keys(kind, "-")

        async def read_all() -> list[tuple[str, Stored]]:
            items: list[tuple[str, Stored]] = []
            # The SDK follows the continuation tokens: one request per PAGE_SIZE entities.
            pages = self.client.query_entities(
                "PartitionKey eq @pk", parameters={"pk": pk}, results_per_page=PAGE_SIZE
            )
            async for entity in pages:
                key = decode_key(str(entity["RowKey"]))
                items.append((key, self._stored(kind, key, entity)))
            return sorted(items, key=lambda item: item[0])  # by key, as the file store lists

        return await self._call(f"listing {kind}", read_all)

    # --- plumbing ---------------------------------------------------------------------------------

    @staticmethod
    def _keys(kind: str, key: str) -> tuple[str, str]:
        check_key(kind, key)
        return encode_key(kind), encode_key(key)

    def _stored(self, kind: str, key: str, entity: Any) -> Stored:
        try:
            value = value_of(entity)
        except (ValueError, TypeError):
            raise ConfigError(
                f"state {kind}/{key} in table {self.table!r} is not JSON written by this app: delete the "
                "entity (the monitor starts it anew)"
            ) from None
        return Stored(value, str(entity.metadata["etag"]))

    async def _call(self, what: str, action: Callable[[], Awaitable[T]]) -> T:
        await self._ensure_table()
        try:
            return await action()
        except TableMissing:
            pass
        except AzureError as exc:
            raise mapped_error(exc, what, self.table) from None
        # The table was deleted since this worker created it: create it again and retry once.
        self._ready = False
        await self._ensure_table()
        try:
            return await action()
        except TableMissing:
            raise ServiceUnreachable(
                f"Table Storage: table {self.table!r} vanished again ({what}); retried later"
            ) from None
        except AzureError as exc:
            raise mapped_error(exc, what, self.table) from None

    async def _ensure_table(self) -> None:
        if self._ready:
            return
        async with self._ready_lock:  # one create when many messages arrive on a cold worker
            if self._ready:
                return
            try:
                await self.service.create_table_if_not_exists(self.table)
            except AzureError as exc:
                raise mapped_error(exc, f"creating table {self.table!r}", self.table) from None
            self._ready = True
