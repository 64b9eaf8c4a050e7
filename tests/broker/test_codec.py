"""The AMQP codec of the broker, on messages built with proton (independently of the SDK)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import proton
import pytest

from broker import _codec
from broker.queues import Envelope, StoredMessage

T0 = datetime(2026, 11, 9, 7, 0, tzinfo=UTC)


def data_section(payload: bytes) -> bytes:
    data = proton.Data()
    data.put_described()
    data.enter()
    data.put_ulong(0x75)
    data.put_binary(payload)
    data.exit()
    return bytes(data.encode())


def message(body: bytes | str, **fields: object) -> bytes:
    """An encoded message; bytes bodies as one data section (as the SDK sends them)."""
    head = proton.Message(**fields)  # type: ignore[arg-type]
    if isinstance(body, str):
        head.body = body
        return bytes(head.encode())
    return bytes(head.encode()) + data_section(body)


def decoded(payload: bytes) -> proton.Message:
    result = proton.Message()
    result.decode(payload)
    return result


def test_a_batch_is_split_into_its_messages() -> None:
    inner = [message(b"one", id="a"), message(b"two", id="b")]
    batch = message(b"", id="a")[: -len(data_section(b""))] + b"".join(data_section(m) for m in inner)
    assert _codec.split_transfer(batch) == inner


def test_a_message_whose_data_is_not_a_message_stays_whole() -> None:
    plain = message(b'{"version": 1}', id="x")
    assert _codec.split_transfer(plain) == [plain]
    two_sections = message(b"part one", id="y") + data_section(b"part two")
    assert _codec.split_transfer(two_sections) == [two_sections]


def test_envelope_reads_what_the_queue_needs() -> None:
    scheduled = proton.timestamp(int((T0 + timedelta(days=1)).timestamp() * 1000))
    payload = message(
        b"body",
        id="m-1",
        ttl=3600,
        properties={"kind": "check"},
        annotations={proton.symbol("x-opt-scheduled-enqueue-time"): scheduled},
    )
    envelope = _codec.envelope_of(payload)
    assert envelope.message_id == "m-1"
    assert envelope.body == b"body"
    assert envelope.application_properties == {"kind": "check"}
    assert envelope.time_to_live == timedelta(hours=1)
    assert envelope.scheduled_enqueue_time == T0 + timedelta(days=1)
    assert _codec.envelope_of(message("text body")).body == b"text body"


def test_garbage_is_refused() -> None:
    with pytest.raises(_codec.MalformedMessage):
        _codec.envelope_of(b"\x00\x53\x75\xff")
    with pytest.raises(_codec.MalformedMessage):
        _codec.split_transfer(b"not amqp")


def test_render_adds_the_broker_s_header_annotations_and_dead_letter_reason() -> None:
    payload = message(b"part one", id="m-1", properties={"kind": "check"}) + data_section(b"part two")
    stored = StoredMessage(
        sequence_number=7,
        envelope=Envelope(payload=payload, message_id="m-1"),
        enqueued_time=T0,
        due=T0,
        expires_at=None,
        dead_letter_reason="MalformedMessage",
        dead_letter_description="the body is not JSON",
    )
    locked_until = T0 + timedelta(minutes=1)
    rendered = _codec.render(stored, locked_until=locked_until)
    codes = [code for code, _ in _codec.sections(rendered)]
    assert codes[0] == 0x70  # a header even with delivery-count 0: the SDK reads it from there
    assert codes[-2:] == [0x75, 0x75]  # both data sections, in order
    seen = decoded(rendered)
    assert seen.delivery_count == 0
    assert seen.id == "m-1"
    assert seen.annotations[proton.symbol("x-opt-sequence-number")] == 7
    assert _codec.to_datetime(seen.annotations[proton.symbol("x-opt-enqueued-time")]) == T0
    assert _codec.to_datetime(seen.annotations[proton.symbol("x-opt-locked-until")]) == locked_until
    assert seen.properties == {
        "kind": "check",
        "DeadLetterReason": "MalformedMessage",
        "DeadLetterErrorDescription": "the body is not JSON",
    }
    stored.delivery_count = 3
    assert decoded(_codec.render(stored)).delivery_count == 3
