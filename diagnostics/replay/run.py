"""The local replay (monitor.md, "The local replay"): the Function app's own functions, run as the
Functions host would run them, against the simulator and the local Service Bus broker, on a
simulated clock that starts at the fixture's `now` and advances day by day.

Each simulated day, in this order: the timeline changes due by the timer's time are applied; the
timer fires; every due message is delivered to its handler until the queues are idle; then the
clock moves through the rest of the day (each timeline entry and each scheduled message at its own
time, delivering what becomes due) to midnight.

What the replay reports is read back from what the broker and the simulator recorded (queue
statistics, dead letters, notes, Teams posts) and from a full scan at each day's check, never from
the app's own bookkeeping: the replay is a witness, not a participant.

The simulator and the broker are development tools (not deployed), imported when a replay runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import logging
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import SecretStr

from diagnostics.adapters.http import RetryPolicy
from diagnostics.adapters.servicebus import ServiceBusMessageBus
from diagnostics.adapters.state_file import FileStateStore
from diagnostics.app.container import Container, use_container
from diagnostics.errors import ConfigError, InputError, ServiceError, ServiceUnreachable
from diagnostics.lifecycle import SILENCE, Silence
from diagnostics.messages import QUEUE_INVOICE_CHECKS, QUEUE_REFERENCE_RESOLUTION, SERVICEBUS_CONNECTION
from diagnostics.model import Report
from diagnostics.render_card import announced
from diagnostics.replay.story import (
    Day,
    DeadLetterRecord,
    NoteRecord,
    OpenFinding,
    Replay,
    TeamsPostRecord,
    TenantChange,
    open_findings,
)
from diagnostics.service import Connection, scan
from diagnostics.settings import Settings
from diagnostics.silences import silenced_report
from diagnostics.silences import stored as stored_silences

if TYPE_CHECKING:
    from simulator import Simulator
    from simulator.tenant import AppliedEntry

log = logging.getLogger("diagnostics.replay")

MAX_DAYS = 45
QUEUES = (QUEUE_INVOICE_CHECKS, QUEUE_REFERENCE_RESOLUTION)
MAX_DELIVERY_COUNT = 10
# How long one receive waits for more messages; the broker's idle probe ends a drain, so short is fine.
RECEIVE_WAIT = 0.05
# The planner's retries after a failed run (function_app.py's @app.retry on the timer).
TIMER_RETRIES = 3
# Real seconds one drain may take before the day is given up (exit 3).
DRAIN_LIMIT = 120.0
_DEFAULT_TIME = time(7, 0)
_DATAVERSE = "/api/data"  # the simulator's Dataverse paths


@dataclass(frozen=True)
class ReplayOptions:
    fixture: Path
    days: int | None = None  # None: until nothing is pending, at most MAX_DAYS
    fault_rate: float = 0.0
    duplicate_rate: float = 0.0
    seed: int = 0
    # Simulated days on which the Teams sink answers 503 to every post (tests of a failed post).
    teams_down: tuple[date, ...] = ()
    # Real seconds one drain may take before the day is given up (a soak of thousands of units
    # a day needs longer than a fixture's few).
    drain_limit: float = DRAIN_LIMIT

    def __post_init__(self) -> None:
        if self.days is not None and not 1 <= self.days <= MAX_DAYS:
            raise InputError(f"--days {self.days}: give a number of days from 1 to {MAX_DAYS}")
        for name, rate in (("--fault-rate", self.fault_rate), ("--duplicate-rate", self.duplicate_rate)):
            if not 0.0 <= rate <= 1.0:
                raise InputError(f"{name} {rate}: give a share between 0 and 1, e.g. 0.2")


def daily_time(schedule: str) -> time:
    """The time of day of a daily NCRONTAB (`s m h * * *`); 07:00 when it is not that simple."""
    fields = schedule.split()
    if len(fields) == 6 and all(f.isdigit() for f in fields[:3]) and fields[3:] == ["*", "*", "*"]:
        second, minute, hour = (int(f) for f in fields[:3])
        if second < 60 and minute < 60 and hour < 24:
            return time(hour, minute, second)
    return _DEFAULT_TIME


# --- what the replay needs of the broker and the local Functions host ------------------------------


class _Broker(Protocol):
    @property
    def connection_string(self) -> str: ...

    def stats(self, queue: str) -> Any: ...

    def dead_letters(self, queue: str) -> list[Any]: ...

    def ledger(self, queue: str) -> dict[int, tuple[str | None, str]]: ...

    def scheduled(self, queue: str) -> list[tuple[int, str | None, datetime]]: ...

    def idle(self, queue: str | None = None) -> bool: ...

    def stop(self) -> None: ...


class _Host(Protocol):
    @property
    def timer_schedules(self) -> dict[str, str]: ...

    async def fire_timer(self, function_name: str, *, past_due: bool = False) -> Any: ...

    async def drain(self, *, give_up_after: float = 120.0) -> Any: ...

    async def aclose(self) -> None: ...


def _dev_tool(module: str) -> Any:
    """A module of the repository's development tools (the broker, the local Functions host) or the
    Function app itself; imported by name, so the product does not depend on them."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ConfigError(
            f"the replay needs {module!r} ({exc}); it is a development tool, not deployed: run from the repository"
        ) from None


