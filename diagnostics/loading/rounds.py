"""One Dataverse round trip: named queries sent as one `$batch`, answers joined back per part and
decoded into the domain model.

A *part* is a snapshot field (`subscriptions`, `usage_summaries`, …), a probe (`probe:…`) that
only asks whether rows exist, rows kept as they come (`rows:…`: a sample, an aggregate's answer)
or usage counted and summed as its pages come (`tally:…`, where Dataverse will not aggregate). A part may be split into several queries (id chunks, the same table
read by two different keys, or partitions of one large query); its answers are joined, and one
failed query fails the whole part, so the checks that need it report CHECK_FAILED instead of passing
on half the rows.

Every answer is read page by page, the answers of one round at once (within the client's
concurrency cap), and each page is decoded as it arrives: the raw rows of a large table are never
all held. Usage summaries are reduced into `UsageIndex` rather than kept as records. What is kept
is joined in the order of the queries, whatever the order the pages arrived in.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from diagnostics.adapters.dataverse import Page, Query
from diagnostics.errors import ServiceError
from diagnostics.metadata import ResolvedSchema
from diagnostics.model import Snapshot, UnreadableRecord, UsageIndex, UsageTotals
from diagnostics.schema import TABLES
from diagnostics.snapshot_loader import (
    _PARTS,
    DataverseReader,
    Loader,
    _account_names,
    _moment,
    _number,
    _read,
)

Answer = list[dict[str, Any]] | ServiceError
PROBE = "probe:"
COUNT = "count:"
ROWS = "rows:"
TALLY = "tally:"
_COST, _CREATED = "work365_usagesummary_cost", "createdon"


@dataclass
class Round:
    """The queries of one round trip, by part, in the order they are sent."""

    loader: Loader
    queries: list[tuple[str, Query]] = field(default_factory=list)
    # Queries sent as GETs of their own, at once and beside the `$batch`, not in it: Dataverse
    # answers a batch's parts one after another, so large first pages in it would wait in turn.
    alone: set[Query] = field(default_factory=set)

    def readable(self, part: str) -> bool:
        """Whether the part can be read in full: a missing table or a table read at less than
        organization level is not asked for (its failure is known from the start, see `Answers`)."""
        return part not in self.loader.schema.unavailable

    def extend(self, queries: Iterable[tuple[str, Query]]) -> None:
        self.queries.extend((part, query) for part, query in queries if self.readable(part))

    def add(self, part: str, table: str, filter_: str | None = None, *, annotations: bool = False) -> None:
        if self.readable(part):
            self.queries.append((part, self.loader.query(table, filter_, annotations=annotations)))

    def add_in(
        self,
        part: str,
        table: str,
        column: str,
        ids: Iterable[str],
        also: str | None = None,
        *,
        annotations: bool = False,
    ) -> None:
        """Rows whose `column` is one of `ids` (in chunks), optionally `and also`; none when no ids."""
        for clause in self.loader.in_filter(table, column, ids):
            self.add(part, table, f"{clause} and ({also})" if also else clause, annotations=annotations)

    def count_by(self, key: str, table: str, column: str, filter_: str, *, part: str) -> None:
        """How many rows match, per value of `column` (one row per value, whatever the row count)."""
        if not self.readable(part):
            return
        group = self.loader.c(table, column)
        apply = f"filter({filter_})/groupby(({group}),aggregate($count as rows))"
        self.queries.append((COUNT + key, Query(self.loader.schema.entity_set(table), (), apply=apply)))

    def rows(self, key: str, query: Query, *, part: str) -> None:
        """The query's rows as they come (`Answers.rows[key]`): for small answers only."""
        if self.readable(part):
            self.queries.append((ROWS + key, query))

    def usage_totals(self, key: str, filter_: str) -> None:
        """How many usage summaries match and the sum of their cost, in one aggregate row
        (`Answers.rows[key]`, read by `totals_of`); refused by Dataverse above 50,000 rows."""
        loader = self.loader
        cost = loader.c("work365_usagesummary", _COST)
        apply = f"filter({filter_})/aggregate($count as rows,{cost} with sum as cost)"
        query = Query(loader.schema.entity_set("work365_usagesummary"), (), apply=apply)
        self.rows(key, query, part="usage_summaries")

    def tally(self, key: str, filter_: str) -> None:
        """The usage summaries that match, read page by page and reduced to their count, cost and
        first and last sync (`Answers.tallies[key]`): for rows too many to aggregate."""
        if not self.readable("usage_summaries"):
            return
        loader = self.loader
        select = (loader.c("work365_usagesummary", _COST), loader.c("work365_usagesummary", _CREATED))
        query = Query(loader.schema.entity_set("work365_usagesummary"), select, filter_)
        self.queries.append((TALLY + key, query))

    def probe(self, key: str, table: str, filter_: str, *, part: str) -> None:
        """Whether any row matches: one row of one column."""
        if not self.readable(part):
            return
        column = self.loader.c(table, TABLES[table].primary_key)
        self.queries.append(
            (PROBE + key, Query(self.loader.schema.entity_set(table), (column,), filter_, top=1))
        )


