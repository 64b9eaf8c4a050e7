"""The real azure-servicebus SDK (sync and async clients) against the local broker."""

from __future__ import annotations

import socket
import threading
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from azure.servicebus import ServiceBusClient, ServiceBusMessage, ServiceBusReceiveMode
from azure.servicebus.aio import ServiceBusClient as AsyncServiceBusClient
from azure.servicebus.exceptions import MessageAlreadySettled, MessagingEntityNotFoundError, ServiceBusError

from broker import Broker
from broker.testing import SimulatedClock, running_broker
from tests.broker.conftest import ONE_DAY, Links, receive_all


def uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_single_list_and_batch_send_then_peek_receive_complete(broker: Broker, links: Links) -> None:
    before = broker.stats("basic")
    sender = links.sender("basic")
    first = uid("single")
    sender.send_messages(
        ServiceBusMessage(
            b'{"n": 1}',
            message_id=first,
            content_type="application/json",
            application_properties={"kind": "x"},
        )
    )
    sender.send_messages([ServiceBusMessage("list-0"), ServiceBusMessage("list-1")])
    batch = sender.create_message_batch()
    for i in range(2):
        batch.add_message(ServiceBusMessage(f"batch-{i}", subject="s"))
    sender.send_messages(batch)
    assert broker.stats("basic").active == before.active + 5

    receiver = links.receiver("basic")
    peeked = receiver.peek_messages(max_message_count=10)
    assert [str(m) for m in peeked] == ['{"n": 1}', "list-0", "list-1", "batch-0", "batch-1"]
    assert broker.stats("basic").active == 5  # peeking locks nothing

    received = receive_all(receiver, 5)
    assert [str(m) for m in received] == [str(m) for m in peeked]
    head = received[0]
    assert (head.message_id, head.content_type, head.application_properties) == (
        first,
        "application/json",
        {b"kind": b"x"},
    )
    assert [m.sequence_number for m in received] == [m.sequence_number for m in peeked]
    assert head.delivery_count == 0
    assert head.locked_until_utc is not None
    assert head.lock_token
    assert received[3].subject == "s"
    assert broker.stats("basic").locked == 5
    for message in received:
        receiver.complete_message(message)
    after = broker.stats("basic")
    assert (after.completed - before.completed, after.locked, after.active) == (5, 0, 0)
    assert broker.idle("basic")
    assert any(audience.endswith("/basic") for audience, _ in broker.cbs_tokens())


def test_schedule_is_received_only_once_the_simulated_clock_reaches_it(
    broker: Broker, links: Links, clock: SimulatedClock
) -> None:
    sender, receiver = links.sender("basic"), links.receiver("basic")
    due = clock() + ONE_DAY
    kept, cancelled = sender.schedule_messages(
        [ServiceBusMessage("tomorrow", message_id=uid("later")), ServiceBusMessage("never")], due
    )
    sender.cancel_scheduled_messages(cancelled)
    assert [(n, when) for n, _, when in broker.scheduled("basic")] == [(kept, due)]
    assert receiver.receive_messages(max_message_count=1, max_wait_time=0.2) == []
    assert broker.idle("basic")

    clock.advance(ONE_DAY)
    [message] = receive_all(receiver, 1)
    assert (str(message), message.sequence_number, message.enqueued_time_utc) == ("tomorrow", kept, due)
    receiver.complete_message(message)
    assert broker.stats("basic").scheduled_cancelled >= 1
    assert broker.scheduled("basic") == []


def test_abandon_redelivers_with_delivery_count_and_renew_lock(broker: Broker, links: Links) -> None:
    links.sender("basic").send_messages(ServiceBusMessage("retry-me"))
    receiver = links.receiver("basic")
    [message] = receive_all(receiver, 1)
    first_lock = message.locked_until_utc
    assert first_lock is not None
    renewed = receiver.renew_message_lock(message)
    assert renewed >= first_lock
    receiver.abandon_message(message)
    [again] = receive_all(receiver, 1)
    assert (str(again), again.delivery_count, again.sequence_number) == (
        "retry-me",
        1,
        message.sequence_number,
    )
    receiver.complete_message(again)
    with pytest.raises(MessageAlreadySettled):
        receiver.complete_message(again)


