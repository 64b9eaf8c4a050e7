"""Dataverse's answers are decoded by pydantic-core's parser with the standard library behind it
(`decode_json`): whatever the body holds, the client gives what `json.loads` gave before, or the
same one-line ServiceError. At the transport, with the real client, as a page of a query and as a
part of a `$batch`."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from diagnostics.adapters.dataverse import DataverseClient, Query
from diagnostics.adapters.http import RetryPolicy
from diagnostics.errors import ServiceError
from tests.json_support import same_json

BASE = "https://contoso.crm.dynamics.com"
BOUNDARY = "batchresponse_1"

# Bodies the standard library reads and pydantic-core reads differently or refuses.
READABLE = {
    "NaN and infinities": b'{"value": [{"cost": NaN, "markup": Infinity, "total": -Infinity, "big": 1E400}]}',
    "integers beyond 64 bits": b'{"value": [{"cost": 123456789012345678901234567890, '
    b'"markup": -9223372036854775809, "n": 18446744073709551616}]}',
    "negative zero and duplicate keys": b'{"value": [{"cost": -0.0, "n": -0, "k": 1, "k": 2}]}',
    "a UTF-8 byte order mark": b'\xef\xbb\xbf{"value": [{"name": "Contoso"}]}',
    "UTF-16": '{"value": [{"name": "Fabrikam \u00e9"}]}'.encode("utf-16"),
    "a lone surrogate escape": b'{"value": [{"name": "\\ud800 half a pair"}]}',
    "nesting deeper than pydantic-core reads": b'{"value": [{"deep": ' + b"[" * 300 + b"]" * 300 + b"}]}",
    "escapes and non-ASCII text": '{"value": [{"name": "Caf\u00e9 \\u00e9\\/\\"q\\" \\ud83d\\ude00 \U0001f600"}]}'.encode(),
}
# Bodies neither reads: the same one-line error as before.
UNREADABLE = {
    "bytes that are not UTF-8": b'{"value": [{"name": "\xff\xfe"}]}',
    "a control character in a string": b'{"value": [{"name": "a\x01b"}]}',
    "text after the object": b'{"value": []} and more',
    "not JSON at all": b"<html>Service Unavailable</html>",
    "nested too deep for either": b'{"value": [' + b"[" * 100_000 + b"]" * 100_000 + b"]}",
}


def _client(handler: Any, credential: Any, retry: RetryPolicy) -> DataverseClient:
    return DataverseClient(BASE, credential, retry=retry, transport=httpx.MockTransport(handler))


def _page(body: bytes) -> Any:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"Content-Type": "application/json"}, content=body)

    return answer


def _batch(body: bytes) -> Any:
    """A `$batch` answer whose first part is `body` (text: a part is read as UTF-8) and whose second
    is a plain page."""

    def part(content: bytes) -> bytes:
        head = (
            f"--{BOUNDARY}\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n"
            "HTTP/1.1 200 OK\r\nContent-Type: application/json; odata.metadata=minimal\r\n\r\n"
        )
        return head.encode() + content + b"\r\n"

    def answer(request: httpx.Request) -> httpx.Response:
        content = part(body) + part(b'{"value": [{"name": "fine"}]}') + f"--{BOUNDARY}--\r\n".encode()
        return httpx.Response(
            200, headers={"Content-Type": f"multipart/mixed; boundary={BOUNDARY}"}, content=content
        )

    return answer


@pytest.mark.parametrize("body", READABLE.values(), ids=READABLE.keys())
async def test_a_page_is_read_as_the_standard_library_reads_it(
    body: bytes, credential: Any, retry: RetryPolicy
) -> None:
    async with _client(_page(body), credential, retry) as dv:
        rows = await dv.query(Query("accounts", ("name",)))

    assert same_json(rows, json.loads(body)["value"])


@pytest.mark.parametrize("body", UNREADABLE.values(), ids=UNREADABLE.keys())
async def test_a_page_neither_reads_is_the_same_one_line_error(
    body: bytes, credential: Any, retry: RetryPolicy
) -> None:
    async with _client(_page(body), credential, retry) as dv:
        with pytest.raises(ServiceError, match="without JSON") as raised:
            await dv.query(Query("accounts", ("name",)))

    assert "\n" not in str(raised.value)


# A part of a `$batch` is text (the answer is read as UTF-8), so a byte order mark, UTF-16 and bytes
# that are not UTF-8 are the batch's concern (tests/wire), not the part's.
_TEXT_READABLE = {k: v for k, v in READABLE.items() if k not in ("a UTF-8 byte order mark", "UTF-16")}
_TEXT_UNREADABLE = {k: v for k, v in UNREADABLE.items() if k != "bytes that are not UTF-8"}


@pytest.mark.parametrize("body", _TEXT_READABLE.values(), ids=_TEXT_READABLE.keys())
async def test_a_batch_part_is_read_as_the_standard_library_reads_it(
    body: bytes, credential: Any, retry: RetryPolicy
) -> None:
    async with _client(_batch(body), credential, retry) as dv:
        odd, fine = await dv.batch([Query("accounts", ("name",)), Query("contacts", ("name",))])

    assert same_json(odd, json.loads(body)["value"])
    assert fine == [{"name": "fine"}]


@pytest.mark.parametrize("body", _TEXT_UNREADABLE.values(), ids=_TEXT_UNREADABLE.keys())
async def test_a_batch_part_neither_reads_fails_only_that_part(
    body: bytes, credential: Any, retry: RetryPolicy
) -> None:
    async with _client(_batch(body), credential, retry) as dv:
        odd, fine = await dv.batch([Query("accounts", ("name",)), Query("contacts", ("name",))])

    assert isinstance(odd, ServiceError)
    assert "without a JSON object" in str(odd)
    assert "\n" not in str(odd)
    assert fine == [{"name": "fine"}]