# --- counting what the broker saw --------------------------------------------------------------


@dataclass
class _QueueTally:
    """Cumulative counters of one queue, read from the broker, to take differences per day."""

    completed: int = 0
    dead_lettered: int = 0
    cancelled: int = 0
    abandoned: int = 0
    duplicates: int = 0
    expired: int = 0
    present: int = 0  # active + scheduled + locked
    pending: frozenset[int] = frozenset()  # sequence numbers of scheduled messages

    @classmethod
    def read(cls, broker: _Broker, queue: str) -> _QueueTally:
        s = broker.stats(queue)
        pending = frozenset(number for number, _, _ in broker.scheduled(queue))
        return cls(
            s.completed,
            s.dead_lettered,
            s.scheduled_cancelled,
            s.abandoned,
            s.duplicates_injected,
            s.expired,
            s.active + s.scheduled + s.locked,
            pending,
        )


@dataclass
class _Counts:
    published: int = 0
    references: int = 0  # of `published`, reference look-ups (queue reference-resolution)
    handled: int = 0
    scheduled: int = 0
    cancelled: int = 0
    dead_lettered: int = 0
    duplicates: int = 0
    abandoned: int = 0

    def add(self, before: _QueueTally, after: _QueueTally, *, rechecks: bool) -> None:
        handled = (after.completed - before.completed) - (after.duplicates - before.duplicates)
        left = (
            handled
            + (after.dead_lettered - before.dead_lettered)
            + (after.cancelled - before.cancelled)
            + (after.expired - before.expired)
        )
        entered = left + (after.present - before.present)
        # Scheduled in this step: numbers pending now that were not before (a re-check is due the
        # next day, so it is still pending at the end of the step that scheduled it).
        scheduled = len(after.pending - before.pending)
        self.handled += handled
        self.dead_lettered += after.dead_lettered - before.dead_lettered
        self.duplicates += after.duplicates - before.duplicates
        self.abandoned += after.abandoned - before.abandoned
        self.published += max(0, entered - scheduled)
        if not rechecks:
            self.references += max(0, entered - scheduled)
        if rechecks:
            self.scheduled += scheduled
            self.cancelled += after.cancelled - before.cancelled


class _Witness:
    """Reads the broker's counters before and after each step of a day."""

    def __init__(self, broker: _Broker) -> None:
        self.broker = broker
        self.last = {queue: _QueueTally.read(broker, queue) for queue in QUEUES}

    def step(self, counts: _Counts) -> None:
        for queue in QUEUES:
            now = _QueueTally.read(self.broker, queue)
            counts.add(self.last[queue], now, rechecks=queue == QUEUE_INVOICE_CHECKS)
            self.last[queue] = now


# --- the run -----------------------------------------------------------------------------------


async def _no_sleep(seconds: float) -> None:
    """The retry policy's testing switch: retry at once, so a replay with faults stays fast."""
    await asyncio.sleep(0)


