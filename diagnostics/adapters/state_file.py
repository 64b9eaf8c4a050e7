"""The state store in one local JSON file: for the command line, the replay and local runs.

Every write replaces the file atomically (write a sibling, then rename), so a crash never leaves
half a file. ETags are random tokens compared on write, as Table Storage compares its own. The
store is meant for one process: a lock serialises the threads of that process.
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

    # --- the port --------------------------------------------------------------------------------

    async def get(self, kind: str, key: str) -> Stored | None:
        _check_key(kind, key)
        with self._lock:
            item = self._load().get(kind, {}).get(key)
        return None if item is None else Stored(item["value"], item["etag"])

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
            self._save(data)

    async def list(self, kind: str) -> list[tuple[str, Stored]]:
        with self._lock:
            items = self._load().get(kind, {})
        return [(key, Stored(item["value"], item["etag"])) for key, item in sorted(items.items())]

    # --- the file --------------------------------------------------------------------------------

    def _load(self) -> dict[str, dict[str, dict[str, Any]]]:
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
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            temporary.write_text(json.dumps(data, indent=1, sort_keys=True), encoding="utf-8")
            os.replace(temporary, self.path)
        except OSError as exc:
            temporary.unlink(missing_ok=True)
            raise ConfigError(
                f"state file {self.path}: cannot write it ({exc.strerror}); set DIAG_STATE_FILE to a "
                "writable path"
            ) from None