@dataclass
class Answers:
    """What one or more rounds returned: decoded records per part, probes, names, failures.

    Start it with `Answers.of(schema)`: what cannot be read in full fails its part from the start.
    """

    records: dict[str, list[Any]] = field(default_factory=dict)
    probes: dict[str, bool] = field(default_factory=dict)
    # count_by key -> {value: rows}, or the error that stopped the count (e.g. Dataverse's
    # AggregateQueryRecordLimit): the caller then reads the rows without knowing how many.
    counts: dict[str, dict[str | None, int] | ServiceError] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)
    # records left out because a value could not be read (the rest of their part is used)
    unreadable: list[UnreadableRecord] = field(default_factory=list)
    # The usage summaries read, reduced (never held as rows).
    usage: UsageIndex = field(default_factory=UsageIndex)
    # `Round.rows` key -> the rows, or the error that stopped the query.
    rows: dict[str, list[dict[str, Any]] | ServiceError] = field(default_factory=dict)
    # `Round.tally` key -> the totals of the rows read, or the error that stopped the reading.
    tallies: dict[str, UsageTotals | ServiceError] = field(default_factory=dict)

    @classmethod
    def of(cls, schema: ResolvedSchema) -> Answers:
        return cls(failures=dict(schema.unavailable))

    def get(self, part: str) -> list[Any]:
        return self.records.get(part, [])

    def snapshot(self, *, as_of: datetime, period: str, **fields: Any) -> Snapshot:
        """The snapshot of what was read; `fields` adds the unit, Partner Center, open periods."""
        with_usage = {
            k.removeprefix("any:") for k, found in self.probes.items() if found and k.startswith("any:")
        }
        parts = {part: tuple(self.get(part)) for part in _PARTS if part != _USAGE}
        return Snapshot.model_validate(
            {
                "as_of": as_of,
                "period": period,
                **parts,
                "usage": self.usage.finish(),
                "account_names": self.names,
                "failures": self.failures,
                "unreadable_records": tuple(self.unreadable),
                "invoices_with_usage": frozenset(with_usage),
                **fields,
            }
        )


_USAGE = "usage_summaries"


def _unique(records: list[Any]) -> list[Any]:
    """One record per id: a part read by two keys (id and provider id, say) may return a row twice."""
    seen: dict[str, Any] = {}
    for record in records:
        seen.setdefault(record.id, record)
    return list(seen.values())


