"""The managed-identity path, live: the container reads the host's identity-based settings, the real
`ManagedIdentityCredential` asks an App Service identity endpoint on loopback for a Storage token,
and Azurite (over TLS, with OAuth) checks the token's audience, issuer and lifetime as Table Storage
would, before the store reads and writes."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from diagnostics.adapters.state_table import ROLE, TableStateStore
from diagnostics.app.container import state_store
from diagnostics.errors import AuthError
from diagnostics.settings import load_settings
from tests.state.azurite import Azurite

CLIENT_ID = "0b7c1e5e-1111-2222-3333-444455556666"
TENANT = "72f988bf-0000-0000-0000-000000000000"
SECRET_HEADER = "identity-header-of-this-test"


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def _token(audience: str) -> str:
    now = int(time.time())
    claims = {
        "aud": audience,
        "iss": f"https://sts.windows.net/{TENANT}/",
        "iat": now - 60,
        "nbf": now - 60,
        "exp": now + 3600,
        "oid": CLIENT_ID,
        "tid": TENANT,
    }
    return (
        f"{_b64({'alg': 'RS256', 'typ': 'JWT'})}.{_b64(claims)}.c2lnbmF0dXJl"  # Azurite skips the signature
    )


@dataclass
class IdentityEndpoint:
    """The App Service managed-identity endpoint (IDENTITY_ENDPOINT / IDENTITY_HEADER)."""

    audience: str = "https://storage.azure.com"
    asked: list[dict[str, list[str]]] = field(default_factory=list)
    url: str = ""


@pytest.fixture
def identity(monkeypatch: pytest.MonkeyPatch, azurite_oauth: Azurite) -> Iterator[IdentityEndpoint]:
    endpoint = IdentityEndpoint()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            query = parse_qs(urlsplit(self.path).query)
            if self.headers.get("X-IDENTITY-HEADER") != SECRET_HEADER:
                refusal = b'{"error":"invalid_request","error_description":"X-IDENTITY-HEADER is wrong"}'
                self.send_response(400)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(refusal)))
                self.end_headers()
                self.wfile.write(refusal)
                return
            endpoint.asked.append(query)
            body = json.dumps(
                {
                    "access_token": _token(endpoint.audience),
                    "expires_on": str(int(time.time()) + 3600),
                    "resource": query.get("resource", [""])[0],
                    "token_type": "Bearer",
                    "client_id": CLIENT_ID,
                }
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    endpoint.url = f"http://127.0.0.1:{server.server_address[1]}/msi/token"
    monkeypatch.setenv("IDENTITY_ENDPOINT", endpoint.url)
    monkeypatch.setenv("IDENTITY_HEADER", SECRET_HEADER)
    for name in ("MSI_ENDPOINT", "MSI_SECRET", "IDENTITY_SERVER_THUMBPRINT", "IMDS_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    assert azurite_oauth.ca_file is not None
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(azurite_oauth.ca_file))  # trust Azurite's certificate
    try:
        yield endpoint
    finally:
        server.shutdown()
        server.server_close()


def _settings(azurite: Azurite, table: str) -> dict[str, str]:
    return {
        "AzureWebJobsStorage__tableServiceUri": azurite.table_endpoint,
        "AzureWebJobsStorage__credential": "managedidentity",
        "AzureWebJobsStorage__clientId": CLIENT_ID,
        "DIAG_STATE_TABLE": table,
    }


async def test_the_app_identity_signs_in_to_table_storage(
    identity: IdentityEndpoint, azurite_oauth: Azurite, table_name: str
) -> None:
    store = state_store(load_settings(_settings(azurite_oauth, table_name)))
    assert isinstance(store, TableStateStore)
    try:
        etag = await store.put("watermark", "planner", {"at": "2026-11-12T07:00:00Z"}, etag=None)
        stored = await store.get("watermark", "planner")
        assert stored is not None
        assert (stored.value, stored.etag) == ({"at": "2026-11-12T07:00:00Z"}, etag)
    finally:
        await store.aclose()
    assert identity.asked, "no token was asked of the identity endpoint"
    assert identity.asked[0]["resource"] == ["https://storage.azure.com"]
    assert identity.asked[0]["client_id"] == [CLIENT_ID]


async def test_a_token_for_another_resource_is_refused_with_the_role_to_grant(
    identity: IdentityEndpoint, azurite_oauth: Azurite, table_name: str
) -> None:
    identity.audience = "https://vault.azure.net"
    store = state_store(load_settings(_settings(azurite_oauth, table_name)))
    try:
        with pytest.raises(AuthError, match=ROLE) as caught:
            await store.get("watermark", "planner")
    finally:
        await store.aclose()
    assert "\n" not in str(caught.value)


async def test_an_identity_that_cannot_sign_in_says_so(
    identity: IdentityEndpoint, azurite_oauth: Azurite, table_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IDENTITY_HEADER", "not-the-header-the-endpoint-expects")
    store = state_store(load_settings(_settings(azurite_oauth, table_name)))
    try:
        with pytest.raises(AuthError, match="the app's identity could not sign in") as caught:
            await store.get("watermark", "planner")
    finally:
        await store.aclose()
    assert "\n" not in str(caught.value)
    assert ROLE not in str(caught.value)
    assert not identity.asked
