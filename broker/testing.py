"""Helpers for tests (and the replay) that run code against the local broker.

from broker.testing import SimulatedClock, running_broker

clock = SimulatedClock(datetime(2026, 11, 9, tzinfo=UTC))
with running_broker({"invoice-checks": QueueOptions()}, clock=clock) as broker:
    ...  # broker.connection_string, clock.advance(timedelta(days=1)), broker.stats(...)
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from broker._broker import Broker, Clock
from broker.queues import QueueOptions


class SimulatedClock:
    """A clock that only moves when told to; thread-safe (the broker reads it from its thread)."""

    def __init__(self, start: datetime | None = None) -> None:
        start = start or datetime(2026, 1, 1, tzinfo=UTC)
        if start.tzinfo is None:
            raise ValueError("SimulatedClock needs a timezone-aware start")
        self._now = start.astimezone(UTC)
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, delta: timedelta) -> datetime:
        with self._lock:
            self._now += delta
            return self._now

    def set(self, moment: datetime) -> None:
        with self._lock:
            self._now = moment.astimezone(UTC)


@contextmanager
def running_broker(
    queues: Mapping[str, QueueOptions] | Iterable[str] = ("invoice-checks", "reference-resolution"),
    *,
    clock: Clock | None = None,
    duplicate_rate: float = 0.0,
    seed: int = 0,
) -> Iterator[Broker]:
    """A started broker, stopped on exit."""
    broker = Broker(queues, clock=clock, duplicate_rate=duplicate_rate, seed=seed)
    with broker:
        yield broker
