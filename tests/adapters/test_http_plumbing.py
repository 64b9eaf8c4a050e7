from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import pytest
from azure.core.credentials import AccessToken
from azure.core.exceptions import ClientAuthenticationError, ServiceRequestError

from diagnostics.adapters.dataverse import DataverseClient, Query
from diagnostics.adapters.http import (
    BearerTokenAuth,
    RequestCounter,
    RetryPolicy,
    error_detail,
    retry_after_seconds,
)
from diagnostics.errors import AuthError, ServiceUnreachable, Throttled

BASE = "https://contoso.crm.dynamics.com"
Q = Query("accounts", ("name",))
OK = {"value": [{"name": "A"}]}


def scripted(
    *steps: httpx.Response | Exception,
) -> tuple[Callable[[httpx.Request], httpx.Response], list[str]]:
    """A transport handler that plays the steps in order: answers, or network errors to raise."""
    remaining = list(steps)
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        step = remaining.pop(0)
        if isinstance(step, Exception):
            raise step
        return step

    return handler, seen


def dataverse(handler: Any, credential: Any, retry: RetryPolicy, **kwargs: Any) -> DataverseClient:
    return DataverseClient(BASE, credential, retry=retry, transport=httpx.MockTransport(handler), **kwargs)


# --- Retry-After --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("7", 7.0),
        (" 1.5 ", 1.5),
        (None, None),
        ("", None),
        ("soon", None),
        # Not a finite positive number: the caller backs off instead.
        ("0", None),
        ("-3", None),
        ("nan", None),
        ("inf", None),
        ("1e999", None),
    ],
)
def test_retry_after_seconds_reads_delta_seconds(value: str | None, expected: float | None) -> None:
    assert retry_after_seconds(value) == expected


def test_retry_after_seconds_reads_an_http_date() -> None:
    now = datetime(2026, 11, 9, 8, 0, 0, tzinfo=UTC)
    assert retry_after_seconds("Mon, 09 Nov 2026 08:00:45 GMT", now=now) == 45.0
    assert retry_after_seconds("Mon, 09 Nov 2026 07:59:00 GMT", now=now) is None  # already past


async def test_429_waits_as_long_as_retry_after_says(
    credential: Any, retry: RetryPolicy, sleeps: Any
) -> None:
    handler, seen = scripted(
        httpx.Response(429, headers={"Retry-After": "7"}),
        httpx.Response(429, headers={"Retry-After": "3"}),
        httpx.Response(200, json=OK),
    )

    async with dataverse(handler, credential, retry) as dv:
        assert await dv.query(Q) == OK["value"]

    assert sleeps.delays == [7.0, 3.0]
    assert len(seen) == 3


async def test_429_with_an_http_date_waits_until_then(
    credential: Any, retry: RetryPolicy, sleeps: Any
) -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    handler, _ = scripted(httpx.Response(429, headers={"Retry-After": when}), httpx.Response(200, json=OK))

    async with dataverse(handler, credential, retry) as dv:
        await dv.query(Q)

    (delay,) = sleeps.delays
    assert 28.0 <= delay <= 30.0


async def test_429_without_retry_after_backs_off(credential: Any, retry: RetryPolicy, sleeps: Any) -> None:
    handler, _ = scripted(httpx.Response(429), httpx.Response(429), httpx.Response(200, json=OK))

    async with dataverse(handler, credential, retry) as dv:
        await dv.query(Q)

    assert sleeps.delays == [0.5, 1.0]


async def test_a_retry_after_beyond_the_limit_fails_at_once(
    credential: Any, retry: RetryPolicy, sleeps: Any
) -> None:
    handler, seen = scripted(httpx.Response(429, headers={"Retry-After": "300"}))

    async with dataverse(handler, credential, retry) as dv:
        with pytest.raises(Throttled, match="asked to wait 300 s, longer than the 120 s"):
            await dv.query(Q)

    assert sleeps.delays == []
    assert len(seen) == 1


async def test_429_every_time_ends_as_throttled(credential: Any, sleeps: Any) -> None:
    retry = RetryPolicy(max_attempts=3, sleep=sleeps, jitter=lambda d: d)
    handler, seen = scripted(*[httpx.Response(429, headers={"Retry-After": "1"})] * 3)

    async with dataverse(handler, credential, retry) as dv:
        with pytest.raises(Throttled, match="answered 429 after 3 attempts") as caught:
            await dv.query(Q)

    assert caught.value.status == 429
    assert sleeps.delays == [1.0, 1.0]
    assert len(seen) == 3


