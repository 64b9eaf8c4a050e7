"""Plumbing shared by the HTTP adapters: retries, bearer tokens, error mapping, request records.

Every adapter sends through `send()`, so all of them retry the same way (429 honouring
`Retry-After`, 5xx and network errors with capped exponential back-off), raise the same
exceptions from `diagnostics.errors` with one-line messages, and report each attempt to the same
kind of hook for the one-line-per-unit-of-work log and the benchmarks.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import random
import re
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Generator, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Any, Self

import httpx
from azure.core.credentials import AccessToken, TokenCredential
from azure.core.exceptions import AzureError, ClientAuthenticationError, ServiceRequestError
from pydantic_core import from_json

from diagnostics.errors import (
    AuthError,
    ConfigError,
    DeadlineExceeded,
    NotFoundError,
    ServiceError,
    ServiceUnreachable,
    Throttled,
)

logger = logging.getLogger("diagnostics.adapters")

RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
# Refresh this long before a token expires, so a token never runs out between the check and the
# request arriving at the service.
TOKEN_REFRESH_MARGIN = 300.0
_MAX_DETAIL = 200


def _equal_jitter(delay: float) -> float:
    # Half fixed, half random: spreads clients that failed together without ever retrying at once.
    return delay / 2 + random.uniform(0, delay / 2)  # noqa: S311 - jitter, not cryptography


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry. Tests pass `sleep` (and `jitter`) so they never wait."""

    max_attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 30.0
    # A server asking for a longer pause than this is not waited for: the request fails as
    # `Throttled` at once, because retrying earlier than asked only counts against the limit again.
    max_retry_after: float = 120.0
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    jitter: Callable[[float], float] = _equal_jitter

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("RetryPolicy.max_attempts must be at least 1")

    def backoff(self, attempt: int) -> float:
        """The pause after failed attempt number `attempt` (1-based) when the server gave none."""
        return self.jitter(min(self.max_delay, self.base_delay * 2 ** (attempt - 1)))


