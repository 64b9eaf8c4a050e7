"""Fuzzing the record mapping: Dataverse rows and Partner Center invoice records into the model.

Whatever a row holds (any JSON value in any column, a row that is not an object, values nested
deeper than anything prints), the mapping gives a record or one UnreadableRecord with a one-line
reason: never an exception, never a record lost without a word. Rows built from valid values always
map. Partner Center records likewise map one by one.
"""

from __future__ import annotations

import sys
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from diagnostics.metadata import READ_COLUMNS, ResolvedSchema
from diagnostics.model import PartnerCenterInvoice, UnreadableRecord
from diagnostics.schema import DEFAULT_LABELS, TABLES, SchemaMap
from diagnostics.settings import Thresholds
from diagnostics.snapshot_loader import _PARTS, Loader, _pc_invoices


def _options() -> dict[str, dict[int, str]]:
    out: dict[str, dict[int, str]] = {}
    for key, meanings in DEFAULT_LABELS.items():
        labels = [label for synonyms in meanings.values() for label in synonyms]
        out[key] = {870_420_000 + i: label for i, label in enumerate(labels)}
    return out


OPTIONS = _options()
LOADER = Loader(ResolvedSchema(SchemaMap(), {}, OPTIONS), Thresholds())

_SCALAR = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(
        [
            "9999-12-31T23:59:59-05:00",
            "0001-01-01T00:00:00+01:00",
            "2026-02-30",
            "2026-10-31",
            "2026-11-09T05:45:00Z",
            "NaN",
            "-Infinity",
            "1e999999",
            "12.5",
            "",
            "6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b",
            "not base64!",
            "VHlwZSxJZA0KQ3VzdG9tZXIsQzE=",
        ]
    ),
)
_JSON = st.recursive(
    _SCALAR,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
)


def _deep(depth: int) -> Any:
    value: Any = "bottom"
    for _ in range(depth):
        value = [value]
    return value


def _valid(table: str, column: str) -> Any:
    kind = TABLES[table].column(column).type
    if kind in ("Uniqueidentifier", "Lookup"):
        return "6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b"
    if kind in ("DateTime", "DateOnly"):
        return "2026-11-09T05:45:00Z"
    if kind in ("Money", "Decimal"):
        return 12.5
    if kind == "Integer":
        return 8
    if kind == "Boolean":
        return True
    if kind in ("State", "Status", "Picklist"):
        return next(iter(OPTIONS.get(f"{table}.{column}", {870_420_000: ""})))
    if column == "documentbody":
        return "VHlwZSxJZA0KQ3VzdG9tZXIsQzE="
    return "text"


def _valid_row(table: str) -> dict[str, Any]:
    return {LOADER.c(table, column): _valid(table, column) for column in READ_COLUMNS[table]}


PARTS = st.sampled_from(sorted(_PARTS))


@st.composite
def _rows(draw: st.DrawFn) -> tuple[str, list[Any]]:
    part = draw(PARTS)
    table = _PARTS[part][0]
    columns = [LOADER.c(table, column) for column in READ_COLUMNS[table]]
    rows: list[Any] = []
    for _ in range(draw(st.integers(min_value=0, max_value=4))):
        shape = draw(st.sampled_from(["mutated", "random", "not an object"]))
        if shape == "mutated":
            row = _valid_row(table)
            for column in draw(st.lists(st.sampled_from(columns), max_size=3)):
                row[column] = draw(_JSON)
            rows.append(row)
        elif shape == "random":
            rows.append(draw(st.dictionaries(st.sampled_from(columns), _JSON, max_size=len(columns))))
        else:
            rows.append(draw(_JSON))
    return part, rows


def _check(part: str, rows: list[Any]) -> tuple[list[Any], list[UnreadableRecord]]:
    table, build = _PARTS[part]
    records, bad = LOADER.records(part, table, rows, build)
    assert len(records) + len(bad) == len(rows)
    for record in bad:
        assert record.table == table
        assert 1 <= record.row <= len(rows)
        assert record.reason
        assert "\n" not in record.reason
        assert len(record.reason) < 400
        assert record.subject_type in ("tenant", "provider_invoice", "subscription", "billing_contract")
    return records, bad


@given(_rows())
def test_any_rows_map_to_records_or_unreadable_records(part_rows: tuple[str, list[Any]]) -> None:
    _check(*part_rows)


@given(PARTS)
def test_valid_rows_always_map(part: str) -> None:
    records, bad = _check(part, [_valid_row(_PARTS[part][0])])
    assert bad == []
    assert len(records) == 1


@given(PARTS, st.integers(min_value=0, max_value=30))
def test_values_nested_deeper_than_anything_prints_are_unreadable(part: str, column_index: int) -> None:
    table = _PARTS[part][0]
    columns = READ_COLUMNS[table]
    row = _valid_row(table)
    row[LOADER.c(table, columns[column_index % len(columns)])] = _deep(sys.getrecursionlimit() + 100)
    _check(part, [row, _deep(sys.getrecursionlimit() + 100)])


_PC_KEYS = (
    "id",
    "invoiceDate",
    "billingPeriodStartDate",
    "billingPeriodEndDate",
    "totalCharges",
    "currencyCode",
    "invoiceType",
    "documentType",
)


@given(st.lists(st.one_of(st.dictionaries(st.sampled_from(_PC_KEYS), _JSON), _JSON), max_size=5))
def test_partner_center_records_map_one_by_one(raw: list[Any]) -> None:
    invoices, malformed = _pc_invoices(raw)
    assert len(invoices) == len(raw)
    assert all(isinstance(inv, PartnerCenterInvoice) for inv in invoices)
    assert len(malformed) <= len(raw)
    for reason in malformed:
        assert "\n" not in reason
        assert len(reason) < 400


def test_a_malformed_partner_center_invoice_with_a_line_break_in_its_id_gives_one_line() -> None:
    # Found by the fuzz test above: the id was put into the reason as it was.
    invoices, malformed = _pc_invoices([{"id": "\n", "invoiceDate": 1}])
    assert len(invoices) == 1
    assert malformed == ["invoice '\\n': Invalid isoformat string: '1'"]
