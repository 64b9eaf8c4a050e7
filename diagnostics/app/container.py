"""The per-worker container: every client and store the use cases need, built once and shared by
the Service Bus handlers, the timer and the HTTP triggers of one worker process.

`get_container()` builds it lazily from the settings on first use; `use_container()` installs
another one (the replay and the tests build theirs from already-built adapters with
`Container.from_connection`). Nothing here decides anything: it only wires.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from diagnostics.access import missing_write_privileges
from diagnostics.adapters.dataverse import DataverseClient
from diagnostics.adapters.http import RequestCounter, RequestRecord
from diagnostics.adapters.partner_center import PartnerCenterClient
from diagnostics.adapters.servicebus import ServiceBusMessageBus
from diagnostics.adapters.state_file import FileStateStore
from diagnostics.adapters.state_table import TableStateStore
from diagnostics.adapters.teams import TeamsWebhook
from diagnostics.app.notify import MonitorNotifier, NoteWriter
from diagnostics.errors import ConfigError
from diagnostics.lifecycle import AlertSettings
from diagnostics.ports import Clock, MessageBus, Notifier, OutgoingMessage, StateStore
from diagnostics.schema import SchemaMap
from diagnostics.service import Connection, Verification, build_clients
from diagnostics.service import _verify as verify_with  # the one verification scan also runs
from diagnostics.settings import Settings, Thresholds, load_settings

log = logging.getLogger("diagnostics.app")


def utc_now() -> datetime:
    return datetime.now(UTC)


# --- requests per unit of work ---------------------------------------------------------------

_TALLY: ContextVar[RequestCounter | None] = ContextVar("diagnostics_request_tally", default=None)


def _count_request(record: RequestRecord) -> None:
    """The clients' request hook: counts into the tally of the unit of work running now."""
    tally = _TALLY.get()
    if tally is not None:
        tally(record)


@contextlib.contextmanager
def counting_requests() -> Iterator[RequestCounter]:
    """Counts the requests made inside the block (tasks started inside it included), even while
    other messages are handled concurrently on the same clients."""
    counter = RequestCounter()
    token = _TALLY.set(counter)
    try:
        yield counter
    finally:
        _TALLY.reset(token)


# --- the verified schema, cached --------------------------------------------------------------


class SchemaCache:
    """The schema map verified against the environment's metadata, read again after `ttl` seconds.

    Metadata is the costliest read of a diagnosis (a table listing and a `$batch`); a worker that
    handles hundreds of messages a day reads it once an hour instead of once a message.
    """

    def __init__(
        self,
        dataverse: DataverseClient,
        schema_map: SchemaMap,
        ttl: float,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        autofix: tuple[bool, bool] = (False, False),
    ) -> None:
        self.schema_map = schema_map
        # (DIAG_AUTOFIX_MAP_ACCOUNTS, DIAG_AUTOFIX_REIMPORT): their privileges are named at start too
        self.autofix = autofix
        self._dataverse = dataverse
        self._ttl = ttl
        self._monotonic = monotonic
        self._value: Verification | None = None
        self._read_at = 0.0
        self._lock = asyncio.Lock()

    async def get(self) -> Verification:
        async with self._lock:  # one metadata read when many messages arrive on a cold worker
            if self._value is None or self._monotonic() - self._read_at >= self._ttl:
                self._value = await verify_with(self._dataverse, self.schema_map)
                self._read_at = self._monotonic()
                _report_write_privileges(self._value, self.schema_map, self.autofix)
            return self._value

    def invalidate(self) -> None:
        self._value = None


def _report_write_privileges(
    verification: Verification, schema_map: SchemaMap, autofix: tuple[bool, bool]
) -> None:
    """Name the privileges the notes (and the auto-fixes that are on) need and the identity lacks
    when the worker first reads the environment (and at each refresh), rather than as dead letters
    when notes are refused."""
    map_accounts, reimport = autofix
    line = missing_write_privileges(
        verification.privileges, schema_map, notes=True, map_accounts=map_accounts, reimport=reimport
    ).line
    if line is not None:
        log.error("%s", line)


# --- a bus that is not configured -------------------------------------------------------------


class UnconfiguredBus:
    """Stands in when neither Service Bus setting is given: the HTTP diagnosis still works, and
    whatever needs the bus fails with a line naming the setting."""

    def _fail(self) -> ConfigError:
        return ConfigError(
            "setting DIAG_SERVICEBUS: Service Bus is not configured; set DIAG_SERVICEBUS (a connection "
            "string) or DIAG_SERVICEBUS__fullyQualifiedNamespace (the app's identity)"
        )

    async def send(self, queue: str, messages: Sequence[OutgoingMessage]) -> None:
        raise self._fail()

    async def schedule(self, queue: str, message: OutgoingMessage, at: datetime) -> int:
        raise self._fail()

    async def cancel(self, queue: str, sequence_numbers: Sequence[int]) -> None:
        raise self._fail()


# --- the container ----------------------------------------------------------------------------


