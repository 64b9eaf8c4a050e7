"""Ports: what the monitor's use cases need from the outside world, as Protocols.

Adapters (diagnostics/adapters/) implement them against Service Bus, Azure Table Storage, the local
file system, Dataverse notes and Teams; `tests/fakes.py` implements them in memory, in one place,
for unit tests of handler logic. Use cases receive them from the container and never build clients.

This module is a seam agreed between the helpers building the monitor: extend with care.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from diagnostics.messages import Unit
from diagnostics.model import Report

Clock = Callable[[], datetime]  # timezone-aware UTC; the replay passes a simulated one


@dataclass(frozen=True)
class OutgoingMessage:
    message_id: str  # stable key of unit + day: the broker's duplicate detection drops repeats
    body: bytes  # JSON (diagnostics.messages.encode)
    subject: str  # e.g. "check", "references": shown by Service Bus Explorer
    content_type: str = "application/json"


class MessageBus(Protocol):
    """Publishing and scheduling on Service Bus queues."""

    async def send(self, queue: str, messages: Sequence[OutgoingMessage]) -> None: ...

    async def schedule(self, queue: str, message: OutgoingMessage, at: datetime) -> int:
        """Enqueue at `at`; returns the broker's sequence number (to cancel it later)."""
        ...

    async def cancel(self, queue: str, sequence_numbers: Sequence[int]) -> None:
        """Cancel scheduled messages; an unknown or already delivered number is not an error."""
        ...


class ConflictError(Exception):
    """The stored item changed since it was read (ETag mismatch), or already exists."""


@dataclass(frozen=True)
class Stored:
    value: dict[str, Any]
    etag: str


class StateStore(Protocol):
    """A small key-value store with optimistic concurrency: the planner's watermark, the pending
    re-checks, and (later) the alert state. `kind` is a partition (e.g. "watermark", "recheck",
    "alert"); keys are short strings without '/', '\\', '#' or '?' (Table Storage's rules)."""

    async def get(self, kind: str, key: str) -> Stored | None: ...

    async def put(self, kind: str, key: str, value: dict[str, Any], *, etag: str | None) -> str:
        """Write `value`; `etag=None` means "create, fail if it exists". Returns the new ETag.
        Raises ConflictError when the ETag does not match."""
        ...

    async def delete(self, kind: str, key: str, *, etag: str | None = None) -> None: ...

    async def list(self, kind: str) -> list[tuple[str, Stored]]: ...


class Notifier(Protocol):
    """Tells people what a check found. Until the notes-and-Teams work lands, an adapter records
    what it is given; the living note and the Teams card plug in here without changing callers."""

    async def notify(self, unit: Unit, report: Report, *, at: datetime, partial: bool = False) -> None:
        """`partial`: the report holds only part of what the unit sees (the reference look-up), so
        a finding absent from it has not resolved."""
        ...


class MessageActions(Protocol):
    """Settlement of one received message, as the Functions host's Service Bus SDK-type binding
    (`azurefunctions.extensions.bindings.servicebus.ServiceBusMessageActions`) offers it with
    `autoCompleteMessages: false`. Synchronous, like that class."""

    def complete(self, message: Any) -> None: ...

    def abandon(self, message: Any) -> None: ...

    def deadletter(
        self,
        message: Any,
        deadletter_reason: str | None = None,
        deadletter_error_description: str | None = None,
    ) -> None: ...
