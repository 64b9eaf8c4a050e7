"""One broker for the session (each SDK link open costs ~0.5 s: links are opened once and reused).

Each test uses its own queue or leaves the queues it touches empty, so tests stay independent."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from azure.servicebus import ServiceBusClient, ServiceBusReceiver, ServiceBusSender, ServiceBusSubQueue

from broker import Broker, QueueOptions
from broker.testing import SimulatedClock, running_broker

QUEUES = {
    "basic": QueueOptions(),
    # dead-letters early: after 2 deliveries, and on expiry
    "strict": QueueOptions(max_delivery_count=2, dead_lettering_on_expiration=True),
    "expiry": QueueOptions(dead_lettering_on_expiration=True),
    "host-auto": QueueOptions(max_delivery_count=2),
    "host-manual": QueueOptions(max_delivery_count=2),
}


@pytest.fixture(scope="session")
def clock() -> SimulatedClock:
    return SimulatedClock(datetime(2026, 11, 9, 7, 0, tzinfo=UTC))


@pytest.fixture(scope="session")
def broker(clock: SimulatedClock) -> Iterator[Broker]:
    with running_broker(QUEUES, clock=clock) as running:
        yield running


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

    def receiver(self, queue: str, *, dead_letter: bool = False) -> ServiceBusReceiver:
        key = (queue, "dlq" if dead_letter else "receiver")
        if key not in self._open:
            sub_queue = ServiceBusSubQueue.DEAD_LETTER if dead_letter else None
            receiver = self.client.get_queue_receiver(queue, sub_queue=sub_queue, max_wait_time=0.3)
            # Open now: a first receive with a short wait would not leave time to open the link.
            self._open[key] = receiver.__enter__()
        link = self._open[key]
        assert isinstance(link, ServiceBusReceiver)
        return link

    def close(self) -> None:
        for link in self._open.values():
            link.close()
        self.client.close()


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
