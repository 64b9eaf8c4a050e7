"""Publishing and scheduling on Service Bus with the async `azure-servicebus` client.

One client per worker, one sender per queue, opened on first use and kept: opening a sender costs
about half a second (CBS, attach), a send after that a millisecond. In Azure the client signs in with
the app's identity (`DIAG_SERVICEBUS__fullyQualifiedNamespace`); locally, and against the test broker,
it takes a connection string (`DIAG_SERVICEBUS`, `UseDevelopmentEmulator=true` for plain AMQP).

Errors keep their kind: a namespace that cannot be reached or is busy raises `ServiceUnreachable`
(the delivery that tried to publish fails and Service Bus retries it); refused credentials raise
`AuthError`; a queue that does not exist raises `ConfigError`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from azure.core.credentials import AccessToken, TokenCredential
from azure.servicebus import ServiceBusMessage
from azure.servicebus.aio import ServiceBusClient, ServiceBusSender
from azure.servicebus.exceptions import (
    MessageNotFoundError,
    MessagingEntityDisabledError,
    MessagingEntityNotFoundError,
    ServiceBusAuthenticationError,
    ServiceBusAuthorizationError,
    ServiceBusError,
)

from diagnostics.adapters.http import one_line
from diagnostics.errors import AuthError, ConfigError, DiagnosticsError, ServiceUnreachable
from diagnostics.ports import OutgoingMessage

T = TypeVar("T")


class AsyncCredential:
    """An async TokenCredential over a sync one (azure.identity.aio would need aiohttp, which the
    app does not ship); the blocking sign-in runs in a worker thread."""

    def __init__(self, credential: TokenCredential) -> None:
        self._credential = credential

    async def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return await asyncio.to_thread(self._credential.get_token, *scopes, **kwargs)

    async def close(self) -> None:
        return None

    async def __aenter__(self) -> AsyncCredential:
        return self

    async def __aexit__(self, *args: object) -> None:
        return None


def _outgoing(message: OutgoingMessage) -> ServiceBusMessage:
    return ServiceBusMessage(
        message.body,
        message_id=message.message_id,
        subject=message.subject,
        content_type=message.content_type,
    )


def _mapped(exc: ServiceBusError, what: str) -> DiagnosticsError:
    reason = one_line(str(exc) or type(exc).__name__, limit=160)
    if isinstance(exc, ServiceBusAuthenticationError | ServiceBusAuthorizationError):
        return AuthError(
            f"Service Bus refused {what} ({reason}): give the app's identity 'Azure Service Bus Data "
            "Sender' on the namespace, or check the connection string in DIAG_SERVICEBUS"
        )
    if isinstance(exc, MessagingEntityNotFoundError | MessagingEntityDisabledError):
        return ConfigError(f"Service Bus: {what} failed ({reason}): create the queue (infra/) or enable it")
    return ServiceUnreachable(
        f"Service Bus: {what} failed ({reason}): check DIAG_SERVICEBUS and the network; retried by Service Bus"
    )


class ServiceBusMessageBus:
    """`diagnostics.ports.MessageBus` on Azure Service Bus (or anything speaking its AMQP)."""

    def __init__(self, client: ServiceBusClient) -> None:
        self._client = client
        self._senders: dict[str, ServiceBusSender] = {}
        # One operation at a time on this client's connection: the SDK's async senders share one
        # AMQP connection and break when two coroutines drive it at once. A send takes a few ms.
        self._lock = asyncio.Lock()

    @classmethod
    def from_connection_string(cls, connection_string: str) -> ServiceBusMessageBus:
        try:
            client = ServiceBusClient.from_connection_string(connection_string)
        except ValueError:
            # The SDK's message may quote the string, key included: never repeat it.
            raise ConfigError(
                "setting DIAG_SERVICEBUS: not a Service Bus connection string "
                "(Endpoint=sb://…;SharedAccessKeyName=…;SharedAccessKey=…)"
            ) from None
        return cls(client)

    @classmethod
    def from_namespace(
        cls, namespace: str, credential: TokenCredential, *, use_tls: bool = True
    ) -> ServiceBusMessageBus:
        """`namespace` is `<name>.servicebus.windows.net`; `use_tls=False` only for a local broker."""
        return cls(ServiceBusClient(namespace, AsyncCredential(credential), use_tls=use_tls))

    # --- the port ----------------------------------------------------------------------------

    async def send(self, queue: str, messages: Sequence[OutgoingMessage]) -> None:
        if not messages:
            return

        async def publish(sender: ServiceBusSender) -> None:
            batch = await sender.create_message_batch()
            for message in messages:
                outgoing = _outgoing(message)
                try:
                    batch.add_message(outgoing)
                except ValueError:  # the batch is full: send it and start the next one
                    await sender.send_messages(batch)
                    batch = await sender.create_message_batch()
                    batch.add_message(outgoing)
            await sender.send_messages(batch)

        await self._on_sender(queue, publish, f"sending {len(messages)} message(s) to {queue}")

    async def schedule(self, queue: str, message: OutgoingMessage, at: datetime) -> int:
        numbers = await self._on_sender(
            queue,
            lambda sender: sender.schedule_messages(_outgoing(message), at),
            f"scheduling {message.message_id} on {queue}",
        )
        return int(numbers[0])

    async def cancel(self, queue: str, sequence_numbers: Sequence[int]) -> None:
        if not sequence_numbers:
            return
        try:
            await self._on_sender(
                queue,
                lambda sender: sender.cancel_scheduled_messages(list(sequence_numbers)),
                f"cancelling scheduled message(s) {list(sequence_numbers)} on {queue}",
            )
        except DiagnosticsError as exc:
            # Already delivered or cancelled: the port says this is not an error.
            if not isinstance(exc.__cause__, MessageNotFoundError):
                raise

    # --- beyond the port -----------------------------------------------------------------------

    async def ping(self, queue: str) -> None:
        """Open (or reuse) the queue's sender: proves the namespace, the credential and the queue."""
        await self._on_sender(
            queue, lambda sender: sender.create_message_batch(), f"opening a sender on {queue}"
        )

    async def aclose(self) -> None:
        async with self._lock:
            senders, self._senders = list(self._senders.values()), {}
            for sender in senders:
                with contextlib.suppress(Exception):
                    await sender.close()
            await self._client.close()

    # --- internals -----------------------------------------------------------------------------

    async def _on_sender(
        self, queue: str, operation: Callable[[ServiceBusSender], Awaitable[T]], what: str
    ) -> T:
        async with self._lock:
            sender = await self._sender(queue)
            try:
                return await self._call(lambda: operation(sender), what)
            except DiagnosticsError as exc:
                if not isinstance(exc.__cause__, MessageNotFoundError):
                    # A link that failed may stay unusable: the next operation opens a new one.
                    self._senders.pop(queue, None)
                    with contextlib.suppress(Exception):
                        await sender.close()
                raise

    async def _sender(self, queue: str) -> ServiceBusSender:
        """The queue's sender, opened on first use (call with the lock held)."""
        sender = self._senders.get(queue)
        if sender is None:
            sender = self._client.get_queue_sender(queue)
            await self._call(sender.__aenter__, f"opening a sender on {queue}")
            self._senders[queue] = sender
        return sender

    @staticmethod
    async def _call(action: Callable[[], Awaitable[T]], what: str) -> T:
        try:
            return await action()
        except ServiceBusError as exc:
            raise _mapped(exc, what) from exc
        except (OSError, TimeoutError) as exc:
            raise ServiceUnreachable(
                f"Service Bus: {what} failed ({type(exc).__name__}): check the network; retried by Service Bus"
            ) from exc
