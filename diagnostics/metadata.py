"""The environment's metadata, checked against the schema map.

`fetch_metadata` reads EntityDefinitions (two round trips: the table list, then one `$batch` with
each table's attributes and option sets). `verify` is pure: it names every missing table, column
or status label and proposes the match by display name. `resolve` turns a verified map into the
names and option values the snapshot loader uses; status values always come from here, never
from hard-coded option numbers.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from diagnostics.access import access_failures, read_access
from diagnostics.checks import READS
from diagnostics.errors import ServiceError
from diagnostics.schema import DEFAULT_LABELS, TABLES, SchemaMap, column_key, label_key

# The columns the tool reads, per table (default names): derived from the checks' declarations
# (diagnostics/checks/__init__.py), so verification checks exactly what some check reads.
READ_COLUMNS: Mapping[str, tuple[str, ...]] = {t: READS.columns(t) for t in READS.tables()}
_LISTING = (
    "EntityDefinitions?$select=LogicalName,EntitySetName,DisplayName,PrimaryIdAttribute,PrimaryNameAttribute"
)
# WhoAmI and RetrieveUserPrivileges are functions; Dataverse accepts function calls as GET parts of
# a $batch (learn.microsoft.com/power-apps/developer/data-platform/webapi/execute-batch-operations-using-web-api),
# so they ride in the two metadata round trips instead of adding their own.
_WHO_AM_I = "WhoAmI"

_OPTION_TYPES = ("StatusAttributeMetadata", "StateAttributeMetadata", "PicklistAttributeMetadata")
# A choice column may use a global choice, whose options come under GlobalOptionSet; status and
# state option sets are always the column's own.
_EXPAND = {
    "StatusAttributeMetadata": "OptionSet",
    "StateAttributeMetadata": "OptionSet",
    "PicklistAttributeMetadata": "OptionSet,GlobalOptionSet",
}


@dataclass(frozen=True)
class AttributeMeta:
    logical: str
    display: str | None
    type: str | None


@dataclass(frozen=True)
class EntityMeta:
    logical: str
    entity_set: str
    display: str | None
    attributes: Mapping[str, AttributeMeta] = field(default_factory=dict)
    # column -> option value -> label
    options: Mapping[str, Mapping[int, str]] = field(default_factory=dict)
    # the table's Read privilege (EntityMetadata.Privileges, PrivilegeType "Read"): (id, name)
    read_privilege: tuple[str, str] | None = None
    # every privilege of the table by PrivilegeType (Create, Write, Delete, Append, AppendTo…): (id, name)
    privileges: Mapping[str, tuple[str, str]] = field(default_factory=dict)


@dataclass(frozen=True)
class EnvironmentMetadata:
    # every table of the environment: logical -> (entity set, display name)
    tables: Mapping[str, tuple[str, str | None]]
    # the tables the tool reads (or their proposed matches), in detail
    entities: Mapping[str, EntityMeta]
    # logical -> its primary key column (a renamed table's key is renamed with it)
    primary_ids: Mapping[str, str] = field(default_factory=dict)
    # the identity's RetrieveUserPrivileges answer, or why it could not be read
    user_privileges: Mapping[str, Any] | str = "not read"
    user_id: str | None = None


@dataclass(frozen=True)
class Problem:
    kind: Literal["table", "column", "label"]
    table: str  # default table name
    column: str | None
    expected: str  # the name or label the map expects
    proposal: str | None
    detail: str

    def as_evidence(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "table": self.table,
            "column": self.column,
            "expected": self.expected,
            "proposal": self.proposal,
            "detail": self.detail,
        }


class MetadataSource(Protocol):
    async def get(self, path_and_query: str) -> dict[str, Any]: ...

    async def batch_get(self, paths: Sequence[str]) -> list[dict[str, Any] | ServiceError]: ...


def _label(display: Any) -> str | None:
    if isinstance(display, dict):
        user = display.get("UserLocalizedLabel")
        if isinstance(user, dict) and isinstance(user.get("Label"), str):
            return str(user["Label"])
        for loc in display.get("LocalizedLabels") or []:
            if isinstance(loc, dict) and isinstance(loc.get("Label"), str):
                return str(loc["Label"])
    return None


def _by_display(candidates: Mapping[str, str | None], display: str, fallback: str) -> str | None:
    """The candidate whose display name matches, else the closest logical name."""
    exact = sorted(
        name for name, shown in candidates.items() if shown and shown.casefold() == display.casefold()
    )
    if exact:
        close = difflib.get_close_matches(fallback, exact, n=1, cutoff=0.0)
        return close[0] if close else exact[0]
    close = difflib.get_close_matches(fallback, list(candidates), n=1, cutoff=0.75)
    return close[0] if close else None


def _target_tables(listing: Mapping[str, tuple[str, str | None]], schema_map: SchemaMap) -> dict[str, str]:
    """Default table -> the environment table to read in detail (mapped, or the proposed match)."""
    out = {}
    displays = {name: shown for name, (_, shown) in listing.items()}
    for default in READ_COLUMNS:
        mapped = schema_map.table(default)
        chosen = mapped if mapped in listing else _by_display(displays, TABLES[default].display, mapped)
        if chosen:
            out[default] = chosen
    return out


def _parse_options(answer: dict[str, Any]) -> dict[str, dict[int, str]]:
    """Column -> option value -> label, from an attribute cast answer (one attribute or `value`).

    A choice column that uses a global option set (choice) answers `"OptionSet": null` with its
    options under `GlobalOptionSet`, so both are read: the local one when it has options, else the
    global one (the shape public clients of recorded answers handle; Microsoft's metadata
    documentation shows only the `$expand=OptionSet,GlobalOptionSet` query).
    """
    out: dict[str, dict[int, str]] = {}
    attributes = answer.get("value", [answer])
    for attribute in attributes if isinstance(attributes, list) else []:
        if not isinstance(attribute, dict):
            continue
        name = attribute.get("LogicalName")
        if isinstance(name, str):
            out[name] = {
                int(o["Value"]): _label(o.get("Label")) or str(o["Value"])
                for o in _options_of(attribute)
                if isinstance(o, dict) and isinstance(o.get("Value"), int)
            }
    return out


def _options_of(attribute: dict[str, Any]) -> list[Any]:
    for key in ("OptionSet", "GlobalOptionSet"):
        option_set = attribute.get(key)
        options = option_set.get("Options") if isinstance(option_set, dict) else None
        if isinstance(options, list) and options:
            return options
    return []


def _entity_paths(logical: str) -> list[str]:
    base = f"EntityDefinitions(LogicalName='{logical}')"
    return [
        f"{base}?$select=LogicalName,EntitySetName,Privileges"
        "&$expand=Attributes($select=LogicalName,DisplayName,AttributeType)",
        *(
            f"{base}/Attributes/Microsoft.Dynamics.CRM.{kind}?$select=LogicalName&$expand={_EXPAND[kind]}"
            for kind in _OPTION_TYPES
        ),
    ]


def _read_privilege(entity: Mapping[str, Any]) -> tuple[str, str] | None:
    for privilege in entity.get("Privileges") or []:
        if isinstance(privilege, dict) and privilege.get("PrivilegeType") == "Read":
            return str(privilege.get("PrivilegeId", "")).lower(), str(privilege.get("Name", ""))
    return None


def _privileges(entity: Mapping[str, Any]) -> dict[str, tuple[str, str]]:
    return {
        str(p["PrivilegeType"]): (str(p.get("PrivilegeId", "")).lower(), str(p.get("Name", "")))
        for p in entity.get("Privileges") or []
        if isinstance(p, dict) and isinstance(p.get("PrivilegeType"), str)
    }


def _who_am_i(answer: dict[str, Any] | ServiceError) -> tuple[str | None, str]:
    """The identity's systemuser id, or None and why not."""
    if isinstance(answer, ServiceError):
        return None, f"WhoAmI failed: {answer}"
    user_id = answer.get("UserId")
    if not isinstance(user_id, str) or not user_id:
        return None, "WhoAmI answered without a UserId"
    return user_id, ""


