"""How the tool's real clients connect to a running simulator: the real azure-identity credential
against its token endpoint, TLS trust of its certificate, Partner Center when the fixture has it."""

from __future__ import annotations

from typing import Any

from azure.identity import ClientSecretCredential

from diagnostics.adapters.http import RetryPolicy
from diagnostics.schema import SchemaMap
from diagnostics.service import Connection, PartnerCenterAccess
from diagnostics.settings import Thresholds
from simulator.server import Simulator


def sim_credential(sim: Simulator, secret: str | None = None, **options: Any) -> ClientSecretCredential:
    """The real azure-identity credential, signing in at the simulator's token endpoint.

    Pass `connection_verify=sim.ca_file` to trust the simulator's certificate; a wrong `secret`
    tests sign-in errors.
    """
    return ClientSecretCredential(
        sim.tenant_id,
        sim.client_id,
        secret or sim.client_secret,
        authority=sim.authority,
        disable_instance_discovery=True,
        **options,
    )


def connection(
    sim: Simulator,
    *,
    schema_map: SchemaMap | None = None,
    thresholds: Thresholds | None = None,
    retry: RetryPolicy | None = None,
) -> Connection:
    token_credential = sim_credential(sim, connection_verify=str(sim.ca_file))
    partner_center = (
        PartnerCenterAccess(sim.partner_center_url, token_credential)
        if sim.fixture.partner_center.enabled
        else None
    )
    return Connection(
        sim.dataverse_url,
        token_credential,
        partner_center,
        schema_map or SchemaMap(),
        thresholds or Thresholds(),
        verify=sim.ssl_context(),
        retry=retry,
    )
