import json
from pathlib import Path

import pytest

from diagnostics.errors import InputError
from diagnostics.metadata import (
    READ_COLUMNS,
    AttributeMeta,
    EntityMeta,
    EnvironmentMetadata,
    proposed_overrides,
    resolve,
    verify,
)
from diagnostics.schema import TABLES, SchemaMap, build_schema_map, load_schema_map

STATUS = {
    "work365_providerinvoice": {1: "Populating", 2: "Active Usage", 3: "Active", 4: "Error"},
    "work365_usagesummary": {1: "Active", 2: "Archived"},
    "work365_billingschedule": {1: "Pending", 2: "Error", 3: "Invoiced"},
    "work365_subscription": {1: "Active", 2: "Inactive"},
}


def environment(
    table_renames: dict[str, str] | None = None,
    column_renames: dict[str, str] | None = None,
    relabel: dict[str, dict[str, str]] | None = None,
) -> EnvironmentMetadata:
    """Metadata of an environment served under the default schema, with optional differences."""
    table_renames, column_renames, relabel = table_renames or {}, column_renames or {}, relabel or {}
    tables: dict[str, tuple[str, str | None]] = {"contact": ("contacts", "Contact")}
    entities: dict[str, EntityMeta] = {}
    for default, definition in TABLES.items():
        logical = table_renames.get(default, default)
        tables[logical] = (logical + "s", definition.display)
        attributes = {}
        options: dict[str, dict[int, str]] = {}
        for column in definition.columns:
            name = column_renames.get(f"{default}.{column.logical}", column.logical)
            attributes[name] = AttributeMeta(name, column.display, column.type)
            if column.options:
                options[name] = dict(enumerate(column.options, 1))
        labels = {1: "Active", 2: "Inactive", **STATUS.get(default, {})}
        options["statuscode"] = {v: relabel.get(default, {}).get(lab, lab) for v, lab in labels.items()}
        options["statecode"] = {0: "Active", 1: "Inactive"}
        entities[logical] = EntityMeta(logical, logical + "s", definition.display, attributes, options)
    return EnvironmentMetadata(tables, entities)


def test_default_environment_has_no_differences() -> None:
    assert verify(environment(), SchemaMap()) == []


def test_renamed_table_is_found_by_display_name() -> None:
    meta = environment(table_renames={"work365_usagesummary": "w365_usagesummary"})
    problems = verify(meta, SchemaMap())
    assert [(p.kind, p.table, p.proposal) for p in problems] == [
        ("table", "work365_usagesummary", "w365_usagesummary")
    ]
    fixed = build_schema_map(proposed_overrides(problems, SchemaMap()), "proposal")
    assert verify(meta, fixed) == []
    assert resolve(meta, fixed).entity_set("work365_usagesummary") == "w365_usagesummarys"


def test_renamed_column_is_found_by_display_name() -> None:
    key = "work365_providerinvoice.work365_providerinvoice_message"
    meta = environment(column_renames={key: "work365_statusmessage"})
    problems = verify(meta, SchemaMap())
    assert [(p.kind, p.column, p.proposal) for p in problems] == [
        ("column", "work365_providerinvoice_message", "work365_statusmessage")
    ]
    assert proposed_overrides(problems, SchemaMap()) == {"columns": {key: "work365_statusmessage"}}


def test_relabelled_status_is_proposed_as_a_synonym() -> None:
    meta = environment(relabel={"work365_providerinvoice": {"Active": "Completed"}})
    problems = verify(meta, SchemaMap())
    assert [(p.kind, p.expected.split(":")[0], p.proposal) for p in problems] == [
        ("label", "active", "Completed")
    ]
    fixed = build_schema_map(proposed_overrides(problems, SchemaMap()), "proposal")
    assert fixed.meaning_of("work365_providerinvoice", "statuscode", "completed") == "active"
    assert fixed.meaning_of("work365_providerinvoice", "statuscode", "Active") == "active"  # defaults stay
    assert verify(meta, fixed) == []


def test_missing_table_without_a_match_has_no_proposal() -> None:
    meta = environment()
    tables = {k: v for k, v in meta.tables.items() if k != "work365_billingschedule"}
    problems = verify(EnvironmentMetadata(tables, meta.entities), SchemaMap())
    assert [(p.kind, p.table, p.proposal) for p in problems] == [("table", "work365_billingschedule", None)]


def test_status_values_come_from_metadata() -> None:
    resolved = resolve(environment(), SchemaMap())
    assert resolved.label("work365_providerinvoice", "statuscode", 4) == "Error"
    assert resolved.values_meaning(
        "work365_subscription", "work365_subscription_subscriptiontype", "usage"
    ) == [2]


def test_every_read_column_is_in_the_default_schema() -> None:
    for table, columns in READ_COLUMNS.items():
        for column in columns:
            TABLES[table].column(column)


def test_override_file_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "map.json"
    path.write_text(
        json.dumps(
            {
                "tables": {"work365_usagesummary": "w365_usage"},
                "labels": {"work365_providerinvoice.statuscode": {"active": ["Done"]}},
            }
        )
    )
    loaded = load_schema_map(path)
    assert loaded.table("work365_usagesummary") == "w365_usage"
    assert loaded.to_override_json() == {
        "tables": {"work365_usagesummary": "w365_usage"},
        "labels": {"work365_providerinvoice.statuscode": {"active": ["Done"]}},
    }


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
        ("[]", "JSON object"),
        ('{"tabels": {}}', "unknown key"),
        ('{"tables": {"work365_usage": "x"}}', "unknown table"),
        ('{"columns": {"work365_providerinvoice.message": "x"}}', "unknown column"),
        ('{"labels": {"work365_providerinvoice.statuscode": {"active": "Done"}}}', "list of strings"),
    ],
)
def test_bad_override_files_are_named(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "map.json"
    path.write_text(content)
    with pytest.raises(InputError, match=message):
        load_schema_map(path)


def test_missing_override_file() -> None:
    with pytest.raises(InputError, match="does not exist"):
        load_schema_map(Path("/nonexistent/map.json"))
