"""Usage rows are reduced by a fast reader (`Loader.reduce_usage`) that leaves any row it does not
take as it is to the general one (`_usage`): whatever the rows hold, the figures and the unreadable
records are exactly the general reader's."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from diagnostics.metadata import READ_COLUMNS
from diagnostics.model import UsageIndex
from diagnostics.snapshot_loader import _usage, _UsageRows
from tests.fuzz.test_records_fuzz import _JSON, LOADER, OPTIONS

TABLE = "work365_usagesummary"
STATUS = sorted(OPTIONS[f"{TABLE}.statuscode"])
_GUID = "6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b"
_DATES = [
    "2026-11-09T05:45:00Z",
    "2026-10-31",
    "2026-10-01T00:00:00+02:00",
    "9999-12-31T23:59:59-05:00",
    "0001-01-01T00:00:00+01:00",
    "2026-02-30",
    "",
    None,
]
_IDS = [_GUID, _GUID.upper(), "{" + _GUID + "}", _GUID.replace("-", ""), "not a guid", "", None]
_LOOKUPS = ["pi-1", "pi-2", _GUID, "", None, 7, 1.5, True]
_NUMBERS = [
    12.5,
    0,
    -3,
    0.0,
    -0.0,
    1e16,
    "17.647",
    "12.50",
    "NaN",
    "-Infinity",
    "1e999999",
    "x",
    True,
    None,
    10**30,
]
# Per column: what Dataverse sends, and what else a row might hold.
_VALUES: dict[str, tuple[list[Any], list[Any]]] = {
    "work365_usagesummaryid": ([_GUID, "0b4e7d1c-1111-4a2b-9c3d-000000000001"], _IDS),
    "work365_usagesummary_providerinvoice": (["pi-1", "pi-2", None], _LOOKUPS),
    "work365_usagesummary_subscription": (["sub-1", "sub-2", None], _LOOKUPS),
    "work365_usagesummary_customer": ([None], _LOOKUPS),
    "work365_usagesummary_invoice": (["inv-1", None], _LOOKUPS),
    "work365_usagesummary_chargestartdate": (["2026-10-01", "2026-10-30T00:00:00Z", None], _DATES),
    "work365_usagesummary_chargeenddate": (["2026-10-31", "2026-11-01T00:00:00Z", None], _DATES),
    "work365_usagesummary_cost": ([12.5, 3, "7.25", None], _NUMBERS),
    "work365_usagesummary_markup": ([17.647, 10, None], _NUMBERS),
    "statuscode": ([*STATUS, None], [*STATUS, 1, None, True, "870420000"]),
    "createdon": (["2026-11-09T05:45:00Z", "2026-11-10T01:00:00Z"], _DATES),
}
assert set(READ_COLUMNS[TABLE]) <= set(_VALUES)  # every column read, and the customer (not read)


@st.composite
def _row(draw: st.DrawFn) -> Any:
    if draw(st.integers(0, 19)) == 0:
        return draw(_JSON)  # not always an object
    row = {}
    for column, (plain, wild) in _VALUES.items():
        pick = draw(st.integers(0, 39))
        if pick == 0:
            continue  # a column the answer left out
        if pick == 1:
            value = draw(_JSON)
        elif pick < 5:
            value = draw(st.sampled_from(wild))
        else:
            value = draw(st.sampled_from(plain))
        row[LOADER.c(TABLE, column)] = value
    return row


def _figures(index: UsageIndex) -> dict[str, str]:
    """The groups as their repr: a Decimal's sign and exponent count (-0.0 is not 0, 1.0 is not 1)."""
    index.finish()
    return {pi: repr(index.of_invoice(pi)) for pi in sorted(index.invoice_ids())}


@given(st.lists(_row(), max_size=12))
def test_the_fast_usage_reader_gives_the_general_readers_figures(rows: list[Any]) -> None:
    fast = UsageIndex()
    fast_bad = LOADER.reduce_usage(rows, fast)

    records, bad = LOADER.records("usage_summaries", TABLE, rows, _usage)
    general = UsageIndex.of(records)

    assert _figures(fast) == _figures(general)
    assert fast_bad == bad


def _plain_row() -> dict[str, Any]:
    return {LOADER.c(TABLE, column): plain[0] for column, (plain, _) in _VALUES.items()}


def test_each_odd_value_in_an_otherwise_plain_row_reads_as_the_general_reader_reads_it() -> None:
    # Every value of every column in turn, the rest of the row plain: each check of the fast reader.
    odd = [[], {}, [1], -1.5, "2026-10-31T00:00:00Z"]
    for column, (plain, wild) in _VALUES.items():
        for value in [*plain, *wild, *odd]:
            row = _plain_row() | {LOADER.c(TABLE, column): value}
            without = {k: v for k, v in _plain_row().items() if k != LOADER.c(TABLE, column)}
            for rows in ([row], [without]):
                fast = UsageIndex()
                fast_bad = LOADER.reduce_usage(rows, fast)
                records, bad = LOADER.records("usage_summaries", TABLE, rows, _usage)
                assert (_figures(fast), fast_bad) == (_figures(UsageIndex.of(records)), bad), (column, value)


def test_plain_rows_are_taken_by_the_fast_reader() -> None:
    # What Dataverse sends: canonical ids, ISO dates, numbers; the general reader is not asked.
    index = UsageIndex()
    assert _UsageRows(LOADER.reading(TABLE)).add(_plain_row(), index)
    assert [g.all.rows for g in index.of_invoice("pi-1")] == [1]


def test_numbers_equal_but_written_differently_are_read_as_written() -> None:
    # 0.0 and -0.0 are equal floats, 10 and 10.0 equal numbers: each row's own value is read, whatever
    # an earlier row held (the fast reader looks parsed numbers up by value).
    for column in ("work365_usagesummary_markup", "work365_usagesummary_cost"):
        for first, then in ((0.0, -0.0), (-0.0, 0.0), (10, 10.0), (10.0, 10), (1.5, "1.50")):
            rows = [
                _plain_row()
                | {LOADER.c(TABLE, column): first, LOADER.c(TABLE, "work365_usagesummary_subscription"): "a"},
                _plain_row()
                | {LOADER.c(TABLE, column): then, LOADER.c(TABLE, "work365_usagesummary_subscription"): "b"},
            ]
            fast = UsageIndex()
            LOADER.reduce_usage(rows, fast)
            records, _ = LOADER.records("usage_summaries", TABLE, rows, _usage)
            assert _figures(fast) == _figures(UsageIndex.of(records)), (column, first, then)
