"""Cutting an invoice's usage into ranges of customers, and joining counted ranges into slices:
complete and disjoint in SQL Server's order of uniqueidentifier, balanced by the sample, whatever
the sample looks like (skewed, empty, nulls, one customer)."""

from __future__ import annotations

import itertools
import random
import uuid

import pytest

from diagnostics.adapters.dataverse import sql_guid_key
from diagnostics.loading.slices import (
    EVERYTHING,
    NO_CUSTOMER,
    SLICE_ROWS,
    coalesce,
    contains,
    cut,
    isolate,
    one_customer,
    range_filter,
    successor,
)
from diagnostics.messages import CustomerRange


def _guids(n: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    return [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(n)]


def _sql_sorted(guids: list[str]) -> list[str]:
    return sorted(guids, key=sql_guid_key)


def _where(ranges: list[CustomerRange], customer: str | None) -> list[int]:
    return [i for i, r in enumerate(ranges) if contains(r, customer)]


def test_the_successor_is_the_next_guid_in_sql_order() -> None:
    for guid in _guids(200):
        after = successor(guid)
        assert after is not None
        assert int.from_bytes(sql_guid_key(after), "big") == int.from_bytes(sql_guid_key(guid), "big") + 1
        assert one_customer(CustomerRange(low=guid, high=after))
    # the carry crosses the groups as SQL Server orders them (the last group is the most significant)
    assert successor("ffffffff-ffff-ffff-ffff-000000000000") == "00000000-0000-0000-0000-000000000001"
    assert successor("ffffffff-ffff-ffff-ffff-ffffffffffff") is None


@pytest.mark.parametrize("parts", [1, 2, 5, 31])
def test_the_ranges_cover_every_customer_once_and_are_balanced_by_the_sample(parts: int) -> None:
    customers = _guids(400)
    sample = [c for i, c in enumerate(customers) for _ in range(1 + i % 5)]  # 1 to 5 rows each
    ranges = cut(sample, parts)
    assert len(ranges) == parts
    assert ranges[0].low is None
    assert ranges[-1].high is None
    assert all(a.high == b.low for a, b in itertools.pairwise(ranges))
    for customer in [*customers, *_guids(100, seed=8)]:  # sampled or not: in exactly one range
        assert len(_where(ranges, customer)) == 1
    assert _where(ranges, None) == []  # the rows without a customer are a range of their own
    rows = [sum(1 for c in sample if contains(r, c)) for r in ranges]
    assert max(rows) - min(rows) <= 5 + len(sample) // parts // 10  # even, to a customer's rows


def test_a_heavy_customer_gets_a_range_of_its_own() -> None:
    light = _guids(60)
    heavy = light[30]
    sample = [*light, *[heavy] * 1000]
    ranges = cut(sample, 8)
    alone = ranges[_where(ranges, heavy)[0]]
    assert [c for c in light if contains(alone, c)] == [heavy]


def test_more_parts_than_customers_gives_each_customer_its_range() -> None:
    customers = _sql_sorted(_guids(3))
    ranges = cut([*customers, None, None], 31)
    assert [r.low for r in ranges] == [None, customers[1], customers[2]]
    assert [len(_where(ranges, c)) for c in customers] == [1, 1, 1]


def test_a_sample_that_cannot_split_gives_the_range_whole() -> None:
    assert cut([], 31) == [EVERYTHING]
    assert cut([None] * 10, 31) == [EVERYTHING]
    only = _guids(1)[0]
    assert cut([only] * 5000, 31) == [EVERYTHING]  # one customer: no bound splits it
    within = CustomerRange(low=only, high=None)
    assert cut([only] * 5000, 31, within=within) == [within]  # never cut at its own low bound


def test_a_range_is_cut_within_itself_by_the_customers_inside_it() -> None:
    customers = _sql_sorted(_guids(50))
    within = CustomerRange(low=customers[10], high=customers[20])
    ranges = cut(customers, 4, within=within)  # the customers outside it are ignored
    assert ranges[0].low == customers[10]
    assert ranges[-1].high == customers[20]
    assert len(ranges) == 4
    assert all(a.high == b.low for a, b in itertools.pairwise(ranges))
    for customer in customers:
        assert len(_where(ranges, customer)) == (1 if contains(within, customer) else 0)
    assert cut(customers, 4, within=NO_CUSTOMER) == [NO_CUSTOMER]


def test_a_range_whose_sample_shows_only_its_first_customer_isolates_it() -> None:
    a, b = _sql_sorted(_guids(2))
    first, rest = isolate(CustomerRange(low=a, high=b))
    assert one_customer(first)
    assert first.low == a
    assert rest == CustomerRange(low=successor(a), high=b)
    assert isolate(first) == [first]  # one customer cannot be cut
    assert isolate(CustomerRange(low=None, high=b)) == [CustomerRange(low=None, high=b)]


def test_counted_ranges_join_into_slices_of_at_most_the_limit() -> None:
    ranges = cut(_guids(10), 10)  # 10 adjacent ranges
    rows = [0, 9_000, 9_000, 9_000, 30_000, 0, 12_000, 12_000, 2_000, 0]
    slices = coalesce(list(zip(ranges, rows, strict=True)))
    # greedy: [0+9+9] [9] [30+0] [12+12] [2+0], each from its first range's low to its last's high
    # (an empty range joins the slice before it, the leading one the slice after it)
    assert slices == (
        CustomerRange(low=None, high=ranges[3].low),
        CustomerRange(low=ranges[3].low, high=ranges[4].low),
        CustomerRange(low=ranges[4].low, high=ranges[6].low),
        CustomerRange(low=ranges[6].low, high=ranges[8].low),
        CustomerRange(low=ranges[8].low, high=None),
    )
    assert all(a.high == b.low for a, b in itertools.pairwise(slices))


def test_the_rows_without_a_customer_are_a_slice_when_there_are_any() -> None:
    ranges = cut(_guids(3), 2)
    assert coalesce([(ranges[0], 5), (ranges[1], 5), (NO_CUSTOMER, 7)]) == (EVERYTHING, NO_CUSTOMER)
    assert coalesce([(ranges[0], 5), (ranges[1], 5), (NO_CUSTOMER, 0)]) == (EVERYTHING,)
    # every usage row without a customer: no slice of customers at all
    assert coalesce([(ranges[0], 0), (ranges[1], 0), (NO_CUSTOMER, 70_000)]) == (NO_CUSTOMER,)
    assert coalesce([]) == ()


def test_one_range_per_slice_at_the_limit() -> None:
    ranges = cut(_guids(3), 3)
    counted = [(r, SLICE_ROWS) for r in ranges]
    assert coalesce(counted) == tuple(ranges)
    assert coalesce([(r, SLICE_ROWS // 3) for r in ranges]) == (EVERYTHING,)


def test_the_filters_of_ranges() -> None:
    a, b = _sql_sorted(_guids(2))
    c = "_work365_usagesummary_customer_value"
    assert range_filter(c, NO_CUSTOMER) == f"{c} eq null"
    assert range_filter(c, CustomerRange(low=a, high=b)) == f"{c} ge {a} and {c} lt {b}"
    assert range_filter(c, CustomerRange(low=None, high=b)) == f"{c} lt {b}"
    assert range_filter(c, CustomerRange(low=a)) == f"{c} ge {a}"
    assert range_filter(c, EVERYTHING) == f"{c} ne null"
