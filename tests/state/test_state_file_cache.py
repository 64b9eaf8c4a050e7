"""The file store keeps the file parsed between calls: what another writer (a `silence add` from the
command line, another process) puts in the file is still seen, and what a caller does to a value it
was given never changes what the store holds."""

from __future__ import annotations

import json
from pathlib import Path

from diagnostics.adapters.state_file import FileStateStore


async def test_a_change_made_by_another_writer_is_seen(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    mine, other = FileStateStore(path), FileStateStore(path)
    etag = await mine.put("alert", "s", {"n": 1}, etag=None)
    assert (await mine.get("alert", "s")) is not None  # read, and kept
    await other.put("alert", "s", {"n": 2}, etag=etag)
    await other.put("silence", "x", {"until": "2026-12-01"}, etag=None)
    again = await mine.get("alert", "s")
    assert again is not None
    assert again.value == {"n": 2}
    assert [key for key, _ in await mine.list("silence")] == ["x"]
    path.unlink()  # moved away: the store starts anew
    assert await mine.get("alert", "s") is None


async def test_a_value_changed_by_its_reader_is_not_changed_in_the_store(tmp_path: Path) -> None:
    store = FileStateStore(tmp_path / "state.json")
    await store.put("alert", "s", {"entries": {"k": {"units": ["a"]}}}, etag=None)
    given = await store.get("alert", "s")
    assert given is not None
    given.value["entries"]["k"]["units"].append("b")
    [(_, listed)] = await store.list("alert")
    listed.value["entries"].clear()
    kept = await store.get("alert", "s")
    assert kept is not None
    assert kept.value == {"entries": {"k": {"units": ["a"]}}}
    assert json.loads((tmp_path / "state.json").read_text())["alert"]["s"]["value"] == kept.value


async def test_the_file_is_compact_sorted_json_of_every_item_after_writes_and_deletes(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    store = FileStateStore(path)
    etags = {key: await store.put("alert", key, {"n": key, "ü": [1, 2]}, etag=None) for key in "cab"}
    await store.put("alert", "a", {"n": "again"}, etag=etags["a"])
    await store.delete("alert", "b")
    await store.put("watermark", "planner", {"at": "2026-11-12"}, etag=None)
    text = path.read_text(encoding="utf-8")
    data = json.loads(text)
    assert text == json.dumps(data, sort_keys=True, separators=(",", ":"))
    assert {k: v["value"] for k, v in data["alert"].items()} == {
        "a": {"n": "again"},
        "c": {"n": "c", "ü": [1, 2]},
    }
    assert await FileStateStore(path).list("watermark") == await store.list("watermark")