def retry_after_seconds(value: str | None, *, now: datetime | None = None) -> float | None:
    """`Retry-After` as seconds from now: delta-seconds or an HTTP date. None when absent,
    unreadable, or not a finite positive number ("0", "-3", "nan", "inf", a date already past):
    the caller then backs off as if no pause had been asked, rather than hammering the server
    with no pause at all or waiting forever."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        if when.tzinfo is None:  # HTTP dates are GMT; an obsolete form may come without a zone
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    return seconds if math.isfinite(seconds) and seconds > 0 else None


# --- deadlines ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Deadline:
    """The moment a unit of work (a queue message, an HTTP diagnosis) must be done by.

    Set it around the unit with `within_deadline(...)`; every request sent inside, in that task and
    the tasks and threads it starts, gives up by then: a pause that would overrun it is not taken,
    and each attempt's timeout is cut to the time left. `clock` is monotonic; tests pass their own.
    """

    at: float
    seconds: float
    clock: Callable[[], float] = time.monotonic

    @classmethod
    def after(cls, seconds: float, clock: Callable[[], float] = time.monotonic) -> Deadline:
        return cls(clock() + seconds, seconds, clock)

    def remaining(self) -> float:
        return self.at - self.clock()


_DEADLINE: ContextVar[Deadline | None] = ContextVar("diagnostics_deadline", default=None)


def current_deadline() -> Deadline | None:
    return _DEADLINE.get()


@contextmanager
def within_deadline(deadline: Deadline | float | None) -> Iterator[Deadline | None]:
    """Run the block under `deadline` (a `Deadline`, or seconds from now; None: no deadline).
    An enclosing deadline that comes sooner still applies."""
    if deadline is not None and not isinstance(deadline, Deadline):
        deadline = Deadline.after(deadline)
    outer = _DEADLINE.get()
    if deadline is None or (outer is not None and outer.remaining() <= deadline.remaining()):
        deadline = outer
    token = _DEADLINE.set(deadline)
    try:
        yield deadline
    finally:
        _DEADLINE.reset(token)


# --- request records ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RequestRecord:
    """One HTTP attempt. `status` is None when the network failed before an answer arrived."""

    service: str
    method: str
    path: str
    status: int | None
    elapsed: float
    attempt: int


RequestHook = Callable[[RequestRecord], None]


@dataclass
class RequestCounter:
    """A `RequestHook` that keeps every record: pass it as `on_request`, then read the totals."""

    records: list[RequestRecord] = field(default_factory=list)

    def __call__(self, record: RequestRecord) -> None:
        self.records.append(record)

    @property
    def count(self) -> int:
        return len(self.records)

    @property
    def elapsed(self) -> float:
        return sum(r.elapsed for r in self.records)

    def by_service(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for record in self.records:
            counts[record.service] = counts.get(record.service, 0) + 1
        return counts


# --- errors --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Service:
    """What an error message needs to know about the service: its name and what to tell the user.

    `hint(status, method)` returns the action for a failed request; status 0 means "not reached".
    """

    name: str
    hint: Callable[[int, str], str]
    # Error codes whose action differs from their status's (Dataverse answers a missing
    # application user with the same 403 as a missing privilege, told apart by its code).
    code_hints: Mapping[tuple[int, str], str] = field(default_factory=dict)  # (status, code)


def one_line(text: str, limit: int = _MAX_DETAIL) -> str:
    """Collapse whitespace and cut long text, so a service's message fits on one log line."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def error_detail(body: bytes | str) -> tuple[str | None, str | None]:
    """(code, message) from an error body: Dataverse's `{"error": {...}}` or Partner Center's flat one."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):  # RecursionError: JSON nested too deeply to decode
        return None, None
    if not isinstance(data, dict):
        return None, None
    error = data.get("error")
    source: dict[str, Any] = error if isinstance(error, dict) else data
    code = source.get("code")
    message = source.get("message") or source.get("description")
    return (
        None if code is None else str(code),
        one_line(str(message)) if message else None,
    )


def http_error(
    service: Service, method: str, path: str, status: int, body: bytes | str, *, attempts: int = 1
) -> ServiceError:
    """The exception for a failed answer: the type follows the status, the message says what to do."""
    code, message = error_detail(body)
    detail = ": ".join(part for part in (code, message) if part)
    tried = f" after {attempts} attempts" if attempts > 1 else ""
    hint = service.code_hints.get((status, code or "")) or service.hint(status, method)
    text = (
        f"{service.name} {method} {path} answered {status}{tried}{f' ({detail})' if detail else ''}: {hint}"
    )
    kind: type[ServiceError]
    if status in (401, 403):
        kind = AuthError
    elif status == 404:
        kind = NotFoundError
    elif status == 429:
        kind = Throttled
    elif status >= 500:
        kind = ServiceUnreachable
    else:
        kind = ServiceError
    return kind(text, status=status, code=code)


def unreachable_error(
    service: Service, method: str, path: str, exc: Exception, *, attempts: int
) -> ServiceUnreachable:
    reason = one_line(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
    tried = f" after {attempts} attempts" if attempts > 1 else ""
    return ServiceUnreachable(
        f"{service.name} {method} {path} could not be reached{tried} ({reason}): {service.hint(0, method)}"
    )


def decode_json(data: bytes | str) -> Any:
    """What `json.loads(data)` gives, about twice as fast: pydantic-core's parser (installed with
    pydantic), which reads what the standard library reads into equal values (NaN and Infinity
    literals, integers of any size; fuzzed in tests/fuzz) and refuses some of what it accepts: a
    byte order mark, UTF-16, a lone surrogate escape, more than 200 levels of nesting. Anything it
    refuses goes to the standard library, which decides as it always has: the same value, or the
    same ValueError (UnicodeDecodeError, JSONDecodeError) or RecursionError. A scan decodes about
    120 pages of up to 5,000 rows; decoding was a quarter of its CPU. Not orjson: it reads an
    integer beyond 64 bits as a float, silently."""
    try:
        # Short strings are cached: a page's rows share their keys and most of their values (the
        # invoice's id, a subscription's, the dates), one object each.
        return from_json(data, cache_strings=True)
    except (ValueError, TypeError):  # TypeError: a str it cannot take as UTF-8 (lone surrogates)
        return json.loads(data)


def read_json(response: httpx.Response, service: Service) -> dict[str, Any]:
    """The JSON object of a successful answer; a body that is not one is the service's error."""
    try:
        data = decode_json(response.content)
    except (ValueError, RecursionError):  # RecursionError: JSON nested too deeply to decode
        data = None
    if not isinstance(data, dict):
        raise ServiceError(
            f"{service.name} {response.request.method} {response.request.url.path} answered "
            f"{response.status_code} without a JSON object",
            status=response.status_code,
        )
    return data