@dataclass
class Container:
    settings: Settings
    thresholds: Thresholds
    clock: Clock
    dataverse: DataverseClient
    partner_center: PartnerCenterClient | None
    bus: MessageBus
    state: StateStore
    notifier: Notifier
    schema: SchemaCache
    # Closed in this order by `aclose` (clients the container built, the bus it was given).
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    @classmethod
    def from_connection(
        cls,
        connection: Connection,
        *,
        settings: Settings,
        bus: MessageBus,
        state: StateStore,
        notifier: Notifier | None = None,
        clock: Clock = utc_now,
    ) -> Container:
        """Builds the Dataverse and Partner Center clients from `connection` (a real environment,
        or `simulator.connect.connection(sim)`), capped at `settings.dataverse_max_concurrency`
        concurrent Dataverse requests, and takes the other adapters as they are."""

        def hook(record: RequestRecord) -> None:
            connection.requests(record)
            _count_request(record)

        dataverse, partner_center = build_clients(
            connection, hook, max_concurrency=settings.dataverse_max_concurrency
        )
        closers: list[Callable[[], Awaitable[None]]] = [dataverse.aclose]
        if partner_center is not None:
            closers.append(partner_center.aclose)
        for adapter in (bus, state):
            closing = getattr(adapter, "aclose", None)
            if closing is not None:
                closers.append(closing)
        schema = SchemaCache(
            dataverse,
            connection.schema_map,
            settings.schema_cache_seconds,
            autofix=(settings.autofix_map_accounts, settings.autofix_reimport),
        )
        if notifier is None:
            # The living note on each subject's record; Teams posts when the webhook is set.
            teams = None
            if settings.teams_webhook_url is not None:
                teams = TeamsWebhook(
                    settings.teams_webhook_url.get_secret_value(),
                    verify=connection.verify,
                    retry=connection.retry,
                    on_request=hook,
                )
                closers.append(teams.aclose)
            notifier = MonitorNotifier(
                state,
                notes=NoteWriter(dataverse, schema),
                teams=teams,
                dataverse_url=connection.dataverse_url,
                settings=AlertSettings(repeat_days=settings.teams_repeat_days),
            )
        return cls(
            settings=settings,
            thresholds=connection.thresholds,
            clock=clock,
            dataverse=dataverse,
            partner_center=partner_center,
            bus=bus,
            state=state,
            notifier=notifier,
            schema=schema,
            closers=closers,
        )

    @property
    def schema_source(self) -> str:
        return self.schema.schema_map.source

    async def aclose(self) -> None:
        closers, self.closers = self.closers, []
        for close in closers:
            with contextlib.suppress(Exception):  # closing must not hide why we are closing
                await close()


def bus_from_settings(settings: Settings) -> MessageBus:
    if settings.servicebus is not None:
        return ServiceBusMessageBus.from_connection_string(settings.servicebus.get_secret_value())
    if settings.servicebus_namespace:
        from azure.identity import (  # noqa: PLC0415  (slow import, only in Azure)
            DefaultAzureCredential,
            ManagedIdentityCredential,
        )

        credential = (
            ManagedIdentityCredential(client_id=settings.servicebus_client_id)
            if settings.servicebus_client_id
            else DefaultAzureCredential()
        )
        return ServiceBusMessageBus.from_namespace(settings.servicebus_namespace, credential)
    return UnconfiguredBus()


def default_state_file() -> Path:
    return Path(tempfile.gettempdir()) / "work365-diagnostics-state.json"


def state_store(settings: Settings) -> StateStore:
    """Table Storage when the app's storage account is configured (always, in Azure), else a local
    file (the command line, the replay); DIAG_STATE_FILE, when set, always means the file."""
    if settings.state_file is not None:
        return FileStateStore(settings.state_file)
    if settings.storage_connection is not None:
        return TableStateStore.from_connection_string(
            settings.storage_connection.get_secret_value(), settings.state_table
        )
    if settings.storage_table_uri or settings.storage_account_name:
        from azure.identity import (  # noqa: PLC0415  (slow import, only in Azure)
            DefaultAzureCredential,
            ManagedIdentityCredential,
        )

        endpoint = (
            settings.storage_table_uri or f"https://{settings.storage_account_name}.table.core.windows.net"
        )
        credential = (
            ManagedIdentityCredential(client_id=settings.storage_client_id)
            if settings.storage_client_id or settings.storage_credential
            else DefaultAzureCredential()
        )
        return TableStateStore.from_endpoint(endpoint, credential, settings.state_table)
    return FileStateStore(default_state_file())


def build_container(settings: Settings) -> Container:
    """The container of a worker in Azure or under `func start`, from the settings alone."""
    from diagnostics.connect import real_connection  # noqa: PLC0415  (imports azure.identity)

    return Container.from_connection(
        real_connection(settings, None, None),
        settings=settings,
        bus=bus_from_settings(settings),
        state=state_store(settings),
    )


class _Slot:
    current: Container | None = None


def get_container() -> Container:
    """This worker's container, built on first use (ConfigError names a bad setting; nothing is
    kept, so the next call tries again)."""
    if _Slot.current is None:
        _Slot.current = build_container(load_settings())
        atexit.register(_close_at_exit, _Slot.current)
    return _Slot.current


def use_container(container: Container | None) -> Container | None:
    """Install `container` (None: build from the settings on next use); returns the one before."""
    previous, _Slot.current = _Slot.current, container
    return previous


def _close_at_exit(container: Container) -> None:
    # The Functions worker has no shutdown hook in the v2 model; at exit, close what can be closed
    # within a few seconds (AMQP links, HTTP connections) and never hang the exit.
    with contextlib.suppress(Exception):
        asyncio.run(asyncio.wait_for(container.aclose(), 5))
