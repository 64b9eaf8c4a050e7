"""The OData `$batch` wire format: build a multipart/mixed request, read the answer.

A batch holds independent parts (GETs here) and change sets: a nested multipart/mixed of writes
that Dataverse runs atomically, each write named by a `Content-ID`. Dataverse answers a change set
with its own nested multipart (`changesetresponse_…`), one part per write, or with a single part
(the failing write's error) when the change set was rolled back. `decode_batch` flattens those
nested answers into the one ordered list, each answer keeping its `Content-ID`.

Line ends are CRLF on the way out; on the way in both CRLF and a bare LF are accepted.
Shapes: Microsoft's "Execute batch operations using the Web API" (learn.microsoft.com, examples
under "Change sets" and "Handling errors") and OData v4.0 part 1, 11.7.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from email.message import Message
from typing import Any

CRLF = "\r\n"
# A blank line ends a header block; tolerate bare LFs from lenient servers and proxies.
_BLANK_LINE = re.compile(r"\r?\n\r?\n")
_LINE = re.compile(r"\r?\n")
_BLANK_LINE_B = re.compile(rb"\r?\n\r?\n")
_LINE_B = re.compile(rb"\r?\n")
_CR, _LF = ord("\r"), ord("\n")
_STATUS = re.compile(r"[1-5][0-9][0-9]", re.ASCII)
# Change sets cannot nest (OData 11.7.2), so an answer has at most one level below the batch.
_MAX_DEPTH = 1


@dataclass(frozen=True)
class BatchRequest:
    """One part: the absolute URL, its own headers, and for a write its method and JSON body."""

    url: str
    headers: Mapping[str, str]
    method: str = "GET"
    body: Any = None  # JSON-serialisable; sent only with a method other than GET
    content_id: str | None = None  # required inside a change set


@dataclass(frozen=True)
class ChangeSet:
    """Writes that succeed or fail together. Every request needs a distinct `content_id`."""

    boundary: str
    requests: Sequence[BatchRequest] = field(default_factory=tuple)


@dataclass(frozen=True)
class BatchResponse:
    """One answered part. `headers` has lower-case names; `content_id` is set inside change sets."""

    status: int
    headers: Mapping[str, str]
    body: str
    content_id: str | None = None


class BatchFormatError(ValueError):
    """The answer is not a multipart batch response this module can read."""


def encode_batch(boundary: str, items: Sequence[BatchRequest | ChangeSet]) -> bytes:
    """The body of a `$batch` POST; its Content-Type is `multipart/mixed; boundary="<boundary>"`."""
    lines: list[str] = []
    for item in items:
        lines.append(f"--{boundary}")
        if isinstance(item, ChangeSet):
            lines += _encode_change_set(item)
        else:
            lines += _encode_request(item)
    lines.append(f"--{boundary}--")
    return (CRLF.join(lines) + CRLF).encode("utf-8")


def _encode_change_set(change_set: ChangeSet) -> list[str]:
    ids = [r.content_id for r in change_set.requests]
    if not ids or None in ids or len(set(ids)) != len(ids):
        raise ValueError("every request of a change set needs its own Content-ID")
    if any(r.method == "GET" for r in change_set.requests):
        raise ValueError("a change set cannot contain GET requests")
    lines = [f'Content-Type: multipart/mixed; boundary="{change_set.boundary}"', ""]
    for request in change_set.requests:
        lines += [f"--{change_set.boundary}", *_encode_request(request)]
    return [*lines, f"--{change_set.boundary}--"]


def _encode_request(request: BatchRequest) -> list[str]:
    head = ["Content-Type: application/http", "Content-Transfer-Encoding: binary"]
    if request.content_id is not None:
        head.append(f"Content-ID: {request.content_id}")
    lines = [*head, "", f"{request.method} {request.url} HTTP/1.1"]
    lines += [f"{name}: {value}" for name, value in request.headers.items()]
    if request.method == "GET":
        return [*lines, ""]  # end of the part's request headers; a GET has no body
    return [*lines, "Content-Type: application/json; type=entry", "", json.dumps(request.body)]


def decode_batch(content_type: str, body: bytes) -> list[BatchResponse]:
    """The answers of a `$batch`, in order, change-set answers flattened in place.

    The answer is read where it lies, as bytes: a `$batch` of first pages can be tens of megabytes,
    and copies of it (or of a part) would be the largest thing a scan holds, so each part's body is
    decoded once, straight from the answer, and nothing else of it is copied.
    """
    responses: list[BatchResponse] = []
    found: list[tuple[int, int] | None] = [*_delimiters(body, _boundary(content_type).encode("utf-8")), None]
    view = memoryview(body)
    for here, after in itertools.pairwise(found):
        if here is None:
            break
        if body.startswith(b"--", here[1]):  # the close delimiter: what follows is the epilogue
            return responses
        if after is None:
            break
        start, end = here[1], after[0]
        line = _LINE_B.search(body, start, end)  # the rest of the delimiter line is not the part's
        if line:
            _text(view[start : line.start()])
        responses += _decode_bytes_part(body, view, line.end() if line else start, end)
    raise BatchFormatError("the batch answer has no closing delimiter (was it cut off?)")


def _delimiters(body: bytes, boundary: bytes) -> Iterator[tuple[int, int]]:
    """Where each delimiter `--boundary` at the start of a line lies, from the line break before it
    (which belongs to it) to its end. Found by searching for the boundary itself: a regular
    expression that may start with a line break tries every byte of a body of megabytes."""
    marker = b"--" + boundary
    at = body.find(marker)
    while at >= 0:
        if at == 0:
            yield 0, len(marker)
        elif body[at - 1] == _LF:
            yield (at - 2 if at >= 2 and body[at - 2] == _CR else at - 1), at + len(marker)
        at = body.find(marker, at + len(marker))


def _text(data: memoryview) -> str:
    try:
        return str(data, "utf-8")
    except UnicodeDecodeError as exc:
        raise BatchFormatError(f"the batch answer is not UTF-8 ({exc.reason})") from None


def _decode_bytes_part(data: bytes, view: memoryview, start: int, end: int) -> list[BatchResponse]:
    """`_decode_part` of the bytes `data[start:end]` (`view` is a view of `data`), decoding only its
    pieces."""
    head, (rest, rest_end) = _split_head_at(data, view, start, end)
    part_headers = _headers(head)
    content_type = part_headers.get("content-type", "")
    if content_type.startswith("multipart/mixed"):  # a change set's answers: small, read as text
        return _decode_part(_text(view[start:end]), depth=0)
    if not content_type.startswith("application/http"):
        raise BatchFormatError(
            f"a batch part has Content-Type {content_type!r}, not application/http or multipart/mixed"
        )
    newline = data.find(b"\n", rest, rest_end)
    status_line = _text(view[rest : newline if newline >= 0 else rest_end])
    after_status = newline + 1 if newline >= 0 else rest_end
    head, (body, body_end) = _split_head_at(data, view, after_status, rest_end)
    return [
        BatchResponse(
            _status(status_line),
            _headers(head),
            _text(view[body:body_end]),
            part_headers.get("content-id") or None,
        )
    ]


def _split_head_at(data: bytes, view: memoryview, start: int, end: int) -> tuple[str, tuple[int, int]]:
    """`_split_head` of `data[start:end]`: the header block as text, and where what follows it lies."""
    empty = _LINE_B.match(data, start, end)
    if empty:  # an empty header block: the blank line comes first
        return "", (empty.end(), end)
    found = _BLANK_LINE_B.search(data, start, end)
    if found is None:
        return _text(view[start:end]), (end, end)
    return _text(view[start : found.start()]), (found.end(), end)


def _headers(head: str) -> dict[str, str]:
    headers: dict[str, str] = {}
    for line in _LINE.split(head) if head else ():
        name, colon, value = line.partition(":")
        if colon:
            headers[name.strip().lower()] = value.strip()
    return headers


def _decode_multipart(boundary: str, text: str, *, depth: int) -> list[BatchResponse]:
    # A delimiter is `--boundary` at the start of a line; the line break before it belongs to it.
    chunks = re.split(r"(?:^|\r?\n)--" + re.escape(boundary), text)
    responses: list[BatchResponse] = []
    for chunk in chunks[1:]:
        if chunk.startswith("--"):  # the close delimiter: what follows is the epilogue
            return responses
        responses += _decode_part(_LINE.split(chunk, maxsplit=1)[-1], depth)
    raise BatchFormatError("the batch answer has no closing delimiter (was it cut off?)")


def _decode_part(part: str, depth: int) -> list[BatchResponse]:
    part_headers, http_message = _split_head(part)
    content_type = part_headers.get("content-type", "")
    if content_type.startswith("multipart/mixed"):
        if depth >= _MAX_DEPTH:
            raise BatchFormatError("a change set answer holds another multipart (change sets do not nest)")
        return _decode_multipart(_boundary(content_type), http_message, depth=depth + 1)
    if not content_type.startswith("application/http"):
        raise BatchFormatError(
            f"a batch part has Content-Type {content_type!r}, not application/http or multipart/mixed"
        )
    status_line, _, rest = http_message.partition("\n")
    headers, body = _split_head(rest)
    return [BatchResponse(_status(status_line), headers, body, part_headers.get("content-id") or None)]


def _boundary(content_type: str) -> str:
    message = Message()
    message["Content-Type"] = content_type
    boundary = message.get_param("boundary")
    if message.get_content_type() != "multipart/mixed" or not isinstance(boundary, str) or not boundary:
        raise BatchFormatError(f"expected a multipart/mixed answer with a boundary, got {content_type!r}")
    return boundary


def is_multipart(content_type: str) -> bool:
    return content_type.strip().lower().startswith("multipart/mixed")


def _split_head(text: str) -> tuple[dict[str, str], str]:
    """The header block at the start of `text` and what follows the blank line that ends it."""
    if _LINE.match(text):  # an empty header block: the blank line comes first
        return {}, _LINE.split(text, maxsplit=1)[1]
    found = _BLANK_LINE.search(text)
    head, rest = (text[: found.start()], text[found.end() :]) if found else (text, "")
    return _headers(head), rest


def _status(status_line: str) -> int:
    fields = status_line.split()
    if len(fields) < 2 or not fields[0].startswith("HTTP/") or not _STATUS.fullmatch(fields[1]):
        raise BatchFormatError(f"a batch part starts with {status_line[:60]!r}, not an HTTP status line")
    return int(fields[1])