async def fetch_metadata(source: MetadataSource, schema_map: SchemaMap) -> EnvironmentMetadata:
    listing_answer, who_answer = await source.batch_get([_LISTING, _WHO_AM_I])
    if isinstance(listing_answer, ServiceError):
        raise listing_answer
    listing = {
        str(e["LogicalName"]): (str(e.get("EntitySetName") or e["LogicalName"]), _label(e.get("DisplayName")))
        for e in listing_answer.get("value", [])
        if isinstance(e, dict) and e.get("LogicalName")
    }
    primary_ids = {
        str(e["LogicalName"]): str(e["PrimaryIdAttribute"])
        for e in listing_answer.get("value", [])
        if isinstance(e, dict) and e.get("LogicalName") and e.get("PrimaryIdAttribute")
    }
    targets = sorted(set(_target_tables(listing, schema_map).values()))
    paths = [p for logical in targets for p in _entity_paths(logical)]
    user_id, why_not = _who_am_i(who_answer)
    if user_id is not None:
        # Bound to the identity's own systemuser row (RetrieveUserPrivileges Function, Web API reference).
        paths.append(f"systemusers({user_id})/Microsoft.Dynamics.CRM.RetrieveUserPrivileges()")
    answers = await source.batch_get(paths)
    entities: dict[str, EntityMeta] = {}
    per_table = len(_OPTION_TYPES) + 1
    for index, logical in enumerate(targets):
        chunk = answers[index * per_table : (index + 1) * per_table]
        first = chunk[0]
        if isinstance(first, ServiceError):
            raise first
        attributes = {
            str(a["LogicalName"]): AttributeMeta(
                str(a["LogicalName"]), _label(a.get("DisplayName")), a.get("AttributeType")
            )
            for a in first.get("Attributes", [])
            if isinstance(a, dict) and a.get("LogicalName")
        }
        options: dict[str, dict[int, str]] = {}
        for answer in chunk[1:]:
            if isinstance(answer, ServiceError):
                raise answer
            options |= _parse_options(answer)
        entities[logical] = EntityMeta(
            logical,
            listing[logical][0],
            listing[logical][1],
            attributes,
            options,
            _read_privilege(first),
            _privileges(first),
        )
    privileges: Mapping[str, Any] | str = why_not
    if user_id is not None:
        answer = answers[-1]
        privileges = (
            f"RetrieveUserPrivileges failed: {answer}" if isinstance(answer, ServiceError) else answer
        )
    return EnvironmentMetadata(listing, entities, primary_ids, privileges, user_id)


