"""The port-level fakes, in one place, for unit tests of handler logic (architecture.md, "svcs").

Each one implements a Protocol of `diagnostics.ports` in memory and records what it was asked, so
a test asserts on what the use case did. Dataverse and Partner Center are not faked here: tests
reach them through the real clients and the simulator.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from diagnostics.adapters.recording_notifier import RecordingNotifier
from diagnostics.ports import ConflictError, OutgoingMessage, Stored

__all__ = [
    "FakeBus",
    "FakeClock",
    "FakeMessageActions",
    "InMemoryStateStore",
    "ReceivedMessage",
    "RecordingNotifier",
]


class FakeClock:
    """A settable UTC clock (`diagnostics.ports.Clock`)."""

    def __init__(self, now: datetime) -> None:
        self.now = now.astimezone(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


class InMemoryStateStore:
    """`diagnostics.ports.StateStore` in a dict, with the same ETag rules as the file store."""

    def __init__(self) -> None:
        self.items: dict[tuple[str, str], Stored] = {}
        self.writes = 0

    async def get(self, kind: str, key: str) -> Stored | None:
        return self.items.get((kind, key))

    async def put(self, kind: str, key: str, value: dict[str, Any], *, etag: str | None) -> str:
        current = self.items.get((kind, key))
        if etag is None and current is not None:
            raise ConflictError(f"{kind}/{key} exists")
        if etag is not None and (current is None or current.etag != etag):
            raise ConflictError(f"{kind}/{key} changed")
        new = Stored(dict(value), uuid.uuid4().hex)
        self.items[(kind, key)] = new
        self.writes += 1
        return new.etag

    async def delete(self, kind: str, key: str, *, etag: str | None = None) -> None:
        current = self.items.get((kind, key))
        if current is not None and etag is not None and current.etag != etag:
            raise ConflictError(f"{kind}/{key} changed")
        self.items.pop((kind, key), None)

    async def list(self, kind: str) -> list[tuple[str, Stored]]:
        return sorted((k, v) for (kd, k), v in self.items.items() if kd == kind)


@dataclass
class Scheduled:
    queue: str
    message: OutgoingMessage
    at: datetime
    sequence_number: int


@dataclass
class FakeBus:
    """`diagnostics.ports.MessageBus` in memory, with the broker's duplicate detection on
    message ids (a repeat send is accepted and dropped) and cancellable scheduled messages."""

    sent: list[tuple[str, OutgoingMessage]] = field(default_factory=list)
    scheduled: dict[int, Scheduled] = field(default_factory=dict)
    cancelled: list[int] = field(default_factory=list)
    dropped_duplicates: int = 0
    fail_with: Exception | None = None  # raised by every call while set
    _next_sequence: int = 1
    _seen: set[str] = field(default_factory=set)

    async def send(self, queue: str, messages: Sequence[OutgoingMessage]) -> None:
        self._maybe_fail()
        for message in messages:
            if message.message_id in self._seen:
                self.dropped_duplicates += 1
                continue
            self._seen.add(message.message_id)
            self.sent.append((queue, message))

    async def schedule(self, queue: str, message: OutgoingMessage, at: datetime) -> int:
        self._maybe_fail()
        number = self._next_sequence
        self._next_sequence += 1
        self.scheduled[number] = Scheduled(queue, message, at, number)
        return number

    async def cancel(self, queue: str, sequence_numbers: Sequence[int]) -> None:
        self._maybe_fail()
        for number in sequence_numbers:
            if self.scheduled.pop(number, None) is not None:
                self.cancelled.append(number)

    def bodies(self, queue: str) -> list[bytes]:
        return [m.body for q, m in self.sent if q == queue]

    def _maybe_fail(self) -> None:
        if self.fail_with is not None:
            raise self.fail_with


@dataclass
class ReceivedMessage:
    """The fields of `azure.servicebus.ServiceBusReceivedMessage` the handlers read."""

    body: bytes
    message_id: str = "m-1"
    delivery_count: int = 1
    lock_token: str = field(default_factory=lambda: str(uuid.uuid4()))


@dataclass
class FakeMessageActions:
    """`diagnostics.ports.MessageActions`: records each settlement as (action, message id, reason,
    description)."""

    settled: list[tuple[str, str, str | None, str | None]] = field(default_factory=list)

    def complete(self, message: Any) -> None:
        self.settled.append(("complete", message.message_id, None, None))

    def abandon(self, message: Any) -> None:
        self.settled.append(("abandon", message.message_id, None, None))

    def deadletter(
        self,
        message: Any,
        deadletter_reason: str | None = None,
        deadletter_error_description: str | None = None,
    ) -> None:
        self.settled.append(
            ("deadletter", message.message_id, deadletter_reason, deadletter_error_description)
        )
