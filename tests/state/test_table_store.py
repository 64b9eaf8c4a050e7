"""What only the Table Storage store does: key encoding, values split under the property limit,
errors of the app's kinds (against a loopback server answering what Azure answers), a table that
disappears, and the container's choice of store from the Functions host's settings."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from azure.identity import DefaultAzureCredential, ManagedIdentityCredential
from hypothesis import given
from hypothesis import strategies as st

from diagnostics.adapters.servicebus import AsyncCredential
from diagnostics.adapters.state_file import FileStateStore
from diagnostics.adapters.state_table import (
    MAX_VALUE_CHARS,
    ROLE,
    TableStateStore,
    decode_key,
    encode_key,
)
from diagnostics.app.container import state_store
from diagnostics.errors import AuthError, ConfigError, ServiceUnreachable, Throttled
from diagnostics.settings import load_settings
from tests.state.azurite import Azurite

# --- keys ---------------------------------------------------------------------------------------


@given(st.text(min_size=1, max_size=60))
def test_key_encoding_round_trips_into_a_safe_alphabet(text: str) -> None:
    encoded = encode_key(text)
    assert set(encoded) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-~")
    assert decode_key(encoded) == text


def test_a_dedup_key_stays_readable() -> None:
    assert (
        encode_key("PI_STUCK:provider_invoice:ab-12:2026-10")
        == "PI_STUCK~3Aprovider_invoice~3Aab-12~3A2026-10"
    )


async def test_a_key_too_long_for_table_storage_is_refused(table_store: TableStateStore) -> None:
    with pytest.raises(ValueError, match="too long for Table Storage"):
        await table_store.put("alert", "€" * 100, {}, etag=None)


async def test_keys_are_stored_encoded(table_store: TableStateStore) -> None:
    await table_store.put("alert", "CODE:subject", {"n": 1}, etag=None)
    entity = await table_store.client.get_entity("alert", "CODE~3Asubject")
    assert entity["Value"] == '{"n":1}'


# --- values -------------------------------------------------------------------------------------


async def test_the_largest_value_fits_one_entity(table_store: TableStateStore) -> None:
    padding = MAX_VALUE_CHARS - len('{"p":""}')
    value = {"p": "x" * padding}
    etag = await table_store.put("alert", "max", value, etag=None)
    stored = await table_store.get("alert", "max")
    assert stored is not None
    assert (stored.value == value, stored.etag) == (True, etag)


async def test_a_value_too_large_is_refused_before_anything_is_written(table_store: TableStateStore) -> None:
    with pytest.raises(ValueError, match="more than Table Storage's entity holds"):
        await table_store.put("alert", "huge", {"p": "x" * MAX_VALUE_CHARS}, etag=None)
    assert await table_store.get("alert", "huge") is None


async def test_an_entity_not_written_by_the_app_is_a_one_line_error(table_store: TableStateStore) -> None:
    await table_store.get("alert", "-")  # creates the table
    await table_store.client.create_entity({"PartitionKey": "alert", "RowKey": "odd", "Value": "not json"})
    with pytest.raises(ConfigError, match="is not JSON written by this app"):
        await table_store.get("alert", "odd")


# --- the table ----------------------------------------------------------------------------------


async def test_a_table_deleted_under_the_store_is_created_again(table_store: TableStateStore) -> None:
    await table_store.put("watermark", "planner", {"at": "1"}, etag=None)
    await table_store.service.delete_table(table_store.table)
    assert await table_store.get("watermark", "planner") is None
    await table_store.service.delete_table(table_store.table)
    await table_store.put("watermark", "planner", {"at": "2"}, etag=None)
    stored = await table_store.get("watermark", "planner")
    assert stored is not None
    assert stored.value == {"at": "2"}


def test_a_bad_table_name_names_the_setting(azurite: Azurite) -> None:
    with pytest.raises(ConfigError, match="DIAG_STATE_TABLE"):
        TableStateStore.from_connection_string(azurite.connection_string, "no-dashes")


def test_a_bad_connection_string_names_the_setting() -> None:
    with pytest.raises(ConfigError, match="setting AzureWebJobsStorage: not a storage connection string"):
        TableStateStore.from_connection_string("AccountName=only", "diagnostics")


# --- errors keep their kind -----------------------------------------------------------------------


class _Answer(BaseHTTPRequestHandler):
    status = 503
    code = "ServerBusy"

    def _answer(self) -> None:
        error = {"code": self.code, "message": {"lang": "en-US", "value": f"answer {self.status}"}}
        body = json.dumps({"odata.error": error}).encode()
        self.send_response(self.status)
        self.send_header("Content-Type", "application/json;odata=minimalmetadata")
        self.send_header("x-ms-error-code", self.code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = _answer

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def _answering(status: int, code: str) -> Iterator[str]:
    handler = type("Handler", (_Answer,), {"status": status, "code": code})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/devstoreaccount1"
    finally:
        server.shutdown()
        server.server_close()


@contextlib.asynccontextmanager
async def _store_at(endpoint: str) -> AsyncIterator[TableStateStore]:
    from tests.state.azurite import ACCOUNT, KEY  # noqa: PLC0415

    store = TableStateStore.from_connection_string(
        f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={KEY};TableEndpoint={endpoint};",
        "diagnostics",
        retry_total=0,
    )
    try:
        yield store
    finally:
        await store.aclose()


@pytest.mark.parametrize(
    ("status", "code", "kind", "words"),
    [
        (503, "ServerBusy", Throttled, "busy"),
        (429, "TooManyRequests", Throttled, "busy"),
        (500, "InternalError", ServiceUnreachable, "retried later"),
        (403, "AuthorizationPermissionMismatch", AuthError, ROLE),
        (401, "InvalidAuthenticationInfo", AuthError, ROLE),
    ],
)
async def test_service_errors_keep_their_kind(
    status: int, code: str, kind: type[Exception], words: str
) -> None:
    with _answering(status, code) as endpoint:
        async with _store_at(endpoint) as store:
            with pytest.raises(kind, match=words) as caught:
                await store.get("watermark", "planner")
    message = str(caught.value)
    assert "\n" not in message
    if kind is not AuthError:
        assert not isinstance(caught.value, AuthError)
    if kind is ServiceUnreachable:
        assert not isinstance(caught.value, Throttled)


async def test_an_unreachable_account_is_transient() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with _store_at(f"http://127.0.0.1:{port}/devstoreaccount1") as store:
        with pytest.raises(ServiceUnreachable, match="cannot be reached") as caught:
            await store.put("watermark", "planner", {}, etag=None)
    assert "\n" not in str(caught.value)


# --- the container's choice -----------------------------------------------------------------------


async def test_the_container_uses_the_table_named_by_the_connection_setting(azurite: Azurite) -> None:
    table = f"t{uuid.uuid4().hex[:20]}"
    settings = load_settings({"AzureWebJobsStorage": azurite.connection_string, "DIAG_STATE_TABLE": table})
    store = state_store(settings)
    assert isinstance(store, TableStateStore)
    try:
        etag = await store.put("watermark", "planner", {"at": "t"}, etag=None)
        entity = await store.service.get_table_client(table).get_entity("watermark", "planner")
        assert entity.metadata["etag"] == etag
    finally:
        await store.aclose()


async def test_use_development_storage_means_azurite_on_its_default_port() -> None:
    store = state_store(load_settings({"AzureWebJobsStorage": "UseDevelopmentStorage=true"}))
    assert isinstance(store, TableStateStore)
    assert store.service.url.startswith("http://127.0.0.1:10002/devstoreaccount1")
    assert store.table == "diagnostics"
    await store.aclose()


@pytest.mark.parametrize(
    ("env", "endpoint", "credential"),
    [
        (
            {
                "AzureWebJobsStorage__accountName": "contosodiag",
                "AzureWebJobsStorage__credential": "managedidentity",
            },
            "https://contosodiag.table.core.windows.net",
            ManagedIdentityCredential,
        ),
        (
            {
                "azurewebjobsstorage__tableServiceUri": "https://contosodiag.table.core.usgovcloudapi.net",
                "AzureWebJobsStorage__clientId": "0b7c1e5e-1111-2222-3333-444455556666",
            },
            "https://contosodiag.table.core.usgovcloudapi.net",
            ManagedIdentityCredential,
        ),
        (
            {"AzureWebJobsStorage__accountName": "contosodiag"},
            "https://contosodiag.table.core.windows.net",
            DefaultAzureCredential,
        ),
    ],
)
async def test_the_container_picks_the_table_store_from_identity_settings(
    env: dict[str, str], endpoint: str, credential: type[object]
) -> None:
    store = state_store(load_settings(env))
    assert isinstance(store, TableStateStore)
    assert store.service.url.startswith(endpoint)
    signer = store.service.credential
    assert isinstance(signer, AsyncCredential)
    assert isinstance(signer._credential, credential)
    await store.aclose()


def test_without_storage_settings_the_state_is_a_local_file(tmp_path: Path) -> None:
    assert isinstance(state_store(load_settings({})), FileStateStore)
    chosen = state_store(
        load_settings(
            {"AzureWebJobsStorage": "UseDevelopmentStorage=true", "DIAG_STATE_FILE": str(tmp_path / "s.json")}
        )
    )
    assert isinstance(chosen, FileStateStore)
    assert chosen.path == tmp_path / "s.json"


@pytest.mark.parametrize(
    ("env", "setting"),
    [
        ({"AzureWebJobsStorage__credential": "secret"}, "AzureWebJobsStorage__credential"),
        ({"AzureWebJobsStorage__accountName": "Not_An_Account"}, "AzureWebJobsStorage__accountName"),
        ({"AzureWebJobsStorage__tableServiceUri": "contoso"}, "AzureWebJobsStorage__tableServiceUri"),
        (
            {"AzureWebJobsStorage__tableServiceUri": "http://contoso.table.core.windows.net"},
            "AzureWebJobsStorage__tableServiceUri",
        ),
        ({"DIAG_STATE_TABLE": "x"}, "DIAG_STATE_TABLE"),
    ],
)
def test_bad_storage_settings_name_the_setting(env: dict[str, str], setting: str) -> None:
    with pytest.raises(ConfigError, match=f"setting {setting}:"):
        load_settings(env)