@dataclass
class _Run:
    options: ReplayOptions
    settings: Settings
    sim: Simulator
    broker: _Broker
    host: _Host
    timer: str
    daily_at: time
    connection: Connection
    replay: Replay
    notes_seen: int = 0
    writes_seen: int = 0
    posts_seen: int = 0
    faults_seen: int = 0
    requests_seen: int = 0  # the simulator's Dataverse round trips, the witness scans' left out
    witness_requests: int = 0
    unseen_change: bool = False  # the tenant changed after the last timer run
    app_peak: int = 0  # the app's most requests in flight today, until the last witness scan
    previous_open: list[OpenFinding] = field(default_factory=list)
    silences: list[Silence] = field(default_factory=list)

    async def day(self, day: date, first: bool) -> Day:
        daily = datetime.combine(day, self.daily_at, tzinfo=UTC)
        timer_at = max(daily, self.sim.now) if first else daily
        record = Day(day, timer_at)
        witness = _Witness(self.broker)
        counts = _Counts()
        self._advance(timer_at, record)
        self.unseen_change = False
        record.timer_error = await self._fire_timer()
        await self._drain()
        witness.step(counts)
        await self._open(record)
        midnight = datetime.combine(day + timedelta(days=1), time(0), tzinfo=UTC)
        # The rest of the day, one moment at a time: what a person changes, what becomes due.
        while moments := self._events(self.sim.now, midnight):
            self._advance(moments[0], record)
            await self._drain()
            witness.step(counts)
        self._advance(midnight, record)
        await self._drain()
        witness.step(counts)
        self._fill(record, counts)
        return record

    async def _fire_timer(self) -> str | None:
        """Fire the planner as the host does, retrying a failed run at once up to TIMER_RETRIES
        times (the app's retry policy, without its pauses); the last failure's reason, if any.
        A failed plan is not the end: the next day's plan catches up from the watermark."""
        reason = None
        for _ in range(1 + TIMER_RETRIES):
            try:
                await self.host.fire_timer(self.timer, past_due=False)
            except Exception as exc:  # as the host: a failed function run is logged and retried
                reason = f"{type(exc).__name__}: {exc}".splitlines()[0]
                log.warning("the planner failed: %s", reason)
            else:
                return None
        return reason

    async def _drain(self) -> None:
        try:
            await self.host.drain(give_up_after=self.options.drain_limit)
        except TimeoutError as exc:
            raise ServiceError(
                f"the replay could not finish a simulated day: {exc} (a handler hangs, or a message "
                "keeps coming back); run with -v to see each delivery"
            ) from None

    def _events(self, after: datetime, before: datetime) -> list[datetime]:
        """Times inside the day when something happens: timeline entries, scheduled messages."""
        moments = {e.at for e in self.sim.tenant.pending_timeline() if after < e.at < before}
        for queue in QUEUES:
            moments |= {due for _, _, due in self.broker.scheduled(queue) if after < due < before}
        return sorted(moments)

    def _advance(self, moment: datetime, record: Day) -> None:
        if moment > self.sim.now:
            applied: list[AppliedEntry] = self.sim.advance_to(moment)
            record.changes += [TenantChange(a.at, a.description, len(a.changes)) for a in applied]
            self.unseen_change = self.unseen_change or bool(applied)

    async def _open(self, record: Day) -> None:
        """What a full scan finds at the day's check: the independent view of what is open."""
        report = await self._scan(record.timer_at)
        record.open = open_findings(report)
        before = {f.dedup_key for f in self.previous_open}
        now = {f.dedup_key for f in record.open}
        record.opened = [f for f in record.open if f.dedup_key not in before]
        record.closed = [f for f in self.previous_open if f.dedup_key not in now]
        self.previous_open = record.open

    async def _scan(self, moment: datetime) -> Report:
        """A full scan, with the silences marked as the notifier marks them. The app is idle
        meanwhile: its requests and concurrency are counted apart from the scan's."""
        self.app_peak = max(self.app_peak, self.sim.take_max_in_flight(dataverse=True))
        before = self.sim.request_count(_DATAVERSE)
        report = await scan(self.connection, moment)
        self.witness_requests += self.sim.request_count(_DATAVERSE) - before
        self.sim.take_max_in_flight(dataverse=True)
        return silenced_report(report, self.silences, moment.date())

    def _fill(self, record: Day, counts: _Counts) -> None:
        record.published = counts.published
        record.references = counts.references
        record.handled = counts.handled
        record.rechecks_scheduled = counts.scheduled
        record.rechecks_cancelled = counts.cancelled
        record.dead_lettered = counts.dead_lettered
        record.duplicates_delivered = counts.duplicates
        record.deliveries_failed = counts.abandoned
        notes, posts = len(self.sim.notes), len(self.sim.teams_received)
        faults = sum(self.sim.faults.injected.values())
        record.notes_written, record.teams_posts = notes - self.notes_seen, posts - self.posts_seen
        record.faults_injected = faults - self.faults_seen
        self.notes_seen, self.posts_seen, self.faults_seen = notes, posts, faults
        writes = list(self.sim.writes)
        record.records_changed = [
            f"{w['method']} {w['table']} {w['id']}"
            for w in writes[self.writes_seen :]
            if w["table"] != "annotation"
        ]
        self.writes_seen = len(writes)
        requests = self.sim.request_count(_DATAVERSE) - self.witness_requests
        record.dataverse_requests, self.requests_seen = requests - self.requests_seen, requests
        record.max_in_flight = max(self.app_peak, self.sim.take_max_in_flight(dataverse=True))
        self.app_peak = 0

    def pending(self) -> bool:
        """Anything still to come: a scheduled re-check, a change in the tenant's timeline, or a
        change made after the day's check that no check has seen yet."""
        return (
            self.unseen_change
            or bool(self.sim.pending_timeline())
            or any(self.broker.scheduled(q) for q in QUEUES)
        )

    async def finish(self) -> None:
        replay = self.replay
        replay.end = self.sim.now
        report = await self._scan(self.sim.now)
        replay.final_report = report
        replay.findings = open_findings(report)
        # In a stable order: handlers run side by side, so arrival order is not the story's.
        replay.notes = sorted(_notes(self.sim), key=lambda n: (n.subject_type, n.subject_name, n.subject_id))
        replay.teams_posts = sorted(
            (_post(p.at, p.body) for p in self.sim.teams_received),
            key=lambda p: (p.at, p.new, p.escalated, p.reminded, p.resolved),
        )
        replay.teams_bodies = [p.body for p in self.sim.teams_received]
        replay.messages = {queue: self._ledger(queue) for queue in QUEUES}
        replay.dead_letters = [
            DeadLetterRecord(queue, str(d.reason), str(d.description), d.message_id)
            for queue in QUEUES
            for d in self.broker.dead_letters(queue)
        ]

    def _ledger(self, queue: str) -> dict[int, tuple[str | None, str]]:
        """The broker's ledger, a message still waiting for its scheduled time marked `scheduled`:
        once the last day is drained, any other `pending` one was lost on the way."""
        later = {number for number, _, _ in self.broker.scheduled(queue)}
        return {
            number: (message_id, "scheduled" if outcome == "pending" and number in later else outcome)
            for number, (message_id, outcome) in self.broker.ledger(queue).items()
        }


