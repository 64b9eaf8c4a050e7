"""An answer nested deeper than JSON can be decoded is a malformed answer (ServiceError), never a
RecursionError that ends the run as an internal error. At the transport, with the real client."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from diagnostics.adapters.dataverse import DataverseClient, Query
from diagnostics.adapters.http import RetryPolicy
from diagnostics.errors import ServiceError

BASE = "https://contoso.crm.dynamics.com"
DEEP = '{"value": [' + "[" * 200_000 + "]" * 200_000 + "]}"


def _client(handler: Any, credential: Any, retry: RetryPolicy) -> DataverseClient:
    return DataverseClient(BASE, credential, retry=retry, transport=httpx.MockTransport(handler))


async def test_a_query_answer_nested_too_deep_is_a_service_error(credential: Any, retry: RetryPolicy) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"Content-Type": "application/json"}, content=DEEP.encode())

    async with _client(answer, credential, retry) as dv:
        with pytest.raises(ServiceError, match="without JSON"):
            await dv.query(Query("annotations", ("subject",)))


async def test_a_batch_part_nested_too_deep_fails_only_that_part(credential: Any, retry: RetryPolicy) -> None:
    boundary = "batchresponse_1"

    def part(body: str) -> list[str]:
        return [
            f"--{boundary}",
            "Content-Type: application/http",
            "Content-Transfer-Encoding: binary",
            "",
            "HTTP/1.1 200 OK",
            "Content-Type: application/json; odata.metadata=minimal",
            "",
            body,
        ]

    def answer(request: httpx.Request) -> httpx.Response:
        lines = [*part('{"value": [{"subject": "fine"}]}'), *part(DEEP), f"--{boundary}--"]
        return httpx.Response(
            200,
            headers={"Content-Type": f"multipart/mixed; boundary={boundary}"},
            content="\r\n".join(lines).encode(),
        )

    async with _client(answer, credential, retry) as dv:
        fine, deep = await dv.batch([Query("annotations", ("subject",)), Query("accounts", ("name",))])

    assert fine == [{"subject": "fine"}]
    assert isinstance(deep, ServiceError)
    assert "without a JSON object" in str(deep)