@dataclass
class _Answer:
    """What one query of a round gave: its rows (probes and counts), or its records and the rows
    that could not be read (numbered within the query), or its error."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    records: list[Any] = field(default_factory=list)
    unreadable: list[UnreadableRecord] = field(default_factory=list)
    names: dict[str, str] = field(default_factory=dict)
    count: int = 0  # rows read
    error: ServiceError | None = None
    tally: UsageTotals = field(default_factory=UsageTotals)  # a `tally:` part's rows, reduced


class _Reading:
    """The answers of one round as they arrive, page by page."""

    def __init__(self, loader: Loader, parts: Sequence[str], named: Sequence[bool] | None = None) -> None:
        self.loader, self.parts = loader, parts
        # Which answers carry formatted values (customer names): only those are searched for names.
        self.named = named if named is not None else [True] * len(parts)
        self.answers = [_Answer() for _ in parts]
        self.usage = UsageIndex()  # this round's usage, kept only if none of its queries failed
        self._account = loader.schema.schema_map.table("account")

    async def read(self, index: int, answer: AsyncIterator[Page] | ServiceError) -> None:
        into = self.answers[index]
        if isinstance(answer, ServiceError):
            into.error = answer
            return
        try:
            async for page in answer:
                self._page(self.parts[index], into, page, self.named[index])
                del page  # reduced: not held while the next one is fetched
        except ServiceError as exc:
            into.error = exc

    def _page(self, part: str, into: _Answer, page: Page, named: bool) -> None:
        if part.startswith((COUNT, PROBE, ROWS)):
            into.rows += page
            return
        if part.startswith(TALLY):
            _tally(self.loader, page, into.tally)
            return
        if named:
            into.names |= _account_names(page, self._account)
        bad: list[UnreadableRecord] = []
        if part == _USAGE:
            bad = self.loader.reduce_usage(page, self.usage)
        else:
            into.records += _read(self.loader, part, page, {}, bad)
        into.unreadable += [u.model_copy(update={"row": u.row + into.count}) for u in bad]
        into.count += len(page)

    def settle(self, into: Answers) -> None:
        """Join each part's answers in the order of its queries, and add them to `into`."""
        failed: dict[str, ServiceError] = {}
        for part, answer in zip(self.parts, self.answers, strict=True):
            if answer.error is not None:
                failed.setdefault(part, answer.error)
        joined: dict[str, list[_Answer]] = {}
        for part, answer in zip(self.parts, self.answers, strict=True):
            joined.setdefault(part, []).append(answer)
        for part, answers in joined.items():
            error = failed.get(part)
            if part.startswith(COUNT):
                rows = [row for a in answers for row in a.rows]
                into.counts[part.removeprefix(COUNT)] = error or _counts(rows)
            elif part.startswith(ROWS):
                into.rows[part.removeprefix(ROWS)] = error or [row for a in answers for row in a.rows]
            elif part.startswith(TALLY):
                into.tallies[part.removeprefix(TALLY)] = error or _joined_tally(answers)
            elif part.startswith(PROBE):
                # A probe that could not be answered counts as "there are rows": the period is then
                # reviewed in full rather than passed over as healthy.
                into.probes[part.removeprefix(PROBE)] = error is not None or any(a.rows for a in answers)
            elif error is not None:
                into.failures[part] = str(error)
                into.records.setdefault(part, [])
            else:
                self._settle_part(part, answers, into)

    def _settle_part(self, part: str, answers: list[_Answer], into: Answers) -> None:
        offset = 0
        records: list[Any] = []
        for answer in answers:
            into.names |= answer.names
            into.unreadable += [u.model_copy(update={"row": u.row + offset}) for u in answer.unreadable]
            offset += answer.count
            records += answer.records
        if part == _USAGE:
            if into.usage:
                into.usage.merge(self.usage)
            else:  # the first usage read: taken as it is, not copied (a copy doubles the peak)
                into.usage = self.usage
        into.records[part] = _unique([*into.records.get(part, []), *records])


