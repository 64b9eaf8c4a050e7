"""The state store in one local JSON file: for the command line, the replay and local runs.

Every write replaces the file atomically (write a sibling, then rename), so a crash never leaves
half a file. ETags are random tokens compared on write, as Table Storage compares its own. The
store is meant for one process: a lock serialises the threads of that process.

The file's content is kept parsed between calls while the file is unchanged (its inode, size and
times), so a read does not parse the whole file again, and each item is kept encoded, so a write
encodes only the item it changes and joins the others' text (compact JSON, keys sorted): the replay
of a 2,000-customer month spent most of its time parsing and pretty-printing the whole file.
"""

from __future__ import annotations

import json
import os
import threading
import uuid
from pathlib import Path
from typing import Any

from diagnostics.errors import ConfigError
from diagnostics.ports import ConflictError, Stored

_FORBIDDEN = frozenset("/\\#?")


def _check_key(kind: str, key: str) -> None:
    # The same rules as Table Storage's keys, so code that works here works there.
    for name, text in (("kind", kind), ("key", key)):
        if not text or _FORBIDDEN & set(text) or any(ord(ch) < 32 for ch in text):
            raise ValueError(
                f"state {name} {text[:80]!r} is empty or has '/', '\\', '#', '?' or a control character"
            )


class FileStateStore:
    """`diagnostics.ports.StateStore` over a JSON file: {kind: {key: {"value": …, "etag": …}}}."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        # The file as last read or written, and the stat that says it is still the file on disk.
        self._cached: tuple[tuple[int, int, int, int], dict[str, dict[str, dict[str, Any]]]] | None = None
        self._encoded: dict[str, dict[str, str]] = {}  # kind -> key -> the item as written

    # --- the port --------------------------------------------------------------------------------

    async def get(self, kind: str, key: str) -> Stored | None:
        _check_key(kind, key)
        with self._lock:
            item = self._load().get(kind, {}).get(key)
            # A copy: the caller may change what it was given, never what the store holds.
            return None if item is None else Stored(_copy(item["value"]), item["etag"])

    async def put(self, kind: str, key: str, value: dict[str, Any], *, etag: str | None) -> str:
        _check_key(kind, key)
        with self._lock:
            data = self._load()
            items = data.setdefault(kind, {})
            current = items.get(key)
            if etag is None and current is not None:
                raise ConflictError(f"state {kind}/{key} already exists")
            if etag is not None and (current is None or current["etag"] != etag):
                raise ConflictError(f"state {kind}/{key} changed since it was read")
            new_etag = uuid.uuid4().hex
            # A JSON round trip now, so a value that cannot be stored fails here, not later.
            items[key] = {"value": json.loads(json.dumps(value)), "etag": new_etag}
            self._encoded.get(kind, {}).pop(key, None)
            self._save(data)
        return new_etag

    async def delete(self, kind: str, key: str, *, etag: str | None = None) -> None:
        _check_key(kind, key)
        with self._lock:
            data = self._load()
            current = data.get(kind, {}).get(key)
            if current is None:
                return
            if etag is not None and current["etag"] != etag:
                raise ConflictError(f"state {kind}/{key} changed since it was read")
            del data[kind][key]
            self._encoded.get(kind, {}).pop(key, None)
            self._save(data)

    async def list(self, kind: str) -> list[tuple[str, Stored]]:
        with self._lock:
            items = self._load().get(kind, {})
            return [(key, Stored(_copy(item["value"]), item["etag"])) for key, item in sorted(items.items())]

    # --- the file --------------------------------------------------------------------------------

    def _load(self) -> dict[str, dict[str, dict[str, Any]]]:
        """The file's content: the one kept from the last call while the file is unchanged. Callers
        hold the lock, and change it only to save it at once."""
        try:
            seen = _stat(self.path)
        except FileNotFoundError:
            self._cached = None
            return {}
        except OSError as exc:
            raise ConfigError(f"state file {self.path}: cannot read it ({exc.strerror})") from None
        if self._cached is not None and self._cached[0] == seen:
            return self._cached[1]
        self._cached, self._encoded = None, {}
        data = self._read()
        self._cached = (seen, data)
        return data

    def _read(self) -> dict[str, dict[str, dict[str, Any]]]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise ConfigError(f"state file {self.path}: cannot read it ({exc.strerror})") from None
        try:
            data = json.loads(text)
        except ValueError:
            raise ConfigError(
                f"state file {self.path} is not JSON: move it away (the monitor starts a new one)"
            ) from None
        if not isinstance(data, dict):
            raise ConfigError(f"state file {self.path} does not hold a JSON object: move it away")
        return data

    def _save(self, data: dict[str, dict[str, dict[str, Any]]]) -> None:
        temporary = self.path.with_name(f".{self.path.name}.{uuid.uuid4().hex}.tmp")
        self._cached = None  # `data` is changed already: read the file again if this fails
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            temporary.write_text(self._text(data), encoding="utf-8")
            os.replace(temporary, self.path)
            self._cached = (_stat(self.path), data)
        except OSError as exc:
            temporary.unlink(missing_ok=True)
            raise ConfigError(
                f"state file {self.path}: cannot write it ({exc.strerror}); set DIAG_STATE_FILE to a "
                "writable path"
            ) from None

    def _text(self, data: dict[str, dict[str, dict[str, Any]]]) -> str:
        """`json.dumps(data, sort_keys=True, separators=(",", ":"))`, encoding only the items not
        encoded since they last changed."""
        kinds = []
        for kind in sorted(data):
            items, encoded = data[kind], self._encoded.setdefault(kind, {})
            for key in items.keys() - encoded.keys():
                encoded[key] = _compact(items[key])
            kinds.append(
                f"{_compact(kind)}:{{{','.join(f'{_compact(k)}:{encoded[k]}' for k in sorted(items))}}}"
            )
        return f"{{{','.join(kinds)}}}"


def _compact(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _stat(path: Path) -> tuple[int, int, int, int]:
    """What changes when the file is replaced or written: its inode, size and times."""
    st = os.stat(path)
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _copy(value: Any) -> Any:
    return json.loads(json.dumps(value))
