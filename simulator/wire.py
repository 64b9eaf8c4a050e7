"""HTTP requests and responses as plain values, so handlers are functions and `$batch` can reuse them."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl

JSON_TYPE = "application/json; odata.metadata=minimal"


class Headers:
    """Case-insensitive header map (HTTP header names are case-insensitive)."""

    def __init__(self, items: Mapping[str, str] | None = None) -> None:
        self._items: dict[str, tuple[str, str]] = {}
        for name, value in (items or {}).items():
            self[name] = value

    def __getitem__(self, name: str) -> str:
        return self._items[name.lower()][1]

    def __setitem__(self, name: str, value: str) -> None:
        self._items[name.lower()] = (name, value)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._items

    def get(self, name: str, default: str = "") -> str:
        found = self._items.get(name.lower())
        return found[1] if found else default

    def items(self) -> list[tuple[str, str]]:
        return list(self._items.values())


@dataclass
class Request:
    method: str
    path: str  # percent-decoded, without the query
    query: str  # raw query string, still percent-encoded
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""

    def params(self) -> list[tuple[str, str]]:
        return parse_qsl(self.query, keep_blank_values=True)

    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8"))


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: Headers = field(default_factory=Headers)
    drop: bool = False  # close the connection without answering (an injected fault)

    @property
    def reason(self) -> str:
        try:
            return HTTPStatus(self.status).phrase
        except ValueError:
            return "Unknown"


def json_response(status: int, payload: object, headers: Mapping[str, str] | None = None) -> Response:
    return _json_bytes_response(status, json.dumps(payload, ensure_ascii=False).encode("utf-8"), headers)


def _json_bytes_response(status: int, body: bytes, headers: Mapping[str, str] | None) -> Response:
    response = Response(status, body, Headers(headers))
    response.headers["Content-Type"] = (
        JSON_TYPE if "OData-Version" in response.headers else "application/json"
    )
    return response


def odata_response(status: int, payload: object, headers: Mapping[str, str] | None = None) -> Response:
    """A Dataverse answer: JSON with the OData headers Dataverse always sends."""
    return json_response(status, payload, {"OData-Version": "4.0", **(headers or {})})


def odata_page_response(
    head: Mapping[str, object],
    rows: Iterable[bytes],
    tail: Mapping[str, object],
    headers: Mapping[str, str] | None = None,
) -> Response:
    """A page of rows: `{**head, "value": [rows], **tail}` as `odata_response` writes it, from rows
    that are JSON already (a large table's rows are serialised once, not once a page)."""
    parts = [json.dumps(dict(head), ensure_ascii=False).encode("utf-8")[:-1]]
    parts.append(b', "value": [' if head else b'"value": [')
    # The rows and their commas in the one list joined below: a page of megabytes is copied once.
    before = len(parts)
    for row in rows:
        parts += (row, b", ")
    if len(parts) > before:
        parts[-1] = b"]"  # the last row's comma
    else:
        parts.append(b"]")
    for name, value in tail.items():
        parts.append(f", {json.dumps(name)}: {json.dumps(value, ensure_ascii=False)}".encode())
    parts.append(b"}")
    return _json_bytes_response(200, b"".join(parts), {"OData-Version": "4.0", **(headers or {})})


def dataverse_error(
    status: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> Response:
    return odata_response(status, {"error": {"code": code, "message": message}}, headers)


# Dataverse error codes the simulator answers with (the real service's codes for these cases).
CODE_BAD_REQUEST = "0x80060888"  # OData: unknown property/segment, syntax error, unsupported option
CODE_NOT_FOUND = "0x80040217"  # "<table> With Id = <id> Does Not Exist"
CODE_DUPLICATE = "0x80040237"  # "Cannot insert duplicate key"
CODE_AGGREGATE_LIMIT = "0x8004E023"
CODE_UNAUTHORIZED = "0x80072560"
CODE_THROTTLED = "0x80072322"  # service protection: number of requests
CODE_UNEXPECTED = "0x80040216"
CODE_CONCURRENCY = "0x80060882"  # ConcurrencyVersionMismatch


class ODataError(Exception):
    """A Dataverse error answer, raised anywhere in request handling and turned into its response."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def response(self) -> Response:
        return dataverse_error(self.status, self.code, self.message)


def bad_request(message: str) -> ODataError:
    return ODataError(400, CODE_BAD_REQUEST, message)


def not_found_segment(segment: str) -> ODataError:
    return ODataError(404, CODE_BAD_REQUEST, f"Resource not found for the segment '{segment}'.")
