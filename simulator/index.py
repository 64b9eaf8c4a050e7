"""Indexes of a served table: the rows a `$filter` can match, found without reading every row.

A filter's `seek` (simulator/odata.py) names the rows it can match: a property equal to one of some
values, a GUID property within bounds, or a combination. A table keeps, per property asked about, a
map from value to rows and a GUID order, built when first needed (a lookup's when the simulator
loads the fixture, as Dataverse indexes lookups) and dropped by the next write to the table (its
`generation` moves on). The rows found are a superset of the matches, in the table's
order; the filter's predicate still decides each one, less the terms the index answered exactly (a
GUID range: its rows are found by the same order the predicate compares in), so an index changes
the cost, never the answer.
A 500,000-row table read in partitions by GUID range is then read once in all, not once a partition.
"""

from __future__ import annotations

import bisect
import functools
import gc
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from simulator.odata import (
    AllOf,
    AnyOf,
    Equal,
    Filter,
    GuidRange,
    Predicate,
    Seek,
    all_hold,
    comparable,
    sql_guid_key,
)
from simulator.tenant import Row, ServedTable

GuidKey = tuple[int, bytes | str]
Positions = list[int]  # rows by their position in the table, ascending unless said otherwise


@dataclass(frozen=True)
class _Plan:
    size: int  # rows it names (an upper bound for a union)
    found: Callable[[], Iterable[int]]  # the rows' positions
    in_order: bool  # the positions come in the table's order already


class TableIndex:
    """The indexes of one table at one generation; built lazily, property by property. Rows are
    named by their position in the table, so that the table's order is the order of numbers."""

    def __init__(self, table: ServedTable) -> None:
        self.generation = table.generation
        self.rows: list[Row] = list(table.rows.values())  # in the table's order
        # prop -> the value as stored -> positions; None: a value cannot be a key
        self._groups: dict[str, dict[Any, Positions] | None] = {}
        # (prop, edm) -> comparable value -> positions; None: a value cannot be indexed
        self._equal: dict[tuple[str, str | None], dict[Any, Positions] | None] = {}
        # prop -> (distinct GUID keys sorted, rows before each in that order, each one's positions)
        self._guid: dict[str, tuple[list[GuidKey], list[int], list[Positions]] | None] = {}

    @property
    def built(self) -> set[str]:
        """The properties indexed so far."""
        return {prop for prop, _ in self._equal} | set(self._guid)

    def _by_value(self, prop: str) -> dict[Any, Positions] | None:
        """Positions by the property's value as stored; None when a value cannot be a key (a list
        or object a fixture served as written). Shared by the property's indexes."""
        if prop not in self._groups:
            self.group([prop])
        return self._groups[prop]

    def group(self, props: list[str]) -> None:
        """Group the rows by the value of each of `props` (`_by_value`), in one pass over them."""
        built: list[tuple[str, dict[Any, Positions]]] = [
            (prop, {}) for prop in dict.fromkeys(props) if prop not in self._groups
        ]
        cannot: set[str] = set()
        for position, row in enumerate(self.rows):
            get = row.values.get
            for prop, groups in built:
                value = get(prop)
                try:
                    found = groups.get(value)
                except TypeError:
                    cannot.add(prop)
                    continue
                if found is None:
                    groups[value] = [position]
                else:
                    found.append(position)
        for prop, groups in built:
            self._groups[prop] = None if prop in cannot else groups

    def equal(self, prop: str, edm: str | None) -> dict[Any, Positions] | None:
        if (prop, edm) not in self._equal:
            groups = self._by_value(prop)
            try:
                self._equal[(prop, edm)] = None if groups is None else _comparable_groups(groups, edm)
            except (TypeError, ValueError):  # a value served as written (unchecked)
                self._equal[(prop, edm)] = None
        return self._equal[(prop, edm)]

    def guid_order(self, prop: str) -> tuple[list[GuidKey], list[int], list[Positions]] | None:
        if prop not in self._guid:
            groups = self._by_value(prop)
            if groups is None:
                self._guid[prop] = None
                return None
            # The distinct values sorted (far fewer than the rows); a range is found among them.
            ordered = sorted(
                (sql_guid_key(str(value)), positions)
                for value, positions in groups.items()
                if value is not None
            )
            before, count = [], 0
            for _, positions in ordered:
                before.append(count)
                count += len(positions)
            before.append(count)
            self._guid[prop] = ([k for k, _ in ordered], before, [p for _, p in ordered])
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
        sort_keys, before, groups = order
        start, end = 0, len(sort_keys)
        if seek.low is not None:
            start = (bisect.bisect_left if seek.low_inclusive else bisect.bisect_right)(sort_keys, seek.low)
        if seek.high is not None:
            end = (bisect.bisect_right if seek.high_inclusive else bisect.bisect_left)(sort_keys, seek.high)
        end = max(start, end)
        return _Plan(
            before[end] - before[start],
            lambda: (p for positions in groups[start:end] for p in positions),
            in_order=False,
        )

    def _plan_any(self, seek: AnyOf) -> _Plan | None:
        plans = [self.plan(s) for s in seek.seeks]
        if any(p is None for p in plans):
            return None
        found = [p for p in plans if p is not None]
        return _Plan(
            sum(p.size for p in found), lambda: {k for p in found for k in p.found()}, in_order=False
        )