def _column_problems(
    default: str, entity: EntityMeta, schema_map: SchemaMap, primary_id: str | None
) -> list[Problem]:
    problems = []
    displays = {name: a.display for name, a in entity.attributes.items()}
    for column in READ_COLUMNS[default]:
        mapped = schema_map.column(default, column)
        if mapped in entity.attributes:
            continue
        expected_display = TABLES[default].column(column).display
        if column == TABLES[default].primary_key and primary_id:
            proposal: str | None = primary_id  # metadata names the key; no need to guess
        else:
            proposal = _by_display(displays, expected_display, mapped)
        problems.append(
            Problem(
                "column",
                default,
                column,
                mapped,
                proposal,
                f'column {mapped} ("{expected_display}") is not on table {entity.logical}',
            )
        )
    return problems


def _label_problems(default: str, entity: EntityMeta, schema_map: SchemaMap) -> list[Problem]:
    problems = []
    for key in DEFAULT_LABELS:
        table, _, column = key.partition(".")
        if table != default or column not in READS.label_columns(table):
            continue  # a meaning no check needs is not verified
        actual_column = schema_map.column(table, column)
        labels = list(entity.options.get(actual_column, {}).values())
        if not labels:
            continue  # the column itself is reported missing, or has no options to read
        meanings = schema_map.labels.get(key, {})
        unmatched = [lab for lab in labels if schema_map.meaning_of(table, column, lab) is None]
        for meaning, synonyms in meanings.items():
            if any(schema_map.meaning_of(table, column, lab) == meaning for lab in labels):
                continue
            proposal = difflib.get_close_matches(synonyms[0], unmatched, n=1, cutoff=0.0) if unmatched else []
            problems.append(
                Problem(
                    "label",
                    table,
                    column,
                    f"{meaning}: {' / '.join(synonyms)}",
                    proposal[0] if len(unmatched) == 1 and proposal else None,
                    f"no option of {entity.logical}.{actual_column} means '{meaning}' "
                    f"(expected {' or '.join(repr(s) for s in synonyms)}; the environment has "
                    f"{', '.join(repr(lab) for lab in labels)})",
                )
            )
    return problems


def verify(meta: EnvironmentMetadata, schema_map: SchemaMap) -> list[Problem]:
    """Every table, column or status label of the map that the environment does not have."""
    problems: list[Problem] = []
    displays = {name: shown for name, (_, shown) in meta.tables.items()}
    for default in READ_COLUMNS:
        mapped = schema_map.table(default)
        if mapped not in meta.tables:
            proposal = _by_display(displays, TABLES[default].display, mapped)
            problems.append(
                Problem(
                    "table",
                    default,
                    None,
                    mapped,
                    proposal,
                    f'table {mapped} ("{TABLES[default].display}") does not exist in the environment',
                )
            )
            if proposal is None:
                continue
            # Check the proposed table's columns too, so one `schema verify` finds every difference.
            mapped = proposal
        entity = meta.entities.get(mapped)
        if entity is None:
            continue
        problems += _column_problems(default, entity, schema_map, meta.primary_ids.get(mapped))
        problems += _label_problems(default, entity, schema_map)
    return problems


