"""Rows are served in exactly the bytes `json.dumps(row, ensure_ascii=False)` writes: the faster
encoder (simulator/rowjson.py) changes the cost of a page, never its body."""

from __future__ import annotations

import json
import math
from enum import IntEnum
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sim_support import tenant_dict

from simulator import load_fixture
from simulator.generate import generate
from simulator.rowjson import object_text, selected_row_writer, value_text
from simulator.tenant import AnnotationFilter, Tenant
from simulator.wire import odata_page_response


class _Level(IntEnum):
    HIGH = 3


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


_TEXT = st.text(st.characters(blacklist_categories=["Cs"]))  # lone surrogates are no UTF-8
_SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | _TEXT
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_TEXT, inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(_TEXT, _VALUES), max_size=6, unique_by=lambda item: item[0]))
def test_an_object_is_written_as_json_dumps_writes_it(items: list[tuple[str, Any]]) -> None:
    assert object_text(items) == _dumps(dict(items))


@pytest.mark.parametrize(
    "value",
    [
        'quote " backslash \\ tab \t newline \n nul \x00 del \x7f',
        "line separator \u2028, é, 𝄞, ☃",
        1e16,
        1e-7,
        -0.0,
        0.1 + 0.2,
        math.nan,
        math.inf,
        -math.inf,
        2**70,
        -(2**63),
        True,
        None,
        _Level.HIGH,
        [1, "a", None, {"k": [2.5]}],
        {"nested": {"deeper": []}},
    ],
)
def test_a_value_is_written_as_json_dumps_writes_it(value: Any) -> None:
    assert value_text(value) == _dumps(value)


def test_floats_written_again_are_written_the_same_and_zeros_keep_their_sign() -> None:
    floats = [0.0, -0.0, 17.647, 17.647, math.nan, math.nan, -0.0, 0.0, 1e300 * 10, 2.5e-8]
    assert [value_text(f) for f in floats] == [_dumps(f) for f in floats]
    assert value_text(-0.0) == "-0.0"


def test_a_row_of_one_shape_is_written_as_json_dumps_writes_it() -> None:
    write = selected_row_writer(["b", "a", "missing"])
    values = {"a": 1.5, "b": "ü\n", "c": "not selected"}
    expected = {"@odata.etag": 'W/"7"', "b": "ü\n", "a": 1.5, "missing": None}
    assert write('W/"7"', values) == _dumps(expected).encode("utf-8")


def _shapes(tenant: Tenant, table_name: str) -> list[tuple[tuple[str, ...] | None, AnnotationFilter]]:
    table = tenant.tables[table_name]
    props = [c.prop for c in table.columns]
    # The key first and a property twice: served once each, the key last.
    selected = (table.primary_key, *props[-3:], props[-1])
    everything, formatted = AnnotationFilter(["*"]), AnnotationFilter(["OData.Community.Display.V1.*"])
    return [
        (None, AnnotationFilter([])),
        (selected, AnnotationFilter([])),
        (None, everything),
        (selected, formatted),
    ]


@pytest.mark.parametrize("source", ["sample", "generated"])
def test_every_table_serves_its_rows_in_the_bytes_json_dumps_writes(source: str) -> None:
    fixture = tenant_dict() if source == "sample" else generate(3, seed=2).fixture
    # Values served as written, unchecked: a list, a NaN, a huge number, an odd string, an option
    # value no option has.
    odd = {"work365_name": ["a", {"b": 1}], "work365_provider_invoiceday": 2**70, "statuscode": 12}
    fixture["dataverse"]["rows"]["work365_provider"].append(
        {"work365_name": 'Odd \u2028 "one"', "$raw": odd | {"work365_provider_type": math.nan}}
    )
    tenant = Tenant(load_fixture(fixture))
    checked = 0
    for name, table in tenant.tables.items():
        rows = list(table.rows.values())
        for select, wanted in _shapes(tenant, name):
            served = tenant.wire_json(table, rows, select, wanted)
            expected = [_dumps(tenant.wire_row(table, row, select, wanted)).encode("utf-8") for row in rows]
            assert served == expected, (name, select, wanted.patterns)
            checked += len(rows)
    assert checked > 20


@pytest.mark.parametrize("count", [0, 1, 3])
@pytest.mark.parametrize("head", [{}, {"@odata.context": "ctx", "@odata.count": 3}])
def test_a_page_is_written_as_json_dumps_writes_it(count: int, head: dict[str, Any]) -> None:
    rows = [{"@odata.etag": f'W/"{n}"', "name": f"ü {n}"} for n in range(count)]
    tail = {"@odata.nextLink": "https://127.0.0.1/next?$skiptoken=x"}
    page = odata_page_response(head, [_dumps(r).encode("utf-8") for r in rows], tail)
    assert page.body == _dumps({**head, "value": rows, **tail}).encode("utf-8")
    assert odata_page_response(head, [], {}).body == _dumps({**head, "value": []}).encode("utf-8")
