"""Queue semantics without AMQP: time is passed in, so locks and schedules need no waiting."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from broker.queues import (
    MAX_DELIVERY_REASON,
    TTL_EXPIRED_REASON,
    Envelope,
    LockLostError,
    MessageQueue,
    QueueOptions,
)

T0 = datetime(2026, 11, 9, 7, 0, tzinfo=UTC)


def env(message_id: str | None = None, body: bytes = b"x", ttl: timedelta | None = None) -> Envelope:
    return Envelope(payload=b"", message_id=message_id, body=body, time_to_live=ttl)


def test_peek_lock_complete_and_order() -> None:
    q = MessageQueue("q")
    first, second = q.send(env("a"), T0), q.send(env("b"), T0)
    m1 = q.receive(T0, 0.0)
    m2 = q.receive(T0, 0.0)
    assert (m1 and m1.sequence_number, m2 and m2.sequence_number) == (first, second)
    assert q.receive(T0, 0.0) is None
    assert m1 is not None
    assert m1.lock_token is not None
    q.complete(m1.lock_token, 1.0)
    with pytest.raises(LockLostError):
        q.complete(m1.lock_token, 1.0)
    assert q.stats(T0, 1.0).completed == 1
    assert q.stats(T0, 1.0).locked == 1


def test_lock_expiry_redelivers_with_delivery_count_and_settling_late_fails() -> None:
    q = MessageQueue("q", QueueOptions(lock_duration=timedelta(seconds=30)))
    q.send(env("a"), T0)
    m = q.receive(T0, 100.0)
    assert m is not None
    assert m.lock_token is not None
    token = m.lock_token
    assert q.receive(T0, 129.0) is None  # still locked
    again = q.receive(T0, 130.0)  # the lock ran out: back, counted as a failed delivery
    assert again is not None
    assert again.delivery_count == 1
    with pytest.raises(LockLostError):
        q.complete(token, 130.0)


def test_renew_lock_extends_it() -> None:
    q = MessageQueue("q", QueueOptions(lock_duration=timedelta(seconds=30)))
    q.send(env("a"), T0)
    m = q.receive(T0, 0.0)
    assert m is not None
    assert m.lock_token is not None
    assert q.renew_lock(m.lock_token, 20.0) == 50.0
    assert q.receive(T0, 40.0) is None
    q.complete(m.lock_token, 45.0)


def test_abandon_up_to_max_delivery_count_then_dead_letter() -> None:
    q = MessageQueue("q", QueueOptions(max_delivery_count=3))
    q.send(env("a", b"payload"), T0)
    counts = []
    for _ in range(3):
        m = q.receive(T0, 0.0)
        assert m is not None
        assert m.lock_token is not None
        counts.append(m.delivery_count)
        q.abandon(m.lock_token, 0.0)
    assert counts == [0, 1, 2]
    assert q.receive(T0, 0.0) is None
    [dead] = q.dead_letter_log
    assert (dead.message_id, dead.reason, dead.delivery_count, dead.body) == (
        "a",
        MAX_DELIVERY_REASON,
        3,
        b"payload",
    )
    assert dead.description == "Message could not be consumed after 3 delivery attempts."
    assert q.dead_letter_queue is not None
    dlq_message = q.dead_letter_queue.receive(T0, 0.0)
    assert dlq_message is not None
    assert dlq_message.dead_letter_reason == MAX_DELIVERY_REASON


def test_released_does_not_count_as_a_delivery() -> None:
    q = MessageQueue("q", QueueOptions(max_delivery_count=1))
    q.send(env("a"), T0)
    m = q.receive(T0, 0.0)
    assert m is not None
    assert m.lock_token is not None
    q.abandon(m.lock_token, 0.0, count_delivery=False)
    again = q.receive(T0, 0.0)
    assert again is not None
    assert again.delivery_count == 0
    assert q.stats(T0, 0.0).abandoned == 0


def test_schedule_follows_the_simulated_clock_and_cancel() -> None:
    q = MessageQueue("q")
    due = T0 + timedelta(days=1)
    kept = q.schedule(env("later"), due, T0)
    cancelled = q.schedule(env("cancel-me"), due, T0)
    q.cancel([cancelled, 999], T0, 0.0)
    assert [(n, mid) for n, mid, _ in q.scheduled(T0, 0.0)] == [(kept, "later")]
    assert q.receive(T0 + timedelta(hours=23), 0.0) is None
    assert q.idle(T0 + timedelta(hours=23), 0.0)
    m = q.receive(due, 0.0)
    assert m is not None
    assert m.sequence_number == kept
    assert m.enqueued_time == due
    stats = q.stats(due, 0.0)
    assert (stats.scheduled_cancelled, stats.scheduled) == (1, 0)


def test_duplicate_message_id_dropped_inside_the_window_only() -> None:
    q = MessageQueue("q", QueueOptions(duplicate_detection_window=timedelta(hours=1)))
    assert q.send(env("same"), T0) is not None
    assert q.send(env("same"), T0 + timedelta(minutes=59)) is None
    q.schedule(env("same"), T0 + timedelta(days=1), T0 + timedelta(minutes=30))  # accepted, dropped
    assert q.send(env("same"), T0 + timedelta(hours=1)) is not None
    assert q.send(env(None), T0) is not None
    assert q.send(env(None), T0) is not None
    stats = q.stats(T0 + timedelta(hours=1), 0.0)
    assert (stats.duplicates_dropped, stats.active, stats.scheduled) == (2, 4, 0)


def test_duplicate_detection_can_be_off() -> None:
    q = MessageQueue("q", QueueOptions(duplicate_detection_window=None))
    q.send(env("same"), T0)
    q.send(env("same"), T0)
    assert q.stats(T0, 0.0).active == 2


def test_ttl_expiry_dead_letters_or_drops() -> None:
    keep = MessageQueue("keep", QueueOptions(dead_lettering_on_expiration=True))
    drop = MessageQueue("drop", QueueOptions(default_message_ttl=timedelta(hours=2)))
    keep.send(env("a", ttl=timedelta(hours=1)), T0)
    drop.send(env("b", ttl=timedelta(hours=3)), T0)  # the queue's 2 h is smaller and wins
    later = T0 + timedelta(hours=2)
    assert keep.receive(later, 0.0) is None
    assert drop.receive(later, 0.0) is None
    assert [(d.message_id, d.reason) for d in keep.dead_letter_log] == [("a", TTL_EXPIRED_REASON)]
    assert drop.dead_letter_log == []
    assert keep.stats(later, 0.0).expired == drop.stats(later, 0.0).expired == 1


def test_a_scheduled_message_lives_its_ttl_from_its_enqueue_time() -> None:
    q = MessageQueue("q")
    q.schedule(env("a", ttl=timedelta(hours=1)), T0 + timedelta(days=1), T0)
    assert q.receive(T0 + timedelta(days=1, minutes=30), 0.0) is not None


def completed_twice(q: MessageQueue, n: int) -> set[str]:
    for i in range(n):
        q.send(env(f"m{i}"), T0)
    deliveries: list[str] = []
    while (m := q.receive(T0, 0.0)) is not None:
        assert m.lock_token is not None
        assert m.envelope.message_id is not None
        deliveries.append(m.envelope.message_id)
        q.complete(m.lock_token, 0.0)
    assert q.stats(T0, 0.0).duplicates_injected == len(deliveries) - n
    return {mid for mid in deliveries if deliveries.count(mid) == 2}


def test_duplicate_injection_is_deterministic_for_a_seed() -> None:
    twice = completed_twice(MessageQueue("q", duplicate_rate=0.3, seed=7), 200)
    assert 30 < len(twice) < 90
    assert completed_twice(MessageQueue("q", duplicate_rate=0.3, seed=7), 200) == twice
    assert completed_twice(MessageQueue("q", duplicate_rate=0.3, seed=8), 200) != twice
    assert completed_twice(MessageQueue("q"), 50) == set()
    assert len(completed_twice(MessageQueue("q", QueueOptions(duplicate_rate=1.0)), 5)) == 5


def test_bad_options_are_refused() -> None:
    with pytest.raises(ValueError, match="max_delivery_count"):
        QueueOptions(max_delivery_count=0)
    with pytest.raises(ValueError, match="duplicate_rate"):
        MessageQueue("q", duplicate_rate=1.5)
