"""One broker for the session (each SDK link open costs ~0.5 s: links are opened once and reused).

Each test leaves the queues it touches empty. A receiver keeps the link credit an empty receive
left (as with Azure), so a message sent later sits locked in its buffer until its next receive:
a queue is read by one receiver only, and tests that need a message to stay put use "quiet"."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from azure.servicebus import (
    ServiceBusClient,
    ServiceBusReceiveMode,
    ServiceBusReceiver,
    ServiceBusSender,
    ServiceBusSubQueue,
)

from broker import Broker, QueueOptions
from broker.testing import SimulatedClock, running_broker

QUEUES = {
    "basic": QueueOptions(),
    # dead-letters early: after 2 deliveries, and on expiry
    "strict": QueueOptions(max_delivery_count=2, dead_lettering_on_expiration=True),
    # no peek-lock receiver: expiry and receive-and-delete
    "quiet": QueueOptions(dead_lettering_on_expiration=True),
    "async": QueueOptions(),
    "twice": QueueOptions(duplicate_rate=1.0),  # every message delivered a second time
    "host-auto": QueueOptions(max_delivery_count=2),
    "host-manual": QueueOptions(max_delivery_count=2),
    "host-identity": QueueOptions(),
}


@pytest.fixture(scope="session")
def clock() -> SimulatedClock:
    return SimulatedClock(datetime(2026, 11, 9, 7, 0, tzinfo=UTC))


@pytest.fixture(scope="session")
def broker(clock: SimulatedClock) -> Iterator[Broker]:
    with running_broker(QUEUES, clock=clock) as running:
        yield running
        assert running.errors() == []


class Links:
    """Senders and receivers opened on first use and kept for the session."""

    def __init__(self, client: ServiceBusClient) -> None:
        self.client = client
        self._open: dict[tuple[str, str], ServiceBusSender | ServiceBusReceiver] = {}

    def sender(self, queue: str) -> ServiceBusSender:
        key = (queue, "sender")
        if key not in self._open:
            self._open[key] = self.client.get_queue_sender(queue)
        link = self._open[key]
        assert isinstance(link, ServiceBusSender)
        return link

    def receiver(
        self,
        queue: str,
        *,
        dead_letter: bool = False,
        mode: ServiceBusReceiveMode = ServiceBusReceiveMode.PEEK_LOCK,
    ) -> ServiceBusReceiver:
        key = (queue, f"{'dlq' if dead_letter else 'receiver'}-{mode.value}")
        if key not in self._open:
            sub_queue = ServiceBusSubQueue.DEAD_LETTER if dead_letter else None
            receiver = self.client.get_queue_receiver(
                queue, sub_queue=sub_queue, max_wait_time=0.3, receive_mode=mode
            )
            # Open now: a first receive with a short wait would not leave time to open the link.
            self._open[key] = receiver.__enter__()
        link = self._open[key]
        assert isinstance(link, ServiceBusReceiver)
        return link

    def close(self) -> None:
        close_all(*self._open.values())
        self.client.close()


def close_all(*links: ServiceBusSender | ServiceBusReceiver) -> None:
    """Close side by side: the SDK spends about a second closing each receiver (drain, keep-alive)."""
    with ThreadPoolExecutor(max_workers=max(1, len(links))) as pool:
        list(pool.map(lambda link: link.close(), links))


@pytest.fixture(scope="session")
def links(broker: Broker) -> Iterator[Links]:
    opened = Links(ServiceBusClient.from_connection_string(broker.connection_string))
    yield opened
    opened.close()


def receive_all(receiver: ServiceBusReceiver, expected: int, wait: float = 0.3) -> list:
    """Receive until `expected` messages came (or a round brings nothing)."""
    received: list = []
    while len(received) < expected:
        batch = receiver.receive_messages(max_message_count=expected - len(received), max_wait_time=wait)
        if not batch:
            break
        received.extend(batch)
    return received


ONE_DAY = timedelta(days=1)
