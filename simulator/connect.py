"""How the tool's real clients connect to a running simulator: the real azure-identity credential
against its token endpoint, TLS trust of its certificate, Partner Center when the fixture has it."""

from __future__ import annotations

from azure.identity import ClientSecretCredential

from diagnostics.adapters.http import RetryPolicy
from diagnostics.schema import SchemaMap
from diagnostics.service import Connection, PartnerCenterAccess
from diagnostics.settings import Thresholds
from simulator.server import Simulator


def connection(
    sim: Simulator,
    *,
    schema_map: SchemaMap | None = None,
    thresholds: Thresholds | None = None,
    retry: RetryPolicy | None = None,
) -> Connection:
    credential = ClientSecretCredential(
        sim.tenant_id,
        sim.client_id,
        sim.client_secret,
        authority=sim.authority,
        disable_instance_discovery=True,
        connection_verify=str(sim.ca_file),
    )
    partner_center = (
        PartnerCenterAccess(sim.partner_center_url, credential)
        if sim.fixture.partner_center.enabled
        else None
    )
    return Connection(
        sim.dataverse_url,
        credential,
        partner_center,
        schema_map or SchemaMap(),
        thresholds or Thresholds(),
        verify=sim.ssl_context(),
        retry=retry,
    )
