"""Service Bus queue semantics, free of any wire protocol: a pure, single-threaded model.

The AMQP layer (`broker/_amqp.py`) turns frames into calls on `MessageQueue` and renders what it
returns; everything a queue *does* (locks, delivery counts, dead-lettering, scheduling, duplicate
detection, time to live) lives here so it can be unit-tested without a socket.

Two clocks, as the replay needs them: `now` is the (possibly simulated) UTC time that scheduled
enqueue times, time to live and the duplicate-detection window follow; `mono` is real monotonic
time that message locks follow, so a simulated day does not pass while a message is handled.
Callers serialise access (the broker holds one lock around every call).
"""

from __future__ import annotations

import hashlib
import heapq
import uuid
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

# Azure's own texts, so that what the replay shows reads like what a person would see in Azure.
MAX_DELIVERY_REASON = "MaxDeliveryCountExceeded"
TTL_EXPIRED_REASON = "TTLExpiredException"
TTL_EXPIRED_DESCRIPTION = "The message expired and was dead lettered."
# Where an accepted message is (MessageQueue.ledger).
PENDING, COMPLETED, DEAD_LETTERED, CANCELLED, EXPIRED = (
    "pending",
    "completed",
    "dead-lettered",
    "cancelled",
    "expired",
)


def max_delivery_description(count: int) -> str:
    return f"Message could not be consumed after {count} delivery attempts."


@dataclass(frozen=True)
class QueueOptions:
    """Per-queue settings, with Azure's defaults where Azure has one."""

    max_delivery_count: int = 10
    lock_duration: timedelta = timedelta(seconds=60)
    default_message_ttl: timedelta | None = None  # None: never expires (Azure: TimeSpan.MaxValue)
    # None turns duplicate detection off (Azure: requiresDuplicateDetection=false).
    duplicate_detection_window: timedelta | None = timedelta(minutes=10)
    dead_lettering_on_expiration: bool = False
    # Not an Azure setting: this queue's share of messages delivered twice (None: the broker's).
    duplicate_rate: float | None = None

    def __post_init__(self) -> None:
        if self.max_delivery_count < 1:
            raise ValueError("QueueOptions.max_delivery_count must be at least 1")
        if self.lock_duration <= timedelta(0):
            raise ValueError("QueueOptions.lock_duration must be positive")


@dataclass(frozen=True)
class Envelope:
    """One message as a sender handed it over. `payload` is the encoded AMQP message, opaque here;
    the other fields are what the queue needs to know about it (and what introspection shows)."""

    payload: bytes
    message_id: str | None = None
    body: bytes = b""
    application_properties: Mapping[str, Any] = field(default_factory=dict)
    time_to_live: timedelta | None = None
    scheduled_enqueue_time: datetime | None = None


@dataclass
class StoredMessage:
    sequence_number: int
    envelope: Envelope
    enqueued_time: datetime
    due: datetime  # when it becomes receivable (the scheduled time, or the enqueue time)
    expires_at: datetime | None
    delivery_count: int = 0  # failed deliveries so far: the AMQP header's delivery-count
    lock_token: uuid.UUID | None = None
    lock_expires: float = 0.0  # monotonic
    dead_letter_reason: str | None = None
    dead_letter_description: str | None = None
    duplicated: bool = False  # already delivered twice by duplicate injection


@dataclass(frozen=True)
class DeadLetter:
    message_id: str | None
    reason: str
    description: str
    body: bytes
    delivery_count: int
    application_properties: Mapping[str, Any]


@dataclass(frozen=True)
class QueueStats:
    active: int
    scheduled: int
    locked: int
    completed: int
    abandoned: int
    dead_lettered: int
    scheduled_cancelled: int
    duplicates_dropped: int
    duplicates_injected: int
    expired: int


class LockLostError(Exception):
    """The lock token is unknown, already settled, or its lock expired."""


@dataclass
class _Counters:
    completed: int = 0
    abandoned: int = 0
    dead_lettered: int = 0
    scheduled_cancelled: int = 0
    duplicates_dropped: int = 0
    duplicates_injected: int = 0
    expired: int = 0


