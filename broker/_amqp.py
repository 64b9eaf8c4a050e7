"""The AMQP 1.0 server: python-qpid-proton, in one daemon thread. All proton specifics live here.

What azure-servicebus 7.15 expects (learnt from its pyamqp code and frame traces):
- SASL ANONYMOUS, then CBS `put-token` on `$cbs` (accepted and recorded, or refused with 401 when
  `Broker.refused` is set), even in emulator mode;
- entity links addressed by full URI (`amqps://host:port/queue`), management on `queue/$management`
  with `operation` / `statusCode` / `statusDescription`;
- a sent message settled at once; a peek-lock settlement echoed with the same outcome and settled;
- the lock token is the delivery tag (UUID bytes_le).
"""

from __future__ import annotations

import functools
import logging
import socket
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import proton
from proton import Condition, Delivery, Endpoint, Link
from proton.handlers import Handshaker
from proton.reactor import Container

from broker import _codec
from broker.queues import LockLostError, MessageQueue

if TYPE_CHECKING:
    from broker._broker import Broker

_log = logging.getLogger(__name__)


class _PeerGoneFilter(logging.Filter):
    """Proton logs an ERROR when a client closed its socket before the broker's last write (every
    SDK close does that); for a loopback test broker that is not an error worth a line."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        gone = ("BrokenPipeError", "ConnectionResetError")
        return not (text.startswith(("Couldn't send", "Couldn't recv")) and any(g in text for g in gone))


logging.getLogger("proton").addFilter(_PeerGoneFilter())

_TICK_SECONDS = 0.05  # scheduled messages, lock expiry, a moved simulated clock, stop requests
_CREDIT = 200
_LOCK_LOST = "com.microsoft:message-lock-lost"
_MGMT = "$management"


_Handler = Callable[["_Server", proton.Event], None]


def _guarded(handler: _Handler) -> _Handler:
    """A bug or an unexpected frame must not kill the broker's thread (every client would then
    hang until its timeout): log it, keep it for `Broker.errors()`, and refuse the delivery."""

    @functools.wraps(handler)
    def run(server: _Server, event: proton.Event) -> None:
        try:
            handler(server, event)
        except Exception as exc:
            _log.exception("the local Service Bus broker failed in %s", handler.__name__)
            server._broker._record_error(f"{handler.__name__}: {type(exc).__name__}: {exc}")
            delivery = event.delivery
            if delivery is not None and not delivery.settled:
                delivery.local.condition = Condition(
                    "amqp:internal-error", str(exc), {proton.symbol("error"): type(exc).__name__}
                )
                delivery.update(Delivery.REJECTED)
                delivery.settle()

    return run


def free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def entity_path(address: str | None) -> str:
    """`amqps://127.0.0.1:5672/orders/$management` → `orders/$management` (lower case: Azure's
    entity names are case-insensitive)."""
    if not address:
        return ""
    path = urlsplit(address).path if "://" in address else address
    return path.strip("/").lower()


def _key(mapping: Any, name: str) -> Any:
    """A value from a map whose keys may have come as strings, symbols or bytes."""
    if not isinstance(mapping, dict):
        return None
    for candidate in (name, proton.symbol(name), name.encode()):
        if candidate in mapping:
            return mapping[candidate]
    return None


def _elements(value: Any) -> list[Any]:
    if isinstance(value, proton.Array):
        return list(value.elements)
    return list(value or [])


def _not_found(path: str) -> Condition:
    # With an info map: the SDK's sender reads the error as a 3-element list.
    return Condition(
        "amqp:not-found",
        f"The messaging entity '{path}' could not be found on this local broker.",
        {proton.symbol("entity"): path},
    )


def _wall_time(deadline: float, mono: float) -> datetime:
    """A monotonic deadline as a wall-clock moment."""
    return datetime.now(UTC) + timedelta(seconds=max(0.0, deadline - mono))


def _as_uuid(value: Any) -> uuid.UUID | None:
    if isinstance(value, uuid.UUID):
        return value
    try:
        return (
            uuid.UUID(bytes_le=bytes(value))
            if isinstance(value, bytes | memoryview)
            else uuid.UUID(str(value))
        )
    except ValueError:
        return None


class _Server(Handshaker):
    def __init__(self, broker: Broker, host: str, port: int, ready: threading.Event) -> None:
        super().__init__()
        self._broker = broker
        self._host = host
        self._port = port
        self._ready = ready
        self._stop = threading.Event()
        self._acceptor: Any = None
        self._connections: set[proton.Connection] = set()

    # -- reactor lifecycle --------------------------------------------------------------------

    def on_reactor_init(self, event: proton.Event) -> None:
        self._acceptor = event.container.listen(f"{self._host}:{self._port}")
        event.container.schedule(_TICK_SECONDS, self)
        self._ready.set()

    def request_stop(self) -> None:
        self._stop.set()

    @_guarded
    def on_timer_task(self, event: proton.Event) -> None:
        if self._stop.is_set():
            self._acceptor.close()
            for connection in list(self._connections):
                connection.close()
                if connection.transport is not None:
                    connection.transport.close_tail()
                    connection.transport.close_head()
            event.container.stop()
            return
        self._pump_all()
        event.container.schedule(_TICK_SECONDS, self)

    # -- endpoints ----------------------------------------------------------------------------

    def on_connection_remote_open(self, event: proton.Event) -> None:
        self._connections.add(event.connection)
        super().on_connection_remote_open(event)

    def on_connection_remote_close(self, event: proton.Event) -> None:
        self._connections.discard(event.connection)
        super().on_connection_remote_close(event)

    def on_transport_closed(self, event: proton.Event) -> None:
        if event.connection is not None:
            self._connections.discard(event.connection)

    @_guarded
    def on_link_remote_open(self, event: proton.Event) -> None:
        link: Link = event.link
        if not link.state & Endpoint.LOCAL_UNINIT:
            return
        link.source.copy(link.remote_source)
        link.target.copy(link.remote_target)
        link.rcv_settle_mode = link.remote_rcv_settle_mode
        link.snd_settle_mode = link.remote_snd_settle_mode
        link.open()
        if link.is_receiver:
            # A sender to an unknown queue gets each message rejected with amqp:not-found: the SDK
            # raises MessagingEntityNotFoundError at once. (Detaching instead races the SDK's
            # first transfer and surfaces as a retried "unknown error".)
            link.flow(_CREDIT)
            return
        path = entity_path(link.remote_source.address)
        # (management links to an unknown queue stay open: each request gets a 404 not-found)
        if path != "$cbs" and not path.endswith("/" + _MGMT) and self._queue_for(path) is None:
            link.condition = _not_found(path)
            link.close()

    @_guarded
    def on_link_flow(self, event: proton.Event) -> None:
        link = event.link
        if link.is_sender:
            self._pump(link)

    # -- deliveries ---------------------------------------------------------------------------

    @_guarded
    def on_delivery(self, event: proton.Event) -> None:
        delivery: Delivery = event.delivery
        link = delivery.link
        if link.is_receiver:
            if delivery.readable and not delivery.partial:
                payload = bytes(link.recv(delivery.pending) or b"")
                link.advance()
                self._on_incoming(link, delivery, payload)
        elif delivery.updated:
            self._on_settlement(delivery)

    def _on_incoming(self, link: Link, delivery: Delivery, payload: bytes) -> None:
        path = entity_path(link.remote_target.address)
        try:
            if path == "$cbs":
                self._reply(link, self._cbs(payload))
            elif path.endswith("/" + _MGMT):
                self._reply(link, self._management(path.rsplit("/", 1)[0], payload))
            else:
                queue = self._queue_for(path)
                if queue is None:
                    delivery.local.condition = _not_found(path)
                    delivery.update(Delivery.REJECTED)
                    delivery.settle()
                    return
                self._broker._send_payloads(queue, _codec.split_transfer(payload))
                self._pump_all()
            delivery.update(Delivery.ACCEPTED)
        except _codec.MalformedMessage as exc:
            delivery.local.condition = Condition(
                "amqp:decode-error", str(exc), {proton.symbol("error"): str(exc)}
            )
            delivery.update(Delivery.REJECTED)
        delivery.settle()
        if link.credit < _CREDIT // 2:
            link.flow(_CREDIT - link.credit)

    def _on_settlement(self, delivery: Delivery) -> None:
        # Proton cannot read back a binary delivery tag (it decodes it as UTF-8), so the queue and
        # lock token ride on the delivery's own attributes, set when it was sent.
        locked: tuple[MessageQueue, uuid.UUID] | None = getattr(delivery, "lock", None)
        state = delivery.remote_state
        if locked is None:
            delivery.settle()
            return
        queue, token = locked
        remote = delivery.remote
        try:
            with self._broker._lock:
                mono = time.monotonic()
                if state == Delivery.ACCEPTED:
                    queue.complete(token, mono)
                elif state == Delivery.REJECTED:
                    condition = remote.condition
                    info = condition.info if condition is not None else None
                    reason = _key(info, "DeadLetterReason")
                    description = _key(info, "DeadLetterErrorDescription")
                    if description is None and condition is not None:
                        description = condition.description
                    queue.dead_letter(token, mono, reason, description)
                elif state == Delivery.RELEASED:
                    queue.abandon(token, mono, count_delivery=False)
                elif state == Delivery.MODIFIED:
                    # modified(undeliverable-here) is defer, which this broker does not offer:
                    # the message goes back like an abandon, so nothing is lost.
                    queue.abandon(token, mono, count_delivery=remote.failed or remote.undeliverable)
            if not delivery.settled:
                if state == Delivery.MODIFIED:
                    delivery.local.failed = remote.failed
                    delivery.local.undeliverable = remote.undeliverable
                delivery.update(state)
        except LockLostError as exc:
            if not delivery.settled:
                delivery.local.condition = Condition(_LOCK_LOST, str(exc))
                delivery.update(Delivery.REJECTED)
        delivery.settle()
        self._pump_all()

    # -- sending to receivers -----------------------------------------------------------------

    def _pump_all(self) -> None:
        for connection in list(self._connections):
            link = connection.link_head(Endpoint.LOCAL_ACTIVE | Endpoint.REMOTE_ACTIVE)
            while link is not None:
                if link.is_sender and link.credit > 0:
                    self._pump(link)
                link = link.next(Endpoint.LOCAL_ACTIVE | Endpoint.REMOTE_ACTIVE)

    def _pump(self, link: Link) -> None:
        path = entity_path(link.remote_source.address)
        if path == "$cbs" or path.endswith("/" + _MGMT):
            return
        queue = self._queue_for(path)
        if queue is None:
            return
        settled_on_send = link.remote_snd_settle_mode == Link.SND_SETTLED  # receive-and-delete
        while link.credit > 0 and (taken := self._take(queue, settled_on_send)) is not None:
            token, payload = taken
            delivery = link.delivery(token.bytes_le)
            link.send(payload)
            link.advance()
            if settled_on_send:
                delivery.settle()
            else:
                delivery.lock = (queue, token)
        if link.drain_mode and link.credit > 0:
            link.drained()

    def _take(self, queue: MessageQueue, settled_on_send: bool) -> tuple[uuid.UUID, bytes] | None:
        """The next message for a receiver: its delivery tag (the lock token) and bytes."""
        with self._broker._lock:
            now, mono = self._broker._now(), time.monotonic()
            if settled_on_send:
                message = queue.receive_and_delete(now, mono)
                return None if message is None else (uuid.uuid4(), _codec.render(message))
            message = queue.receive(now, mono)
            if message is None or message.lock_token is None:
                return None
            # The SDK compares locked-until with the real wall clock: real time here.
            locked_until = _wall_time(message.lock_expires, mono)
            return message.lock_token, _codec.render(message, locked_until=locked_until)

    # -- request/response nodes ---------------------------------------------------------------

    def _reply(self, request_link: Link, response: proton.Message | None) -> None:
        if response is None:
            return
        reply_to = response.address
        response.address = None
        connection = request_link.connection
        node = entity_path(request_link.remote_target.address)
        # The sender link of this node on the same connection, preferably the one to `reply_to`.
        reply_link = None
        link = connection.link_head(Endpoint.LOCAL_ACTIVE)
        while link is not None:
            if link.is_sender and entity_path(link.remote_source.address) == node:
                if reply_to and link.remote_target.address == reply_to:
                    reply_link = link
                    break
                reply_link = reply_link or link
            link = link.next(Endpoint.LOCAL_ACTIVE)
        if reply_link is None:
            _log.warning("no reply link for %s on this connection; the reply is dropped", node)
            return
        reply_link.delivery(uuid.uuid4().bytes)
        reply_link.send(bytes(response.encode()))
        reply_link.advance()

    def _cbs(self, payload: bytes) -> proton.Message:
        request = proton.Message()
        request.decode(payload)
        props = request.properties or {}
        body = _codec._plain(request.body)
        token = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)
        self._broker._record_token(str(_key(props, "name")), token)
        refused = self._broker.refused
        return proton.Message(
            address=request.reply_to,
            correlation_id=request.id,
            properties={"status-code": 202, "status-description": "Accepted"}
            if refused is None
            else {"status-code": 401, "status-description": refused},
        )

    def _management(self, path: str, payload: bytes) -> proton.Message:
        request = proton.Message()
        request.decode(payload)
        operation = str(_key(request.properties or {}, "operation") or "")
        queue = self._queue_for(path)
        handler = _OPERATIONS.get(operation)
        condition: str | None = None
        body: Any = None
        if queue is None:
            status, condition = 404, "amqp:not-found"
            description = f"The messaging entity '{path}' could not be found on this local broker."
        elif handler is None:
            status, description = 501, f"not implemented: {operation}"
        else:
            try:
                status, description, body = handler(self, queue, request.body)
            except LockLostError as exc:
                status, description, condition = 410, str(exc), _LOCK_LOST
            except (_codec.MalformedMessage, TypeError, ValueError, KeyError) as exc:
                status, description = 400, f"bad request: {exc}"
        properties: dict[str, Any] = {"statusCode": status, "statusDescription": description}
        if condition is not None:  # the SDK maps it to its exception (not found, lock lost)
            properties["errorCondition"] = proton.symbol(condition)
        return proton.Message(
            address=request.reply_to, correlation_id=request.id, properties=properties, body=body
        )

    def _queue_for(self, path: str) -> MessageQueue | None:
        return self._broker._queue_for_path(path)

    # -- management operations ----------------------------------------------------------------

    def _op_schedule(self, queue: MessageQueue, body: Any) -> tuple[int, str, Any]:
        numbers = []
        for item in _elements(_key(body, "messages")):
            envelope = _codec.envelope_of(bytes(_key(item, "message")))
            numbers.append(self._broker._schedule(queue, envelope))
        self._pump_all()
        return 200, "OK", {"sequence-numbers": proton.Array(proton.UNDESCRIBED, proton.Data.LONG, *numbers)}

    def _op_cancel(self, queue: MessageQueue, body: Any) -> tuple[int, str, Any]:
        numbers = [int(n) for n in _elements(_key(body, "sequence-numbers"))]
        with self._broker._lock:
            queue.cancel(numbers, self._broker._now(), time.monotonic())
        return 200, "OK", {}

    def _op_peek(self, queue: MessageQueue, body: Any) -> tuple[int, str, Any]:
        start = int(_key(body, "from-sequence-number") or 0)
        count = int(_key(body, "message-count") or 1)
        with self._broker._lock:
            now = self._broker._now()
            found = queue.peek(start, count, now, time.monotonic())
            rendered = [
                _codec.render(m, extra_annotations={_codec.MESSAGE_STATE: 2 if m.due > now else 0})
                for m in found
            ]
        if not rendered:
            return 204, "No messages", None
        return 200, "OK", {"messages": [{"message": payload} for payload in rendered]}

    def _op_renew_lock(self, queue: MessageQueue, body: Any) -> tuple[int, str, Any]:
        expirations = []
        with self._broker._lock:
            for raw in _elements(_key(body, "lock-tokens")):
                token = _as_uuid(raw)
                if token is None:
                    raise ValueError("a lock token is not a UUID")
                mono = time.monotonic()
                expirations.append(_codec.to_timestamp(_wall_time(queue.renew_lock(token, mono), mono)))
        return (
            200,
            "OK",
            {"expirations": proton.Array(proton.UNDESCRIBED, proton.Data.TIMESTAMP, *expirations)},
        )

    def _op_update_disposition(self, queue: MessageQueue, body: Any) -> tuple[int, str, Any]:
        status = str(_key(body, "disposition-status"))
        with self._broker._lock:
            for raw in _elements(_key(body, "lock-tokens")):
                token = _as_uuid(raw)
                if token is None:
                    raise ValueError("a lock token is not a UUID")
                mono = time.monotonic()
                if status == "completed":
                    queue.complete(token, mono)
                elif status == "suspended":
                    reason = _key(body, "deadletter-reason")
                    description = _key(body, "deadletter-description")
                    queue.dead_letter(token, mono, reason, description)
                else:  # abandoned; defered is not offered and goes back like an abandon
                    queue.abandon(token, mono)
        self._pump_all()
        return 200, "OK", {}


_OPERATIONS: dict[str, Callable[[_Server, MessageQueue, Any], tuple[int, str, Any]]] = {
    "com.microsoft:schedule-message": _Server._op_schedule,
    "com.microsoft:cancel-scheduled-message": _Server._op_cancel,
    "com.microsoft:peek-message": _Server._op_peek,
    "com.microsoft:renew-lock": _Server._op_renew_lock,
    "com.microsoft:update-disposition": _Server._op_update_disposition,
}


class AmqpServer:
    """Runs `_Server` in a daemon thread on a free loopback port."""

    def __init__(self, broker: Broker, host: str = "127.0.0.1") -> None:
        self._broker = broker
        self.host = host
        self.port = 0
        self._thread: threading.Thread | None = None
        self._server: _Server | None = None
        self._error: BaseException | None = None

    def start(self, timeout: float = 5.0) -> None:
        # The free port is found before proton listens on it; another process may take it in
        # between, so try a few.
        for _ in range(3):
            self._error = None
            if self._start_once(timeout) or not isinstance(self._error, OSError | proton.ProtonException):
                break
        if self._error is not None or self._thread is None:
            raise RuntimeError(
                f"the local Service Bus broker did not start on {self.host}:{self.port}: {self._error}"
            )

    def _start_once(self, timeout: float) -> bool:
        ready = threading.Event()
        self.port = free_port(self.host)
        self._server = _Server(self._broker, self.host, self.port, ready)
        container = Container(self._server)
        container.container_id = "local-servicebus-broker"

        def run() -> None:
            try:
                container.run()
            except BaseException as exc:  # reported by start(), not lost in a thread
                self._error = exc
                ready.set()

        self._thread = threading.Thread(target=run, name=f"servicebus-broker-{self.port}", daemon=True)
        self._thread.start()
        if ready.wait(timeout) and self._error is None:
            return True
        self._thread.join(1.0)
        self._thread = None
        self._error = self._error or TimeoutError(f"not listening after {timeout:.0f} s")
        return False

    def stop(self, timeout: float = 5.0) -> None:
        if self._server is None or self._thread is None:
            return
        self._server.request_stop()
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise RuntimeError("the local Service Bus broker did not stop within 5 s")
        self._server = None
        self._thread = None
