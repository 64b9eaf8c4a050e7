"""A local stand-in for the Azure Functions host: drives any `azure.functions.FunctionApp`'s
triggers as the host would (there is no Core Tools `func start` here).

- Service Bus queue triggers: messages are received with the real async azure-servicebus SDK in
  peek-lock mode and settled as the host does: `autoCompleteMessages` true → complete on success,
  abandon on an exception; false → the settlement the function asked for through
  `message_actions`, and without one (or on an exception) the lock is released (abandon). A
  settlement the function asked for is applied in either mode, even when it then raised (the real
  binding settles at once, over gRPC).
- Timer triggers: `fire_timer` calls the function with a real `TimerRequest`.
- HTTP triggers: `call_http` matches `/api/<route>` and calls it with a real `func.HttpRequest`.

The function receives an `azure.servicebus.ServiceBusReceivedMessage`, and, when it has a
parameter named `message_actions`, an object with the synchronous `complete`, `abandon` and
`deadletter` of `azurefunctions.extensions.bindings.servicebus.ServiceBusMessageActions`.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any
from urllib.parse import urlencode

import azure.functions as func
from azure.functions.timer import TimerRequest
from azure.servicebus import ServiceBusReceivedMessage
from azure.servicebus.aio import AutoLockRenewer, ServiceBusClient, ServiceBusReceiver
from azure.servicebus.exceptions import OperationTimeoutError, ServiceBusConnectionError

Clock = Callable[[], datetime]
IdleProbe = Callable[[str], bool]  # queue name → nothing due or locked there

MESSAGE_ACTIONS_PARAMETER = "message_actions"
_ROUTE_PREFIX = "api"
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}
_SETTING = re.compile(r"%([^%]+)%")
_ROUTE_PARAMETER = re.compile(r"\{(\*?)([A-Za-z_][A-Za-z0-9_]*)(?::[^}?]*)?(\?)?\}")


class HostConfigurationError(ValueError):
    """The app or its settings cannot be run by the local host: the message says what to fix."""


@dataclass
class FunctionStats:
    handled: int = 0
    completed: int = 0
    abandoned: int = 0
    dead_lettered: int = 0
    errors: list[str] = field(default_factory=list)  # one line each: "Type: message"

    def add(self, other: FunctionStats) -> None:
        self.handled += other.handled
        self.completed += other.completed
        self.abandoned += other.abandoned
        self.dead_lettered += other.dead_lettered
        self.errors.extend(other.errors)


@dataclass(frozen=True)
class _Function:
    name: str
    binding: Mapping[str, Any]  # the trigger binding, as the worker sends it to the host
    user_function: Callable[..., Any]

    @property
    def arg_name(self) -> str:
        return str(self.binding["name"])


@dataclass(frozen=True)
class _Route:
    function: _Function
    pattern: re.Pattern[str]
    methods: frozenset[str]  # empty: every method


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def _index(app: func.FunctionApp) -> list[_Function]:
    """The app's functions, read once. `get_functions()` keeps state and refuses a second call
    on the same app object (a test session may have called it already), so reset that state."""
    try:
        functions = app.get_functions()
    except ValueError:
        app.functions_bindings = None
        functions = app.get_functions()
    indexed = []
    for function in functions:
        trigger = next(
            json.loads(raw) for raw in function.get_raw_bindings() if "Trigger" in json.loads(raw)["type"]
        )
        indexed.append(_Function(function.get_function_name(), trigger, function.get_user_function()))
    return indexed


def _duration_seconds(text: str) -> float:
    """A host.json TimeSpan, `[d.]hh:mm:ss[.fff]`, in seconds."""
    try:
        hours, minutes, seconds = text.split(":")
        days, _, hours = hours.rpartition(".")
        return int(days or 0) * 86400 + int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    except ValueError:
        raise HostConfigurationError(f"host.json: {text!r} is not a duration like 00:05:00") from None


def _route_pattern(route: str) -> re.Pattern[str]:
    parts, last = [], 0
    for match in _ROUTE_PARAMETER.finditer(route):
        parts.append(re.escape(route[last : match.start()]))
        catch_all, name, optional = match.groups()
        parts.append(f"(?P<{name}>{'.*' if catch_all else '[^/]+'}){'?' if optional else ''}")
        last = match.end()
    parts.append(re.escape(route[last:]))
    return re.compile("".join(parts).strip("/"), re.IGNORECASE)


class _RecordingMessageActions:
    """What the function asked for. The real binding settles over gRPC at once; here the
    request is recorded and the host applies it with the SDK receiver after the function returns
    (the function calls synchronously, inside the event loop the receiver needs)."""

    def __init__(self, message: ServiceBusReceivedMessage) -> None:
        self._message = message
        self.requested: tuple[str, str | None, str | None] | None = None

    def _record(self, message: Any, action: str, reason: str | None, description: str | None) -> None:
        if message is not self._message and getattr(message, "lock_token", None) != self._message.lock_token:
            raise ValueError("message_actions can settle only the message this invocation received")
        if self.requested is not None:
            raise RuntimeError(f"the message is already settled ({self.requested[0]})")
        self.requested = (action, reason, description)

    def complete(self, message: Any) -> None:
        self._record(message, "complete", None, None)

    def abandon(self, message: Any) -> None:
        self._record(message, "abandon", None, None)

    def deadletter(
        self,
        message: Any,
        deadletter_reason: str | None = None,
        deadletter_error_description: str | None = None,
    ) -> None:
        self._record(message, "deadletter", deadletter_reason, deadletter_error_description)


@dataclass(frozen=True)
class _ServiceBusTrigger:
    function: _Function
    queue: str
    connection: str  # the app-setting prefix
    auto_complete: bool
    wants_actions: bool


class LocalFunctionsHost:
    def __init__(
        self,
        app: func.FunctionApp,
        env: Mapping[str, str],
        *,
        clock: Clock | None = None,
        max_concurrent_calls: int | None = None,
        idle: IdleProbe | None = None,
        receive_wait: float = 0.1,
        credential: Any = None,
        host_json: Mapping[str, Any] | None = None,
    ) -> None:
        """`idle(queue)` (e.g. `Broker.idle`) tells `drain` when a queue has nothing left; without
        it a receive round that gets nothing ends the drain. `credential` serves identity-based
        connections (`<connection>__fullyQualifiedNamespace`); DefaultAzureCredential by default.
        `host_json` (the app's parsed host.json) gives what the host takes from it: Service Bus
        `maxConcurrentCalls` (unless `max_concurrent_calls` is given; else 16) and
        `maxAutoLockRenewalDuration` (5 minutes by default, as Azure's), and the HTTP `routePrefix`."""
        extensions = (host_json or {}).get("extensions", {})
        service_bus, http = extensions.get("serviceBus", {}), extensions.get("http", {})
        max_calls = max_concurrent_calls or int(service_bus.get("maxConcurrentCalls", 16))
        if max_calls < 1:
            raise HostConfigurationError("max_concurrent_calls must be at least 1")
        self._env = dict(env)
        self._clock: Clock = clock or (lambda: datetime.now(UTC))
        self._max_calls = max_calls
        self._lock_renewal = _duration_seconds(str(service_bus.get("maxAutoLockRenewalDuration", "00:05:00")))
        self._route_prefix = str(http.get("routePrefix", _ROUTE_PREFIX)).strip("/")
        self._renewer: AutoLockRenewer | None = None
        self._idle = idle
        self._receive_wait = receive_wait
        self._credential = credential
        functions = _index(app)
        self._functions = {f.name: f for f in functions}
        self._triggers = [
            self._service_bus_trigger(f) for f in functions if f.binding["type"] == "serviceBusTrigger"
        ]
        self._timers = {f.name: f for f in functions if f.binding["type"] == "timerTrigger"}
        self._routes = [self._route(f) for f in functions if f.binding["type"] == "httpTrigger"]
        self._clients: dict[str, ServiceBusClient] = {}
        self._receivers: dict[str, ServiceBusReceiver] = {}
        self.stats: dict[str, FunctionStats] = {t.function.name: FunctionStats() for t in self._triggers}

    # -- indexing -----------------------------------------------------------------------------

    def _setting(self, name: str, needed_by: str) -> str:
        value = self._env.get(name)
        if not value:
            raise HostConfigurationError(f"app setting {name} is not set (needed by function {needed_by})")
        return value

    def _resolve(self, text: str, needed_by: str) -> str:
        return _SETTING.sub(lambda m: self._setting(m.group(1), needed_by), text)

    def _service_bus_trigger(self, function: _Function) -> _ServiceBusTrigger:
        binding = function.binding
        parameters = inspect.signature(function.user_function).parameters
        unknown = set(parameters) - {function.arg_name, MESSAGE_ACTIONS_PARAMETER}
        if unknown:
            raise HostConfigurationError(
                f"function {function.name} has parameters the local host cannot supply: {', '.join(sorted(unknown))}"
            )
        return _ServiceBusTrigger(
            function=function,
            queue=self._resolve(str(binding["queueName"]), function.name),
            connection=str(binding.get("connection") or "AzureWebJobsServiceBus"),
            auto_complete=bool(binding.get("autoCompleteMessages", True)),
            wants_actions=MESSAGE_ACTIONS_PARAMETER in parameters,
        )

    @staticmethod
    def _route(function: _Function) -> _Route:
        route = str(function.binding.get("route") or function.name)
        methods = frozenset(str(m).upper() for m in function.binding.get("methods") or ())
        return _Route(function, _route_pattern(route), methods)

    # -- introspection ------------------------------------------------------------------------

    @property
    def service_bus_functions(self) -> dict[str, str]:
        """Function name → the queue its trigger listens on."""
        return {t.function.name: t.queue for t in self._triggers}

    @property
    def timer_schedules(self) -> dict[str, str]:
        """Function name → its NCRONTAB schedule, with `%SETTING%` resolved from the env."""
        return {name: self._resolve(str(f.binding["schedule"]), name) for name, f in self._timers.items()}

    # -- Service Bus --------------------------------------------------------------------------

    def _client(self, trigger: _ServiceBusTrigger) -> ServiceBusClient:
        client = self._clients.get(trigger.connection)
        if client is None:
            conn = self._env.get(trigger.connection)
            namespace = self._env.get(f"{trigger.connection}__fullyQualifiedNamespace")
            if conn:
                client = ServiceBusClient.from_connection_string(conn)
            elif namespace:
                # A loopback namespace is the local broker, which speaks plain AMQP (no TLS).
                local = namespace.rsplit(":", 1)[0].strip("[]") in _LOOPBACK
                client = ServiceBusClient(namespace, self._identity(), use_tls=not local)
            else:
                raise HostConfigurationError(
                    f"app setting {trigger.connection} (a connection string) or "
                    f"{trigger.connection}__fullyQualifiedNamespace is not set "
                    f"(needed by function {trigger.function.name})"
                )
            self._clients[trigger.connection] = client
        return client

    def _identity(self) -> Any:
        if self._credential is None:
            from azure.identity.aio import DefaultAzureCredential  # noqa: PLC0415 - only when used

            self._credential = DefaultAzureCredential()
        return self._credential

    async def _receiver(self, trigger: _ServiceBusTrigger) -> ServiceBusReceiver:
        # Kept open across rounds and drains: opening a link costs about half a second in the SDK.
        receiver = self._receivers.get(trigger.function.name)
        if receiver is None:
            if self._renewer is None:  # as the host: locks renewed while a function runs
                self._renewer = AutoLockRenewer(max_lock_renewal_duration=self._lock_renewal)
            receiver = self._client(trigger).get_queue_receiver(
                trigger.queue, auto_lock_renewer=self._renewer
            )
            # Opened here: a receive with the short round wait would time out opening the link.
            await receiver.__aenter__()
            self._receivers[trigger.function.name] = receiver
        return receiver

    async def drain(self, *, give_up_after: float = 120.0) -> dict[str, FunctionStats]:
        """Deliver messages to the Service Bus functions until every trigger queue is idle.
        Returns what this drain did per function (also added to `stats`)."""
        drained = {t.function.name: FunctionStats() for t in self._triggers}
        deadline = time.monotonic() + give_up_after
        while True:
            busy = [t for t in self._triggers if self._idle is None or not self._idle(t.queue)]
            if not busy:
                return drained
            handled = await asyncio.gather(*(self._round(t, drained[t.function.name]) for t in busy))
            if self._idle is None and not any(handled):
                return drained
            if time.monotonic() > deadline:
                queues = ", ".join(sorted({t.queue for t in busy}))
                raise TimeoutError(
                    f"the queues {queues} were not idle after {give_up_after:.0f} s of delivering"
                )

    async def _round(self, trigger: _ServiceBusTrigger, stats: FunctionStats) -> int:
        receiver = await self._receiver(trigger)
        try:
            messages = await receiver.receive_messages(
                max_message_count=self._max_calls, max_wait_time=self._receive_wait
            )
        except (OperationTimeoutError, ServiceBusConnectionError):
            # A link or connection lost while the process was busy elsewhere (a long check holds
            # the event loop, so the SDK cannot answer the broker) is re-opened inside the round's
            # short wait, which a loaded CPU does not always allow: open the receiver again next
            # round with the SDK's own time, as the host's receive loop keeps going. The drain's
            # deadline still bounds the retries.
            self._receivers.pop(trigger.function.name, None)
            with contextlib.suppress(Exception):
                await receiver.close()
            return 0
        outcomes = await asyncio.gather(*(self._invoke(trigger, receiver, m) for m in messages))
        for outcome in outcomes:
            stats.add(outcome)
            self.stats[trigger.function.name].add(outcome)
        return len(messages)

    async def _invoke(
        self,
        trigger: _ServiceBusTrigger,
        receiver: ServiceBusReceiver,
        message: ServiceBusReceivedMessage,
    ) -> FunctionStats:
        stats = FunctionStats()
        actions = _RecordingMessageActions(message)
        kwargs: dict[str, Any] = {trigger.function.arg_name: message}
        if trigger.wants_actions:
            kwargs[MESSAGE_ACTIONS_PARAMETER] = actions
        stats.handled += 1
        failed = False
        try:
            await _call(trigger.function.user_function, kwargs)
        except Exception as exc:  # the host catches everything a function raises
            failed = True
            stats.errors.append(_one_line(exc))
        action, reason, description = actions.requested or (
            ("abandon" if failed or not trigger.auto_complete else "complete"),
            None,
            None,
        )
        try:
            if action == "complete":
                await receiver.complete_message(message)
                stats.completed += 1
            elif action == "deadletter":
                await receiver.dead_letter_message(message, reason=reason, error_description=description)
                stats.dead_lettered += 1
            else:
                await receiver.abandon_message(message)
                stats.abandoned += 1
        except Exception as exc:  # e.g. the lock was lost: the broker redelivers
            stats.errors.append(f"settling ({action}) failed: {_one_line(exc)}")
        return stats

    # -- timers and HTTP ----------------------------------------------------------------------

    async def fire_timer(self, function_name: str, *, past_due: bool = False) -> Any:
        function = self._timers.get(function_name)
        if function is None:
            known = ", ".join(sorted(self._timers)) or "none"
            raise HostConfigurationError(f"no timer function {function_name!r} (timer functions: {known})")
        now = self._clock()
        request = TimerRequest(
            past_due=past_due,
            schedule_status={"Last": None, "Next": None, "LastUpdated": now.isoformat()},
            schedule={"AdjustForDST": True},
        )
        return await _call(function.user_function, {function.arg_name: request})

    async def call_http(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> func.HttpResponse:
        method = method.upper()
        relative = path.split("?", 1)[0].strip("/")
        prefix = self._route_prefix + "/" if self._route_prefix else ""
        if not relative.lower().startswith(prefix.lower()):
            return func.HttpResponse(f"no function at {path}", status_code=404)
        relative = relative[len(prefix) :]
        for route in self._routes:
            match = route.pattern.fullmatch(relative)
            if match is None or (route.methods and method not in route.methods):
                continue
            route_params = {k: v for k, v in match.groupdict().items() if v is not None}
            query = f"?{urlencode(params)}" if params else ""
            request = func.HttpRequest(
                method,
                f"http://127.0.0.1:7071/{prefix}{relative}{query}",
                headers=dict(headers or {}),
                params=dict(params or {}),
                route_params=route_params,
                body=body,
            )
            function = route.function
            try:
                response = await _call(function.user_function, {function.arg_name: request})
            except Exception as exc:  # as the host: the caller sees a 500, the log the reason
                return func.HttpResponse(
                    f"function {function.name} failed: {_one_line(exc)}", status_code=500
                )
            if not isinstance(response, func.HttpResponse):
                return func.HttpResponse(
                    f"function {function.name} returned no HttpResponse", status_code=500
                )
            return response
        return func.HttpResponse(f"no function for {method} {path}", status_code=404)

    # -- lifecycle ----------------------------------------------------------------------------

    async def aclose(self) -> None:
        receivers, clients = list(self._receivers.values()), list(self._clients.values())
        self._receivers.clear()
        self._clients.clear()
        if self._renewer is not None:
            await self._renewer.close()
            self._renewer = None
        # Side by side: the SDK spends about a second closing each receiver.
        await asyncio.gather(*(receiver.close() for receiver in receivers))
        await asyncio.gather(*(client.close() for client in clients))
        close = getattr(self._credential, "close", None)
        if close is not None and inspect.iscoroutinefunction(close):
            await close()

    async def __aenter__(self) -> LocalFunctionsHost:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


async def _call(function: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
    """Async functions run on the loop; sync ones in a worker thread, as the Python worker does."""
    if inspect.iscoroutinefunction(function):
        coroutine: Awaitable[Any] = function(**kwargs)
        return await coroutine
    return await asyncio.to_thread(function, **kwargs)
