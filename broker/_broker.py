"""`Broker`: the local Service Bus namespace the tests and the replay run against."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from types import TracebackType

from broker._amqp import AmqpServer
from broker._codec import envelope_of
from broker.queues import DeadLetter, Envelope, MessageQueue, QueueOptions, QueueStats

Clock = Callable[[], datetime]

_DLQ_SUFFIX = "/$deadletterqueue"


def _real_clock() -> datetime:
    return datetime.now(UTC)


class Broker:
    """An AMQP 1.0 server on a free loopback port that the real azure-servicebus SDK (sync and
    async) talks to through `connection_string`. Queues are fixed at construction.

    `clock` (aware UTC datetimes) drives scheduled enqueue times, time to live and the duplicate
    window; message locks follow real monotonic time. `duplicate_rate` of messages (chosen by
    `seed`, independent of handling order) are delivered a second time after their completion, as
    a lost completion would make Azure do."""

    def __init__(
        self,
        queues: Mapping[str, QueueOptions] | Iterable[str] = ("invoice-checks", "reference-resolution"),
        *,
        clock: Clock | None = None,
        duplicate_rate: float = 0.0,
        seed: int = 0,
        host: str = "127.0.0.1",
    ) -> None:
        options = dict(queues) if isinstance(queues, Mapping) else {name: QueueOptions() for name in queues}
        if not options:
            raise ValueError("Broker needs at least one queue")
        self._clock: Clock = clock or _real_clock
        self._lock = threading.RLock()
        self._queues = {
            name.lower(): MessageQueue(name, opts, duplicate_rate=duplicate_rate, seed=seed)
            for name, opts in options.items()
        }
        self._tokens: list[tuple[str, str]] = []
        # Set to a description: every sign-in (CBS put-token) is answered 401 with it, as Service Bus
        # refuses a credential it does not accept; the SDK raises ServiceBusAuthenticationError.
        self.refused: str | None = None
        self._errors: list[str] = []
        self._server = AmqpServer(self, host)
        self._started = False

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> Broker:
        if not self._started:
            self._server.start()
            self._started = True
        return self

    def stop(self) -> None:
        if self._started:
            self._server.stop()
            self._started = False

    def __enter__(self) -> Broker:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return self._server.port

    @property
    def connection_string(self) -> str:
        if not self._started:
            raise RuntimeError("the broker is not started: call start() or use it as a context manager")
        # The key is never checked; the SDK only needs one to build its SAS token for $cbs.
        return (
            f"Endpoint=sb://{self._server.host}:{self._server.port};"
            "SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=bG9jYWwtYnJva2Vy;"
            "UseDevelopmentEmulator=true"
        )

    @property
    def fully_qualified_namespace(self) -> str:
        """For `ServiceBusClient(namespace, credential, use_tls=False)`."""
        return f"{self._server.host}:{self._server.port}"

    # -- introspection (thread-safe) -----------------------------------------------------------

    @property
    def queue_names(self) -> list[str]:
        return [q.name for q in self._queues.values()]

    def stats(self, queue: str) -> QueueStats:
        with self._lock:
            return self._queue(queue).stats(self._clock(), time.monotonic())

    def dead_letters(self, queue: str) -> list[DeadLetter]:
        """Every message dead-lettered from `queue` so far, in order (also once received from
        the dead-letter sub-queue)."""
        with self._lock:
            return list(self._queue(queue).dead_letter_log)

    def ledger(self, queue: str) -> dict[int, tuple[str | None, str]]:
        """Every message `queue` accepted, by sequence number: (message id, where it is now:
        pending, completed, dead-lettered, cancelled or expired)."""
        with self._lock:
            return dict(self._queue(queue).ledger)

    def scheduled(self, queue: str) -> list[tuple[int, str | None, datetime]]:
        """(sequence number, message id, due) of the messages not yet due, soonest first."""
        with self._lock:
            return self._queue(queue).scheduled(self._clock(), time.monotonic())

    def idle(self, queue: str | None = None) -> bool:
        """No message due or locked in `queue` (or in any queue)."""
        with self._lock:
            now, mono = self._clock(), time.monotonic()
            queues = [self._queue(queue)] if queue is not None else list(self._queues.values())
            return all(q.idle(now, mono) for q in queues)

    def errors(self) -> list[str]:
        """What the broker itself failed at (a bug, or a frame it could not handle): one line each.
        Empty in a healthy run; tests and the replay can check it."""
        with self._lock:
            return list(self._errors)

    def cbs_tokens(self) -> list[tuple[str, str]]:
        """(audience, token) of every CBS put-token, in order."""
        with self._lock:
            return list(self._tokens)

    # -- used by the AMQP layer ----------------------------------------------------------------

    def _now(self) -> datetime:
        now = self._clock()
        if now.tzinfo is None:
            raise ValueError("the broker's clock must return timezone-aware UTC datetimes")
        return now

    def _queue(self, name: str) -> MessageQueue:
        try:
            return self._queues[name.lower()]
        except KeyError:
            known = ", ".join(sorted(q.name for q in self._queues.values()))
            raise KeyError(f"no queue {name!r} on this broker (it has: {known})") from None

    def _queue_for_path(self, path: str) -> MessageQueue | None:
        """`orders`, `orders/$management`, `orders/$DeadLetterQueue` (lower-cased)."""
        path = path.removesuffix("/$management")
        if path.endswith(_DLQ_SUFFIX):
            parent = self._queues.get(path.removesuffix(_DLQ_SUFFIX))
            return parent.dead_letter_queue if parent is not None else None
        return self._queues.get(path)

    def _send_payloads(self, queue: MessageQueue, payloads: list[bytes]) -> None:
        envelopes = [envelope_of(p) for p in payloads]
        with self._lock:
            now = self._now()
            for envelope in envelopes:
                queue.send(envelope, now)

    def _schedule(self, queue: MessageQueue, envelope: Envelope) -> int:
        with self._lock:
            now = self._now()
            at = envelope.scheduled_enqueue_time or now
            return queue.schedule(envelope, at, now)

    def _record_error(self, line: str) -> None:
        with self._lock:
            self._errors.append(line)

    def _record_token(self, audience: str, token: str) -> None:
        with self._lock:
            self._tokens.append((audience, token))
