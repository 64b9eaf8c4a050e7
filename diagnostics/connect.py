"""Connections to a real environment, built from the settings (shared by the CLI and the Function app)."""

from __future__ import annotations

import functools
import os
import ssl
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import certifi
from azure.core.credentials import AccessToken
from azure.core.exceptions import ClientAuthenticationError
from pydantic import SecretStr

from diagnostics.adapters.http import RetryPolicy
from diagnostics.errors import ConfigError, InputError
from diagnostics.schema import SchemaMap, load_schema_map
from diagnostics.service import Connection, PartnerCenterAccess
from diagnostics.settings import Settings

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential


def retry_policy(settings: Settings) -> RetryPolicy:
    return RetryPolicy(max_attempts=settings.http_max_attempts)


def _identity_options(settings: Settings) -> dict[str, Any]:
    """Options for azure-identity credentials: a sovereign-cloud authority host, a private CA."""
    options: dict[str, Any] = {}
    if settings.authority_host:
        # MSAL only knows the public clouds; another host is used as given.
        options |= {"authority": settings.authority_host, "disable_instance_discovery": True}
    bundle = _trust_bundle(settings)
    if bundle is not None:
        options["connection_verify"] = bundle
    return options


@functools.cache
def _combined_bundle(extra: str) -> str:
    """One PEM file of the default trust store and the extra CAs: azure-identity's transport
    (requests) takes a single file and would otherwise trust *only* the extra CAs."""
    try:
        pem = Path(extra).read_text(encoding="utf-8", errors="strict")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"setting DIAG_CA_BUNDLE: cannot read {extra}: {exc}") from None
    if "-----BEGIN CERTIFICATE-----" not in pem:
        raise ConfigError(f"setting DIAG_CA_BUNDLE: {extra} holds no PEM certificate")
    combined = Path(tempfile.gettempdir()) / f"diagnostics-ca-{os.getpid()}-{abs(hash(extra))}.pem"
    combined.write_text(Path(certifi.where()).read_text(encoding="utf-8") + "\n" + pem, encoding="utf-8")
    return str(combined)


def _trust_bundle(settings: Settings) -> str | None:
    return _combined_bundle(str(settings.ca_bundle)) if settings.ca_bundle else None


def _verify(settings: Settings) -> ssl.SSLContext | bool:
    """The TLS trust of the service clients: the system's and certifi's CAs, plus DIAG_CA_BUNDLE's
    (a TLS-inspecting proxy's CA is added to the usual ones, never put in their place)."""
    if settings.ca_bundle is None:
        return True
    try:
        context = ssl.create_default_context()
        context.load_verify_locations(cafile=certifi.where())
        context.load_verify_locations(cafile=str(settings.ca_bundle))
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"setting DIAG_CA_BUNDLE: cannot load {settings.ca_bundle}: {exc}") from None
    return context


def _secret(value: SecretStr | None) -> str:
    return value.get_secret_value() if value is not None else ""


_CREDENTIAL_HINTS = {
    "default": (
        "DefaultAzureCredential found no identity: run `az login` (on a workstation), use a managed identity "
        "(in Azure), or set DIAG_DATAVERSE_CREDENTIAL=client_secret with DIAG_DATAVERSE_TENANT_ID, "
        "DIAG_DATAVERSE_CLIENT_ID and DIAG_DATAVERSE_CLIENT_SECRET"
    ),
    "managed_identity": (
        "the managed identity gave no token: check that DIAG_DATAVERSE_CLIENT_ID is the client id of a "
        "user-assigned identity attached to this app, or set DIAG_DATAVERSE_CREDENTIAL=default"
    ),
}


class ExplainedCredential:
    """A TokenCredential that turns the SDK's multi-line "no credential" dump into one line that
    says what to do (a ConfigError: exit 2, HTTP 500 "misconfigured"). Sign-in refusals and
    network failures pass through, for the adapters to explain."""

    def __init__(self, inner: TokenCredential, mode: str) -> None:
        self._inner = inner
        self._mode = mode

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        from azure.identity import CredentialUnavailableError  # noqa: PLC0415

        try:
            return self._inner.get_token(*scopes, **kwargs)
        except CredentialUnavailableError:
            raise ConfigError(_CREDENTIAL_HINTS.get(self._mode, _CREDENTIAL_HINTS["default"])) from None
        except ClientAuthenticationError as exc:
            if self._mode == "default" and "DefaultAzureCredential failed" in str(exc):
                raise ConfigError(_CREDENTIAL_HINTS["default"]) from None
            raise

    def close(self) -> None:
        close = getattr(self._inner, "close", None)
        if callable(close):
            close()


def _real_credential(settings: Settings) -> TokenCredential:
    from azure.identity import (  # noqa: PLC0415  (slow import, only for real environments)
        ClientSecretCredential,
        DefaultAzureCredential,
        ManagedIdentityCredential,
    )

    options = _identity_options(settings)
    if settings.dataverse_credential == "managed_identity":
        transport = {k: v for k, v in options.items() if k == "connection_verify"}
        return ExplainedCredential(
            ManagedIdentityCredential(client_id=settings.dataverse_client_id, **transport), "managed_identity"
        )
    if settings.dataverse_credential == "client_secret":
        # load_settings checked that all three are set for this mode.
        return ClientSecretCredential(
            str(settings.dataverse_tenant_id),
            str(settings.dataverse_client_id),
            _secret(settings.dataverse_client_secret),
            **options,
        )
    default_options = {k: v for k, v in options.items() if k != "disable_instance_discovery"}
    if settings.dataverse_client_id:
        default_options["managed_identity_client_id"] = settings.dataverse_client_id
    return ExplainedCredential(DefaultAzureCredential(**default_options), "default")


def schema_map_of(settings: Settings, flag: Path | None) -> SchemaMap:
    """The schema map of --schema-map (bad input: exit 2) or of the setting (misconfiguration)."""
    if flag is not None or settings.schema_map_file is None:
        return load_schema_map(flag)
    try:
        return load_schema_map(settings.schema_map_file)
    except InputError as exc:
        raise ConfigError(f"setting DIAG_SCHEMA_MAP_FILE: {exc}") from None


def real_connection(
    settings: Settings, dataverse_url: str | None, schema_map_file: Path | None
) -> Connection:
    """A connection to a real environment, from the settings (shared with the Function app)."""
    from azure.identity import ClientSecretCredential  # noqa: PLC0415

    url = dataverse_url or settings.dataverse_url
    if not url:
        raise ConfigError("no Dataverse URL: pass --dataverse-url or set DIAG_DATAVERSE_URL")
    pc = None
    if settings.partner_center_configured:
        pc = PartnerCenterAccess(
            settings.partner_center_url,
            ClientSecretCredential(
                str(settings.partner_center_tenant_id),
                str(settings.partner_center_client_id),
                _secret(settings.partner_center_client_secret),
                **_identity_options(settings),
            ),
        )
    return Connection(
        url.rstrip("/"),
        _real_credential(settings),
        pc,
        schema_map_of(settings, schema_map_file),
        settings.thresholds,
        verify=_verify(settings),
        retry=retry_policy(settings),
        max_concurrency=settings.dataverse_max_concurrency,
    )