def _notes(sim: Simulator) -> list[NoteRecord]:
    names = _subject_names(sim)
    by_subject: dict[tuple[str, str], list[Any]] = {}
    for note in sim.recorded_notes():
        key = (str(note.object_type or ""), str(note.object_id or ""))
        by_subject.setdefault(key, []).append(note)
    records = []
    for (kind, object_id), notes in by_subject.items():
        last = max(notes, key=lambda n: str(n.last_written or ""))
        records.append(
            NoteRecord(
                _SUBJECT_TYPES.get(kind, kind),
                object_id,
                names.get(object_id, ""),
                tuple(n.annotation_id for n in notes),
                sum(n.writes for n in notes),
                str(last.subject or ""),
                str(last.text or ""),
            )
        )
    return records


# Dataverse table of a note's record → the subject type of the report.
_SUBJECT_TYPES = {
    "work365_providerinvoice": "provider_invoice",
    "work365_provider": "expected_provider_invoice",
    "work365_billingcontract": "billing_contract",
    "work365_subscription": "subscription",
}


def _subject_names(sim: Simulator) -> dict[str, str]:
    names: dict[str, str] = {}
    with sim.tenant.lock:
        for table in sim.tenant.tables.values():
            for key, row in table.rows.items():
                value = row.values.get(table.primary_name)
                if isinstance(value, str):
                    names[key] = value
    return names


def _post(at: datetime, body: bytes) -> TeamsPostRecord:
    """A Teams post as received; what it announces is read from the card: each finding's container
    is identified `<change>:<dedup_key>` (diagnostics/render_card.py)."""
    payload: Any = None
    with contextlib.suppress(ValueError):
        payload = json.loads(body)
    changes = announced(payload)
    return TeamsPostRecord(
        at,
        len(body),
        new=tuple(changes["new"]),
        escalated=tuple(changes["escalated"]),
        reminded=tuple(changes["reminded"]),
        resolved=tuple(changes["resolved"]),
    )


@contextlib.contextmanager
def _services(options: ReplayOptions) -> Iterator[tuple[Simulator, _Broker]]:
    try:
        from simulator import Simulator, load_fixture  # noqa: PLC0415  (a dev tool, not deployed)
    except ImportError:
        raise ConfigError(
            "the replay needs the simulator, which is not deployed; run from the repository"
        ) from None
    broker_module = _dev_tool("broker")
    fixture = load_fixture(options.fixture)  # FixtureError is an InputError: exit 2
    queue = broker_module.QueueOptions(max_delivery_count=MAX_DELIVERY_COUNT)
    with Simulator(fixture) as sim:
        if options.fault_rate:
            sim.set_fault_rate(options.fault_rate, options.seed)
        sim.teams_outages = [
            (
                datetime.combine(d, time(0), tzinfo=UTC),
                datetime.combine(d + timedelta(days=1), time(0), tzinfo=UTC),
            )
            for d in options.teams_down
        ]
        broker = broker_module.Broker(
            dict.fromkeys(QUEUES, queue),
            clock=lambda: sim.now,
            duplicate_rate=options.duplicate_rate,
            seed=options.seed,
        )
        try:
            broker.start()
        except OSError as exc:
            raise ServiceUnreachable(f"the local Service Bus broker could not start: {exc}") from None
        try:
            yield sim, broker
        finally:
            broker.stop()


