"""A served row as JSON text, exactly as `json.dumps(row, ensure_ascii=False)` writes it, faster.

A large read serves every row once, so each row is encoded once in all; with the standard encoder
that cost most of what the simulator spent serving a 10,000-customer scan (a dict built per row,
then encoded). Here a row's text is joined from its values' texts: a string by the same C function
`json.dumps` uses (`json.encoder.encode_basestring`), an int or a finite float by its `repr` as the
encoder writes them, `null`/`true`/`false`; anything else (a value a fixture served as written, a
subclass) by the standard encoder itself. So the bytes are the same, only the cost changes
(`tests/simulator/test_sim_rowjson.py` checks it against `json.dumps`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from json.encoder import encode_basestring
from typing import Any

_STANDARD = json.JSONEncoder(ensure_ascii=False)  # what json_response writes a body with


_FLOATS: dict[float, str] = {}  # texts of floats written, a few (amounts repeat: a markup, a price)
_MAX_FLOATS = 1 << 16


def _float(value: float) -> str:
    text = _FLOATS.get(value)
    if text is None:
        # NaN and the infinities as the standard encoder writes them (`NaN`, `Infinity`); zero is
        # not kept: 0.0 and -0.0 are one key, two texts.
        finite = value - value == 0
        text = float.__repr__(value) if finite else _STANDARD.encode(value)
        if finite and value and len(_FLOATS) < _MAX_FLOATS:
            _FLOATS[value] = text
    return text


_BY_TYPE: dict[type, Callable[[Any], str]] = {
    str: encode_basestring,
    int: int.__repr__,
    float: _float,
    bool: lambda value: "true" if value else "false",
    type(None): lambda _value: "null",
}


def value_text(value: Any) -> str:
    """One value as JSON text."""
    return _BY_TYPE.get(type(value), _STANDARD.encode)(value)


def object_text(items: Iterable[tuple[str, Any]]) -> str:
    """An object of string keys as JSON text, its members in the order given (keys unique)."""
    encode = _BY_TYPE.get
    fallback = _STANDARD.encode
    return (
        "{" + ", ".join([encode_basestring(k) + ": " + encode(type(v), fallback)(v) for k, v in items]) + "}"
    )


def selected_row_writer(props: Sequence[str]) -> Callable[[str, dict[str, Any]], bytes]:
    """A writer of rows of one shape: `{"@odata.etag": etag, prop: value, ...}` for `props` (unique,
    in order) as UTF-8; the members' names are encoded once, not once a row."""
    members = [(prop, ", " + encode_basestring(prop) + ": ") for prop in props]
    encode = _BY_TYPE.get
    fallback = _STANDARD.encode

    def write(etag: str, values: dict[str, Any]) -> bytes:
        parts = ['{"@odata.etag": ', encode_basestring(etag)]
        for prop, member in members:
            value = values.get(prop)
            parts.append(member)
            parts.append(encode(type(value), fallback)(value))
        parts.append("}")
        return "".join(parts).encode("utf-8")

    return write