# --- sending ------------------------------------------------------------------------------------

# Errors where the request certainly never reached the server, so even a create may be retried.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


async def send(
    client: httpx.AsyncClient,
    request: httpx.Request,
    *,
    service: Service,
    retry: RetryPolicy,
    on_request: RequestHook | None = None,
    idempotent: bool = True,
) -> httpx.Response:
    """Send with retries; return a 2xx answer or raise the mapped `ServiceError`.

    A request that is not idempotent (a create) is retried only where it cannot have been applied:
    a 429, or a connection that was never made. Anything else could create a duplicate.
    """
    method, path = request.method, request.url.path
    deadline = current_deadline()
    attempt = 0
    while True:
        attempt += 1
        _fit_timeout(request, deadline, service, attempt)
        started = time.perf_counter()
        try:
            response = await client.send(request)
        except httpx.TransportError as exc:
            _record(on_request, service, method, path, None, started, attempt)
            if attempt >= retry.max_attempts or not (idempotent or isinstance(exc, _NOT_SENT)):
                raise unreachable_error(service, method, path, exc, attempts=attempt) from exc
            pause = retry.backoff(attempt)
            if not _fits(pause, deadline):
                raise unreachable_error(service, method, path, exc, attempts=attempt) from exc
            await retry.sleep(pause)
            continue
        status = response.status_code
        _record(on_request, service, method, path, status, started, attempt)
        if response.is_success:
            return response
        if (
            status not in RETRYABLE_STATUSES
            or attempt >= retry.max_attempts
            or not (idempotent or status == 429)
        ):
            raise http_error(service, method, path, status, response.content, attempts=attempt)
        pause = _pause(response, attempt, retry, service, deadline)
        if not _fits(pause, deadline):
            # Back-off past the deadline: give up now with what the server said, not later.
            raise http_error(service, method, path, status, response.content, attempts=attempt)
        await retry.sleep(pause)


def _fits(pause: float, deadline: Deadline | None) -> bool:
    return deadline is None or pause < deadline.remaining()


def _fit_timeout(request: httpx.Request, deadline: Deadline | None, service: Service, attempt: int) -> None:
    """Cut this attempt's timeouts to the time left; no attempt starts once the deadline passed."""
    if deadline is None:
        return
    left = deadline.remaining()
    if left <= 0:
        tried = f" after {attempt - 1} attempt(s)" if attempt > 1 else ""
        raise DeadlineExceeded(
            f"{service.name} {request.method} {request.url.path} was not sent{tried}: the {deadline.seconds:.0f} s "
            "deadline of this unit of work has passed; it is retried later"
        )
    timeouts = request.extensions.get("timeout") or {}
    request.extensions["timeout"] = {
        phase: left if limit is None else min(limit, left)
        for phase, limit in {**dict.fromkeys(("connect", "read", "write", "pool")), **timeouts}.items()
    }


