"""The state stores (file and in-memory fake keep the same contract), the container's wiring, the
schema cache and the per-unit request tally."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from azure.core.credentials import AccessToken

from diagnostics.adapters.dataverse import DataverseClient, Query
from diagnostics.adapters.state_file import FileStateStore
from diagnostics.app.container import Container, counting_requests, get_container, use_container
from diagnostics.errors import ConfigError
from diagnostics.ports import ConflictError, StateStore
from simulator import Simulator
from tests.fakes import InMemoryStateStore
from tests.sim_env import use_simulator_settings


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.fixture(params=["file", "memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> StateStore:
    if request.param == "file":
        return FileStateStore(tmp_path / "state" / "s.json")
    return InMemoryStateStore()


async def test_put_get_and_etags(store: StateStore) -> None:
    assert await store.get("watermark", "planner") is None
    etag = await store.put("watermark", "planner", {"at": "2026-11-12T07:00:00Z"}, etag=None)
    stored = await store.get("watermark", "planner")
    assert stored is not None
    assert stored.value == {"at": "2026-11-12T07:00:00Z"}
    assert stored.etag == etag
    with pytest.raises(ConflictError):
        await store.put("watermark", "planner", {"at": "x"}, etag=None)  # create, but it exists
    new = await store.put("watermark", "planner", {"at": "y"}, etag=etag)
    assert new != etag
    with pytest.raises(ConflictError):
        await store.put("watermark", "planner", {"at": "z"}, etag=etag)  # stale
    with pytest.raises(ConflictError):
        await store.delete("watermark", "planner", etag=etag)
    await store.delete("watermark", "planner", etag=new)
    assert await store.get("watermark", "planner") is None
    await store.delete("watermark", "planner")  # deleting what is gone is fine


async def test_list_is_per_kind(store: StateStore) -> None:
    await store.put("recheck", "pi:b", {"n": 2}, etag=None)
    await store.put("recheck", "pi:a", {"n": 1}, etag=None)
    await store.put("findings", "pi:a", {"n": 3}, etag=None)
    assert [(k, s.value) for k, s in await store.list("recheck")] == [("pi:a", {"n": 1}), ("pi:b", {"n": 2})]


async def test_the_file_store_survives_a_new_instance_and_rejects_bad_keys(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    await FileStateStore(path).put("recheck", "pi:1", {"sequence_number": 7}, etag=None)
    again = await FileStateStore(path).get("recheck", "pi:1")
    assert again is not None
    assert again.value == {"sequence_number": 7}
    assert _names(tmp_path) == ["s.json"]  # no temporary file left behind
    with pytest.raises(ValueError, match="'/'"):
        await FileStateStore(path).get("recheck", "a/b")


async def test_a_corrupt_state_file_is_a_one_line_config_error(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    path.write_text("{not json")
    with pytest.raises(ConfigError, match="is not JSON"):
        await FileStateStore(path).get("watermark", "planner")


async def test_the_container_reads_the_schema_once_and_counts_requests_per_unit(
    container: Container, sim: Simulator
) -> None:
    sim.reset_counts()
    with counting_requests() as first:
        verification = await container.schema.get()
    assert not verification.problems
    assert first.count >= 1
    with counting_requests() as second:
        await container.schema.get()  # cached: no request
        rows = await container.dataverse.query(Query("work365_providers", ("work365_name",)))
    assert rows
    assert second.count == 1


async def test_concurrent_tallies_do_not_mix(container: Container) -> None:
    async def one(n: int) -> int:
        with counting_requests() as tally:
            for _ in range(n):
                await container.dataverse.query(Query("work365_providers", ("work365_name",)))
            return tally.count

    assert await asyncio.gather(one(1), one(3)) == [1, 3]


async def test_dataverse_requests_are_capped_per_client() -> None:
    in_flight = 0
    peak = 0

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0)  # let the other requests start, if the cap allows them
        await asyncio.sleep(0)
        in_flight -= 1
        return httpx.Response(200, json={"value": []})

    class Credential:
        def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
            return AccessToken("t", 2**40)

    client = DataverseClient(
        "https://org.example",
        Credential(),
        transport=httpx.MockTransport(handler),
        max_concurrency=3,
    )
    async with client:
        await asyncio.gather(*(client.query(Query("accounts", ("name",))) for _ in range(10)))
    assert peak == 3


def test_use_container_returns_the_one_before(container: Container) -> None:
    previous = use_container(container)
    try:
        assert use_container(None) is container
    finally:
        use_container(previous)


def test_state_file_is_plain_json(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    asyncio.run(FileStateStore(path).put("watermark", "planner", {"at": "t"}, etag=None))
    assert json.loads(path.read_text())["watermark"]["planner"]["value"] == {"at": "t"}


async def test_get_container_builds_once_from_the_settings(
    sim: Simulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    use_simulator_settings(
        monkeypatch, sim, DIAG_STATE_FILE=str(tmp_path / "state.json"), DIAG_DATAVERSE_MAX_CONCURRENCY="3"
    )
    previous = use_container(None)
    try:
        built = get_container()
        assert get_container() is built
        assert built.settings.dataverse_max_concurrency == 3
        assert (await built.dataverse.get("WhoAmI"))["UserId"]
        await built.aclose()
        monkeypatch.delenv("DIAG_DATAVERSE_URL")
        use_container(None)
        with pytest.raises(ConfigError, match="DIAG_DATAVERSE_URL"):
            get_container()
    finally:
        use_container(previous)