def test_dead_letter_with_reason_then_receive_it_from_the_sub_queue(broker: Broker, links: Links) -> None:
    message_id = uid("poison")
    links.sender("basic").send_messages(ServiceBusMessage("poison", message_id=message_id))
    receiver = links.receiver("basic")
    [message] = receive_all(receiver, 1)
    receiver.dead_letter_message(message, reason="MalformedMessage", error_description="the body is not JSON")
    assert broker.idle("basic")
    dead = [d for d in broker.dead_letters("basic") if d.message_id == message_id]
    assert [(d.reason, d.description, d.body, d.delivery_count) for d in dead] == [
        ("MalformedMessage", "the body is not JSON", b"poison", 0)
    ]

    dlq = links.receiver("basic", dead_letter=True)
    [from_dlq] = receive_all(dlq, 1)
    assert (str(from_dlq), from_dlq.message_id) == ("poison", message_id)
    assert (from_dlq.dead_letter_reason, from_dlq.dead_letter_error_description) == (
        "MalformedMessage",
        "the body is not JSON",
    )
    dlq.complete_message(from_dlq)
    assert receive_all(dlq, 1, wait=0.1) == []


def test_max_delivery_count_moves_the_message_to_the_dead_letter_queue(broker: Broker, links: Links) -> None:
    message_id = uid("flaky")
    links.sender("strict").send_messages(ServiceBusMessage("flaky", message_id=message_id))
    receiver = links.receiver("strict")
    for expected_count in (0, 1):
        [message] = receive_all(receiver, 1)
        assert message.delivery_count == expected_count
        receiver.abandon_message(message)
    assert receive_all(receiver, 1, wait=0.1) == []
    [dead] = [d for d in broker.dead_letters("strict") if d.message_id == message_id]
    assert (dead.reason, dead.description) == (
        "MaxDeliveryCountExceeded",
        "Message could not be consumed after 2 delivery attempts.",
    )
    dlq = links.receiver("strict", dead_letter=True)
    [from_dlq] = receive_all(dlq, 1)
    assert (from_dlq.message_id, from_dlq.dead_letter_reason) == (message_id, "MaxDeliveryCountExceeded")
    dlq.complete_message(from_dlq)


def test_a_repeated_message_id_is_accepted_and_dropped(
    broker: Broker, links: Links, clock: SimulatedClock
) -> None:
    before = broker.stats("basic").duplicates_dropped
    sender = links.sender("basic")
    message_id = uid("check")
    sender.send_messages(ServiceBusMessage("first", message_id=message_id))
    sender.send_messages(ServiceBusMessage("again", message_id=message_id))
    sender.schedule_messages(ServiceBusMessage("later", message_id=message_id), clock() + ONE_DAY)
    assert broker.stats("basic").duplicates_dropped == before + 2
    receiver = links.receiver("basic")
    received = receive_all(receiver, 2, wait=0.2)
    assert [str(m) for m in received] == ["first"]
    receiver.complete_message(received[0])
    assert broker.scheduled("basic") == []


def test_an_expired_message_is_dead_lettered(broker: Broker, links: Links, clock: SimulatedClock) -> None:
    # A queue no peek-lock receiver listens on: a receiver's leftover link credit would hold (lock)
    # the message in its buffer, and locked messages do not expire (as in Azure).
    message_id = uid("expiring")
    links.sender("quiet").send_messages(
        ServiceBusMessage("old", message_id=message_id, time_to_live=timedelta(hours=1))
    )
    assert broker.stats("quiet").active == 1
    clock.advance(timedelta(minutes=59))
    assert broker.stats("quiet").active == 1
    clock.advance(timedelta(minutes=2))
    assert broker.idle("quiet")
    assert broker.stats("quiet").expired == 1
    [dead] = [d for d in broker.dead_letters("quiet") if d.message_id == message_id]
    assert (dead.reason, dead.description) == (
        "TTLExpiredException",
        "The message expired and was dead lettered.",
    )


def test_receive_and_delete(broker: Broker, links: Links) -> None:
    # On a queue without a peek-lock receiver: that one's leftover credit would take the message.
    links.sender("quiet").send_messages(ServiceBusMessage("gone-once-read"))
    receiver = links.receiver("quiet", mode=ServiceBusReceiveMode.RECEIVE_AND_DELETE)
    [message] = receive_all(receiver, 1)
    assert str(message) == "gone-once-read"
    assert broker.idle("quiet")
    assert broker.stats("quiet").locked == 0