# --- 5xx and network errors ---------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_5xx_then_success(credential: Any, retry: RetryPolicy, sleeps: Any, status: int) -> None:
    handler, seen = scripted(httpx.Response(status), httpx.Response(200, json=OK))

    async with dataverse(handler, credential, retry) as dv:
        assert await dv.query(Q) == OK["value"]

    assert sleeps.delays == [0.5]
    assert len(seen) == 2


async def test_5xx_honours_retry_after_too(credential: Any, retry: RetryPolicy, sleeps: Any) -> None:
    handler, _ = scripted(httpx.Response(503, headers={"Retry-After": "4"}), httpx.Response(200, json=OK))

    async with dataverse(handler, credential, retry) as dv:
        await dv.query(Q)

    assert sleeps.delays == [4.0]


@pytest.mark.parametrize(
    "error",
    [
        httpx.ConnectError("connection refused"),
        httpx.ReadTimeout("timed out"),
        httpx.RemoteProtocolError("peer closed connection"),
    ],
)
async def test_network_error_then_success(
    credential: Any, retry: RetryPolicy, sleeps: Any, error: Exception
) -> None:
    handler, seen = scripted(error, httpx.Response(200, json=OK))

    async with dataverse(handler, credential, retry) as dv:
        assert await dv.query(Q) == OK["value"]

    assert len(seen) == 2
    assert sleeps.delays == [0.5]


async def test_network_errors_every_time_end_as_unreachable(
    credential: Any, retry: RetryPolicy, sleeps: Any
) -> None:
    handler, seen = scripted(*[httpx.ConnectError("[Errno 111] Connection refused")] * 5)

    async with dataverse(handler, credential, retry) as dv:
        with pytest.raises(ServiceUnreachable) as caught:
            await dv.query(Q)

    assert str(caught.value) == (
        "Dataverse GET /api/data/v9.2/accounts could not be reached after 5 attempts "
        "(ConnectError: [Errno 111] Connection refused): check --dataverse-url (DIAG_DATAVERSE_URL) "
        "and the network; if they are right, retry later"
    )
    assert isinstance(caught.value.__cause__, httpx.ConnectError)
    assert len(seen) == 5
    assert sleeps.delays == [0.5, 1.0, 2.0, 4.0]


async def test_5xx_every_time_ends_as_unreachable_with_the_service_message(
    credential: Any, retry: RetryPolicy
) -> None:
    body = {"error": {"code": "0x80040216", "message": "An unexpected error occurred."}}
    handler, seen = scripted(*[httpx.Response(500, json=body)] * 5)

    async with dataverse(handler, credential, retry) as dv:
        with pytest.raises(ServiceUnreachable) as caught:
            await dv.query(Q)

    assert str(caught.value).startswith(
        "Dataverse GET /api/data/v9.2/accounts answered 500 after 5 attempts "
        "(0x80040216: An unexpected error occurred.): "
    )
    assert len(seen) == 5


def test_backoff_doubles_and_is_capped() -> None:
    policy = RetryPolicy(jitter=lambda d: d)
    assert [policy.backoff(n) for n in (1, 2, 3, 7, 8, 20)] == [0.5, 1.0, 2.0, 30.0, 30.0, 30.0]


def test_default_jitter_stays_between_half_and_the_whole_delay() -> None:
    policy = RetryPolicy()
    delays = [policy.backoff(3) for _ in range(200)]
    assert all(1.0 <= d <= 2.0 for d in delays)
    assert len(set(delays)) > 1


def test_retry_policy_needs_one_attempt() -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)


# --- request records ----------------------------------------------------------------------------


async def test_every_attempt_is_reported_to_the_request_hook(credential: Any, retry: RetryPolicy) -> None:
    counter = RequestCounter()
    handler, _ = scripted(httpx.ReadTimeout("slow"), httpx.Response(503), httpx.Response(200, json=OK))

    async with dataverse(handler, credential, retry, on_request=counter) as dv:
        await dv.query(Q)

    assert [(r.service, r.method, r.path, r.status, r.attempt) for r in counter.records] == [
        ("Dataverse", "GET", "/api/data/v9.2/accounts", None, 1),
        ("Dataverse", "GET", "/api/data/v9.2/accounts", 503, 2),
        ("Dataverse", "GET", "/api/data/v9.2/accounts", 200, 3),
    ]
    assert counter.count == 3
    assert counter.by_service() == {"Dataverse": 3}
    assert counter.elapsed == pytest.approx(sum(r.elapsed for r in counter.records))
    assert all(r.elapsed >= 0 for r in counter.records)


