"""The StateStore contract, one suite run against the three stores: the file store (command line,
replay), the in-memory fake (unit tests) and the Table Storage store (Azure), the last against a
real Azurite. What passes here behaves alike in all three."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from diagnostics.adapters.state_file import FileStateStore
from diagnostics.adapters.state_table import (
    MAX_VALUE_CHARS,
    PAGE_SIZE,
    PART_CHARS,
    TableStateStore,
    encode_key,
    value_properties,
)
from diagnostics.ports import ConflictError, StateStore, Stored
from tests.fakes import InMemoryStateStore

STORES = ["file", "memory", "table"]


@pytest.fixture(params=STORES)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StateStore]:
    if request.param == "file":
        yield FileStateStore(tmp_path / "state.json")
    elif request.param == "memory":
        yield InMemoryStateStore()
    else:
        azurite = request.getfixturevalue("azurite")  # a sync fixture: safe inside this async one
        table = TableStateStore.from_connection_string(
            azurite.connection_string, f"t{uuid.uuid4().hex[:20]}", retry_total=0
        )
        yield table
        await table.aclose()


async def test_get_of_a_missing_item_is_none(store: StateStore) -> None:
    assert await store.get("watermark", "planner") is None


async def test_create_only_refuses_an_existing_item(store: StateStore) -> None:
    etag = await store.put("watermark", "planner", {"at": "2026-11-12T07:00:00Z"}, etag=None)
    with pytest.raises(ConflictError):
        await store.put("watermark", "planner", {"at": "later"}, etag=None)
    stored = await store.get("watermark", "planner")
    assert stored is not None
    assert (stored.value, stored.etag) == ({"at": "2026-11-12T07:00:00Z"}, etag)


async def test_update_with_the_current_etag_succeeds_and_a_stale_one_conflicts(store: StateStore) -> None:
    first = await store.put("alert", "k", {"severity": "warning"}, etag=None)
    second = await store.put("alert", "k", {"severity": "error"}, etag=first)
    assert second != first
    with pytest.raises(ConflictError):
        await store.put("alert", "k", {"severity": "critical"}, etag=first)
    stored = await store.get("alert", "k")
    assert stored is not None
    assert (stored.value, stored.etag) == ({"severity": "error"}, second)


async def test_update_of_a_deleted_item_conflicts(store: StateStore) -> None:
    etag = await store.put("alert", "k", {"n": 1}, etag=None)
    await store.delete("alert", "k")
    with pytest.raises(ConflictError):
        await store.put("alert", "k", {"n": 2}, etag=etag)
    assert await store.get("alert", "k") is None


async def test_delete_with_and_without_etag(store: StateStore) -> None:
    old = await store.put("recheck", "a", {"n": 1}, etag=None)
    new = await store.put("recheck", "a", {"n": 2}, etag=old)
    with pytest.raises(ConflictError):
        await store.delete("recheck", "a", etag=old)
    assert await store.get("recheck", "a") is not None
    await store.delete("recheck", "a", etag=new)
    assert await store.get("recheck", "a") is None
    await store.put("recheck", "b", {"n": 1}, etag=None)
    await store.delete("recheck", "b")
    assert await store.get("recheck", "b") is None
    await store.delete("recheck", "b")  # deleting what is gone is fine
    await store.delete("recheck", "never", etag=new)


async def test_two_concurrent_writers_exactly_one_wins(store: StateStore) -> None:
    await store.put("watermark", "planner", {"runs": 0}, etag=None)
    both_read = asyncio.Barrier(2)

    async def read_modify_write(writer: str) -> str:
        stored = await store.get("watermark", "planner")
        assert stored is not None
        await both_read.wait()  # both hold the same ETag before either writes
        value = {"runs": stored.value["runs"] + 1, "by": writer}
        try:
            await store.put("watermark", "planner", value, etag=stored.etag)
        except ConflictError:
            return "lost"
        return "won"

    outcomes = await asyncio.gather(read_modify_write("a"), read_modify_write("b"))
    assert sorted(outcomes) == ["lost", "won"]
    stored = await store.get("watermark", "planner")
    assert stored is not None
    winner = "ab"[outcomes.index("won")]
    assert stored.value == {"runs": 1, "by": winner}


async def test_writers_that_retry_on_conflict_lose_no_update(store: StateStore) -> None:
    await store.put("watermark", "counter", {"n": 0}, etag=None)

    async def increment() -> None:
        while True:
            stored = await store.get("watermark", "counter")
            assert stored is not None
            await asyncio.sleep(0)  # let the other writers read the same version
            try:
                await store.put("watermark", "counter", {"n": stored.value["n"] + 1}, etag=stored.etag)
            except ConflictError:
                continue
            return

    await asyncio.gather(*(increment() for _ in range(5)))
    stored = await store.get("watermark", "counter")
    assert stored is not None
    assert stored.value == {"n": 5}


async def test_list_is_per_kind_and_sorted_by_key(store: StateStore) -> None:
    await store.put("recheck", "pi:b", {"n": 2}, etag=None)
    await store.put("recheck", "pi:a", {"n": 1}, etag=None)
    await store.put("alert", "pi:a", {"n": 3}, etag=None)
    listed = await store.list("recheck")
    assert [(key, stored.value) for key, stored in listed] == [("pi:a", {"n": 1}), ("pi:b", {"n": 2})]
    for key, stored in listed:
        again = await store.get("recheck", key)
        assert again is not None
        assert again.etag == stored.etag  # a listed ETag is good for a conditional write
    assert await store.list("nothing") == []


async def test_list_beyond_one_page(store: StateStore) -> None:
    # Table Storage answers at most 1,000 entities a request: 1,234 need two pages.
    count = 1234
    await _seed(store, "alert", {f"k{n:05d}": {"n": n} for n in range(count)})
    await store.put("alert", "extra", {"n": -1}, etag=None)  # one written through the port too
    listed = await store.list("alert")
    assert [key for key, _ in listed] == sorted([*(f"k{n:05d}" for n in range(count)), "extra"])
    assert all(stored.value == {"n": int(key[1:])} for key, stored in listed if key != "extra")
    if isinstance(store, TableStateStore):  # the listing above did cross a page boundary
        pages = store.client.query_entities("PartitionKey eq 'alert'").by_page()
        first = [entity async for entity in await anext(pages)]
        assert len(first) == PAGE_SIZE


async def _seed(store: StateStore, kind: str, values: dict[str, dict[str, Any]]) -> None:
    """Many items at once, written the way each store keeps them (1,000 writes through the port
    would rewrite the file store's file 1,000 times)."""
    if isinstance(store, FileStateStore):
        items = {key: {"value": value, "etag": uuid.uuid4().hex} for key, value in values.items()}
        store.path.write_text(json.dumps({kind: items}), encoding="utf-8")
    elif isinstance(store, InMemoryStateStore):
        store.items.update({(kind, key): Stored(value, uuid.uuid4().hex) for key, value in values.items()})
    else:
        assert isinstance(store, TableStateStore)
        await store.get(kind, "-")  # creates the table
        entities = [
            {
                "PartitionKey": encode_key(kind),
                "RowKey": encode_key(key),
                **value_properties(kind, key, value),
            }
            for key, value in values.items()
        ]
        for start in range(0, len(entities), 100):  # one transaction holds at most 100 operations
            await store.client.submit_transaction(
                [("create", entity) for entity in entities[start : start + 100]]
            )


AWKWARD_KEYS = [
    "US_BLOCKED_UNRESOLVED_CUSTOMER:provider_invoice:0b7c-11:2026-10",  # a real dedup key
    "it's (quoted) & 'more'",
    "100% = a+b; c,d @ e! $f *g",
    "two  spaces and ~tilde~",
    "~41 looks encoded",
    "Ünïcödé € 😀 日本",
    "a" * 150,
]


@pytest.mark.parametrize("key", AWKWARD_KEYS, ids=range(len(AWKWARD_KEYS)))
async def test_keys_with_awkward_characters(store: StateStore, key: str) -> None:
    kind = "alert:" + key[:10]
    etag = await store.put(kind, key, {"key": key}, etag=None)
    stored = await store.get(kind, key)
    assert stored is not None
    assert (stored.value, stored.etag) == ({"key": key}, etag)
    await store.put(kind, key + "2", {"key": key}, etag=None)
    assert [k for k, _ in await store.list(kind)] == sorted([key, key + "2"])
    await store.delete(kind, key, etag=etag)
    assert await store.get(kind, key) is None


async def test_large_values_round_trip(store: StateStore) -> None:
    # Several times Table Storage's 64 KiB property limit, with text that is not ASCII.
    value = {"findings": [{"id": n, "text": f"évidence {n} " * 20} for n in range(500)]}
    etag = await store.put("alert", "large", value, etag=None)
    stored = await store.get("alert", "large")
    assert stored is not None
    assert (stored.value, stored.etag) == (value, etag)
    smaller = {"findings": value["findings"][:3]}
    await store.put("alert", "large", smaller, etag=etag)  # shrinking leaves no stale part behind
    again = await store.get("alert", "large")
    assert again is not None
    assert again.value == smaller
    listed = dict(await store.list("alert"))
    assert listed["large"].value == smaller


async def test_values_are_plain_json(store: StateStore) -> None:
    value = {"s": "x", "n": 3, "f": 1.5, "b": True, "none": None, "list": [1, "two"], "nested": {"a": {}}}
    await store.put("alert", "json", value, etag=None)
    stored = await store.get("alert", "json")
    assert stored is not None
    assert stored.value == value


@pytest.mark.parametrize("store", ["file", "table"], indirect=True)
@pytest.mark.parametrize("bad", ["a/b", "a\\b", "a#b", "a?b", "a\nb", ""])
async def test_keys_table_storage_forbids_are_refused_before_any_write(store: StateStore, bad: str) -> None:
    with pytest.raises(ValueError, match="'/'"):
        await store.put("alert", bad, {"n": 1}, etag=None)
    with pytest.raises(ValueError, match="'/'"):
        await store.get(bad, "k")
    assert await store.list("alert") == []


def test_the_table_store_splits_values_in_parts_under_the_property_limit() -> None:
    # The constants the table store relies on: a part fits a 64 KiB string property (UTF-16), and
    # all parts fit the 1 MiB entity.
    assert PART_CHARS * 2 < 64 * 1024
    assert MAX_VALUE_CHARS * 2 < 1024 * 1024 - 64 * 1024
