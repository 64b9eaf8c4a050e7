"""Loading and validating tenant fixtures (contracts/tenant-fixture.md).

A fixture is checked completely before anything is served: a misspelt key, table, label or date must
fail loudly with one line that says where, never produce a quietly empty tenant. The result keeps the
default names and the labels; `tenant.py` turns it into what Dataverse would serve.

One escape hatch, for tests of malformed data: a row's `"$raw"` object maps column names to values
served exactly as written, unchecked (a date out of range, a number as a word, a nested object) —
what a real environment's corrupt or customised record would answer.
"""

from __future__ import annotations

import base64
import binascii
import difflib
import functools
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from diagnostics.errors import InputError
from diagnostics.jsonfile import read_json_object
from diagnostics.schema import TABLES, ColumnDef, TableDef
from simulator.privileges import KNOWN, privilege_name_of
from simulator.values import format_datetime, is_guid, parse_date, parse_datetime

RAW_KEY = "$raw"  # a row's values served unchecked (see the module's docstring)
_TOP_KEYS = (
    "fixture_version",
    "description",
    "now",
    "dataverse",
    "partner_center",
    "timeline",
    "reimports",
    "$comment",
)
_DATAVERSE_KEYS = (
    "rows",
    "renames",
    "status_labels",
    "read_depth",
    "denied_privileges",
    "global_option_sets",
    "$comment",
)
# The depths a security role's editor offers for Read (tenant-fixture.md, dataverse.read_depth).
READ_DEPTHS = ("None", "User", "BusinessUnit", "ParentChildBusinessUnit", "Organization")
_PARTNER_CENTER_KEYS = (
    "enabled",
    "unreachable",
    "invoices",
    "invoice_by_id",
    "customers",
    "subscriptions",
    "$comment",
)
_RENAME_KEYS = ("tables", "columns")
_ENTRY_KEYS = ("at", "description", "upsert", "delete", "partner_center", "$comment")
_ENTRY_PARTNER_CENTER_KEYS = ("invoices", "$comment")
_PC_DATE_FIELDS = ("invoiceDate", "billingPeriodStartDate", "billingPeriodEndDate")
_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")
# Generated primary keys must be the same on every load, so tests can refer to them.
_ID_NAMESPACE = uuid.UUID("6f1c8a52-3c57-4f0e-9a55-0d3b7e1f2a90")
_COLUMN_NAMES = {name: table.column_names for name, table in TABLES.items()}
_COLUMNS = {name: {c.logical: c for c in table.columns} for name, table in TABLES.items()}
# A table's publisher prefixes (`work365`): an unknown column of another prefix is a partner's own.
_PREFIXES = {name: {c.split("_", 1)[0] for c in names if "_" in c} for name, names in _COLUMN_NAMES.items()}


@functools.lru_cache(maxsize=4096)
def _date_text(value: str) -> str:
    """A date-only value as served; cached, as a large tenant repeats the same few dates."""
    return parse_date(value).isoformat()


@functools.lru_cache(maxsize=4096)
def _datetime_text(value: str) -> str:
    return format_datetime(parse_datetime(value))


def _already_valid(kind: str, value: object) -> object:
    """A value in the form it is kept in, checked at a glance; None when `Loader.value` must look
    (converting it or failing with the value's path). A large tenant's rows are mostly this."""
    if kind in ("Lookup", "Uniqueidentifier"):
        return str(value).lower() if is_guid(value) else None
    kind_of = type(value)
    if kind in ("String", "Memo"):
        return value if kind_of is str else None
    if kind in ("Money", "Decimal"):
        return value if kind_of is float or kind_of is int else None
    if kind == "Integer":
        return value if kind_of is int else None
    if kind == "Boolean":
        return value if kind_of is bool else None
    if kind_of is str and kind in ("DateOnly", "DateTime"):
        try:
            return _date_text(value) if kind == "DateOnly" else _datetime_text(value)
        except ValueError:
            return None
    return None


class FixtureError(InputError):
    """A fixture that cannot be loaded; the message names what is wrong and where."""


