"""Injected faults: delays, error statuses (429 with Retry-After, 5xx) and dropped connections.

Two kinds: faults added one by one (`Fault`, for tests that need a given failure at a given request),
and a fault *rate* (`FaultRate`): a seeded share of requests fails in one of the ways a cloud
service fails, for replays and soak runs.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
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


# The ways a request fails under a fault rate, each as likely as the others.
RATE_KINDS = ("throttled", "unavailable", "dropped", "slow")
# The services a fault rate applies to. Not the Entra token endpoint: azure-identity backs off for
# seconds between its own retries, and a token is fetched once an hour, not per request.
RATE_PATHS = ("/api/data/", "/v1/", "/teams/")


@dataclass(frozen=True)
class FaultRate:
    rate: float  # share of requests that fail, 0..1
    seed: int | None = None  # the same seed and request order give the same failures
    max_retry_after: float = 1.0  # seconds; a 429 asks for a short pause so replays stay fast
    slow: float = 0.2  # seconds a slow answer takes before it is served
    paths: tuple[str, ...] = RATE_PATHS

    def __post_init__(self) -> None:
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError(f"the fault rate must be between 0 and 1, not {self.rate}")
        if self.max_retry_after <= 0 or self.slow < 0:
            raise ValueError("max_retry_after must be positive and slow not negative")


@dataclass(frozen=True)
class Outcome:
    delay: float
    fault: Fault | None  # the fault that answers instead of the service (status or drop)


class Faults:
    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        self._rate: FaultRate | None = None
        self._random = random.Random()
        self.injected: Counter[str] = Counter()  # by kind, for the faults of the rate

    def set_rate(self, rate: FaultRate | None) -> None:
        """Fail a seeded share of requests from now on (None: stop)."""
        with self._lock:
            self._rate = rate if rate is not None and rate.rate > 0 else None
            self._random = random.Random(rate.seed if rate is not None else None)

    def add(self, fault: Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def clear(self) -> None:
        """Remove the faults added one by one and the fault rate."""
        with self._lock:
            self._faults.clear()
            self._rate = None

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
            if answering is None and not in_batch:
                extra, answering = self._by_rate(path)
                delay += extra
        return Outcome(delay, answering)

    def _by_rate(self, path: str) -> tuple[float, Fault | None]:
        rate = self._rate
        if rate is None or not path.startswith(rate.paths) or self._random.random() >= rate.rate:
            return 0.0, None
        kind = self._random.choice(RATE_KINDS)
        self.injected[kind] += 1
        if kind == "throttled":
            wait = round(self._random.uniform(0.1, rate.max_retry_after), 1)
            return 0.0, Fault(status=429, retry_after=wait)
        if kind == "unavailable":
            return 0.0, Fault(status=503)
        if kind == "dropped":
            return 0.0, Fault(drop=True)
        return rate.slow, None
