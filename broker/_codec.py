"""AMQP message bytes <-> the queue model's `Envelope`, with python-qpid-proton's codec.

Service Bus specifics handled here: batches (message-format 0x80013700, whose data sections each
hold one whole encoded message), the annotations a received message carries (sequence number,
enqueued time, locked-until), and the dead-letter reason a dead-lettered message shows.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import proton

from broker.queues import Envelope, StoredMessage

_SECTION_DATA = 0x75
_BODY_SECTIONS = {0x75, 0x76, 0x77}  # data, amqp-sequence, amqp-value
_FOOTER = 0x78
_HEADER = 0x70
_SECTION_CODES = range(0x70, 0x79)

SEQUENCE_NUMBER = proton.symbol("x-opt-sequence-number")
ENQUEUED_TIME = proton.symbol("x-opt-enqueued-time")
LOCKED_UNTIL = proton.symbol("x-opt-locked-until")
SCHEDULED_ENQUEUE_TIME = proton.symbol("x-opt-scheduled-enqueue-time")
MESSAGE_STATE = proton.symbol("x-opt-message-state")
DEAD_LETTER_REASON = "DeadLetterReason"
DEAD_LETTER_DESCRIPTION = "DeadLetterErrorDescription"


class MalformedMessage(ValueError):
    pass


def sections(payload: bytes) -> Iterator[tuple[int, bytes]]:
    """The top-level sections of an encoded message as (descriptor code, raw bytes)."""
    offset = 0
    while offset < len(payload):
        chunk = payload[offset:]
        if len(chunk) < 3 or chunk[0] != 0x00 or chunk[1] != 0x53 or chunk[2] not in _SECTION_CODES:
            raise MalformedMessage("not an AMQP message section")
        data = proton.Data()
        try:
            consumed = data.decode(chunk)
        except proton.DataException as exc:
            raise MalformedMessage(f"undecodable section: {exc}") from None
        if consumed <= 0:
            raise MalformedMessage("empty section")
        yield chunk[2], bytes(chunk[:consumed])
        offset += consumed


def _section_value(raw: bytes) -> Any:
    data = proton.Data()
    data.decode(raw)
    data.rewind()
    data.next()
    described = data.get_object()
    return _plain(described.value)  # copy now: proton's memoryviews point into a reused buffer


def _is_message(candidate: bytes) -> bool:
    try:
        return any(True for _ in sections(candidate))
    except MalformedMessage:
        return False


def split_transfer(payload: bytes) -> list[bytes]:
    """One transfer's messages: a batch's inner messages, or the message itself.

    Proton does not expose the transfer's message-format, so a batch is recognised by its shape:
    only data sections besides the envelope's own properties, each one a whole encoded message."""
    parts = list(sections(payload))
    data_parts = [_section_value(raw) for code, raw in parts if code == _SECTION_DATA]
    if not data_parts or any(code in _BODY_SECTIONS and code != _SECTION_DATA for code, _ in parts):
        return [payload]
    inner = [bytes(p) for p in data_parts]
    if all(_is_message(p) for p in inner):
        return inner
    return [payload]


def _plain(value: Any) -> Any:
    """Proton values as plain Python values for introspection (memoryviews are reused buffers)."""
    if isinstance(value, memoryview):
        return bytes(value)
    if isinstance(value, dict):
        return {_plain(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _body_bytes(parts: list[tuple[int, bytes]], decoded: proton.Message) -> bytes:
    data = [bytes(_section_value(raw)) for code, raw in parts if code == _SECTION_DATA]
    if data:
        return b"".join(data)
    body = _plain(decoded.body)
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode("utf-8")
    return b"" if body is None else repr(body).encode("utf-8")


def to_datetime(value: Any) -> datetime:
    """An AMQP timestamp (milliseconds since the epoch) as an aware UTC datetime."""
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=int(value))


def to_timestamp(moment: datetime) -> proton.timestamp:
    return proton.timestamp(round(moment.timestamp() * 1000))


def envelope_of(payload: bytes) -> Envelope:
    parts = list(sections(payload))
    decoded = proton.Message()
    try:
        decoded.decode(payload)
    except proton.MessageException as exc:
        raise MalformedMessage(f"undecodable message: {exc}") from None
    annotations = decoded.annotations or {}
    scheduled = annotations.get(SCHEDULED_ENQUEUE_TIME)
    ttl = decoded.ttl  # seconds; 0 means none
    return Envelope(
        payload=payload,
        message_id=None if decoded.id is None else str(_plain(decoded.id)),
        body=_body_bytes(parts, decoded),
        application_properties=_plain(dict(decoded.properties or {})),
        time_to_live=timedelta(seconds=ttl) if ttl else None,
        scheduled_enqueue_time=to_datetime(scheduled) if scheduled is not None else None,
    )


def render(
    message: StoredMessage,
    *,
    locked_until: datetime | None = None,
    extra_annotations: Mapping[proton.symbol, Any] | None = None,
) -> bytes:
    """The message as a receiver sees it: the sender's sections, with the broker's header and
    annotations, and the dead-letter reason as application properties when it has one."""
    parts = list(sections(message.envelope.payload))
    head = proton.Message()
    head.decode(message.envelope.payload)
    head.body = None
    head.delivery_count = message.delivery_count
    annotations = dict(head.annotations or {})
    annotations[SEQUENCE_NUMBER] = message.sequence_number
    annotations[ENQUEUED_TIME] = to_timestamp(message.enqueued_time)
    if locked_until is not None:
        annotations[LOCKED_UNTIL] = to_timestamp(locked_until)
    annotations.update(extra_annotations or {})
    head.annotations = annotations
    if message.dead_letter_reason is not None:
        head.properties = {
            **(head.properties or {}),
            DEAD_LETTER_REASON: message.dead_letter_reason,
            DEAD_LETTER_DESCRIPTION: message.dead_letter_description or "",
        }
    body = b"".join(raw for code, raw in parts if code in _BODY_SECTIONS)
    footer = b"".join(raw for code, raw in parts if code == _FOOTER)
    rest = b"".join(raw for code, raw in sections(bytes(head.encode())) if code != _HEADER)
    return _header(head, message.delivery_count) + rest + body + footer


def _header(decoded: proton.Message, delivery_count: int) -> bytes:
    """Always written (proton leaves out an all-default header), since the SDK reads the
    delivery count from it."""
    data = proton.Data()
    data.put_described()
    data.enter()
    data.put_ulong(_HEADER)
    data.put_list()
    data.enter()
    data.put_bool(bool(decoded.durable))
    data.put_ubyte(int(decoded.priority))
    if decoded.ttl:
        data.put_uint(round(decoded.ttl * 1000))
    else:
        data.put_null()
    data.put_bool(bool(decoded.first_acquirer))
    data.put_uint(delivery_count)
    data.exit()
    data.exit()
    return bytes(data.encode())