def test_error_detail_reads_both_error_shapes() -> None:
    assert error_detail(b'{"error": {"code": "0x1", "message": "bad\\n  thing"}}') == ("0x1", "bad thing")
    assert error_detail(b'{"code": 600008, "description": "No invoice"}') == ("600008", "No invoice")
    assert error_detail(b'{"statusCode": 429, "message": "Rate limit is exceeded."}') == (
        None,
        "Rate limit is exceeded.",
    )
    assert error_detail(b"<html/>") == (None, None)
    assert error_detail(b"[1]") == (None, None)
    long_message = error_detail('{"error": {"message": "' + "x" * 500 + '"}}')[1]
    assert long_message is not None
    assert len(long_message) == 200
    assert long_message.endswith("…")


# --- tokens -------------------------------------------------------------------------------------


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def _authorizations(auth: BearerTokenAuth, count: int) -> list[str]:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["Authorization"])
        return httpx.Response(200)

    async with httpx.AsyncClient(auth=auth, transport=httpx.MockTransport(handler)) as http:
        for _ in range(count):
            await http.get("https://contoso.crm.dynamics.com/x")
    return seen


async def test_the_token_is_cached_until_five_minutes_before_it_expires(credential_factory: Any) -> None:
    clock = Clock()
    credential = credential_factory(lifetime=3600, clock=clock)
    auth = BearerTokenAuth(credential, "https://contoso.crm.dynamics.com/.default", clock=clock)

    assert await _authorizations(auth, 3) == ["Bearer token-1"] * 3
    clock.now += 3600 - 301  # still more than five minutes left
    assert await _authorizations(auth, 1) == ["Bearer token-1"]
    clock.now += 1  # now exactly five minutes left: refresh
    assert await _authorizations(auth, 2) == ["Bearer token-2"] * 2
    assert credential.scopes == [("https://contoso.crm.dynamics.com/.default",)] * 2


async def test_concurrent_requests_share_one_token_fetch(credential: Any, retry: RetryPolicy) -> None:
    async with dataverse(lambda r: httpx.Response(200, json=OK), credential, retry) as dv:
        await asyncio.gather(*(dv.query(Q) for _ in range(10)))

    assert len(credential.scopes) == 1


class RefusingCredential:
    def __init__(self, error: Exception) -> None:
        self.error = error

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        raise self.error


async def test_a_credential_that_cannot_sign_in_gives_an_auth_error(retry: RetryPolicy) -> None:
    error = ClientAuthenticationError(
        message="ClientSecretCredential.get_token failed: AADSTS7000215: Invalid client secret provided.\n"
        "Trace ID: 1. client_secret=s3cr3t-value"
    )
    handler, seen = scripted()

    async with dataverse(handler, RefusingCredential(error), retry) as dv:
        with pytest.raises(AuthError) as caught:
            await dv.query(Q)

    message = str(caught.value)
    assert message.startswith(
        f"could not get a token for {BASE}/.default (AADSTS7000215): check the tenant id"
    )
    assert "s3cr3t" not in message
    assert "\n" not in message
    assert caught.value.__cause__ is error
    assert seen == []  # nothing was sent without a token


async def test_a_sign_in_service_that_cannot_be_reached_is_unreachable(retry: RetryPolicy) -> None:
    handler, _ = scripted()

    async with dataverse(handler, RefusingCredential(ServiceRequestError("DNS failed")), retry) as dv:
        with pytest.raises(ServiceUnreachable, match="could not reach the sign-in service"):
            await dv.query(Q)


async def test_a_tls_failure_wrapped_by_azure_identity_is_unreachable_not_refused(retry: RetryPolicy) -> None:
    # azure-identity reports a network/TLS failure as ClientAuthenticationError with the cause below.
    try:
        try:
            raise ServiceRequestError("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed")
        except ServiceRequestError as inner:
            raise ClientAuthenticationError(message=f"Authentication failed: {inner}") from inner
    except ClientAuthenticationError as wrapped:
        error = wrapped
    handler, _ = scripted()

    async with dataverse(handler, RefusingCredential(error), retry) as dv:
        with pytest.raises(ServiceUnreachable) as caught:
            await dv.query(Q)

    assert type(caught.value) is ServiceUnreachable
    assert "CERTIFICATE_VERIFY_FAILED" in str(caught.value)
    assert "CA certificates" in str(caught.value)


def test_bearer_auth_refuses_a_sync_client(credential: Any) -> None:
    auth = BearerTokenAuth(credential, "scope")
    with (
        httpx.Client(auth=auth, transport=httpx.MockTransport(lambda r: httpx.Response(200))) as http,
        pytest.raises(RuntimeError, match="AsyncClient only"),
    ):
        http.get("https://example.test/")
