"""Loading and validating tenant fixtures (contracts/tenant-fixture.md).

A fixture is checked completely before anything is served: a misspelt key, table, label or date must
fail loudly with one line that says where, never produce a quietly empty tenant. The result keeps the
default names and the labels; `tenant.py` turns it into what Dataverse would serve.
"""

from __future__ import annotations

import base64
import binascii
import difflib
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
from simulator.values import format_datetime, is_guid, parse_date, parse_datetime

_TOP_KEYS = ("fixture_version", "description", "now", "dataverse", "partner_center", "$comment")
_DATAVERSE_KEYS = ("rows", "renames", "status_labels", "$comment")
_PARTNER_CENTER_KEYS = ("enabled", "unreachable", "invoices", "$comment")
_RENAME_KEYS = ("tables", "columns")
_PC_DATE_FIELDS = ("invoiceDate", "billingPeriodStartDate", "billingPeriodEndDate")
_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")
# Generated primary keys must be the same on every load, so tests can refer to them.
_ID_NAMESPACE = uuid.UUID("6f1c8a52-3c57-4f0e-9a55-0d3b7e1f2a90")
_COLUMN_NAMES = {name: table.column_names for name, table in TABLES.items()}


class FixtureError(InputError):
    """A fixture that cannot be loaded; the message names what is wrong and where."""


@dataclass(frozen=True)
class PartnerCenterFixture:
    # A fixture without a partner_center section says nothing about Microsoft, so Partner Center
    # counts as not configured rather than as "configured and without invoices".
    enabled: bool = False
    unreachable: bool = False
    invoices: tuple[dict[str, Any], ...] = ()


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
    partner_center: PartnerCenterFixture = field(default_factory=PartnerCenterFixture)
    source: str = "<dict>"


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
        return Fixture(
            now=now,
            description=description,
            rows=self.rows(dataverse.get("rows", {}), now),
            table_renames=table_renames,
            column_renames=column_renames,
            status_labels=self.status_labels(dataverse.get("status_labels", {})),
            partner_center=self.partner_center(top.get("partner_center")),
            source=source,
        )

    def now(self, value: object) -> datetime:
        if value is None:
            raise self.fail(
                "'now' is missing; give the fixture's clock as ISO 8601, e.g. 2026-11-12T09:00:00Z"
            )
        if not isinstance(value, str):
            raise self.fail(f"'now' must be an ISO 8601 string, not {value!r}")
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise self.fail(
                f"'now' {value!r} is not an ISO 8601 datetime (e.g. 2026-11-12T09:00:00Z)"
            ) from None
        if parsed.tzinfo is None or "T" not in value:
            raise self.fail(f"'now' {value!r} needs a time and a zone ('Z' or an offset such as +01:00)")
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
        if table.logical == "annotation":
            self.document(row, path)
        known = _COLUMN_NAMES[table.logical]
        for name, value in list(row.items()):
            if name in known and value is not None:
                row[name] = self.value(table, table.column(name), value, f"{path}.{name}")
        if row.get(table.primary_key) is None:
            row[table.primary_key] = str(uuid.uuid5(_ID_NAMESPACE, f"{table.logical}:{index}"))
        if table.status:
            self.state_and_status(table, row, path)
        if row.get("createdon") is None:
            row["createdon"] = created
        if row.get("modifiedon") is None:
            row["modifiedon"] = row["createdon"]
        return row

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
                return parse_date(value).isoformat()  # type: ignore[arg-type]
            except (TypeError, ValueError):
                raise self.fail(f"{path}: {value!r} is not a date (YYYY-MM-DD)") from None
        if kind == "DateTime":
            try:
                return format_datetime(parse_datetime(value))  # type: ignore[arg-type]
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

    # --- partner_center ---------------------------------------------------------------------------

    def partner_center(self, value: object) -> PartnerCenterFixture:
        if value is None:
            return PartnerCenterFixture()
        section = self.keys(value, _PARTNER_CENTER_KEYS, "partner_center")
        enabled = section.get("enabled", True)
        unreachable = section.get("unreachable", False)
        for key, flag in (("enabled", enabled), ("unreachable", unreachable)):
            if not isinstance(flag, bool):
                raise self.fail(f"partner_center.{key} must be true or false")
        invoices = section.get("invoices", [])
        if not isinstance(invoices, list):
            raise self.fail("partner_center.invoices must be a list of invoice objects")
        for i, invoice in enumerate(invoices):
            path = f"partner_center.invoices[{i}]"
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
        return PartnerCenterFixture(enabled, unreachable, tuple(dict(inv) for inv in invoices))
