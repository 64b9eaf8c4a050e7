"""Indexes of a served table: the rows a `$filter` can match, found without reading every row.

A filter's `seek` (simulator/odata.py) names the rows it can match: a property equal to one of some
values, a GUID property within bounds, or a combination. A table keeps, per property asked about, a
map from value to rows and a GUID order, built when first needed and dropped by the next write to
the table (its `generation` moves on). The rows found are a superset of the matches, in the table's
order; the filter's predicate still decides each one, so an index changes the cost, never the answer.
A 500,000-row table read in partitions by GUID range is then read once in all, not once a partition.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from simulator.odata import AllOf, AnyOf, Equal, GuidRange, Seek, comparable, sql_guid_key
from simulator.tenant import Row, ServedTable

GuidKey = tuple[int, bytes | str]


@dataclass(frozen=True)
class _Plan:
    size: int  # rows it names (an upper bound for a union)
    found: Callable[[], Iterable[str]]  # the row keys
    in_order: bool  # the keys come in the table's order already


class TableIndex:
    """The indexes of one table at one generation; built lazily, property by property."""

    def __init__(self, table: ServedTable) -> None:
        self.generation = table.generation
        self._rows = table.rows
        self._position: dict[str, int] | None = None
        # prop -> comparable value -> row keys in table order; None: a value cannot be indexed
        self._equal: dict[tuple[str, str | None], dict[Any, list[str]] | None] = {}
        # prop -> (GUID keys sorted, the row keys in the same order)
        self._guid: dict[str, tuple[list[GuidKey], list[str]] | None] = {}

    @property
    def position(self) -> dict[str, int]:
        """Each row's position in the table, by key."""
        if self._position is None:
            self._position = {k: i for i, k in enumerate(self._rows)}
        return self._position

    def _by_value(self, prop: str) -> dict[Any, list[str]] | None:
        """Row keys by the property's value as stored, in table order; None when a value cannot
        be a key (a list or object a fixture served as written)."""
        groups: dict[Any, list[str]] = {}
        try:
            for key, row in self._rows.items():
                value = row.values.get(prop)
                found = groups.get(value)
                if found is None:
                    groups[value] = [key]
                else:
                    found.append(key)
        except TypeError:
            return None
        return groups

    def equal(self, prop: str, edm: str | None) -> dict[Any, list[str]] | None:
        if (prop, edm) not in self._equal:
            groups = self._by_value(prop)
            index: dict[Any, list[str]] | None = {}
            try:
                # Each distinct value is made comparable once, not once a row.
                for value, keys in (groups or {}).items():
                    index.setdefault(comparable(value, edm), []).extend(keys)  # type: ignore[union-attr]
            except (TypeError, ValueError):  # a value served as written (unchecked)
                index = None
            if groups is None:
                index = None
            elif index is not None and len(index) < len(groups):
                # Values stored in more than one form (case, offsets) were joined: back to table order.
                index = {value: sorted(keys, key=self.position.__getitem__) for value, keys in index.items()}
            self._equal[(prop, edm)] = index
        return self._equal[(prop, edm)]

    def guid_order(self, prop: str) -> tuple[list[GuidKey], list[str]] | None:
        if prop not in self._guid:
            groups = self._by_value(prop)
            if groups is None:
                self._guid[prop] = None
                return None
            groups.pop(None, None)
            # The distinct values sorted (far fewer than the rows), then their rows in that order.
            ordered = sorted((sql_guid_key(str(value)), keys) for value, keys in groups.items())
            self._guid[prop] = (
                [sort_key for sort_key, keys in ordered for _ in keys],
                [key for _, keys in ordered for key in keys],
            )
        return self._guid[prop]

    def plan(self, seek: Seek) -> _Plan | None:
        if isinstance(seek, Equal):
            return self._plan_equal(seek)
        if isinstance(seek, GuidRange):
            return self._plan_range(seek)
        if isinstance(seek, AllOf):
            plans = [self.plan(s) for s in _merged_ranges(seek.seeks)]
            found = [p for p in plans if p is not None]
            return min(found, key=lambda p: p.size) if found else None
        return self._plan_any(seek)

    def _plan_equal(self, seek: Equal) -> _Plan | None:
        index = self.equal(seek.prop, seek.edm)
        if index is None:
            return None
        lists = [index.get(v, []) for v in seek.values]
        if len(lists) == 1:
            return _Plan(len(lists[0]), lambda: lists[0], in_order=True)
        return _Plan(sum(map(len, lists)), lambda: (k for keys in lists for k in keys), in_order=False)

    def _plan_range(self, seek: GuidRange) -> _Plan | None:
        order = self.guid_order(seek.prop)
        if order is None:
            return None
        sort_keys, row_keys = order
        start, end = 0, len(sort_keys)
        if seek.low is not None:
            start = (bisect.bisect_left if seek.low_inclusive else bisect.bisect_right)(sort_keys, seek.low)
        if seek.high is not None:
            end = (bisect.bisect_right if seek.high_inclusive else bisect.bisect_left)(sort_keys, seek.high)
        return _Plan(max(end - start, 0), lambda: row_keys[start:end], in_order=False)

    def _plan_any(self, seek: AnyOf) -> _Plan | None:
        plans = [self.plan(s) for s in seek.seeks]
        if any(p is None for p in plans):
            return None
        found = [p for p in plans if p is not None]
        return _Plan(
            sum(p.size for p in found), lambda: {k for p in found for k in p.found()}, in_order=False
        )


def _merged_ranges(seeks: tuple[Seek, ...]) -> list[Seek]:
    """`a ge X and a lt Y` as one range of `a`: each half alone may name half the table."""
    ranges: dict[str, GuidRange] = {}
    others: list[Seek] = []
    for seek in seeks:
        if not isinstance(seek, GuidRange):
            others.append(seek)
            continue
        known = ranges.get(seek.prop)
        ranges[seek.prop] = seek if known is None else _narrowed(known, seek)
    return [*ranges.values(), *others]


def _narrowed(a: GuidRange, b: GuidRange) -> GuidRange:
    low, low_inclusive = _tighter(a.low, a.low_inclusive, b.low, b.low_inclusive, higher=True)
    high, high_inclusive = _tighter(a.high, a.high_inclusive, b.high, b.high_inclusive, higher=False)
    return GuidRange(a.prop, low, low_inclusive, high, high_inclusive)


def _tighter(
    a: GuidKey | None, a_inclusive: bool, b: GuidKey | None, b_inclusive: bool, *, higher: bool
) -> tuple[GuidKey | None, bool]:
    if a is None:
        return b, b_inclusive
    if b is None or a == b:
        return a, a_inclusive and (b_inclusive if b is not None else True)
    return (a, a_inclusive) if (a > b) == higher else (b, b_inclusive)


def index_of(table: ServedTable) -> TableIndex:
    """The table's indexes as of its last write (rebuilt lazily after one)."""
    current = table.index
    if not isinstance(current, TableIndex) or current.generation != table.generation:
        current = TableIndex(table)
        table.index = current
    return current


def candidates(table: ServedTable, seek: Seek) -> list[Row] | None:
    """The rows `seek` names, in the table's order; None when it names no fewer than all of them."""
    index = index_of(table)
    plan = index.plan(seek)
    if plan is None or plan.size >= len(table.rows):
        return None
    keys = plan.found()
    ordered = keys if plan.in_order else sorted(keys, key=index.position.__getitem__)
    rows = table.rows
    return [rows[k] for k in ordered]
