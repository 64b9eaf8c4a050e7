"""The app settings that point the real clients at a running simulator, for tests that build the
app from its settings (the container, the HTTP triggers, the command line)."""

from __future__ import annotations

import pytest

from simulator import Simulator


def simulator_settings(sim: Simulator, **extra: str) -> dict[str, str]:
    """`DIAG_*` settings signing in to the simulator's Dataverse with a client secret."""
    return {
        "DIAG_DATAVERSE_URL": sim.dataverse_url,
        "DIAG_DATAVERSE_CREDENTIAL": "client_secret",
        "DIAG_DATAVERSE_TENANT_ID": sim.tenant_id,
        "DIAG_DATAVERSE_CLIENT_ID": sim.client_id,
        "DIAG_DATAVERSE_CLIENT_SECRET": sim.client_secret,
        "DIAG_AUTHORITY_HOST": sim.authority,
        "DIAG_CA_BUNDLE": str(sim.ca_file),
        **extra,
    }


def use_simulator_settings(monkeypatch: pytest.MonkeyPatch, sim: Simulator, **extra: str) -> None:
    for name, value in simulator_settings(sim, **extra).items():
        monkeypatch.setenv(name, value)