def _unit_draw(*parts: object) -> float:
    """A number in [0, 1) that depends only on `parts`: the same seed gives the same choices
    whatever order concurrent handlers complete in."""
    digest = hashlib.blake2b(":".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


class MessageQueue:
    """One queue, or (with `dead_letter_queue=True`) the dead-letter sub-queue of one."""

    def __init__(
        self,
        name: str,
        options: QueueOptions | None = None,
        *,
        duplicate_rate: float = 0.0,
        seed: int = 0,
        dead_letter_queue: bool = False,
    ) -> None:
        self.name = name
        self.options = options or QueueOptions()
        self._duplicate_rate = (
            self.options.duplicate_rate if self.options.duplicate_rate is not None else duplicate_rate
        )
        if not 0.0 <= self._duplicate_rate <= 1.0:
            raise ValueError("duplicate_rate must be between 0 and 1")
        self._seed = seed
        self._is_dlq = dead_letter_queue
        self._next_sequence = 1
        self._messages: dict[int, StoredMessage] = {}  # available (due or not) by sequence number
        self._ready: list[int] = []  # heap of due sequence numbers (lazy: may hold removed ones)
        self._scheduled: list[tuple[datetime, int]] = []  # heap of (due, sequence number), lazy
        self._expiring: list[tuple[datetime, int]] = []  # heap of (expires_at, sequence number), lazy
        self._locked: dict[uuid.UUID, StoredMessage] = {}
        self._seen_ids: dict[str, datetime] = {}
        self._seen_order: deque[tuple[datetime, str]] = deque()
        self._counters = _Counters()
        self.dead_letter_log: list[DeadLetter] = []  # every dead-lettering, even once received
        # Every message accepted, by sequence number: its id and where it is (PENDING until it is
        # completed, dead-lettered, cancelled or expired), so a test can account for each one.
        self.ledger: dict[int, tuple[str | None, str]] = {}
        self.dead_letter_queue: MessageQueue | None = (
            None if dead_letter_queue else MessageQueue(f"{name}/$DeadLetterQueue", dead_letter_queue=True)
        )

    # -- sending -------------------------------------------------------------------------------

    def send(self, envelope: Envelope, now: datetime) -> int | None:
        """Enqueue (or schedule, when the envelope carries a future scheduled time). Returns the
        sequence number, or None when duplicate detection dropped the message."""
        if self._is_duplicate(envelope.message_id, now):
            return None
        at = envelope.scheduled_enqueue_time
        return self._store(envelope, now, at if at is not None and at > now else now)

    def schedule(self, envelope: Envelope, at: datetime, now: datetime) -> int:
        """Schedule for `at`. A duplicate is accepted and dropped, as Azure does: it still gets a
        sequence number, and cancelling that number is a no-op."""
        if self._is_duplicate(envelope.message_id, now):
            return self._take_sequence()
        return self._store(envelope, now, max(at, now))

    def cancel(self, sequence_numbers: list[int], now: datetime, mono: float) -> None:
        """Cancel scheduled messages; a number that is unknown or already enqueued is ignored."""
        self.refresh(now, mono)
        for number in sequence_numbers:
            message = self._messages.get(number)
            if message is not None and message.due > now:
                del self._messages[number]
                self._counters.scheduled_cancelled += 1
                self._settle(message, CANCELLED)

    # -- receiving and settling ----------------------------------------------------------------

    def receive(self, now: datetime, mono: float) -> StoredMessage | None:
        """Lock the next due message (peek-lock)."""
        message = self._pop_ready(now, mono)
        if message is None:
            return None
        message.lock_token = uuid.uuid4()
        message.lock_expires = mono + self.options.lock_duration.total_seconds()
        self._locked[message.lock_token] = message
        return message

    def receive_and_delete(self, now: datetime, mono: float) -> StoredMessage | None:
        message = self._pop_ready(now, mono)
        if message is not None:
            self._counters.completed += 1
            self._settle(message, COMPLETED)
        return message

    def complete(self, token: uuid.UUID, mono: float) -> StoredMessage:
        message = self._unlock(token, mono)
        self._counters.completed += 1
        if self._should_duplicate(message):
            # As a lost completion would: the lock "expires" and the same message comes back.
            message.duplicated = True
            message.delivery_count += 1
            self._counters.duplicates_injected += 1
            self._make_ready(message)
        else:
            self._settle(message, COMPLETED)
        return message

    def abandon(self, token: uuid.UUID, mono: float, *, count_delivery: bool = True) -> StoredMessage:
        """Release the lock. `count_delivery=False` is AMQP `released` (never handed to the app)."""
        message = self._unlock(token, mono)
        if count_delivery:
            self._counters.abandoned += 1
        self._return(message, count_delivery=count_delivery)
        return message

    def dead_letter(
        self, token: uuid.UUID, mono: float, reason: str | None, description: str | None
    ) -> StoredMessage:
        message = self._unlock(token, mono)
        self._move_to_dead_letter(message, reason or "", description or "")
        return message

    def renew_lock(self, token: uuid.UUID, mono: float) -> float:
        message = self._locked_message(token, mono)
        message.lock_expires = mono + self.options.lock_duration.total_seconds()
        return message.lock_expires

    def peek(self, from_sequence: int, count: int, now: datetime, mono: float) -> list[StoredMessage]:
        """Active, locked and scheduled messages from `from_sequence` on, in sequence order."""
        self.refresh(now, mono)
        held = (*self._messages.values(), *self._locked.values())
        candidates = (m for m in held if m.sequence_number >= from_sequence)
        return heapq.nsmallest(count, candidates, key=lambda m: m.sequence_number)

    # -- time ----------------------------------------------------------------------------------

    def refresh(self, now: datetime, mono: float) -> None:
        """Apply what time has done: expired locks come back, due scheduled messages become
        active, and messages past their time to live expire."""
        for token in [t for t, m in self._locked.items() if m.lock_expires <= mono]:
            message = self._locked.pop(token)
            message.lock_token = None
            self._return(message, count_delivery=True)
        while self._scheduled and self._scheduled[0][0] <= now:
            due, number = heapq.heappop(self._scheduled)
            message = self._messages.get(number)
            if message is not None and message.due == due and message.lock_token is None:
                heapq.heappush(self._ready, number)
        if self._is_dlq:
            return
        while self._expiring and self._expiring[0][0] <= now:
            expires_at, number = heapq.heappop(self._expiring)
            message = self._messages.get(number)
            if message is None or message.expires_at != expires_at or message.due > now:
                continue  # gone, or still scheduled (TTL counts once it is enqueued; see _store)
            del self._messages[number]
            self._counters.expired += 1
            self._settle(message, EXPIRED)
            if self.options.dead_lettering_on_expiration:
                self._move_to_dead_letter(message, TTL_EXPIRED_REASON, TTL_EXPIRED_DESCRIPTION)

    # -- introspection -------------------------------------------------------------------------

    def stats(self, now: datetime, mono: float) -> QueueStats:
        self.refresh(now, mono)
        active = sum(1 for m in self._messages.values() if m.due <= now)
        c = self._counters
        return QueueStats(
            active=active,
            scheduled=len(self._messages) - active,
            locked=len(self._locked),
            completed=c.completed,
            abandoned=c.abandoned,
            dead_lettered=c.dead_lettered,
            scheduled_cancelled=c.scheduled_cancelled,
            duplicates_dropped=c.duplicates_dropped,
            duplicates_injected=c.duplicates_injected,
            expired=c.expired,
        )

    def scheduled(self, now: datetime, mono: float) -> list[tuple[int, str | None, datetime]]:
        self.refresh(now, mono)
        pending = [m for m in self._messages.values() if m.due > now]
        return [(m.sequence_number, m.envelope.message_id, m.due) for m in sorted(pending, key=_by_due)]

    def idle(self, now: datetime, mono: float) -> bool:
        """Nothing due and nothing locked (scheduled messages in the future do not count)."""
        self.refresh(now, mono)
        return not self._locked and all(m.due > now for m in self._messages.values())

    # -- internals -----------------------------------------------------------------------------

    def _settle(self, message: StoredMessage, outcome: str) -> None:
        if not self._is_dlq:
            self.ledger[message.sequence_number] = (message.envelope.message_id, outcome)

    def _take_sequence(self) -> int:
        number = self._next_sequence
        self._next_sequence += 1
        return number

    def _store(self, envelope: Envelope, now: datetime, due: datetime) -> int:
        number = self._take_sequence()
        ttl = _effective_ttl(envelope.time_to_live, self.options.default_message_ttl)
        # Azure counts a scheduled message's time to live from when it is enqueued, not sent.
        expires_at = due + ttl if ttl is not None else None
        message = StoredMessage(number, envelope, enqueued_time=due, due=due, expires_at=expires_at)
        self._messages[number] = message
        self._settle(message, PENDING)
        if due <= now:
            heapq.heappush(self._ready, number)
        else:
            heapq.heappush(self._scheduled, (due, number))
        if expires_at is not None:
            heapq.heappush(self._expiring, (expires_at, number))
        return number

    def _pop_ready(self, now: datetime, mono: float) -> StoredMessage | None:
        self.refresh(now, mono)
        while self._ready:
            number = heapq.heappop(self._ready)
            message = self._messages.get(number)
            if message is not None and message.due <= now and message.lock_token is None:
                del self._messages[number]
                return message
        return None

    def _make_ready(self, message: StoredMessage) -> None:
        message.lock_token = None
        self._messages[message.sequence_number] = message
        heapq.heappush(self._ready, message.sequence_number)
        if message.expires_at is not None:
            heapq.heappush(self._expiring, (message.expires_at, message.sequence_number))

    def _return(self, message: StoredMessage, *, count_delivery: bool) -> None:
        if count_delivery:
            message.delivery_count += 1
        if not self._is_dlq and message.delivery_count >= self.options.max_delivery_count:
            self._move_to_dead_letter(
                message, MAX_DELIVERY_REASON, max_delivery_description(message.delivery_count)
            )
        else:
            self._make_ready(message)

    def _locked_message(self, token: uuid.UUID, mono: float) -> StoredMessage:
        message = self._locked.get(token)
        if message is None:
            raise LockLostError(f"the lock {token} is not held (settled already, or unknown)")
        if message.lock_expires <= mono:
            del self._locked[token]
            message.lock_token = None
            self._return(message, count_delivery=True)
            raise LockLostError(f"the lock {token} expired")
        return message

    def _unlock(self, token: uuid.UUID, mono: float) -> StoredMessage:
        message = self._locked_message(token, mono)
        del self._locked[token]
        message.lock_token = None
        return message

    def _move_to_dead_letter(self, message: StoredMessage, reason: str, description: str) -> None:
        self._counters.dead_lettered += 1
        self._settle(message, DEAD_LETTERED)
        self.dead_letter_log.append(
            DeadLetter(
                message_id=message.envelope.message_id,
                reason=reason,
                description=description,
                body=message.envelope.body,
                delivery_count=message.delivery_count,
                application_properties=dict(message.envelope.application_properties),
            )
        )
        if self.dead_letter_queue is not None:
            moved = replace(
                message,
                lock_token=None,
                dead_letter_reason=reason,
                dead_letter_description=description,
                expires_at=None,
            )
            self.dead_letter_queue._make_ready(moved)

    def _is_duplicate(self, message_id: str | None, now: datetime) -> bool:
        window = self.options.duplicate_detection_window
        if window is None or message_id is None or self._is_dlq:
            return False
        while self._seen_order and self._seen_order[0][0] <= now - window:
            seen_at, old_id = self._seen_order.popleft()
            if self._seen_ids.get(old_id) == seen_at:
                del self._seen_ids[old_id]
        seen_at = self._seen_ids.get(message_id)
        if seen_at is not None and now - seen_at < window:
            self._counters.duplicates_dropped += 1
            return True
        self._seen_ids[message_id] = now
        self._seen_order.append((now, message_id))
        return False

    def _should_duplicate(self, message: StoredMessage) -> bool:
        if self._is_dlq or message.duplicated or self._duplicate_rate <= 0.0:
            return False
        key = message.envelope.message_id or message.sequence_number
        return _unit_draw(self._seed, self.name, key) < self._duplicate_rate


def _effective_ttl(message_ttl: timedelta | None, queue_ttl: timedelta | None) -> timedelta | None:
    """Azure applies the smaller of the message's and the queue's time to live."""
    if message_ttl is None:
        return queue_ttl
    return message_ttl if queue_ttl is None else min(message_ttl, queue_ttl)


def _by_due(message: StoredMessage) -> tuple[datetime, int]:
    return (message.due, message.sequence_number)
