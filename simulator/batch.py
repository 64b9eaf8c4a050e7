"""OData `$batch`: multipart/mixed requests in, `batchresponse_` multipart out.

Each part runs through the same dispatcher as a direct request (so it is counted and answered the
same way). Change sets are atomic: one failed part undoes the change set's writes and the change set
answers with that failure alone, as Dataverse does; a change set that succeeds answers in its own
nested `changesetresponse_` multipart, one part per write with its Content-ID. Without
`Prefer: odata.continue-on-error` the batch stops at the first failed part and the whole `$batch`
answers HTTP 400 with a multipart body holding only that failure (Microsoft's "Execute batch
operations using the Web API", "Handling errors"; the documentation is the only source for it).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from simulator.dataverse import API_ROOT, parse_prefer
from simulator.tenant import Tenant
from simulator.wire import (
    CODE_BAD_REQUEST,
    Headers,
    ODataError,
    Request,
    Response,
    bad_request,
    dataverse_error,
)

MAX_REQUESTS = 1_000
_BOUNDARY = re.compile(r'boundary="?([^";]+)"?')
_CONTENT_REF = re.compile(r"^\$(\w+)(.*)$")


@dataclass
class _Part:
    request: Request
    content_id: str | None = None


@dataclass
class _ChangeSet:
    parts: list[_Part] = field(default_factory=list)


class _ChangeSetFailed(Exception):
    def __init__(self, response: Response, content_id: str | None) -> None:
        super().__init__(response.status)
        self.response = response
        self.content_id = content_id


def handle(request: Request, tenant: Tenant, dispatch: Callable[[Request], Response]) -> Response:
    try:
        items = _parse(request)
    except ODataError as error:
        return error.response()
    total = sum(len(i.parts) if isinstance(i, _ChangeSet) else 1 for i in items)
    if total > MAX_REQUESTS:
        return dataverse_error(
            400,
            CODE_BAD_REQUEST,
            f"The number of requests in a batch ({total}) exceeds the limit of {MAX_REQUESTS}.",
        )
    continue_on_error = "odata.continue-on-error" in parse_prefer(request.headers.get("Prefer"))
    boundary = f"batchresponse_{uuid.uuid4()}"
    chunks: list[bytes] = []
    status = 200
    for item in items:
        if isinstance(item, _ChangeSet):
            chunk, failed = _run_change_set(item, tenant, dispatch)
        else:
            answer = dispatch(item.request)
            chunk, failed = _http_part(answer, None), answer.status >= 400
        if failed and not continue_on_error:
            # The batch's error is the failed request's: its answer alone, under a 400.
            chunks, status = [chunk], 400
            break
        chunks.append(chunk)
    body = b"".join(b"--" + boundary.encode() + b"\r\n" + c for c in chunks) + f"--{boundary}--\r\n".encode()
    headers = Headers({"OData-Version": "4.0", "Content-Type": f"multipart/mixed; boundary={boundary}"})
    if continue_on_error:
        headers["Preference-Applied"] = "odata.continue-on-error"
    return Response(status, body, headers)


def _run_change_set(
    change_set: _ChangeSet, tenant: Tenant, dispatch: Callable[[Request], Response]
) -> tuple[bytes, bool]:
    created: dict[str, str] = {}  # Content-ID -> entity URL, for "$1" references
    answers: list[tuple[Response, str | None]] = []
    try:
        with tenant.atomic():
            for part in change_set.parts:
                answer = dispatch(_resolved(part.request, created))
                if answer.status >= 400:
                    raise _ChangeSetFailed(answer, part.content_id)
                if part.content_id and "OData-EntityId" in answer.headers:
                    created[part.content_id] = answer.headers["OData-EntityId"]
                answers.append((answer, part.content_id))
    except _ChangeSetFailed as failure:
        return _http_part(failure.response, failure.content_id), True
    boundary = f"changesetresponse_{uuid.uuid4()}"
    inner = b"".join(b"--" + boundary.encode() + b"\r\n" + _http_part(a, cid) for a, cid in answers)
    inner += f"--{boundary}--\r\n".encode()
    return f"Content-Type: multipart/mixed; boundary={boundary}\r\n\r\n".encode() + inner + b"\r\n", False


def _resolved(request: Request, created: dict[str, str]) -> Request:
    """Replace a `$<Content-ID>` reference at the start of the URL or in `@odata.bind` values."""
    match = _CONTENT_REF.match(request.path)
    if match and match[1] in created:
        request.path = urlsplit(created[match[1]]).path + match[2]
    body = request.body
    for content_id, url in created.items():
        body = body.replace(f'"${content_id}"'.encode(), f'"{url}"'.encode())
    request.body = body
    return request


def _http_part(response: Response, content_id: str | None) -> bytes:
    head = "Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n"
    if content_id:
        head += f"Content-ID: {content_id}\r\n"
    lines = [f"HTTP/1.1 {response.status} {response.reason}"]
    lines += [f"{name}: {value}" for name, value in response.headers.items()]
    return (head + "\r\n" + "\r\n".join(lines) + "\r\n\r\n").encode() + response.body + b"\r\n"


# --- parsing ------------------------------------------------------------------------------------


def _boundary(content_type: str) -> str:
    match = _BOUNDARY.search(content_type)
    if not content_type.startswith("multipart/mixed") or match is None:
        raise bad_request("A $batch request needs Content-Type: multipart/mixed; boundary=batch_<id>.")
    return match[1]


def _split_parts(body: bytes, boundary: str) -> list[bytes]:
    delimiter = b"--" + boundary.encode()
    chunks = body.split(delimiter)
    if len(chunks) < 2:
        raise bad_request(f"The $batch body has no part delimited by '--{boundary}'.")
    parts = []
    for chunk in chunks[1:]:
        if chunk.startswith(b"--"):
            break
        parts.append(chunk.removeprefix(b"\r\n").removeprefix(b"\n"))
    return parts


def _head_and_body(data: bytes) -> tuple[list[str], bytes]:
    """Header lines (first line included) and the content after the first blank line."""
    normalised = data.replace(b"\r\n", b"\n")
    head, _, rest = normalised.partition(b"\n\n")
    # The part's content ends with the line break before the next delimiter.
    return head.decode("utf-8").split("\n"), rest.rstrip(b"\n")


def _headers(lines: list[str]) -> Headers:
    headers = Headers()
    for line in lines:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip()] = value.strip()
    return headers


def _parse(request: Request) -> list[_Part | _ChangeSet]:
    items: list[_Part | _ChangeSet] = []
    for raw in _split_parts(request.body, _boundary(request.headers.get("Content-Type"))):
        lines, content = _head_and_body(raw)
        headers = _headers(lines)
        if headers.get("Content-Type").startswith("multipart/mixed"):
            change_set = _ChangeSet()
            for inner in _split_parts(content, _boundary(headers.get("Content-Type"))):
                inner_lines, inner_content = _head_and_body(inner)
                part = _request(inner_content, _headers(inner_lines).get("Content-ID") or None)
                if part.request.method == "GET":
                    raise bad_request("A change set cannot contain GET requests.")
                change_set.parts.append(part)
            items.append(change_set)
        else:
            items.append(_request(content, headers.get("Content-ID") or None))
    return items


def _request(content: bytes, content_id: str | None) -> _Part:
    lines, body = _head_and_body(content)
    words = lines[0].split(" ")
    if len(words) != 3 or not words[2].startswith("HTTP/"):
        raise bad_request(f"A $batch part must start with an HTTP request line, not '{lines[0]}'.")
    method, target = words[0].upper(), words[1]
    split = urlsplit(target)
    path = unquote(split.path)
    if not path.startswith("/") and not path.startswith("$"):
        path = API_ROOT + path  # relative to the service root
    if path.endswith("/$batch"):
        raise bad_request("A $batch cannot contain another $batch.")
    return _Part(Request(method, path, split.query, _headers(lines[1:]), body), content_id)