def _pause(
    response: httpx.Response, attempt: int, retry: RetryPolicy, service: Service, deadline: Deadline | None
) -> float:
    asked = retry_after_seconds(response.headers.get("Retry-After"))
    if asked is None:
        return retry.backoff(attempt)
    if asked > retry.max_retry_after:
        limit = f"the {retry.max_retry_after:.0f} s this tool waits"
    elif not _fits(asked, deadline):
        assert deadline is not None  # _fits is True without a deadline
        limit = f"the {max(deadline.remaining(), 0.0):.0f} s left of this unit's {deadline.seconds:.0f} s deadline"
    else:
        return asked
    # Retrying earlier than asked only counts against the limit again: fail fast as throttled.
    request = response.request
    raise Throttled(
        f"{service.name} {request.method} {request.url.path} answered {response.status_code} "
        f"and asked to wait {asked:.0f} s, longer than {limit}: "
        "try again later, or run fewer diagnoses at once",
        status=response.status_code,
    )


def _record(
    hook: RequestHook | None,
    service: Service,
    method: str,
    path: str,
    status: int | None,
    started: float,
    attempt: int,
) -> None:
    record = RequestRecord(service.name, method, path, status, time.perf_counter() - started, attempt)
    logger.debug(
        "%s %s %s -> %s in %.3f s (attempt %d)",
        record.service,
        record.method,
        record.path,
        record.status if record.status is not None else "network error",
        record.elapsed,
        record.attempt,
    )
    if hook is not None:
        hook(record)


# --- bearer tokens ------------------------------------------------------------------------------

_AADSTS = re.compile(r"AADSTS\d+")


class BearerTokenAuth(httpx.Auth):
    """Adds `Authorization: Bearer …` from an azure-identity credential, for `httpx.AsyncClient`.

    The credential is the *sync* kind: `azure.identity.aio` would need aiohttp, which the Function
    app does not ship. Its blocking `get_token` runs in a worker thread, and the token is kept here
    until `TOKEN_REFRESH_MARGIN` before it expires, so most requests do not touch the credential.
    """

    def __init__(
        self, credential: TokenCredential, scope: str, *, clock: Callable[[], float] = time.time
    ) -> None:
        self._credential = credential
        self._scope = scope
        self._clock = clock
        self._token: AccessToken | None = None
        # One fetch at a time: concurrent requests on a cold cache share the first one's token.
        self._lock = asyncio.Lock()

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        # httpx's default would send the request without a token; fail loudly instead.
        raise RuntimeError("BearerTokenAuth works with httpx.AsyncClient only")

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        if request.url.scheme != "https":
            # A bearer token in clear text can be read and replayed by anyone on the path.
            raise ConfigError(
                f"refusing to send a token to {request.url.scheme}://{request.url.host}: "
                "the service URL must start with https://"
            )
        request.headers["Authorization"] = f"Bearer {await self.token()}"
        yield request

    async def token(self) -> str:
        async with self._lock:
            if self._token is None or self._clock() >= self._token.expires_on - TOKEN_REFRESH_MARGIN:
                self._token = await asyncio.to_thread(self._fetch)
            return self._token.token

    def _fetch(self) -> AccessToken:
        try:
            return self._credential.get_token(self._scope)
        except AzureError as exc:
            raise _sign_in_error(exc, self._scope) from exc


def _sign_in_error(exc: AzureError, scope: str) -> ServiceError:
    # azure-identity wraps a network or TLS failure in ClientAuthenticationError; the
    # ServiceRequestError underneath tells "could not reach the sign-in service" from "refused".
    unreached = next((e for e in _causes(exc) if isinstance(e, ServiceRequestError)), None)
    if unreached is not None or not isinstance(exc, ClientAuthenticationError):
        reason = one_line(str(unreached or exc), limit=120)
        return ServiceUnreachable(
            f"could not reach the sign-in service for {scope} ({reason}): check the network, the "
            "authority host and, for a private endpoint, the CA certificates this process trusts"
        )
    # The credential's own message can be long and multi-line; its AADSTS code is what a person
    # looks up, and it never carries a secret.
    code = _AADSTS.search(str(exc))
    return AuthError(
        f"could not get a token for {scope}{f' ({code.group()})' if code else ''}: check the tenant "
        "id, client id and secret (or the managed identity), and that the app is allowed in this tenant"
    )


def _causes(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


class ClosingClient:
    """What both service clients share: one `httpx.AsyncClient`, closed on `aclose` or on leaving
    `async with`."""

    _client: httpx.AsyncClient

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()
