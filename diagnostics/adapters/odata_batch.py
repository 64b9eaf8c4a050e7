"""The OData `$batch` wire format: build a multipart/mixed request of GETs, read the answer.

Only what the Dataverse client needs: independent GET parts (no change sets, which cannot hold
GETs anyway). Answers come back in the order of the parts, so the order is the correlation.
Line ends are CRLF on the way out; on the way in both CRLF and a bare LF are accepted.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from email.message import Message

CRLF = "\r\n"
# A blank line ends a header block; tolerate bare LFs from lenient servers and proxies.
_BLANK_LINE = re.compile(r"\r?\n\r?\n")
_LINE = re.compile(r"\r?\n")


@dataclass(frozen=True)
class BatchRequest:
    """One GET part: the absolute URL and its own headers (e.g. Prefer for page size)."""

    url: str
    headers: Mapping[str, str]


@dataclass(frozen=True)
class BatchResponse:
    """One answered part. `headers` has lower-case names."""

    status: int
    headers: Mapping[str, str]
    body: str


class BatchFormatError(ValueError):
    """The answer is not a multipart batch response this module can read."""


def encode_batch(boundary: str, requests: Sequence[BatchRequest]) -> bytes:
    """The body of a `$batch` POST; its Content-Type is `multipart/mixed; boundary="<boundary>"`."""
    lines: list[str] = []
    for request in requests:
        lines += [
            f"--{boundary}",
            "Content-Type: application/http",
            "Content-Transfer-Encoding: binary",
            "",
            f"GET {request.url} HTTP/1.1",
            *(f"{name}: {value}" for name, value in request.headers.items()),
            "",  # end of the part's request headers; a GET has no body
        ]
    lines.append(f"--{boundary}--")
    return (CRLF.join(lines) + CRLF).encode("utf-8")


def decode_batch(content_type: str, body: bytes) -> list[BatchResponse]:
    """The parts of a `$batch` answer, in order."""
    boundary = _boundary(content_type)
    # A delimiter is `--boundary` at the start of a line; the line break before it belongs to it.
    chunks = re.split(r"(?:^|\r?\n)--" + re.escape(boundary), body.decode("utf-8"))
    responses: list[BatchResponse] = []
    for chunk in chunks[1:]:
        if chunk.startswith("--"):  # the close delimiter: what follows is the epilogue
            return responses
        responses.append(_decode_part(_LINE.split(chunk, maxsplit=1)[-1]))
    raise BatchFormatError("the batch answer has no closing delimiter (was it cut off?)")


def _boundary(content_type: str) -> str:
    message = Message()
    message["Content-Type"] = content_type
    boundary = message.get_param("boundary")
    if message.get_content_type() != "multipart/mixed" or not isinstance(boundary, str) or not boundary:
        raise BatchFormatError(f"expected a multipart/mixed answer with a boundary, got {content_type!r}")
    return boundary


def _decode_part(part: str) -> BatchResponse:
    part_headers, http_message = _split_head(part)
    content_type = part_headers.get("content-type", "")
    if not content_type.startswith("application/http"):
        raise BatchFormatError(f"a batch part has Content-Type {content_type!r}, not application/http")
    status_line, _, rest = http_message.partition("\n")
    headers, body = _split_head(rest)
    return BatchResponse(_status(status_line), headers, body)


def _split_head(text: str) -> tuple[dict[str, str], str]:
    """The header block at the start of `text` and what follows the blank line that ends it."""
    if _LINE.match(text):  # an empty header block: the blank line comes first
        return {}, _LINE.split(text, maxsplit=1)[1]
    found = _BLANK_LINE.search(text)
    head, rest = (text[: found.start()], text[found.end() :]) if found else (text, "")
    headers: dict[str, str] = {}
    for line in _LINE.split(head):
        name, colon, value = line.partition(":")
        if colon:
            headers[name.strip().lower()] = value.strip()
    return headers, rest


def _status(status_line: str) -> int:
    fields = status_line.split()
    if len(fields) < 2 or not fields[0].startswith("HTTP/") or not fields[1].isdigit():
        raise BatchFormatError(f"a batch part starts with {status_line[:60]!r}, not an HTTP status line")
    return int(fields[1])