async def run(dv: DataverseReader, round_: Round, into: Answers) -> None:
    """Send the round as one `$batch` (nothing is sent for an empty round) and the queries of its
    `alone` parts as GETs beside it, read the answers page by page, all at once, and add them to
    `into`."""
    if not round_.queries:
        return
    reading = _Reading(
        round_.loader,
        [part for part, _ in round_.queries],
        [query.annotations for _, query in round_.queries],
    )
    alone = [i for i, (_, query) in enumerate(round_.queries) if query in round_.alone]
    batched = [i for i, (_, query) in enumerate(round_.queries) if query not in round_.alone]

    async def read_batched() -> None:
        if not batched:
            return
        streams = await dv.batch_pages([round_.queries[i][1] for i in batched])
        await asyncio.gather(*(reading.read(i, stream) for i, stream in zip(batched, streams, strict=True)))

    with collector_paused():
        # The batch first: it takes a place within the client's concurrency cap before the GETs do.
        await asyncio.gather(
            read_batched(), *(reading.read(i, dv.pages(round_.queries[i][1])) for i in alone)
        )
        reading.settle(into)


class _Pause:
    rounds = 0  # rounds being read in this process now (units of work may be read at once)
    resume = False  # whether the collector was running when the first of them began


@contextmanager
def collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector paused while rounds are read. Reading makes hundreds of
    thousands of objects that live on (records, usage groups) and as many that go at once (rows),
    and the collector, started by the count of objects made, would traverse the growing heap again
    and again to find no cycle (rows and records hold none): a quarter of the CPU of a
    10,000-customer scan. A scan keeps it paused from its first read to its report (`service`):
    resumed between rounds it would traverse everything read so far, and during the checks the
    whole snapshot (a quarter of their time). Objects are still freed as soon as nothing refers to
    them; the collector resumes when no round (nor scan) is being read, and then finds any cycle
    made meanwhile."""
    if _Pause.rounds == 0:
        _Pause.resume = gc.isenabled()
        gc.disable()
    _Pause.rounds += 1
    try:
        yield
    finally:
        _Pause.rounds -= 1
        if _Pause.rounds == 0 and _Pause.resume:
            gc.enable()


def _counts(answer: Answer) -> dict[str | None, int] | ServiceError:
    if isinstance(answer, ServiceError):
        return answer
    out: dict[str | None, int] = {}
    for row in answer:
        rows = row.get("rows")
        values = [v for k, v in row.items() if k != "rows" and "@" not in k]
        if not isinstance(rows, int) or len(values) > 1:
            return ServiceError(f"Dataverse answered an aggregate without a count: {str(row)[:80]}")
        value = values[0] if values else None  # the group of rows where the column is empty
        out[None if value is None else str(value)] = rows
    return out


def _tally(loader: Loader, page: Page, into: UsageTotals) -> None:
    cost_column = loader.c("work365_usagesummary", _COST)
    for row in page:
        cost, created = row.get(cost_column), row.get(_CREATED)
        if not isinstance(created, str):
            raise ServiceError(f"Dataverse answered a usage summary without createdon: {str(row)[:80]}")
        into.add(_number(str(cost)) if cost is not None else None, _moment(created))


def _joined_tally(answers: list[_Answer]) -> UsageTotals:
    out = UsageTotals()
    for answer in answers:
        out.merge(answer.tally)
    return out


def totals_of(answer: list[dict[str, Any]] | ServiceError | None) -> tuple[int, Decimal] | ServiceError:
    """The rows and the cost `Round.usage_totals` counted, or why they are not known."""
    if answer is None:
        return ServiceError("the usage summaries were not counted")
    if isinstance(answer, ServiceError):
        return answer
    if len(answer) != 1 or not isinstance(answer[0].get("rows"), int):
        return ServiceError(f"Dataverse answered an aggregate without a count: {str(answer)[:80]}")
    cost = answer[0].get("cost")
    number = (
        _number(str(cost)) if isinstance(cost, int | float | str) and not isinstance(cost, bool) else None
    )
    if cost is not None and number is None:
        return ServiceError(
            f"Dataverse answered an aggregate with a cost that is not a number: {cost!r}"[:120]
        )
    return answer[0]["rows"], number or Decimal(0)
