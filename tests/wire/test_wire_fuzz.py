"""Fuzzing the two readers of foreign bytes: the `$batch` answer parser and the Partner Center record
mapping. Bounded and derandomised, so `make test` stays fast and a failure repeats."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from diagnostics.adapters.odata_batch import BatchFormatError, BatchResponse, decode_batch
from diagnostics.model import PartnerCenterInvoice
from diagnostics.snapshot_loader import _pc_invoice

FUZZ = settings(
    max_examples=100,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

# --- $batch answers ------------------------------------------------------------------------------

_TOKEN = st.text(alphabet="abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=12)
_VALUE = st.text(
    alphabet=st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp"), blacklist_characters="\x85"),
    max_size=30,
).map(str.strip)
# Bodies may hold line breaks and boundary look-alikes, never a line starting with the boundary.
_BODY = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\x85\u2028\u2029"),
    max_size=80,
).filter(lambda body: "\n--batchresponse_" not in body and "\n--changesetresponse_" not in body)
_STATUSES = st.integers(min_value=100, max_value=599)


@st.composite
def _answer(draw: st.DrawFn, content_id: bool) -> BatchResponse:
    names = draw(st.lists(_TOKEN.filter(lambda n: n != "content-type"), unique=True, max_size=3))
    headers = {"content-type": "application/json"} | {n: draw(_VALUE) for n in names}
    cid = str(draw(st.integers(min_value=1, max_value=999))) if content_id else None
    return BatchResponse(draw(_STATUSES), headers, draw(_BODY), cid)


_ITEM = st.one_of(
    _answer(content_id=False),
    st.lists(_answer(content_id=True), min_size=1, max_size=3),  # a change set
)


def _http(answer: BatchResponse, newline: str) -> str:
    head = ["Content-Type: application/http", "Content-Transfer-Encoding: binary"]
    if answer.content_id:
        head.append(f"Content-ID: {answer.content_id}")
    lines = [*head, "", f"HTTP/1.1 {answer.status} Whatever"]
    lines += [f"{name}: {value}" for name, value in answer.headers.items()]
    return newline.join([*lines, "", answer.body])


def _multipart(boundary: str, parts: list[str], newline: str) -> str:
    return "".join(f"--{boundary}{newline}{p}{newline}" for p in parts) + f"--{boundary}--"


@settings(FUZZ, max_examples=60)
@given(items=st.lists(_ITEM, max_size=5), newline=st.sampled_from(["\r\n", "\n"]), suffix=_TOKEN)
def test_decode_batch_reads_back_every_answer_in_order(
    items: list[BatchResponse | list[BatchResponse]], newline: str, suffix: str
) -> None:
    parts = []
    expected: list[BatchResponse] = []
    for n, item in enumerate(items):
        if isinstance(item, list):
            inner = f"changesetresponse_{suffix}{n}"
            nested = _multipart(inner, [_http(a, newline) for a in item], newline)
            parts.append(f"Content-Type: multipart/mixed; boundary={inner}{newline}{newline}{nested}")
            expected += item
        else:
            parts.append(_http(item, newline))
            expected.append(item)
    boundary = f"batchresponse_{suffix}"
    body = "preamble" + newline + _multipart(boundary, parts, newline) + newline + "epilogue"

    answers = decode_batch(f'multipart/mixed; boundary="{boundary}"', body.encode("utf-8"))

    assert answers == expected


_FRAGMENTS = st.sampled_from(
    [
        "--b1",
        "--b1--",
        "--c1",
        "--c1--",
        "\r\n",
        "\n",
        "\r\n\r\n",
        "Content-Type: application/http",
        "Content-Type: multipart/mixed; boundary=c1",
        "Content-Type: multipart/mixed; boundary=b1",
        "Content-Type: multipart/mixed",
        "Content-ID: 1",
        "HTTP/1.1 200 OK",
        "HTTP/1.1 ²00 OK",
        "HTTP/1.1",
        '{"error":{"code":"0x1","message":"m"}}',
        ":",
        "\xff",
    ]
)


@FUZZ
@given(
    pieces=st.lists(st.one_of(_FRAGMENTS, st.text(max_size=8)), max_size=30),
    content_type=st.sampled_from(
        [
            "multipart/mixed; boundary=b1",
            'multipart/mixed; boundary="b1"',
            "multipart/mixed",
            "text/plain",
            "",
        ]
    ),
    raw=st.binary(max_size=40),
)
def test_decode_batch_never_fails_with_anything_but_a_format_error(
    pieces: list[str], content_type: str, raw: bytes
) -> None:
    for body in ("".join(pieces).encode("utf-8", "surrogatepass"), raw):
        try:
            answers = decode_batch(content_type, body)
        except BatchFormatError:
            continue
        assert all(100 <= a.status <= 599 for a in answers)


# --- Partner Center invoice records --------------------------------------------------------------

_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)
_MOMENT = st.datetimes(
    min_value=datetime(1, 1, 2),  # naive bounds; the zone is drawn separately
    max_value=datetime(9999, 12, 30),
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=14)), timezone(timedelta(hours=-12))]),
).map(lambda moment: moment.isoformat().replace("+00:00", "Z"))
_DATE_TEXT = st.one_of(
    _MOMENT,
    st.sampled_from(["0001-01-01T00:00:00+01:00", "9999-12-31T23:00:00-05:00", "2026-02-30", "", "Z"]),
    _JSON,
)
_FIELDS: dict[str, Any] = {
    "id": st.one_of(st.text(max_size=12), _JSON),
    "invoiceDate": _DATE_TEXT,
    "billingPeriodStartDate": _DATE_TEXT,
    "billingPeriodEndDate": _DATE_TEXT,
    "totalCharges": st.one_of(
        st.decimals(allow_nan=True, allow_infinity=True).map(str),
        st.floats(),
        st.integers(),
        _JSON,
    ),
    "currencyCode": st.one_of(st.sampled_from(["USD", "EUR"]), _JSON),
    "invoiceType": st.one_of(st.sampled_from(["OneTime", "onetime", "Recurring"]), _JSON),
    "documentType": st.one_of(st.sampled_from(["Invoice", "invoice", "Credit Note", "void_note"]), _JSON),
}
_RECORD = st.fixed_dictionaries({}, optional=_FIELDS)


@FUZZ
@given(record=_RECORD)
def test_a_partner_center_record_maps_or_is_rejected_as_malformed(record: dict[str, Any]) -> None:
    # The record as it arrives: through JSON, as Partner Center sends it.
    raw = json.loads(json.dumps(record))
    try:
        invoice = _pc_invoice(raw)
    except ValueError:
        return  # the loader reports it as malformed data, never as a crash
    assert isinstance(invoice, PartnerCenterInvoice)
    for moment in (invoice.invoice_date, invoice.period_start, invoice.period_end):
        assert moment is None or moment.utcoffset() == timedelta(0)
    assert invoice.total_charges is None or (
        isinstance(invoice.total_charges, Decimal) and invoice.total_charges.is_finite()
    )
    if invoice.period_inferred:
        assert invoice.invoice_date is not None
        assert invoice.period_start is not None
        assert invoice.period_start.day == 1
        assert invoice.period_start < invoice.invoice_date