def _comparable_groups(groups: dict[Any, Positions], edm: str | None) -> dict[Any, Positions]:
    """Positions by comparable value: each distinct value made comparable once, not once a row;
    values stored in more than one form (case, offsets) joined, in the table's order."""
    index: dict[Any, Positions] = {}
    joined = set()
    for value, positions in groups.items():
        key = comparable(value, edm)
        known = index.get(key)
        if known is None:
            index[key] = positions
        else:
            index[key] = [*known, *positions]
            joined.add(key)
    for key in joined:
        index[key].sort()
    return index


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


def narrowed(table: ServedTable, compiled: Filter) -> tuple[list[Row] | None, Predicate]:
    """The rows an index says the filter can match, in the table's order (None: every row), and
    the test that still decides each: the filter's own, less the terms whose rows the index found
    exactly (an `and`'s GUID range: a partition's bounds are not tested again on every row)."""
    if compiled.seek is None:
        return None, compiled.test
    index = index_of(table)
    if compiled.parts:
        plan, covered = _plan_parts(index, compiled.parts)
    else:
        plan, covered = index.plan(compiled.seek), ((compiled,) if compiled.exact else ())
    if plan is None or plan.size >= len(table.rows):
        return None, compiled.test
    found = plan.found()
    positions = found if plan.in_order else sorted(found)
    rows = index.rows
    done = {id(part) for part in covered}
    rest = [part.test for part in (compiled.parts or (compiled,)) if id(part) not in done]
    return [rows[p] for p in positions], all_hold(rest)


def _plan_parts(index: TableIndex, parts: tuple[Filter, ...]) -> tuple[_Plan | None, tuple[Filter, ...]]:
    """The smallest plan for an `and`'s terms, and the terms whose rows it finds exactly: the GUID
    ranges of one property, merged (`a ge X and a lt Y`: each half alone may name half the table)."""
    ranges: dict[str, list[Filter]] = {}
    for part in parts:
        if part.exact and isinstance(part.seek, GuidRange):
            ranges.setdefault(part.seek.prop, []).append(part)
    options: list[tuple[_Plan, tuple[Filter, ...]]] = []
    for same in ranges.values():
        merged = functools.reduce(_narrowed, [p.seek for p in same if isinstance(p.seek, GuidRange)])
        plan = index.plan(merged)
        if plan is not None:
            options.append((plan, tuple(same)))
    for part in parts:
        plan = index.plan(part.seek) if part.seek is not None and not part.exact else None
        if plan is not None:
            options.append((plan, ()))
    return min(options, key=lambda option: option[0].size) if options else (None, ())


def index_lookups(tables: Iterable[ServedTable]) -> None:
    """Index the tables' lookups now (their values and their GUID order), as Dataverse has its
    lookups indexed before anyone asks: a first query then does not build them. Dropped by a write
    and built again when asked, like any other index."""
    collecting = gc.isenabled()
    gc.disable()  # lists of numbers, by the hundred thousand: nothing for the cyclic collector
    try:
        for table in tables:
            index = index_of(table)
            lookups = [column for column in table.columns if column.type == "Lookup"]
            index.group([column.prop for column in lookups])
            for column in lookups:
                index.equal(column.prop, column.edm)
                index.guid_order(column.prop)
    finally:
        if collecting:
            gc.enable()
