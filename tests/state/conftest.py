"""The state-store tests: one Azurite for the session; each test gets its own table."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import pytest

from diagnostics.adapters.state_table import TableStateStore
from tests.state.azurite import Azurite, missing, must_run, running_azurite


@pytest.fixture(scope="session")
def azurite() -> Iterator[Azurite]:
    reason = missing()
    if reason is not None:
        if must_run():
            pytest.fail(f"Azurite is required here (CI or make test): {reason}", pytrace=False)
        pytest.skip(reason)
    with running_azurite() as running:
        yield running


@pytest.fixture(scope="session")
def azurite_oauth(azurite: Azurite) -> Iterator[Azurite]:
    """A second Azurite, over TLS, accepting bearer tokens (the managed-identity path)."""
    with running_azurite(oauth=True) as running:
        yield running


@pytest.fixture
def table_name() -> str:
    return f"t{uuid.uuid4().hex[:20]}"


@pytest.fixture
async def table_store(azurite: Azurite, table_name: str) -> AsyncIterator[TableStateStore]:
    store = TableStateStore.from_connection_string(azurite.connection_string, table_name, retry_total=0)
    yield store
    await store.aclose()