@dataclass(frozen=True)
class PartnerCenterFixture:
    # A fixture without a partner_center section says nothing about Microsoft, so Partner Center
    # counts as not configured rather than as "configured and without invoices".
    enabled: bool = False
    unreachable: bool = False
    invoices: tuple[dict[str, Any], ...] = ()
    # Answer GET /v1/invoices/{id}, as Partner Center does for App+User tokens only; by default the
    # simulator refuses it as it refuses the app-only tokens it issues.
    invoice_by_id: bool = False
    # Our extension: the partner's customers (GET /v1/customers) in Partner Center's shape, and
    # each customer's subscriptions by customer id (GET /v1/customers/{id}/subscriptions).
    customers: tuple[dict[str, Any], ...] = ()
    subscriptions: Mapping[str, tuple[dict[str, Any], ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class TimelineEntry:
    """One change to the tenant after `now` (contracts/tenant-fixture.md, "The timeline")."""

    at: datetime  # aware, UTC
    index: int  # position in the fixture's list, for messages and a stable order
    description: str = ""
    # default table name -> rows with only the given columns (converted as in `rows`) and the
    # primary key; what is not given keeps its value (an update) or its default (an added row)
    upsert: Mapping[str, tuple[dict[str, Any], ...]] = field(default_factory=dict)
    delete: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # default table -> ids
    invoices: tuple[dict[str, Any], ...] = ()  # Partner Center invoices added or replaced by id


@dataclass(frozen=True)
class Reimport:
    """Our extension (`reimports`): what Work 365's import brings when it imports a provider
    invoice again after a client deleted it and every reference of its errors.csv resolves."""

    # columns of the new provider invoice row (default names, converted as in `rows`), over a copy
    # of the deleted row; its primary key, when given, is the new row's id
    invoice: dict[str, Any] = field(default_factory=dict)
    usage: tuple[dict[str, Any], ...] = ()  # work365_usagesummary rows, linked to the new invoice


@dataclass(frozen=True)
class Fixture:
    now: datetime  # aware, UTC
    description: str = ""
    # default table name -> rows with default column names, option sets as (canonical) labels,
    # ids lower-case, dates in Dataverse's wire form, statecode/createdon/primary key filled in
    rows: Mapping[str, tuple[dict[str, Any], ...]] = field(default_factory=dict)
    table_renames: Mapping[str, str] = field(default_factory=dict)  # default -> served
    column_renames: Mapping[str, str] = field(default_factory=dict)  # "table.column" -> served
    status_labels: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # table -> {default: new}
    read_depth: Mapping[str, str] = field(default_factory=dict)  # table -> READ_DEPTHS; default Organization
    # Our extension: privileges the identity lacks, as (default table, access) pairs, e.g.
    # ("work365_provideraccount", "Write"); by default it holds every privilege but Read's depths.
    denied_privileges: frozenset[tuple[str, str]] = frozenset()
    # "table.column" (a choice column) -> the global choice it uses: its options are then served
    # under GlobalOptionSet, with OptionSet null, as Dataverse serves a column on a global choice
    global_option_sets: Mapping[str, str] = field(default_factory=dict)
    partner_center: PartnerCenterFixture = field(default_factory=PartnerCenterFixture)
    source: str = "<dict>"
    timeline: tuple[TimelineEntry, ...] = ()  # in `at` order (fixture order among equal times)
    reimports: Mapping[str, Reimport] = field(default_factory=dict)  # deleted invoice id -> re-import


def load_fixture(source: str | Path | Mapping[str, Any]) -> Fixture:
    """Read and validate a fixture from a JSON file or an already parsed dict."""
    if isinstance(source, Mapping):
        return _Loader("fixture").load(source, "<dict>")
    path = Path(source)
    where = f"fixture {path}"
    raw = read_json_object(path, where, FixtureError)
    return _Loader(where).load(raw, str(path))


def option_labels(table: TableDef, column: ColumnDef) -> tuple[str, ...]:
    """The labels a State, Status or Picklist column accepts, in option-value order."""
    if column.type == "Status":
        return tuple(status for status, _ in table.status)
    if column.type == "State":
        return tuple(dict.fromkeys(state for _, state in table.status))
    return column.options


def close_matches(name: str, known: list[str]) -> str:
    matches = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
    if matches:
        return "did you mean " + " or ".join(matches) + "?"
    return "known: " + ", ".join(sorted(known))


class _Loader:
    def __init__(self, where: str) -> None:
        self.where = where

    def fail(self, message: str) -> FixtureError:
        return FixtureError(f"{self.where}: {message}")

    def keys(self, obj: object, allowed: tuple[str, ...], path: str) -> dict[str, Any]:
        if not isinstance(obj, dict):
            raise self.fail(f"{path} must be an object")
        unknown = sorted(set(obj) - set(allowed))
        if unknown:
            listed = ", ".join(k for k in allowed if k != "$comment")
            raise self.fail(f"unknown key(s) {', '.join(map(repr, unknown))} in {path}; allowed: {listed}")
        return obj

    def load(self, raw: Mapping[str, Any], source: str) -> Fixture:
        top = self.keys(dict(raw), _TOP_KEYS, "the top level")
        if "fixture_version" not in top:
            raise self.fail("fixture_version is missing; this simulator reads fixture_version 1")
        if top["fixture_version"] != 1 or isinstance(top["fixture_version"], bool):
            raise self.fail(f"fixture_version {top['fixture_version']!r} is not supported; expected 1")
        now = self.now(top.get("now"))
        description = top.get("description", "")
        if not isinstance(description, str):
            raise self.fail("description must be a string")
        dataverse = self.keys(top.get("dataverse", {}), _DATAVERSE_KEYS, "dataverse")
        table_renames, column_renames = self.renames(dataverse.get("renames", {}))
        rows = self.rows(dataverse.get("rows", {}), now)
        return Fixture(
            now=now,
            description=description,
            rows=rows,
            table_renames=table_renames,
            column_renames=column_renames,
            status_labels=self.status_labels(dataverse.get("status_labels", {})),
            read_depth=self.read_depth(dataverse.get("read_depth", {})),
            denied_privileges=self.denied_privileges(dataverse.get("denied_privileges", [])),
            global_option_sets=self.global_option_sets(dataverse.get("global_option_sets", {})),
            partner_center=self.partner_center(top.get("partner_center")),
            source=source,
            timeline=(timeline := _Timeline(self, now, rows).load(top.get("timeline", []))),
            reimports=self.reimports(top.get("reimports", {}), now, rows, timeline),
        )

    def now(self, value: object, name: str = "'now'") -> datetime:
        if value is None:
            raise self.fail(
                f"{name} is missing; give the fixture's clock as ISO 8601, e.g. 2026-11-12T09:00:00Z"
            )
        if not isinstance(value, str):
            raise self.fail(f"{name} must be an ISO 8601 string, not {value!r}")
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise self.fail(
                f"{name} {value!r} is not an ISO 8601 datetime (e.g. 2026-11-12T09:00:00Z)"
            ) from None
        if parsed.tzinfo is None or "T" not in value:
            raise self.fail(f"{name} {value!r} needs a time and a zone ('Z' or an offset such as +01:00)")
        return parse_datetime(value)

    # --- dataverse.rows ---------------------------------------------------------------------------

    def rows(self, value: object, now: datetime) -> dict[str, tuple[dict[str, Any], ...]]:
        if not isinstance(value, dict):
            raise self.fail("dataverse.rows must be an object keyed by table logical name")
        for table in value:
            self.table(table, "dataverse.rows")
        rows: dict[str, tuple[dict[str, Any], ...]] = {}
        for table, table_rows in value.items():
            if not isinstance(table_rows, list):
                raise self.fail(f"dataverse.rows.{table} must be a list of row objects")
            definition = TABLES[table]
            created = format_datetime(now)
            normalised = tuple(self.row(definition, i, row, created) for i, row in enumerate(table_rows))
            seen: set[str] = set()
            for i, row in enumerate(normalised):
                key = row[definition.primary_key]
                if key in seen:
                    raise self.fail(f"dataverse.rows.{table}[{i}]: duplicate {definition.primary_key} {key}")
                seen.add(key)
            rows[table] = normalised
        for i, note in enumerate(rows.get("annotation", ())):
            self.note_target(note, i, rows)
        return rows

    def table(self, name: str, path: str) -> TableDef:
        if name not in TABLES:
            raise self.fail(f"unknown table {name!r} in {path}; {close_matches(name, list(TABLES))}")
        return TABLES[name]

    def row(self, table: TableDef, index: int, raw: object, created: str) -> dict[str, Any]:
        path = f"dataverse.rows.{table.logical}[{index}]"
        if not isinstance(raw, dict):
            raise self.fail(f"{path} must be an object")
        row = dict(raw)
        unchecked = row.pop(RAW_KEY, None)
        if table.logical == "annotation":
            self.document(row, path)
        self.row_keys(table, row, path)
        columns = _COLUMNS[table.logical]
        for name, value in list(row.items()):
            column = columns.get(name)
            if column is not None and value is not None:
                valid = _already_valid(column.type, value)
                row[name] = valid if valid is not None else self.value(table, column, value, f"{path}.{name}")
        if row.get(table.primary_key) is None:
            row[table.primary_key] = str(uuid.uuid5(_ID_NAMESPACE, f"{table.logical}:{index}"))
        if table.status:
            self.state_and_status(table, row, path)
        if row.get("createdon") is None:
            row["createdon"] = created
        if row.get("modifiedon") is None:
            row["modifiedon"] = row["createdon"]
        if unchecked is not None:
            if not isinstance(unchecked, dict) or not set(unchecked) <= _COLUMN_NAMES[table.logical]:
                raise self.fail(f"{path}.{RAW_KEY} must be an object of {table.logical}'s column names")
            row[RAW_KEY] = unchecked
        return row

    def row_keys(self, table: TableDef, row: Mapping[str, Any], path: str) -> None:
        """A row keeps any column, as Dataverse would return it (tenant-fixture.md), except one that is
        a likely misspelling of a column of its table: a lookup or flag written under a slightly wrong
        name would be silently ignored and take findings with it. A name with another publisher
        prefix (contoso_…) is a partner's own column and is kept; so is an unknown name of the same
        prefix that is close to no known column (a Work 365 column the tool does not read)."""
        known, prefixes = _COLUMN_NAMES[table.logical], _PREFIXES[table.logical]
        for name in row:
            if name in known or not isinstance(name, str):
                continue
            prefix, underscore, _ = name.partition("_")
            if underscore and prefix not in prefixes:
                continue  # another publisher's column
            close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.8)
            if close:
                raise self.fail(
                    f"{path}: unknown column {name!r} of {table.logical}; did you mean {close[0]!r}? "
                    "(a misspelt column would be ignored and hide findings)"
                )

    def value(self, table: TableDef, column: ColumnDef, value: object, path: str) -> object:
        kind = column.type
        if kind in ("Uniqueidentifier", "Lookup"):
            if is_guid(value):
                return str(value).lower()
            if isinstance(value, str) and value.strip():
                # Dataverse ids are GUIDs; a readable fixture id ("ms-provider") stands for the same
                # GUID wherever it is written, as a key or as a lookup.
                return str(uuid.uuid5(_ID_NAMESPACE, f"id:{value.strip()}"))
            raise self.fail(f"{path}: {value!r} is not an id (a GUID or a non-empty string)")
        if kind in ("String", "Memo"):
            if not isinstance(value, str):
                raise self.fail(f"{path}: expected a string, got {value!r}")
            return value
        if kind == "Integer":
            if not isinstance(value, int) or isinstance(value, bool):
                raise self.fail(f"{path}: expected a whole number, got {value!r}")
            return value
        if kind in ("Money", "Decimal"):
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise self.fail(f"{path}: expected a number, got {value!r}")
            return value
        if kind == "Boolean":
            if not isinstance(value, bool):
                raise self.fail(f"{path}: expected true or false, got {value!r}")
            return value
        if kind == "DateOnly":
            try:
                return _date_text(value)
            except (TypeError, ValueError):
                raise self.fail(f"{path}: {value!r} is not a date (YYYY-MM-DD)") from None
        if kind == "DateTime":
            try:
                return _datetime_text(value)
            except (TypeError, ValueError):
                raise self.fail(f"{path}: {value!r} is not an ISO 8601 datetime") from None
        return self.label(table, column, value, path)

    def label(self, table: TableDef, column: ColumnDef, value: object, path: str) -> str:
        labels = option_labels(table, column)
        if isinstance(value, str):
            for label in labels:
                if label.casefold() == value.strip().casefold():
                    return label
        kind = {"Status": "a status", "State": "a state"}.get(column.type, "an option")
        raise self.fail(
            f"{path}: {column.logical} {value!r} is not {kind} of {table.logical}; known: {', '.join(labels)}"
        )

    def state_and_status(self, table: TableDef, row: dict[str, Any], path: str) -> None:
        states = dict(table.status)
        status = row.get("statuscode")
        if status is None:
            # Without a status, take the first status of the given state (or the table's first).
            state = row.get("statecode")
            status = next(s for s, st in table.status if state is None or st == state)
            row["statuscode"] = status
        state = row.get("statecode")
        if state is None:
            row["statecode"] = states[status]
        elif states[status] != state:
            raise self.fail(
                f"{path}: statuscode {status!r} belongs to statecode {states[status]!r}, not {state!r}"
            )

    def document(self, row: dict[str, Any], path: str) -> None:
        if "document_text" in row:
            if "documentbody" in row:
                raise self.fail(f"{path}: give document_text or documentbody, not both")
            text = row.pop("document_text")
            if not isinstance(text, str):
                raise self.fail(f"{path}.document_text: expected a string")
            row["documentbody"] = base64.b64encode(text.encode("utf-8")).decode("ascii")
        body = row.get("documentbody")
        if body is not None:
            try:
                base64.b64decode(body, validate=True)
            except (binascii.Error, ValueError, TypeError):
                raise self.fail(f"{path}.documentbody: not valid base64") from None
        row.setdefault("isdocument", body is not None)
        # Dataverse computes a note's file size from its document (the tool reads it before the body).
        row.setdefault("filesize", _file_size(body))

    def note_target(
        self, note: dict[str, Any], index: int, rows: Mapping[str, tuple[dict[str, Any], ...]]
    ) -> None:
        path = f"dataverse.rows.annotation[{index}]"
        target = note.get("objectid")
        kind = note.get("objecttypecode")
        if kind is not None:
            self.table(kind, f"{path}.objecttypecode")
        if target is None or kind is not None:
            return
        # objecttypecode omitted: the table that holds the row is the only sensible reading.
        for table, table_rows in rows.items():
            if any(r[TABLES[table].primary_key] == target for r in table_rows):
                note["objecttypecode"] = table
                return
        raise self.fail(f"{path}: objectid {target} is in no table of the fixture; add objecttypecode")

    # --- dataverse.renames / status_labels --------------------------------------------------------

    def renames(self, value: object) -> tuple[dict[str, str], dict[str, str]]:
        renames = self.keys(value, (*_RENAME_KEYS, "$comment"), "dataverse.renames")
        tables = self.names(renames.get("tables", {}), "dataverse.renames.tables")
        for name in tables:
            self.table(name, "dataverse.renames.tables")
        served = [tables.get(t, t) for t in TABLES]
        if len(set(served)) != len(served):
            raise self.fail("dataverse.renames.tables gives two tables the same name")
        columns = self.names(renames.get("columns", {}), "dataverse.renames.columns")
        for key in columns:
            table_name, _, column = key.partition(".")
            definition = self.table(table_name, f"dataverse.renames.columns ({key!r})")
            if column not in definition.column_names:
                known = list(definition.column_names)
                raise self.fail(
                    f"unknown column {column!r} of {table_name} in dataverse.renames.columns; "
                    f"{close_matches(column, known)}"
                )
        for definition in TABLES.values():
            names = [columns.get(f"{definition.logical}.{c.logical}", c.logical) for c in definition.columns]
            if len(set(names)) != len(names):
                raise self.fail(
                    f"dataverse.renames.columns gives two columns of {definition.logical} the same name"
                )
        return tables, columns

    def names(self, value: object, path: str) -> dict[str, str]:
        if not isinstance(value, dict):
            raise self.fail(f"{path} must be an object")
        for key, name in value.items():
            if not isinstance(name, str) or not _NAME_RE.match(name):
                raise self.fail(
                    f"{path}.{key}: {name!r} is not a logical name (lower-case letters, digits, _)"
                )
        return value

    def status_labels(self, value: object) -> dict[str, dict[str, str]]:
        if not isinstance(value, dict):
            raise self.fail("dataverse.status_labels must be an object keyed by table")
        result: dict[str, dict[str, str]] = {}
        for table_name, labels in value.items():
            table = self.table(table_name, "dataverse.status_labels")
            path = f"dataverse.status_labels.{table_name}"
            if not isinstance(labels, dict):
                raise self.fail(f"{path} must map default status labels to new labels")
            known = [status for status, _ in table.status]
            for old, new in labels.items():
                if old not in known:
                    raise self.fail(
                        f"{path}: {old!r} is not a status of {table_name}; known: {', '.join(known)}"
                    )
                if not isinstance(new, str) or not new.strip():
                    raise self.fail(f"{path}.{old}: the new label must be a non-empty string")
            result[table_name] = dict(labels)
        return result

    def read_depth(self, value: object) -> dict[str, str]:
        if not isinstance(value, dict):
            raise self.fail("dataverse.read_depth must be an object keyed by table")
        for table_name, depth in value.items():
            self.table(table_name, "dataverse.read_depth")
            if depth not in READ_DEPTHS:
                raise self.fail(
                    f"dataverse.read_depth.{table_name}: {depth!r} is not a depth; known: {', '.join(READ_DEPTHS)}"
                )
        return dict(value)

    def denied_privileges(self, value: object) -> frozenset[tuple[str, str]]:
        where = "dataverse.denied_privileges"
        if not isinstance(value, list):
            raise self.fail(
                f'{where} must be a list of privilege names, e.g. ["prvWritework365_provideraccount"]'
            )
        denied = set()
        for i, name in enumerate(value):
            known = KNOWN.get(name.casefold()) if isinstance(name, str) else None
            if known is None:
                names = sorted({privilege_name_of(t, a) for t, a in KNOWN.values()})
                raise self.fail(
                    f"{where}[{i}]: {name!r} is not a privilege of the schema's tables; "
                    f"{close_matches(str(name), names)}"
                )
            if known[1] == "Read":
                raise self.fail(
                    f"{where}[{i}]: {name} is a Read privilege; give its depth in dataverse.read_depth instead"
                )
            denied.add(known)
        return frozenset(denied)

    def global_option_sets(self, value: object) -> dict[str, str]:
        names = self.names(value, "dataverse.global_option_sets")
        for key in names:
            table_name, _, column = key.partition(".")
            definition = self.table(table_name, f"dataverse.global_option_sets ({key!r})")
            if column not in definition.column_names:
                known = [c.logical for c in definition.columns if c.type == "Picklist"]
                raise self.fail(
                    f"unknown column {column!r} of {table_name} in dataverse.global_option_sets; "
                    f"{close_matches(column, known)}"
                )
            if definition.column(column).type != "Picklist":
                raise self.fail(
                    f"dataverse.global_option_sets: {key} is a {definition.column(column).type} column; "
                    "only choice (Picklist) columns use global choices"
                )
        return names

    # --- reimports (our extension) ----------------------------------------------------------------

    def reimports(
        self,
        value: object,
        now: datetime,
        rows: Mapping[str, tuple[dict[str, Any], ...]],
        timeline: tuple[TimelineEntry, ...],
    ) -> dict[str, Reimport]:
        if not isinstance(value, dict):
            raise self.fail(
                'reimports must be an object: provider invoice id -> {"work365_providerinvoice": {...}, '
                '"work365_usagesummary": [...]}'
            )
        invoices = TABLES["work365_providerinvoice"]
        known = {row[invoices.primary_key] for row in rows.get(invoices.logical, ())}
        known |= {row[invoices.primary_key] for e in timeline for row in e.upsert.get(invoices.logical, ())}
        reader = _Timeline(self, now, rows)
        out: dict[str, Reimport] = {}
        for key, spec in value.items():
            path = f"reimports.{key}"
            invoice_id = str(self.value(invoices, invoices.column(invoices.primary_key), key, path))
            if invoice_id not in known:
                raise self.fail(
                    f"{path}: no provider invoice has the id {key!r} (in dataverse.rows or added by the timeline)"
                )
            section = self.keys(spec, ("work365_providerinvoice", "work365_usagesummary", "$comment"), path)
            raw_invoice = section.get("work365_providerinvoice", {})
            invoice = reader.partial_row(
                invoices, raw_invoice, f"{path}.work365_providerinvoice", "unused", now
            )
            for name in (invoices.primary_key, "modifiedon"):
                if not isinstance(raw_invoice, dict) or raw_invoice.get(name) is None:
                    invoice.pop(name, None)
            usage_table = TABLES["work365_usagesummary"]
            raw_usage = section.get("work365_usagesummary", [])
            if not isinstance(raw_usage, list):
                raise self.fail(f"{path}.work365_usagesummary must be a list of row objects")
            usage = []
            for j, raw in enumerate(raw_usage):
                row = reader.partial_row(
                    usage_table, raw, f"{path}.work365_usagesummary[{j}]", f"reimport:{invoice_id}:{j}", now
                )
                if isinstance(raw, dict) and raw.get("modifiedon") is None:
                    row.pop("modifiedon", None)
                usage.append(row)
            out[invoice_id] = Reimport(invoice, tuple(usage))
        return out

    # --- partner_center ---------------------------------------------------------------------------

    def partner_center(self, value: object) -> PartnerCenterFixture:
        if value is None:
            return PartnerCenterFixture()
        section = self.keys(value, _PARTNER_CENTER_KEYS, "partner_center")
        enabled = section.get("enabled", True)
        unreachable = section.get("unreachable", False)
        by_id = section.get("invoice_by_id", False)
        for key, flag in (("enabled", enabled), ("unreachable", unreachable), ("invoice_by_id", by_id)):
            if not isinstance(flag, bool):
                raise self.fail(f"partner_center.{key} must be true or false")
        invoices = self.invoices(section.get("invoices", []), "partner_center.invoices")
        customers = self.customers(section.get("customers", []))
        subscriptions = self.subscriptions(section.get("subscriptions", {}), {c["id"] for c in customers})
        return PartnerCenterFixture(enabled, unreachable, invoices, by_id, customers, subscriptions)

    def customers(self, value: object) -> tuple[dict[str, Any], ...]:
        where = "partner_center.customers"
        if not isinstance(value, list):
            raise self.fail(f"{where} must be a list of customer objects")
        out = []
        for i, customer in enumerate(value):
            path = f"{where}[{i}]"
            if not isinstance(customer, dict):
                raise self.fail(f"{path} must be an object")
            if not is_guid(customer.get("id")):
                raise self.fail(f"{path}: 'id' (the customer's tenant id, a GUID) is missing or not a GUID")
            profile = customer.get("companyProfile")
            if not isinstance(profile, dict) or not isinstance(profile.get("companyName"), str):
                raise self.fail(f'{path}: companyProfile must be an object with a "companyName" string')
            if not isinstance(profile.get("domain", ""), str):
                raise self.fail(f"{path}.companyProfile.domain must be a string")
            out.append({**customer, "id": customer["id"].lower()})
        if len({c["id"] for c in out}) != len(out):
            raise self.fail(f"{where}: the same customer id twice")
        return tuple(out)

    def subscriptions(self, value: object, customers: set[str]) -> dict[str, tuple[dict[str, Any], ...]]:
        where = "partner_center.subscriptions"
        if not isinstance(value, dict):
            raise self.fail(f"{where} must be an object: customer id -> list of subscription objects")
        out: dict[str, tuple[dict[str, Any], ...]] = {}
        for key, items in value.items():
            if str(key).lower() not in customers:
                raise self.fail(f"{where}: {key!r} is not the id of one of partner_center.customers")
            if not isinstance(items, list) or not all(
                isinstance(s, dict) and isinstance(s.get("id"), str) and s["id"] for s in items
            ):
                raise self.fail(f'{where}.{key} must be a list of subscription objects, each with an "id"')
            out[str(key).lower()] = tuple(dict(s) for s in items)
        return out

    def invoices(self, invoices: object, where: str) -> tuple[dict[str, Any], ...]:
        if not isinstance(invoices, list):
            raise self.fail(f"{where} must be a list of invoice objects")
        for i, invoice in enumerate(invoices):
            path = f"{where}[{i}]"
            if not isinstance(invoice, dict):
                raise self.fail(f"{path} must be an object")
            if not isinstance(invoice.get("id"), str) or not invoice["id"]:
                raise self.fail(f"{path}: 'id' (the invoice number, e.g. G012345678) is missing")
            for name in _PC_DATE_FIELDS:
                if name in invoice:
                    try:
                        parse_datetime(invoice[name])
                    except (TypeError, ValueError):
                        raise self.fail(
                            f"{path}.{name}: {invoice[name]!r} is not an ISO 8601 datetime"
                        ) from None
        return tuple(dict(inv) for inv in invoices)


def _file_size(body: object) -> int:
    """The decoded size of a base64 document body (0 without one)."""
    if not isinstance(body, str):
        return 0
    try:
        return len(base64.b64decode(body, validate=True))
    except (binascii.Error, ValueError):
        return 0


def complete_added_row(table: TableDef, row: Mapping[str, Any], at: datetime) -> dict[str, Any]:
    """A timeline row that adds a record: the defaults `rows` would give it, with `at` as its
    creation time (the loader has already filled the primary key and `modifiedon`)."""
    complete = dict(row)
    if table.status and complete.get("statuscode") is None:
        complete["statuscode"], complete["statecode"] = table.status[0]
    if complete.get("createdon") is None:
        complete["createdon"] = format_datetime(at)
    if complete.get("modifiedon") is None:
        complete["modifiedon"] = complete["createdon"]
    if table.logical == "annotation":
        complete.setdefault("isdocument", complete.get("documentbody") is not None)
        complete.setdefault("filesize", _file_size(complete.get("documentbody")))
    return complete


class _Timeline:
    """Reads `timeline` and checks it in `at` order against the ids that exist at each step, so an
    entry that deletes a row no one created fails at load time, not halfway through a replay."""

    def __init__(self, loader: _Loader, now: datetime, rows: Mapping[str, tuple[dict[str, Any], ...]]):
        self.loader = loader
        self.now = now
        self.ids = {
            name: {row[TABLES[name].primary_key] for row in table_rows} for name, table_rows in rows.items()
        }
        self.note_targets = {
            note["annotationid"]: note.get("objectid") for note in rows.get("annotation", ())
        }
        self.written: dict[tuple[int, str, str], str] = {}  # (entry, table, canonical id) -> id as written

    def load(self, value: object) -> tuple[TimelineEntry, ...]:
        if not isinstance(value, list):
            raise self.loader.fail(
                'timeline must be a list of entries like {"at": ISO, "upsert"|"delete"|"partner_center": ...}'
            )
        entries = sorted((self.entry(i, raw) for i, raw in enumerate(value)), key=lambda e: (e.at, e.index))
        for entry in entries:
            self.follow(entry)
        return tuple(entries)

    def entry(self, index: int, raw: object) -> TimelineEntry:
        path = f"timeline[{index}]"
        entry = self.loader.keys(raw, _ENTRY_KEYS, path)
        at = self.loader.now(entry.get("at"), f"{path}.at")
        if at < self.now:
            raise self.loader.fail(
                f"{path}.at {entry['at']!r} is before the fixture's now ({format_datetime(self.now)}); "
                "the timeline holds what happens after now"
            )
        description = entry.get("description", "")
        if not isinstance(description, str):
            raise self.loader.fail(f"{path}.description must be a string")
        if not any(key in entry for key in ("upsert", "delete", "partner_center")):
            raise self.loader.fail(f"{path} changes nothing; give upsert, delete or partner_center")
        invoices: tuple[dict[str, Any], ...] = ()
        if "partner_center" in entry:
            where = f"{path}.partner_center"
            section = self.loader.keys(entry["partner_center"], _ENTRY_PARTNER_CENTER_KEYS, where)
            invoices = self.loader.invoices(section.get("invoices", []), f"{where}.invoices")
        return TimelineEntry(
            at,
            index,
            description,
            self.upserts(entry.get("upsert", {}), path, index, at),
            self.deletes(entry.get("delete", {}), path, index),
            invoices,
        )

    def upserts(
        self, value: object, path: str, index: int, at: datetime
    ) -> dict[str, tuple[dict[str, Any], ...]]:
        if not isinstance(value, dict):
            raise self.loader.fail(f"{path}.upsert must be an object keyed by table logical name")
        result: dict[str, tuple[dict[str, Any], ...]] = {}
        for name, table_rows in value.items():
            table = self.loader.table(name, f"{path}.upsert")
            if not isinstance(table_rows, list):
                raise self.loader.fail(f"{path}.upsert.{name} must be a list of row objects")
            rows = tuple(
                self.partial_row(table, raw, f"{path}.upsert.{name}[{j}]", f"{name}:timeline:{index}:{j}", at)
                for j, raw in enumerate(table_rows)
            )
            keys = [row[table.primary_key] for row in rows]
            if len(set(keys)) != len(keys):
                raise self.loader.fail(f"{path}.upsert.{name}: the same {table.primary_key} twice")
            result[name] = rows
        return result

    def partial_row(self, table: TableDef, raw: object, path: str, seed: str, at: datetime) -> dict[str, Any]:
        if not isinstance(raw, dict):
            raise self.loader.fail(f"{path} must be an object")
        row = dict(raw)
        if table.logical == "annotation" and ("document_text" in row or "documentbody" in row):
            self.loader.document(row, path)
        self.loader.row_keys(table, row, path)
        columns = _COLUMNS[table.logical]
        for name, value in list(row.items()):
            if name in columns and value is not None:
                row[name] = self.loader.value(table, columns[name], value, f"{path}.{name}")
        if row.get(table.primary_key) is None:
            row[table.primary_key] = str(uuid.uuid5(_ID_NAMESPACE, seed))
        if table.status and (row.get("statuscode") is not None or row.get("statecode") is not None):
            self.loader.state_and_status(table, row, path)
        if row.get("modifiedon") is None:
            row["modifiedon"] = format_datetime(at)
        if table.logical == "annotation" and row.get("objecttypecode") is not None:
            self.loader.table(row["objecttypecode"], f"{path}.objecttypecode")
        return row

    def deletes(self, value: object, path: str, index: int) -> dict[str, tuple[str, ...]]:
        if not isinstance(value, dict):
            raise self.loader.fail(f"{path}.delete must be an object: table logical name -> list of ids")
        result: dict[str, tuple[str, ...]] = {}
        for name, ids in value.items():
            table = self.loader.table(name, f"{path}.delete")
            if not isinstance(ids, list):
                raise self.loader.fail(f"{path}.delete.{name} must be a list of ids")
            column = table.column(table.primary_key)
            canonical = []
            for j, written in enumerate(ids):
                key = str(self.loader.value(table, column, written, f"{path}.delete.{name}[{j}]"))
                self.written[(index, name, key)] = str(written)
                canonical.append(key)
            result[name] = tuple(canonical)
        return result

    def follow(self, entry: TimelineEntry) -> None:
        """Apply the entry to the known ids, as the simulator will: deletes (and their notes), then
        upserts."""
        path = f"timeline[{entry.index}]"
        for name, ids in entry.delete.items():
            for key in ids:
                if key not in self.ids.get(name, set()):
                    written = self.written[(entry.index, name, key)]
                    raise self.loader.fail(
                        f"{path}.delete.{name}: no row with id {written!r} exists then "
                        f"({format_datetime(entry.at)}); it is neither in dataverse.rows nor added earlier in the timeline"
                    )
        for name, ids in entry.delete.items():
            for key in ids:
                self.remove(name, key)
        for name, rows in sorted(entry.upsert.items(), key=lambda item: item[0] == "annotation"):
            for i, row in enumerate(rows):
                key = row[TABLES[name].primary_key]
                self.ids.setdefault(name, set()).add(key)
                if name == "annotation":
                    self.note(row, f"{path}.upsert.annotation[{i}]")

    def remove(self, name: str, key: str) -> None:
        self.ids[name].discard(key)
        if name == "annotation":
            self.note_targets.pop(key, None)
        for note, target in list(self.note_targets.items()):
            if target == key:
                self.ids["annotation"].discard(note)
                del self.note_targets[note]

    def note(self, row: dict[str, Any], path: str) -> None:
        target = row.get("objectid")
        if target is None:
            return
        self.note_targets[row["annotationid"]] = target
        if row.get("objecttypecode") is not None:
            return
        for name, ids in self.ids.items():
            if target in ids:
                row["objecttypecode"] = name
                return
        raise self.loader.fail(f"{path}: objectid {target} is in no table at that time; add objecttypecode")
