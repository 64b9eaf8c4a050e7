"""One received message, end to end: body → handler → outcome → settlement → one log line.

The Service Bus triggers in `function_app.py` call `deliver`; so do the replay and the broker tests,
with the broker's receiver as `MessageActions`. Every failure keeps its kind (see `outcome.py`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from diagnostics.adapters.http import within_deadline
from diagnostics.adapters.telemetry import dimensions
from diagnostics.app.container import Container, counting_requests, get_container
from diagnostics.app.outcome import COMPLETE, Outcome, classify, retry, settle
from diagnostics.errors import DiagnosticsError
from diagnostics.messages import MessageError
from diagnostics.ports import MessageActions

log = logging.getLogger("diagnostics.monitor")


class Handled(Protocol):
    unit: str
    findings: int


Handler = Callable[[Container, bytes], Awaitable[Handled]]


def message_body(message: Any) -> bytes:
    """The body of a received message as bytes (the SDK gives data bodies as a list of sections)."""
    body = getattr(message, "body", None)
    if isinstance(body, bytes | bytearray | memoryview):
        return bytes(body)
    if isinstance(body, str):
        return body.encode("utf-8")
    try:
        return b"".join(bytes(part) for part in body)  # type: ignore[union-attr]
    except TypeError:
        raise MessageError(
            "MalformedMessage", "the message body is not binary data (AMQP value or sequence)"
        ) from None


async def deliver(
    queue: str,
    message: Any,
    actions: MessageActions,
    handler: Handler,
    *,
    container: Callable[[], Container] = get_container,
) -> Outcome:
    """Handle one message and settle it; returns the outcome applied."""
    started = time.perf_counter()
    result: Handled | None = None
    error: BaseException | None = None
    deadline: asyncio.Timeout | None = None
    with counting_requests() as tally:
        try:
            current = container()
            body = message_body(message)
            seconds = current.settings.message_deadline_seconds
            # The retry loop knows the deadline too: it takes no pause that would overrun it.
            with within_deadline(seconds):
                async with asyncio.timeout(seconds) as deadline:
                    result = await handler(current, body)
            outcome = COMPLETE
        except Exception as exc:
            error = exc
            outcome = classify(exc)
            if deadline is not None and deadline.expired():
                outcome = retry(f"took longer than {seconds} s (DIAG_MESSAGE_DEADLINE_SECONDS)")
    try:
        settle(outcome, message, actions)
    finally:
        _log_line(queue, message, outcome, result, error, tally.count, time.perf_counter() - started)
    return outcome


def _log_line(
    queue: str,
    message: Any,
    outcome: Outcome,
    result: Handled | None,
    error: BaseException | None,
    requests: int,
    duration: float,
) -> None:
    """The canonical log line of one message, on success and on failure."""
    fields: dict[str, Any] = {
        "queue": queue,
        "message_id": getattr(message, "message_id", None),
        "delivery_count": getattr(message, "delivery_count", None),
        "outcome": str(outcome),
        "requests": requests,
        "duration_s": round(duration, 3),
    }
    if result is not None and dataclasses.is_dataclass(result):
        fields |= dataclasses.asdict(result)  # unit, findings and what the handler did
    if outcome.description:
        fields["error"] = outcome.description
    text = " ".join(f"{k}={v}" for k, v in fields.items() if v not in (None, ""))
    extra = dimensions(fields)  # Application Insights custom dimensions (adapters/telemetry.py)
    if error is None:
        log.info("message handled %s", text, extra=extra)
    elif isinstance(error, DiagnosticsError | MessageError | TimeoutError):
        log.warning("message not handled %s", text, extra=extra)
    else:
        log.error("message not handled %s", text, extra=extra, exc_info=error)
