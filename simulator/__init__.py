"""A local stand-in for Dataverse, Partner Center, Entra ID and a Teams webhook, serving a tenant fixture.

A dev/test tool: the product's real clients run against it unchanged. Not shipped to Azure.
"""

from __future__ import annotations

from simulator.faults import Fault
from simulator.fixture import Fixture, FixtureError, PartnerCenterFixture, load_fixture
from simulator.server import Simulator

__all__ = ["Fault", "Fixture", "FixtureError", "PartnerCenterFixture", "Simulator", "load_fixture"]