def test_unknown_queue_is_an_entity_not_found_error(links: Links, clock: SimulatedClock) -> None:
    sender = links.sender("no-such-queue")
    with pytest.raises(MessagingEntityNotFoundError, match="could not be found"):
        sender.send_messages(ServiceBusMessage("x"))
    with pytest.raises(MessagingEntityNotFoundError, match="could not be found"):
        sender.schedule_messages(ServiceBusMessage("x"), clock() + ONE_DAY)
    with pytest.raises(MessagingEntityNotFoundError, match="could not be found"):
        links.receiver("no-such-queue").receive_messages(max_message_count=1, max_wait_time=0.2)


async def test_async_client_send_schedule_receive_settle(broker: Broker, clock: SimulatedClock) -> None:
    message_id = uid("async")
    client = AsyncServiceBusClient.from_connection_string(broker.connection_string)
    async with (
        client,
        client.get_queue_sender("async") as sender,
        client.get_queue_receiver("async") as receiver,
    ):
        await sender.send_messages(ServiceBusMessage("async-now", message_id=message_id))
        [sequence] = await sender.schedule_messages(ServiceBusMessage("async-later"), clock() + ONE_DAY)
        [message] = await receiver.receive_messages(max_message_count=1, max_wait_time=1)
        assert (str(message), message.message_id) == ("async-now", message_id)
        await receiver.abandon_message(message)
        [again] = await receiver.receive_messages(max_message_count=1, max_wait_time=1)
        assert again.delivery_count == 1
        await receiver.dead_letter_message(again, reason="Async", error_description="from the async client")
        await sender.cancel_scheduled_messages(sequence)
    assert [
        (d.reason, d.description) for d in broker.dead_letters("async") if d.message_id == message_id
    ] == [("Async", "from the async client")]
    assert broker.idle("async")
    assert broker.scheduled("async") == []
    dlq = broker.stats("async")
    assert dlq.locked == 0


def test_duplicate_injection_delivers_completed_messages_once_more(broker: Broker, links: Links) -> None:
    links.sender("twice").send_messages(
        [ServiceBusMessage("a", message_id="a"), ServiceBusMessage("b", message_id="b")]
    )
    receiver = links.receiver("twice")
    seen = []
    while batch := receiver.receive_messages(max_message_count=4, max_wait_time=0.2):
        for message in batch:
            seen.append((message.message_id, str(message), message.delivery_count))
            receiver.complete_message(message)
    assert sorted(seen) == [("a", "a", 0), ("a", "a", 1), ("b", "b", 0), ("b", "b", 1)]
    stats = broker.stats("twice")
    assert (stats.duplicates_injected, stats.completed) == (2, 4)


def test_stop_is_clean_and_frees_the_port() -> None:
    broker = Broker(["q"])
    with broker:
        port = broker.port
        with socket.create_connection(("127.0.0.1", port)):
            pass
    assert not any(t.name == f"servicebus-broker-{port}" for t in threading.enumerate())
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", port))
    with pytest.raises(RuntimeError, match="not started"):
        _ = broker.connection_string


def test_introspection_names_an_unknown_queue(broker: Broker) -> None:
    with pytest.raises(KeyError, match="no queue 'nope'"):
        broker.stats("nope")


def test_a_failure_inside_the_broker_is_reported_and_it_keeps_serving() -> None:
    moments = [datetime(2026, 11, 9, 7, 0)]  # naive: a mistake the broker must name
    with running_broker(["q"], clock=lambda: moments[0]) as broker:
        with ServiceBusClient.from_connection_string(broker.connection_string, retry_total=0) as client:
            sender = client.get_queue_sender("q")
            with pytest.raises(ServiceBusError):
                sender.send_messages(ServiceBusMessage("x"))
            assert broker.errors() == [
                "on_delivery: ValueError: the broker's clock must return timezone-aware UTC datetimes"
            ]
            moments[0] = moments[0].replace(tzinfo=UTC)
            sender.send_messages(ServiceBusMessage("x"))
            sender.close()
        assert broker.stats("q").active == 1
