"""The simulated Dataverse environment: tables under their served names, option values, rows.

Built once from a fixture. Everything here is in the form Dataverse puts on the wire: renamed tables
and columns, lookups as `_<column>_value`, option sets as integer values, dates as strings. Option
values are assigned the way Dataverse does: statecode 0, 1, …; the built-in statuses "Active" (1) and
"Inactive" (2); every other status and every choice gets a publisher-prefixed value 870420000 + i.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from json.encoder import encode_basestring
from typing import Any, Literal

from diagnostics.schema import TABLES, ColumnDef, TableDef
from simulator import work365
from simulator.fixture import (
    RAW_KEY,
    Fixture,
    PartnerCenterFixture,
    Reimport,
    TimelineEntry,
    complete_added_row,
    option_labels,
)
from simulator.rowjson import object_text, selected_row_writer, value_text
from simulator.values import format_datetime, pluralise
from simulator.work365 import PendingReimport

CUSTOM_OPTION_BASE = 870_420_000
FORMATTED = "OData.Community.Display.V1.FormattedValue"
LOOKUP_TABLE = "Microsoft.Dynamics.CRM.lookuplogicalname"
NAVIGATION = "Microsoft.Dynamics.CRM.associatednavigationproperty"

# Edm type of each attribute type, for $filter type checks and metadata.
EDM_TYPES = {
    "Uniqueidentifier": "Edm.Guid",
    "Lookup": "Edm.Guid",
    "String": "Edm.String",
    "Memo": "Edm.String",
    "DateTime": "Edm.DateTimeOffset",
    "DateOnly": "Edm.Date",
    "Money": "Edm.Decimal",
    "Decimal": "Edm.Decimal",
    "Integer": "Edm.Int32",
    "Boolean": "Edm.Boolean",
    "State": "Edm.Int32",
    "Status": "Edm.Int32",
    "Picklist": "Edm.Int32",
}
# Object type codes of Dataverse's own tables; custom tables get 10000+.
_SYSTEM_TYPE_CODES = {
    "account": 1,
    "annotation": 5,
    "product": 1024,
    "invoice": 1090,
    "transactioncurrency": 9105,
}


@dataclass(frozen=True)
class Option:
    value: int
    label: str  # as served (after status_labels)
    default_label: str
    state: int | None = None  # status options: the statecode value they belong to


@dataclass(frozen=True)
class ServedColumn:
    logical: str  # served logical name
    prop: str  # Web API property: the logical name, or _<logical>_value for lookups
    type: str  # schema attribute type; for a fixture's extra column one inferred from its values
    display: str
    default: str | None  # default logical name; None for an extra column a fixture added
    target: str | None = None  # lookup target (default table name)
    options: tuple[Option, ...] = ()
    global_option_set: str | None = None  # the global choice a choice column uses

    @property
    def edm(self) -> str | None:
        return EDM_TYPES.get(self.type)

    def option(self, value: object) -> Option | None:
        try:
            return self._by_value.get(value)
        except TypeError:  # a value served as written that cannot be a key (a list, say)
            return next((o for o in self.options if o.value == value), None)

    @functools.cached_property
    def _by_value(self) -> dict[object, Option]:
        return {o.value: o for o in reversed(self.options)}  # the first of a value wins

    def option_for_label(self, default_label: str) -> Option:
        return self._by_label[default_label]

    @functools.cached_property
    def _by_label(self) -> dict[str, Option]:
        return {o.default_label: o for o in reversed(self.options)}  # the first of a label wins


@dataclass
class Row:
    values: dict[str, Any]  # prop -> wire value
    targets: dict[str, str] = field(default_factory=dict)  # lookup prop -> target default table
    version: int = 0


@dataclass
class ServedTable:
    definition: TableDef
    logical: str
    entity_set: str
    object_type_code: int
    columns: tuple[ServedColumn, ...]
    rows: dict[str, Row] = field(default_factory=dict)  # primary key -> row, in insertion order
    # The tenant's generation at this table's last write: what is derived from its rows (indexes,
    # rows as served) is current while this stays the same.
    generation: int = 0
    index: object = field(default=None, repr=False, compare=False)  # simulator/index.py, lazily

    def __post_init__(self) -> None:
        self.by_prop = {c.prop: c for c in self.columns}
        self.by_default = {c.default: c for c in self.columns if c.default}

    @property
    def primary_key(self) -> str:
        return self.by_default[self.definition.primary_key].prop

    @property
    def primary_name(self) -> str:
        return self.by_default[self.definition.primary_name].prop

    @property
    def type_name(self) -> str:
        return f"Microsoft.Dynamics.CRM.{self.logical}"


@dataclass(frozen=True)
class Change:
    """One row a timeline entry added, updated or deleted (deleted notes included)."""

    table: str  # default table name
    id: str
    action: Literal["added", "updated", "deleted"]
    name: str | None  # the row's primary name, for a story a person reads


@dataclass(frozen=True)
class AppliedEntry:
    at: datetime
    description: str
    changes: tuple[Change, ...]
    invoices: tuple[str, ...]  # Partner Center invoice ids added or replaced


class Tenant:
    """Served tables and rows. Callers hold `lock` around a request so writes are atomic."""

    def __init__(self, fixture: Fixture) -> None:
        self.fixture = fixture
        self.now: datetime = fixture.now
        self.lock = threading.RLock()
        # Replaced whole (never mutated) when the timeline changes it, so a reader needs no lock.
        self.partner_center: PartnerCenterFixture = fixture.partner_center
        self._next_entry = 0
        self.notes: list[dict[str, Any]] = []
        self.writes: list[dict[str, Any]] = []
        # Work 365's re-imports of provider invoices a client deleted, in `at` order, and what a
        # successful one brings, by the id of the invoice it replaces (simulator/work365.py).
        self.reimports: list[PendingReimport] = []
        self._reimport_specs: dict[str, Reimport] = dict(fixture.reimports)
        self._version = 0
        # Bumped by every write (and undo): a cached query result from an older generation is stale.
        self.generation = 0
        self._journal: list[tuple[ServedTable, str, Row | None]] | None = None
        # Rows as served (JSON), by table, $select and annotations: (stamp, {key: JSON}).
        self._wire: dict[tuple[object, ...], tuple[int, dict[str, bytes]]] = {}
        self.tables: dict[str, ServedTable] = {}
        for number, definition in enumerate(TABLES.values()):
            self.tables[definition.logical] = self._table(definition, 10_000 + number)
        self.by_set = {t.entity_set: t for t in self.tables.values()}
        self.by_logical = {t.logical: t for t in self.tables.values()}
        for name, rows in fixture.rows.items():
            table = self.tables[name]
            for raw in rows:
                row = self._row(table, raw)
                table.rows[row.values[table.primary_key]] = row

    # --- building ---------------------------------------------------------------------------------

    def _table(self, definition: TableDef, type_code: int) -> ServedTable:
        logical = self.fixture.table_renames.get(definition.logical, definition.logical)
        columns = [self._column(definition, c, logical) for c in definition.columns]
        extras: dict[str, str] = {}
        timeline_rows = (row for e in self.fixture.timeline for row in e.upsert.get(definition.logical, ()))
        known = definition.column_names | {RAW_KEY}
        for raw in (*self.fixture.rows.get(definition.logical, ()), *timeline_rows):
            for name, value in raw.items():
                if name not in known and value is not None:
                    extras.setdefault(name, _inferred_type(value))
        columns += [ServedColumn(name, name, kind, name, None) for name, kind in extras.items()]
        return ServedTable(
            definition,
            logical,
            pluralise(logical),
            _SYSTEM_TYPE_CODES.get(definition.logical, type_code),
            tuple(columns),
        )

    def _column(self, table: TableDef, column: ColumnDef, served_table: str) -> ServedColumn:
        renamed = self.fixture.column_renames.get(f"{table.logical}.{column.logical}")
        if renamed is None and column.logical == table.primary_key and served_table != table.logical:
            # Dataverse names a table's primary key after the table, so it follows the rename.
            renamed = f"{served_table}id"
        logical = renamed or column.logical
        prop = f"_{logical}_value" if column.type == "Lookup" else logical
        return ServedColumn(
            logical,
            prop,
            column.type,
            column.display,
            column.logical,
            column.target,
            self._options(table, column),
            self.fixture.global_option_sets.get(f"{table.logical}.{column.logical}"),
        )

    def _options(self, table: TableDef, column: ColumnDef) -> tuple[Option, ...]:
        labels = option_labels(table, column)
        if column.type == "State":
            return tuple(Option(i, label, label) for i, label in enumerate(labels))
        if column.type == "Picklist":
            return tuple(Option(CUSTOM_OPTION_BASE + i, label, label) for i, label in enumerate(labels))
        if column.type != "Status":
            return ()
        states = list(dict.fromkeys(state for _, state in table.status))
        relabel = self.fixture.status_labels.get(table.logical, {})
        options = []
        for i, (status, state) in enumerate(table.status):
            state_value = states.index(state)
            builtin = status == state and state_value < 2  # Dataverse's own Active=1 / Inactive=2
            value = state_value + 1 if builtin else CUSTOM_OPTION_BASE + i
            options.append(Option(value, relabel.get(status, status), status, state_value))
        return tuple(options)

    def _row(self, table: ServedTable, raw: dict[str, Any]) -> Row:
        row = Row({}, version=self.next_version())
        values = row.values
        for column in table.columns:
            value = raw.get(column.default or column.logical)
            if value is None:
                values[column.prop] = None
            elif column.options:
                values[column.prop] = column.option_for_label(value).value
            elif column.type == "Lookup":
                row.targets[column.prop] = column.target or raw["objecttypecode"]
                values[column.prop] = str(value)
            elif column.default == "objecttypecode":
                values[column.prop] = self.tables[value].logical if value in self.tables else value
            else:
                values[column.prop] = value
        for name, value in raw.get(RAW_KEY, {}).items():
            row.values[table.by_default[name].prop] = value  # served as written, unchecked
        return row

    # --- the timeline -----------------------------------------------------------------------------

    def advance_to(self, moment: datetime) -> list[AppliedEntry]:
        """Set the clock to `moment` and apply, once and in `at` order, every timeline entry due by
        then. Returns what was applied."""
        with self.lock:
            if moment < self.now:
                raise ValueError(f"the simulated clock only moves forward: {moment} is before {self.now}")
            self.now = moment
            applied = []
            timeline = self.fixture.timeline
            while True:
                entry = timeline[self._next_entry] if self._next_entry < len(timeline) else None
                reimport = self.reimports[0] if self.reimports else None
                # The fixture's entry first at equal times: Work 365's import sees what it changed.
                if entry is not None and entry.at <= moment and (reimport is None or entry.at <= reimport.at):
                    applied.append(self._apply(entry))
                    self._next_entry += 1
                elif reimport is not None and reimport.at <= moment:
                    imported = self._reimport(self.reimports.pop(0))
                    if imported is not None:
                        applied.append(imported)
                else:
                    return applied

    def pending_timeline(self) -> tuple[TimelineEntry, ...]:
        """The timeline entries not applied yet, with Work 365's scheduled re-imports (as entries
        that only say when and what), in `at` order."""
        with self.lock:
            scheduled = [TimelineEntry(r.at, -1, r.description) for r in self.reimports]
            return tuple(sorted((*self.fixture.timeline[self._next_entry :], *scheduled), key=lambda e: e.at))

    def schedule_reimport(self, table: ServedTable, key: str) -> None:
        """A client is deleting this row: when it is a provider invoice Work 365 imports
        automatically, its next import run imports it again (see simulator/work365.py)."""
        row = table.rows.get(key)
        if table.definition.logical != work365.INVOICES or row is None:
            return
        spec = self._reimport_specs.get(key)
        if not work365.reimportable(self, row, spec):
            return
        pending = PendingReimport(
            work365.next_import_run(self.now), key, row, work365.errors_notes(self, key), spec
        )
        self.reimports = sorted([*self.reimports, pending], key=lambda r: r.at)

    def _reimport(self, pending: PendingReimport) -> AppliedEntry | None:
        """The import run's new provider invoice; None when the invoice is back already (the
        fixture's timeline imported it, or a person synced it by hand): Work 365 imports an
        invoice once."""
        table = self.tables[work365.INVOICES]
        number, provider = (
            table.by_default[c].prop
            for c in ("work365_providerinvoice_invoicenumber", "work365_providerinvoice_provider")
        )
        if pending.row.values.get(number) is not None and any(
            r.values.get(number) == pending.row.values.get(number)
            and r.values.get(provider) == pending.row.values.get(provider)
            for r in table.rows.values()
        ):
            return None
        resolved = work365.all_resolve(self, pending.errors)
        spec = pending.spec
        given = dict(spec.invoice) if resolved and spec is not None else {}
        key = str(given.get(table.definition.primary_key) or work365.new_id(pending, "invoice"))
        if key in table.rows:
            key = work365.new_id(pending, "invoice")
        row = Row(dict(pending.row.values), dict(pending.row.targets), version=self.next_version())
        created = format_datetime(pending.at)
        row.values[table.primary_key] = key
        for column in ("createdon", "modifiedon"):
            row.values[table.by_default[column].prop] = created
        status = table.by_default["statuscode"].option_for_label("Active" if resolved else "Error")
        row.values[table.by_default["statuscode"].prop] = status.value
        row.values[table.by_default["statecode"].prop] = status.state
        if resolved:
            row.values[table.by_default["work365_providerinvoice_message"].prop] = None
        self.put(table, key, row)
        changes = [Change(table.definition.logical, key, "added", row.values.get(table.primary_name))]
        if given:
            self._upsert(table, {**given, table.definition.primary_key: key}, pending.at)
        if resolved and spec is not None:
            usage = self.tables["work365_usagesummary"]
            for raw in spec.usage:
                linked = {"work365_usagesummary_providerinvoice": key, **raw}
                changes.append(self._upsert(usage, linked, pending.at))
        elif not resolved:
            changes += self._copy_notes(pending, key)
            if spec is not None:  # the next re-import of this invoice may still bring the usage
                self._reimport_specs[key] = spec
        outcome = "its references resolve" if resolved else "its references are still unresolved"
        description = (
            f"Work 365 imports provider invoice {row.values.get(number) or pending.old_id} again: {outcome}"
        )
        return AppliedEntry(pending.at, description, tuple(changes), ())

    def _copy_notes(self, pending: PendingReimport, invoice_key: str) -> list[Change]:
        """The same errors.csv notes on the new invoice, as Work 365 attaches them at each import."""
        notes = self.tables["annotation"]
        created = format_datetime(pending.at)
        changes = []
        for number, note in enumerate(pending.errors):
            key = work365.new_id(pending, f"note:{number}")
            copy = Row(dict(note.values), dict(note.targets), version=self.next_version())
            copy.values[notes.primary_key] = key
            copy.values[notes.by_default["objectid"].prop] = invoice_key
            for column in ("createdon", "modifiedon"):
                copy.values[notes.by_default[column].prop] = created
            self.put(notes, key, copy)
            changes.append(Change("annotation", key, "added", copy.values.get(notes.primary_name)))
        return changes

    def _apply(self, entry: TimelineEntry) -> AppliedEntry:
        changes: list[Change] = []
        for name, ids in entry.delete.items():
            for key in ids:
                changes += self.delete_row(self.tables[name], key)
        # Notes last, so a note added in the same entry as its record finds it.
        for name, rows in sorted(entry.upsert.items(), key=lambda item: item[0] == "annotation"):
            table = self.tables[name]
            for raw in rows:
                changes.append(self._upsert(table, raw, entry.at))
        if entry.invoices:
            invoices = {inv["id"]: inv for inv in self.partner_center.invoices}
            invoices |= {inv["id"]: dict(inv) for inv in entry.invoices}
            self.partner_center = replace(self.partner_center, invoices=tuple(invoices.values()))
        return AppliedEntry(
            entry.at, entry.description, tuple(changes), tuple(inv["id"] for inv in entry.invoices)
        )

    def _upsert(self, table: ServedTable, raw: dict[str, Any], at: datetime) -> Change:
        key = raw[table.definition.primary_key]
        existing = table.rows.get(key)
        if existing is None:
            row = self._row(table, complete_added_row(table.definition, raw, at))
        else:
            given = self._row(table, raw)
            given_props = {self._prop(table, name) for name in raw}
            row = Row(dict(existing.values), dict(existing.targets), version=given.version)
            for prop in given_props & set(given.values):
                row.values[prop] = given.values[prop]
                if prop in given.targets:
                    row.targets[prop] = given.targets[prop]
        self.put(table, key, row)
        name = row.values.get(table.primary_name)
        return Change(table.definition.logical, key, "added" if existing is None else "updated", name)

    def _prop(self, table: ServedTable, name: str) -> str:
        column = table.by_default.get(name)
        return column.prop if column is not None else name

    def delete_row(self, table: ServedTable, key: str) -> list[Change]:
        """Delete a row and the notes attached to it (Dataverse's cascade); what was deleted."""
        row = table.rows.get(key)
        if row is None:  # already gone with its record, earlier in the same entry
            return []
        self.put(table, key, None)
        changes = [Change(table.definition.logical, key, "deleted", row.values.get(table.primary_name))]
        notes = self.tables["annotation"]
        regarding = notes.by_default["objectid"].prop
        for note_key, note in list(notes.rows.items()):
            if note.values.get(regarding) == key:
                changes += self.delete_row(notes, note_key)
        return changes

    # --- access -----------------------------------------------------------------------------------

    def next_version(self) -> int:
        self._version += 1
        return self._version

    def table_for_set(self, entity_set: str) -> ServedTable | None:
        return self.by_set.get(entity_set)

    def put(self, table: ServedTable, key: str, row: Row | None) -> None:
        """Insert, replace or (row=None) delete a row, remembering the old one inside a change set."""
        if self._journal is not None:
            self._journal.append((table, key, table.rows.get(key)))
        self.generation += 1
        table.generation = self.generation
        if row is None:
            table.rows.pop(key, None)
        else:
            table.rows[key] = row

    @contextmanager
    def atomic(self) -> Iterator[None]:
        """Undo every write made inside the block if it raises (a `$batch` change set)."""
        self._journal, notes, writes = [], len(self.notes), len(self.writes)
        reimports = self.reimports
        try:
            yield
        except BaseException:
            self.generation += 1
            self.reimports = reimports
            for table, key, old in reversed(self._journal):
                table.generation = self.generation
                if old is None:
                    table.rows.pop(key, None)
                else:
                    table.rows[key] = old
            del self.notes[notes:], self.writes[writes:]
            raise
        finally:
            self._journal = None

    def primary_name_of(self, target: str, key: object) -> object:
        table = self.tables.get(target)
        row = table.rows.get(str(key)) if table else None
        return row.values.get(table.primary_name) if table and row else None

    def wire_json(
        self,
        table: ServedTable,
        rows: Sequence[Row],
        select: tuple[str, ...] | None,
        wanted: AnnotationFilter,
    ) -> list[bytes]:
        """`wire_row` of each row as JSON, built once for a `$select` and set of annotations and kept
        until a write changes what it shows: a large table's pages are joined from these."""
        formatted = wanted(FORMATTED)
        shape = (table.definition.logical, select, formatted, wanted(LOOKUP_TABLE), wanted(NAVIGATION))
        # A lookup's formatted value is its target's name: a write to any table may change it.
        stamp = self.generation if formatted else table.generation
        kept = self._wire.get(shape)
        if kept is None or kept[0] != stamp:
            kept = self._wire[shape] = (stamp, {})
        served, pk = kept[1], table.primary_key
        write = self._row_writer(table, select, wanted)
        out = []
        for row in rows:
            key = row.values[pk]
            text = served.get(key)
            if text is None:
                text = served[key] = write(row)
            out.append(text)
        return out

    def _row_writer(
        self, table: ServedTable, select: Sequence[str] | None, wanted: AnnotationFilter
    ) -> Callable[[Row], bytes]:
        """`wire_row` of a row as UTF-8 JSON (what `json.dumps` writes it as), for one shape: each
        member's name is encoded once, not once a row (tests/simulator/test_sim_rowjson.py)."""
        # The selected properties once, in the order wire_row writes them (the key last).
        props = list(dict.fromkeys(_served_props(table, select))) if select else None
        if not wanted:
            if props is None:
                return lambda row: object_text(
                    [("@odata.etag", f'W/"{row.version}"'), *row.values.items()]
                ).encode("utf-8")
            write = selected_row_writer(props)
            return lambda row: write(f'W/"{row.version}"', row.values)
        names: dict[str, str] = {}

        def name(member: str) -> str:
            text = names.get(member)
            if text is None:
                text = names[member] = ", " + encode_basestring(member) + ": "
            return text

        def member(prop: str, column: ServedColumn | None, row: Row, value: object) -> str:
            """A property with its annotations, as JSON members."""
            text = name(prop) + value_text(value)
            if column is None or value is None:
                return text
            annotations = self._annotations(column, row, value, wanted)
            return "".join(name(f"{prop}@{term}") + value_text(a) for term, a in annotations) + text

        # A member's text depends on its value and the lookup's target alone while this page is
        # written (the tenant's lock is held): many rows share a customer, a product, a status.
        members: dict[tuple[object, ...], str] = {}

        def annotated(row: Row) -> bytes:
            parts = ['{"@odata.etag": ', encode_basestring(f'W/"{row.version}"')]
            values = row.values
            for prop in values if props is None else props:
                value = values.get(prop)
                column = table.by_prop.get(prop)
                if value is None or column is None or not _annotated(column):
                    parts += (name(prop), value_text(value))
                    continue
                seen = (prop, value.__class__, value, row.targets.get(prop))
                try:
                    text = members.get(seen)
                except TypeError:  # a value served as written that cannot be a key
                    text = member(prop, column, row, value)
                else:
                    if text is None:
                        text = members[seen] = member(prop, column, row, value)
                parts.append(text)
            parts.append("}")
            return "".join(parts).encode("utf-8")

        return annotated

    def wire_row(
        self, table: ServedTable, row: Row, select: Sequence[str] | None, wanted: AnnotationFilter
    ) -> dict[str, Any]:
        """A row as Dataverse serialises it: etag, the selected properties (always the key), annotations."""
        out: dict[str, Any] = {"@odata.etag": f'W/"{row.version}"'}
        props = _served_props(table, select) if select else list(row.values)
        values = row.values
        if not wanted:  # no annotations asked for: the values alone (most rows of a large read)
            out.update((prop, values.get(prop)) for prop in props)
            return out
        for prop in props:
            value = values.get(prop)
            column = table.by_prop.get(prop)
            if column is not None and value is not None:
                for term, annotation in self._annotations(column, row, value, wanted):
                    out[f"{prop}@{term}"] = annotation
            out[prop] = value
        return out

    def _annotations(
        self, column: ServedColumn, row: Row, value: object, wanted: AnnotationFilter
    ) -> list[tuple[str, object]]:
        """The annotations of a value that `wanted` asks for, as (term, value), in served order."""
        out: list[tuple[str, object]] = []
        if not _annotated(column):
            return out
        formatted: object = None
        if column.options:
            option = column.option(value)
            formatted = option.label if option else None
        elif column.type == "Boolean":
            formatted = "Yes" if value else "No"
        elif column.type == "Lookup":
            target = row.targets.get(column.prop, column.target or "")
            formatted = self.primary_name_of(target, value)
            served_target = self.tables[target].logical if target in self.tables else target
            if wanted(NAVIGATION):
                out.append((NAVIGATION, navigation_name(column, served_target)))
            if wanted(LOOKUP_TABLE):
                out.append((LOOKUP_TABLE, served_target))
        if formatted is not None and wanted(FORMATTED):
            out.append((FORMATTED, formatted))
        return out


def _annotated(column: ServedColumn) -> bool:
    """Whether a value of the column has annotations (`Tenant._annotations`) to serve."""
    return bool(column.options) or column.type in ("Boolean", "Lookup")


def _served_props(table: ServedTable, select: Sequence[str]) -> list[str]:
    """The properties a `$select` serves, in order: the key always, and last."""
    return [p for p in select if p != table.primary_key] + [table.primary_key]


@functools.lru_cache(maxsize=4096)  # asked once a lookup a row when annotations are served
def schema_name(logical: str) -> str:
    """The schema name Dataverse shows for a column or table logical name.

    A publisher's custom name is mixed case after its prefix (`work365_Provideraccount_Account`):
    Work 365's exact casing is not published, so each word after the prefix is capitalised, which
    keeps the simulator honest (a client that writes the logical name where the schema name is
    required fails here as it would in Dataverse). Dataverse's own names stay lower case."""
    prefix, underscore, rest = logical.partition("_")
    if not underscore or not prefix.isalnum():
        return logical
    return f"{prefix}_" + "_".join(word.capitalize() for word in rest.split("_"))


def navigation_name(column: ServedColumn, served_target: str) -> str:
    """The single-valued navigation property of a lookup (what `@odata.bind` names, case-sensitive):
    the relationship's ReferencingEntityNavigationPropertyName. Dataverse names it after the
    lookup's schema name; the polymorphic regarding lookup has one per target, `objectid_<table>`."""
    if column.target is None:
        return f"{column.logical}_{served_target}"
    return schema_name(column.logical)


class AnnotationFilter:
    """Which instance annotations `Prefer: odata.include-annotations="..."` asks for."""

    def __init__(self, patterns: list[str]) -> None:
        self.patterns = patterns
        self._answers: dict[str, bool] = {}  # asked a few names, once a served value each

    def __call__(self, name: str) -> bool:
        answer = self._answers.get(name)
        if answer is None:
            answer = self._answers[name] = any(
                p in ("*", name) or (p.endswith(".*") and name.startswith(p[:-1])) for p in self.patterns
            )
        return answer

    def __bool__(self) -> bool:
        return bool(self.patterns)


def _inferred_type(value: object) -> str:
    if isinstance(value, bool):
        return "Boolean"
    if isinstance(value, int):
        return "Integer"
    if isinstance(value, float):
        return "Decimal"
    return "String" if isinstance(value, str) else "Virtual"
