"""A Microsoft Entra ID stand-in: OpenID discovery and the client-credentials token endpoint.

Enough for MSAL (inside azure-identity's ClientSecretCredential, authority "127.0.0.1:PORT",
disable_instance_discovery=True) to fetch real tokens. Tokens are opaque random strings; the other
services accept exactly the ones issued here, and the log keeps each token's scope.
"""

from __future__ import annotations

import re
import secrets
import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import parse_qsl

from simulator.wire import Request, Response, json_response

_DISCOVERY = re.compile(r"^/(?P<tenant>[^/]+)/v2\.0/\.well-known/openid-configuration$")
_TOKEN = re.compile(r"^/(?P<tenant>[^/]+)/oauth2/v2\.0/token$")
TOKEN_LIFETIME = 3600


@dataclass(frozen=True)
class IssuedToken:
    token: str
    scope: str
    client_id: str


class Entra:
    def __init__(self, tenant_id: str, client_id: str, client_secret: str) -> None:
        self.tenant_id = tenant_id
        self.client_id = client_id
        self.client_secret = client_secret
        self.issued: list[IssuedToken] = []
        self._valid: set[str] = set()
        self._lock = threading.Lock()

    def owns(self, path: str) -> bool:
        return bool(_DISCOVERY.match(path) or _TOKEN.match(path))

    def issue(self, scope: str, client_id: str) -> str:
        token = "sim-" + secrets.token_urlsafe(24)
        with self._lock:
            self.issued.append(IssuedToken(token, scope, client_id))
            self._valid.add(token)
        return token

    def authorized(self, request: Request) -> bool:
        scheme, _, token = request.headers.get("Authorization").partition(" ")
        return scheme.lower() == "bearer" and token.strip() in self._valid

    def handle(self, request: Request, base_url: str) -> Response:
        discovery = _DISCOVERY.match(request.path)
        match = discovery or _TOKEN.match(request.path)
        assert match is not None  # routed here by owns()
        tenant = match["tenant"]
        if tenant != self.tenant_id:
            return _error(
                400,
                "invalid_tenant" if discovery else "invalid_request",
                90002,
                f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID.",
            )
        if discovery:
            if request.method != "GET":
                return _error(405, "invalid_request", 900561, "The endpoint only accepts GET requests.")
            return json_response(200, _openid_configuration(f"{base_url}/{tenant}"))
        if request.method != "POST":
            return _error(405, "invalid_request", 900561, "The endpoint only accepts POST requests.")
        return self._token(request)

    def _token(self, request: Request) -> Response:
        form = dict(parse_qsl(request.body.decode("utf-8", "replace"), keep_blank_values=True))
        if form.get("grant_type") != "client_credentials":
            return _error(
                400,
                "unsupported_grant_type",
                70003,
                f"The app requested an unsupported grant type '{form.get('grant_type')}'.",
            )
        if form.get("client_id") != self.client_id:
            return _error(
                400,
                "unauthorized_client",
                700016,
                f"Application with identifier '{form.get('client_id')}' was not found in the directory '{self.tenant_id}'.",
            )
        if form.get("client_secret") != self.client_secret:
            return _error(
                401,
                "invalid_client",
                7000215,
                "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value.",
            )
        scope = form.get("scope", "")
        if not scope.endswith("/.default"):
            return _error(
                400,
                "invalid_scope",
                1002012,
                f"The provided value for scope {scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).",
            )
        token = self.issue(scope, self.client_id)
        return json_response(
            200,
            {
                "token_type": "Bearer",
                "expires_in": TOKEN_LIFETIME,
                "ext_expires_in": TOKEN_LIFETIME,
                "access_token": token,
            },
        )


def _openid_configuration(issuer_base: str) -> dict[str, object]:
    return {
        "token_endpoint": f"{issuer_base}/oauth2/v2.0/token",
        "token_endpoint_auth_methods_supported": [
            "client_secret_post",
            "private_key_jwt",
            "client_secret_basic",
        ],
        "jwks_uri": f"{issuer_base}/discovery/v2.0/keys",
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "issuer": f"{issuer_base}/v2.0",
        "request_uri_parameter_supported": False,
        "authorization_endpoint": f"{issuer_base}/oauth2/v2.0/authorize",
        "device_authorization_endpoint": f"{issuer_base}/oauth2/v2.0/devicecode",
        "end_session_endpoint": f"{issuer_base}/oauth2/v2.0/logout",
        "tenant_region_scope": "NA",
    }


def _error(status: int, error: str, code: int, description: str) -> Response:
    return json_response(
        status,
        {
            "error": error,
            "error_description": f"AADSTS{code}: {description}",
            "error_codes": [code],
            "timestamp": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ"),
            "trace_id": str(uuid.uuid4()),
            "correlation_id": str(uuid.uuid4()),
        },
    )
