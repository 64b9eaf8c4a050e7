"""What the replay found in the Service Bus adapter: handlers that publish at the same time on a
queue whose sender is not open yet must all succeed (the SDK breaks when each opens the link)."""

from __future__ import annotations

import asyncio

from broker import Broker
from diagnostics.adapters.servicebus import ServiceBusMessageBus
from diagnostics.messages import QUEUE_REFERENCE_RESOLUTION
from diagnostics.ports import OutgoingMessage


def test_concurrent_first_sends_on_one_queue_all_arrive() -> None:
    async def publish(connection_string: str) -> None:
        bus = ServiceBusMessageBus.from_connection_string(connection_string)
        try:
            messages = [OutgoingMessage(f"refs:{i}", b"{}", "references") for i in range(8)]
            await asyncio.gather(*(bus.send(QUEUE_REFERENCE_RESOLUTION, [m]) for m in messages))
        finally:
            await bus.aclose()

    with Broker() as broker:
        asyncio.run(publish(broker.connection_string))
        assert broker.stats(QUEUE_REFERENCE_RESOLUTION).active == 8
