"""Connections to a real environment, built from the settings (shared by the CLI and the Function app)."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr

from diagnostics.adapters.http import RetryPolicy
from diagnostics.errors import ConfigError
from diagnostics.schema import load_schema_map
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
    if settings.ca_bundle:
        options["connection_verify"] = str(settings.ca_bundle)
    return options


def _verify(settings: Settings) -> ssl.SSLContext | bool:
    if settings.ca_bundle is None:
        return True
    try:
        return ssl.create_default_context(cafile=str(settings.ca_bundle))
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"setting DIAG_CA_BUNDLE: cannot load {settings.ca_bundle}: {exc}") from None


def _secret(value: SecretStr | None) -> str:
    return value.get_secret_value() if value is not None else ""


def _real_credential(settings: Settings) -> TokenCredential:
    from azure.identity import (  # noqa: PLC0415  (slow import, only for real environments)
        ClientSecretCredential,
        DefaultAzureCredential,
        ManagedIdentityCredential,
    )

    if settings.dataverse_credential == "managed_identity":
        return ManagedIdentityCredential(client_id=settings.dataverse_client_id)
    if settings.dataverse_credential == "client_secret":
        # load_settings checked that all three are set for this mode.
        return ClientSecretCredential(
            str(settings.dataverse_tenant_id),
            str(settings.dataverse_client_id),
            _secret(settings.dataverse_client_secret),
            **_identity_options(settings),
        )
    return DefaultAzureCredential()


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
        load_schema_map(schema_map_file or settings.schema_map_file),
        settings.thresholds,
        verify=_verify(settings),
        retry=retry_policy(settings),
    )