def _timer(host: _Host) -> tuple[str, time]:
    """The Function app's timer function (the planner) and the time of day it fires."""
    schedules = host.timer_schedules
    if len(schedules) != 1:
        raise ConfigError(
            f"function_app.app has {len(schedules)} timer functions; the replay fires exactly one"
        )
    [(name, schedule)] = schedules.items()
    return name, daily_time(schedule)


def run_replay(
    options: ReplayOptions,
    settings: Settings,
    *,
    progress: Callable[[Day], None] | None = None,
    prepare: Callable[[str], None] | None = None,
) -> Replay:
    """Replay the fixture's days; returns what was seen. Raises InputError (bad fixture or
    options), ConfigError, ServiceError (the run could not complete).

    `progress` sees each day as it ends; `prepare` gets the broker's connection string before the
    first day (a test sends what no planner would, e.g. a malformed message)."""
    with (
        _services(options) as (sim, broker),
        tempfile.TemporaryDirectory(prefix="work365-replay-") as tmp,
    ):
        if prepare is not None:
            prepare(broker.connection_string)
        # The silences a person added (`silence add`, in the configured state file) apply here too.
        seeded = stored_silences(settings)
        return asyncio.run(_replay(options, settings, sim, broker, Path(tmp), progress, seeded))


async def _replay(
    options: ReplayOptions,
    settings: Settings,
    sim: Simulator,
    broker: _Broker,
    tmp: Path,
    progress: Callable[[Day], None] | None,
    seeded: list[Silence],
) -> Replay:
    from simulator.connect import connection  # noqa: PLC0415  (a dev tool, not deployed)

    function_app = _dev_tool("function_app")
    host_module = _dev_tool("broker.functions_host")
    # The retry policy's testing switch: no pause between attempts, so faults cost no time.
    retry = RetryPolicy(max_attempts=max(settings.http_max_attempts, 5), sleep=_no_sleep)
    conn = connection(sim, thresholds=settings.thresholds, retry=retry)
    state = tmp / "state.json"
    for silence in seeded:
        await FileStateStore(state).put(SILENCE, silence.key, silence.to_value(), etag=None)

    def clock() -> datetime:  # one clock for the simulator, the broker and the app
        return sim.now

    container = Container.from_connection(
        conn,
        # The real notifier: notes upserted on the simulator's records, the card to its Teams sink.
        settings=settings.model_copy(
            update={"state_file": state, "teams_webhook_url": SecretStr(sim.teams_webhook_url)}
        ),
        bus=ServiceBusMessageBus.from_connection_string(broker.connection_string),
        state=FileStateStore(state),
        clock=clock,
    )
    env = {SERVICEBUS_CONNECTION: broker.connection_string, "DIAG_SCHEDULE": settings.schedule}
    previous = use_container(container)
    host: _Host | None = None
    try:
        try:
            host = host_module.LocalFunctionsHost(
                function_app.app, env, clock=clock, idle=broker.idle, receive_wait=RECEIVE_WAIT
            )
        except ValueError as exc:  # HostConfigurationError: the app's bindings or settings
            raise ConfigError(f"the local Functions host cannot run function_app.app: {exc}") from None
        timer, daily_at = _timer(host)
        start = sim.now
        replay = Replay(
            str(options.fixture),
            sim.fixture.description,
            start,
            start,
            options.fault_rate,
            options.duplicate_rate,
            options.seed,
        )
        run = _Run(options, settings, sim, broker, host, timer, daily_at, conn, replay, silences=seeded)
        day = start.date()
        for index in range(options.days or MAX_DAYS):
            record = await run.day(day, first=index == 0)
            replay.days.append(record)
            if progress is not None:
                progress(record)
            day += timedelta(days=1)
            if options.days is None and not run.pending():
                break
        await run.finish()
        return replay
    finally:
        use_container(previous)
        # Indexing the app keeps state on it that makes the next get_functions() refuse: leave
        # the app as the replay found it, for whoever indexes it next in this process.
        function_app.app.functions_bindings = None
        # Closing an AMQP link waits for the broker's answer: close them all at once.
        closing = [container.aclose()] + ([host.aclose()] if host is not None else [])
        await asyncio.gather(*closing, return_exceptions=True)
