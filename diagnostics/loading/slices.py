"""Cutting a provider invoice's usage into ranges of customers (pure: no I/O).

An invoice with more usage summaries than Dataverse will aggregate at once (50,000) is counted and
checked by ranges of its usage's customer lookup (`CustomerRange`): [low, high) in SQL Server's
order of uniqueidentifier, the order in which Dataverse compares GUIDs (and the simulator too), so
that the ranges cut here are complete and disjoint for any customer ids.

- `cut`: at most `parts` ranges of a range (the whole space by default), cut where a sample of its
  rows' customers is evenly spread (by sample rows: a customer with many rows gets a range of its
  own, many customers with few rows share one);
- `coalesce`: adjacent counted ranges joined into slices of at most `SLICE_ROWS` rows;
- `range_filter`: the `$filter` clause of a range.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

from diagnostics.adapters.dataverse import _sql_order
from diagnostics.messages import CustomerRange
from diagnostics.model import UsageTotals

# The most rows a slice is given: half of Dataverse's aggregate limit, so that a slice can still be
# counted when rows were added since it was cut, and its usage is five pages in its round two.
SLICE_ROWS = 25_000
# Fine ranges counted in one round: each is a part of the `$batch`, and every part counts against
# Dataverse's service protection limits (the null-customer range is one more).
FINE_RANGES = 31
EVERYTHING = CustomerRange()
NO_CUSTOMER = CustomerRange(no_customer=True)
_LAST_KEY = "f" * 32


def _guid_of_key(key: str) -> str:
    """The GUID whose `_sql_order` is `key` (the inverse of that permutation)."""
    k = key
    return (
        f"{k[30:32]}{k[28:30]}{k[26:28]}{k[24:26]}-{k[22:24]}{k[20:22]}-{k[18:20]}{k[16:18]}-"
        f"{k[12:16]}-{k[0:12]}"
    )


def successor(guid: str) -> str | None:
    """The GUID right after `guid` in SQL Server's order (None after the last): [guid, successor)
    holds exactly the rows of that one customer."""
    key = _sql_order(guid)
    if key == _LAST_KEY:
        return None
    return _guid_of_key(f"{int(key, 16) + 1:032x}")


def contains(r: CustomerRange, customer: str | None) -> bool:
    """Whether a usage row of this customer (None: none) lies in the range."""
    if r.no_customer or customer is None:
        return r.no_customer and customer is None
    key = _sql_order(customer)
    return (r.low is None or key >= _sql_order(r.low)) and (r.high is None or key < _sql_order(r.high))


def one_customer(r: CustomerRange) -> bool:
    """Whether the range holds the rows of a single customer, so that it cannot be cut further."""
    return r.low is not None and r.high is not None and successor(r.low) == r.high


def order_key(r: CustomerRange) -> str:
    """Ranges sorted in SQL order of their low bound (the open one first)."""
    return "" if r.low is None else _sql_order(r.low)


def cut(
    customers: Iterable[str | None], parts: int, within: CustomerRange = EVERYTHING
) -> list[CustomerRange]:
    """At most `parts` ranges covering `within` exactly, bounded at customers of the sample
    (`customers`: one per sampled row, None for a row without one; those outside `within` are
    ignored) so that each holds about as many sample rows. A range that no sampled customer
    splits is returned whole."""
    if within.no_customer:
        return [within]
    weights = Counter(c for c in customers if c is not None and contains(within, c))
    ordered = sorted(weights, key=_sql_order)
    total = sum(weights.values())
    bounds: list[str] = []
    before = 0  # sample rows of the customers before the one looked at
    target = 1  # the next cut wanted: after `total * target / parts` rows
    heavy = False  # the customer before holds a range's share alone: it gets a range of its own
    for customer in ordered:
        rows = weights[customer]
        crossed = target < parts and before * parts >= total * target
        alone = heavy or rows * parts >= total
        if before and (crossed or alone) and len(bounds) < parts - 1 and customer != within.low:
            bounds.append(customer)
        while target < parts and before * parts >= total * target:
            target += 1
        heavy = rows * parts >= total
        before += rows
    lows = [within.low, *bounds]
    highs = [*bounds, within.high]
    return [CustomerRange(low=low, high=high) for low, high in zip(lows, highs, strict=True)]


def isolate(r: CustomerRange) -> list[CustomerRange]:
    """The range's first customer alone, and the rest: for a range whose sample shows only it."""
    if r.low is None or one_customer(r):
        return [r]
    after = successor(r.low)
    if after is None:
        return [r]
    return [CustomerRange(low=r.low, high=after), CustomerRange(low=after, high=r.high)]


def coalesce(
    counted: Sequence[tuple[CustomerRange, int]], limit: int = SLICE_ROWS
) -> tuple[CustomerRange, ...]:
    """Slices of at most `limit` rows (a range counted above it is a slice of its own): adjacent
    counted ranges joined greedily in SQL order, each slice from its first range's low to its last
    range's high. An empty range joins its neighbour (the slices still cover every customer, so
    that rows added since are in one); ranges that are all empty give no slice. The rows without a
    customer are a slice of their own when there are any."""
    bounded = sorted(((r, n) for r, n in counted if not r.no_customer), key=lambda item: order_key(item[0]))
    groups: list[tuple[list[CustomerRange], int]] = []
    for r, rows in bounded:
        if groups and (groups[-1][1] == 0 or rows == 0 or groups[-1][1] + rows <= limit):
            groups[-1][0].append(r)
            groups[-1] = (groups[-1][0], groups[-1][1] + rows)
        else:
            groups.append(([r], rows))
    # An empty range always joins a group, so only a group of nothing but empty ranges is empty.
    slices = [
        CustomerRange(low=members[0].low, high=members[-1].high) for members, rows in groups if rows > 0
    ]
    if any(r.no_customer and n > 0 for r, n in counted):
        slices.append(NO_CUSTOMER)
    return tuple(slices)


def range_filter(column: str, r: CustomerRange) -> str:
    """The `$filter` clause of the rows in the range (`column`: the customer lookup's `_x_value`)."""
    if r.no_customer:
        return f"{column} eq null"
    clauses = []
    if r.low is not None:
        clauses.append(f"{column} ge {r.low}")
    if r.high is not None:
        clauses.append(f"{column} lt {r.high}")
    if not clauses:  # everything that has a customer
        return f"{column} ne null"
    return " and ".join(clauses)


def add_up(totals: Iterable[UsageTotals]) -> UsageTotals:
    out = UsageTotals()
    for t in totals:
        out.merge(t)
    return out
