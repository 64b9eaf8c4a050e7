"""Injected faults: delays, error statuses (429 with Retry-After, 5xx) and dropped connections."""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass


@dataclass
class Fault:
    latency: float = 0.0  # seconds added to every matching request
    jitter: float = 0.0  # plus a random 0..jitter seconds
    status: int | None = None  # answer this status instead of serving
    retry_after: float | None = None  # Retry-After header (seconds) with the status
    times: int | None = None  # how many requests it applies to; None = until cleared
    path_prefix: str = ""
    drop: bool = False  # close the connection without an answer
    # Answer one part of a $batch instead of a whole request: how Dataverse refuses a single
    # query of a batch (e.g. 403 on a table the application user cannot read).
    in_batch: bool = False

    def __post_init__(self) -> None:
        if self.latency < 0 or self.jitter < 0:
            raise ValueError("latency and jitter must not be negative")
        if self.status is not None and not 400 <= self.status <= 599:
            raise ValueError(f"status {self.status} is not an error status (400-599)")
        if self.in_batch and (self.drop or self.status is None):
            raise ValueError("a fault inside a $batch answers a status; it cannot drop the connection")
        if self.times is not None and self.times < 1:
            raise ValueError("times must be at least 1 (or None for every request)")


@dataclass(frozen=True)
class Outcome:
    delay: float
    fault: Fault | None  # the fault that answers instead of the service (status or drop)


class Faults:
    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._lock = threading.Lock()

    def add(self, fault: Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def take(self, path: str, *, in_batch: bool = False) -> Outcome:
        """What happens to one request (or batch part) to `path`; uses up one of each matching
        fault's `times`."""
        delay, answering = 0.0, None
        with self._lock:
            for fault in list(self._faults):
                if fault.in_batch != in_batch or not path.startswith(fault.path_prefix):
                    continue
                interrupts = fault.drop or fault.status is not None
                if interrupts and answering is not None:
                    continue  # one answer per request; the next fault waits for the next request
                delay += fault.latency + (random.uniform(0, fault.jitter) if fault.jitter else 0.0)
                if interrupts:
                    answering = fault
                if fault.times is not None:
                    fault.times -= 1
                    if fault.times == 0:
                        self._faults.remove(fault)
        return Outcome(delay, answering)