def proposed_overrides(problems: Sequence[Problem], schema_map: SchemaMap) -> dict[str, Any]:
    """The override file that would fix every problem with a proposal (on top of the current one)."""
    tables = dict(schema_map.tables)
    columns = dict(schema_map.columns)
    labels: dict[str, dict[str, list[str]]] = {}
    for problem in problems:
        if problem.proposal is None:
            continue
        if problem.kind == "table":
            tables[problem.table] = problem.proposal
        elif problem.kind == "column" and problem.column:
            columns[f"{problem.table}.{problem.column}"] = problem.proposal
        elif problem.kind == "label" and problem.column:
            meaning = problem.expected.split(":", 1)[0]
            labels.setdefault(f"{problem.table}.{problem.column}", {}).setdefault(meaning, []).append(
                problem.proposal
            )
    current = schema_map.to_override_json()
    merged_labels: dict[str, Any] = dict(current.get("labels", {}))  # type: ignore[call-overload]
    for key, meanings in labels.items():
        for meaning, synonyms in meanings.items():
            merged_labels.setdefault(key, {}).setdefault(meaning, [])
            merged_labels[key][meaning] = [*merged_labels[key][meaning], *synonyms]
    out: dict[str, Any] = {}
    if tables:
        out["tables"] = tables
    if columns:
        out["columns"] = columns
    if merged_labels:
        out["labels"] = merged_labels
    return out


@dataclass(frozen=True)
class ResolvedSchema:
    """Names and option values of one environment, keyed by default names."""

    schema_map: SchemaMap
    entity_sets: Mapping[str, str]
    options: Mapping[str, Mapping[int, str]]  # "table.column" (defaults) -> value -> label
    # column keys (schema.column_key) the environment lacks: left out of `$select`, so the query
    # still answers for the checks that do not read them
    missing: frozenset[str] = frozenset()
    # failure keys (schema.py) that cannot be read in full, and why: a missing table, column or
    # label, a table the identity reads at less than organization level. The loader does not ask
    # for those parts and records them as failures, so exactly the checks that need them fail.
    unavailable: Mapping[str, str] = field(default_factory=dict)
    # the columns `$select` asks for, per table (default names): what the checks declare
    select: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: READ_COLUMNS)

    def entity_set(self, table: str) -> str:
        # A table the environment lacks is never queried (its parts are failures before loading);
        # the default only lets the queries be built alike.
        return self.entity_sets.get(table, TABLES[table].entity_set)

    def col(self, table: str, column: str) -> str:
        return self.schema_map.column(table, column)

    def label(self, table: str, column: str, value: Any) -> str | None:
        if value is None:
            return None
        try:
            return self.options.get(f"{table}.{column}", {}).get(int(value))
        except (TypeError, ValueError):
            return None

    def values_meaning(self, table: str, column: str, meaning: str) -> list[int]:
        """The option values whose label means `meaning` (for server-side filters)."""
        return sorted(
            value
            for value, label in self.options.get(f"{table}.{column}", {}).items()
            if self.schema_map.meaning_of(table, column, label) == meaning
        )


def resolve(meta: EnvironmentMetadata, schema_map: SchemaMap) -> ResolvedSchema:
    entity_sets: dict[str, str] = {}
    options: dict[str, dict[int, str]] = {}
    missing: set[str] = set()
    for default in READ_COLUMNS:
        logical = schema_map.table(default)
        if logical not in meta.tables:
            continue
        entity_sets[default] = meta.tables[logical][0]
        entity = meta.entities.get(logical)
        if entity is None:
            continue
        missing |= {
            column_key(default, c)
            for c in READ_COLUMNS[default]
            if schema_map.column(default, c) not in entity.attributes
        }
        for column in TABLES[default].column_names:
            actual = schema_map.column(default, column)
            if actual in entity.options:
                options[f"{default}.{column}"] = dict(entity.options[actual])
    unavailable = problem_failures(verify(meta, schema_map)) | access_failures(read_access(meta, schema_map))
    return ResolvedSchema(schema_map, entity_sets, options, frozenset(missing), unavailable)


def problem_failures(problems: Sequence[Problem]) -> dict[str, str]:
    """Failure keys (schema.py) of what each difference makes unreadable, with the difference:
    a missing table stops its snapshot parts, a column or label only the checks that read it."""
    out: dict[str, str] = {}
    for problem in problems:
        why = problem.detail + (f"; proposed: {problem.proposal}" if problem.proposal else "")
        if problem.kind == "table":
            for part in READS.parts_of(problem.table):
                out[part] = why
        elif problem.kind == "column" and problem.column:
            out[column_key(problem.table, problem.column)] = why
        elif problem.column:
            out[label_key(problem.table, problem.column)] = why
    return out
