"""`EntityDefinitions` metadata, as the tool reads it to verify its schema map and option values.

Shapes follow the Web API: labels as `{"UserLocalizedLabel": …, "LocalizedLabels": […]}`, attributes
typed by `@odata.type` and reachable through a cast segment
(`/Attributes/Microsoft.Dynamics.CRM.StatusAttributeMetadata`), option sets only through `$expand`.
Renamed tables and columns appear under their served names with their display names unchanged.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from typing import Any

from simulator.access import privileges_metadata
from simulator.odata import parse_filter, unknown_property
from simulator.tenant import Option, ServedColumn, ServedTable, Tenant, navigation_name, schema_name
from simulator.wire import (
    CODE_BAD_REQUEST,
    CODE_NOT_FOUND,
    ODataError,
    Request,
    Response,
    bad_request,
    not_found_segment,
    odata_response,
)

_PATH = re.compile(
    r"^EntityDefinitions(?:\((?P<entity>[^)]*)\))?"
    r"(?:/Attributes(?:\((?P<attribute>[^)]*)\))?(?:/Microsoft\.Dynamics\.CRM\.(?P<cast>\w+))?"
    r"|/(?P<relationships>ManyToOneRelationships))?$"
)
_ATTRIBUTES_SEGMENT = "/Attributes"
_LANGUAGE = 1033
_ATTRIBUTE_TYPES = {  # schema type -> (AttributeType, metadata class)
    "Uniqueidentifier": ("Uniqueidentifier", "UniqueIdentifierAttributeMetadata"),
    "String": ("String", "StringAttributeMetadata"),
    "Memo": ("Memo", "MemoAttributeMetadata"),
    "Lookup": ("Lookup", "LookupAttributeMetadata"),
    "DateTime": ("DateTime", "DateTimeAttributeMetadata"),
    "DateOnly": ("DateTime", "DateTimeAttributeMetadata"),
    "Money": ("Money", "MoneyAttributeMetadata"),
    "Decimal": ("Decimal", "DecimalAttributeMetadata"),
    "Integer": ("Integer", "IntegerAttributeMetadata"),
    "Boolean": ("Boolean", "BooleanAttributeMetadata"),
    "State": ("State", "StateAttributeMetadata"),
    "Status": ("Status", "StatusAttributeMetadata"),
    "Picklist": ("Picklist", "PicklistAttributeMetadata"),
    "EntityName": ("EntityName", "EntityNameAttributeMetadata"),
    "Virtual": ("Virtual", "AttributeMetadata"),
}
_CLASSES = {cls for _, cls in _ATTRIBUTE_TYPES.values()}
_OPTION_SET_CLASSES = {
    "PicklistAttributeMetadata",
    "StateAttributeMetadata",
    "StatusAttributeMetadata",
    "BooleanAttributeMetadata",
}
_BASE_ATTRIBUTE_PROPS = (
    "MetadataId",
    "LogicalName",
    "SchemaName",
    "DisplayName",
    "Description",
    "AttributeType",
    "AttributeTypeName",
    "EntityLogicalName",
    "IsCustomAttribute",
    "IsPrimaryId",
    "IsPrimaryName",
    "IsValidForRead",
    "IsValidForCreate",
    "IsValidForUpdate",
)
_LOGICAL_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def label(text: str) -> dict[str, Any]:
    localized = {
        "Label": text,
        "LanguageCode": _LANGUAGE,
        "IsManaged": True,
        "MetadataId": None,
        "HasChanged": None,
    }
    return {"LocalizedLabels": [localized], "UserLocalizedLabel": dict(localized)}


def _no_label() -> dict[str, Any]:
    return {"LocalizedLabels": [], "UserLocalizedLabel": None}


def _id(*parts: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "metadata:" + ":".join(parts)))


def entity(table: ServedTable) -> dict[str, Any]:
    definition = table.definition
    return {
        "MetadataId": _id(definition.logical),
        "LogicalName": table.logical,
        "SchemaName": table.logical,
        "EntitySetName": table.entity_set,
        "LogicalCollectionName": table.entity_set,
        "CollectionSchemaName": table.entity_set,
        "DisplayName": label(definition.display),
        "DisplayCollectionName": label(definition.display + "s"),
        "Description": _no_label(),
        "PrimaryIdAttribute": table.by_default[definition.primary_key].logical,
        "PrimaryNameAttribute": table.by_default[definition.primary_name].logical,
        "ObjectTypeCode": table.object_type_code,
        "IsCustomEntity": definition.logical.startswith("work365_"),
        "IsActivity": False,
        "HasNotes": True,
        "TableType": "Standard",
        "Privileges": privileges_metadata(table),
    }


def _schema_type(column: ServedColumn) -> str:
    return "EntityName" if column.default == "objecttypecode" else column.type


def attribute(tenant: Tenant, table: ServedTable, column: ServedColumn) -> dict[str, Any]:
    attribute_type, cls = _ATTRIBUTE_TYPES[_schema_type(column)]
    definition = table.definition
    out: dict[str, Any] = {
        "@odata.type": f"#Microsoft.Dynamics.CRM.{cls}",
        "MetadataId": _id(definition.logical, column.default or column.logical),
        "LogicalName": column.logical,
        "SchemaName": schema_name(column.logical),
        "DisplayName": label(column.display),
        "Description": _no_label(),
        "AttributeType": attribute_type,
        "AttributeTypeName": {"Value": f"{attribute_type}Type"},
        "EntityLogicalName": table.logical,
        "IsCustomAttribute": column.default is None or column.logical.startswith("work365_"),
        "IsPrimaryId": column.default == definition.primary_key,
        "IsPrimaryName": column.default == definition.primary_name,
        "IsValidForRead": True,
        "IsValidForCreate": column.default not in ("createdon", "modifiedon"),
        "IsValidForUpdate": column.default not in ("createdon", "modifiedon", definition.primary_key),
    }
    if attribute_type == "DateTime":
        date_only = column.type == "DateOnly"
        out["Format"] = "DateOnly" if date_only else "DateAndTime"
        out["DateTimeBehavior"] = {"Value": "DateOnly" if date_only else "UserLocal"}
    if attribute_type == "Lookup":
        targets = [column.target] if column.target else [t for t in tenant.tables if t != "annotation"]
        out["Targets"] = [tenant.tables[t].logical if t in tenant.tables else t for t in targets]
    return out


def many_to_one(tenant: Tenant, table: ServedTable) -> list[dict[str, Any]]:
    """`EntityMetadata.ManyToOneRelationships`: one relationship per lookup and target (the
    polymorphic regarding lookup has one per table with notes). Its
    ReferencingEntityNavigationPropertyName is what a client names in `<navigation>@odata.bind`."""
    out = []
    for column in table.columns:
        if column.type != "Lookup":
            continue
        targets = [column.target] if column.target else [t for t in tenant.tables if t != "annotation"]
        for target_name in targets:
            target = tenant.tables[target_name]
            navigation = navigation_name(column, target.logical)
            out.append(
                {
                    "MetadataId": _id(table.definition.logical, column.logical, "to", target_name),
                    "SchemaName": f"{schema_name(target.logical)}_{navigation}",
                    "RelationshipType": "OneToManyRelationship",
                    "IsCustomRelationship": column.logical.startswith("work365_"),
                    "ReferencedEntity": target.logical,
                    "ReferencedAttribute": target.by_default[target.definition.primary_key].logical,
                    "ReferencingEntity": table.logical,
                    "ReferencingAttribute": column.logical,
                    "ReferencingEntityNavigationPropertyName": navigation,
                    "ReferencedEntityNavigationPropertyName": f"{navigation}_{table.logical}",
                }
            )
    return out


def _option(option: Option, attribute_type: str) -> dict[str, Any]:
    out: dict[str, Any] = {
        "Value": option.value,
        "Color": None,
        "IsManaged": True,
        "ExternalValue": "",
        "ParentValues": [],
        "Tag": None,
        "IsHidden": False,
        "MetadataId": None,
        "HasChanged": None,
        "Label": label(option.label),
        "Description": _no_label(),
    }
    if attribute_type == "Status":
        out["State"] = option.state
        out["TransitionData"] = None
    return out


def option_set(table: ServedTable, column: ServedColumn) -> dict[str, Any]:
    attribute_type = _ATTRIBUTE_TYPES[column.type][0]
    glob = column.global_option_set
    out: dict[str, Any] = {
        "MetadataId": _id(glob) if glob else _id(table.definition.logical, column.logical, "options"),
        "Name": glob or f"{table.logical}_{column.logical}",
        "IsGlobal": glob is not None,
        "IsCustomOptionSet": column.type == "Picklist",
        "OptionSetType": attribute_type,
        "DisplayName": label(column.display),
    }
    if attribute_type == "Boolean":
        out["TrueOption"] = _option(Option(1, "Yes", "Yes"), attribute_type)
        out["FalseOption"] = _option(Option(0, "No", "No"), attribute_type)
        return out
    out["Options"] = [_option(o, attribute_type) for o in column.options]
    if attribute_type == "State":
        status = table.by_default["statuscode"]
        for item, option in zip(out["Options"], column.options, strict=True):
            item["DefaultStatus"] = next(s.value for s in status.options if s.state == option.value)
            item["InvariantName"] = option.default_label
    return out


def handle(tenant: Tenant, service_root: str, relative: str, request: Request) -> Response:
    match = _PATH.match(relative)
    if match is None:
        raise not_found_segment(relative)
    options = _options(request)
    context = f"{service_root}$metadata#{relative}"
    if match["entity"] is None:
        if _ATTRIBUTES_SEGMENT in relative or match["relationships"]:
            raise bad_request(
                "Attributes and relationships can only be read from one entity: EntityDefinitions(LogicalName='x')/Attributes."
            )
        tables = list(tenant.tables.values())
        keep = _matching([entity(t) for t in tables], options, "EntityMetadata")
        entities = [_entity_view(tenant, t, options) for t, k in zip(tables, keep, strict=True) if k]
        return odata_response(200, {"@odata.context": context, "value": entities})
    table = _find_table(tenant, match["entity"])
    if match["relationships"]:
        relationships = many_to_one(tenant, table)
        keep = _matching(relationships, options, "OneToManyRelationshipMetadata")
        value = [
            _project(r, options.get("$select"), "OneToManyRelationshipMetadata")
            for r, k in zip(relationships, keep, strict=True)
            if k
        ]
        return odata_response(200, {"@odata.context": context, "value": value})
    if _ATTRIBUTES_SEGMENT not in relative:
        return odata_response(200, {"@odata.context": context, **_entity_view(tenant, table, options)})
    cast = match["cast"]
    if cast is not None and cast not in _CLASSES:
        raise not_found_segment(f"Microsoft.Dynamics.CRM.{cast}")
    columns = _served_columns(table)
    if match["attribute"] is not None:
        column = _find_column(table, columns, match["attribute"])
        view = _attribute_view(tenant, table, column, options, cast)
        if view is None:
            raise ODataError(404, CODE_BAD_REQUEST, f"The attribute '{column.logical}' is not a {cast}.")
        return odata_response(200, {"@odata.context": context, **view})
    return odata_response(
        200, {"@odata.context": context, "value": _attribute_views(tenant, table, options, cast)}
    )


def _options(request: Request) -> dict[str, str]:
    options: dict[str, str] = {}
    for key, value in request.params():
        if key not in ("$select", "$filter", "$expand"):
            raise bad_request(f"The query parameter {key} is not supported on metadata")
        options[key] = value
    return options


def _served_columns(table: ServedTable) -> list[ServedColumn]:
    # A fixture's extra columns appear in metadata too, as Dataverse has metadata for every column;
    # annotation-like names ("_x_value", "x@y") are data only.
    return [c for c in table.columns if c.default is not None or _LOGICAL_NAME.match(c.logical)]


def _key(text: str) -> tuple[str, str]:
    if text.startswith("LogicalName="):
        return "LogicalName", text.partition("=")[2].strip("'")
    return "MetadataId", text.lower()


def _find_table(tenant: Tenant, key_text: str) -> ServedTable:
    kind, key = _key(key_text)
    for table in tenant.tables.values():
        if (kind == "LogicalName" and table.logical == key) or (
            kind == "MetadataId" and _id(table.definition.logical) == key
        ):
            return table
    raise ODataError(404, CODE_NOT_FOUND, f"Could not find an entity with {kind} '{key}'.")


def _find_column(table: ServedTable, columns: list[ServedColumn], key_text: str) -> ServedColumn:
    kind, key = _key(key_text)
    for column in columns:
        metadata_id = _id(table.definition.logical, column.default or column.logical)
        if (kind == "LogicalName" and column.logical == key) or (kind == "MetadataId" and metadata_id == key):
            return column
    raise ODataError(
        404, CODE_NOT_FOUND, f"Could not find an attribute with {kind} '{key}' on entity '{table.logical}'."
    )


def _expansions(text: str) -> dict[str, dict[str, str]]:
    """`A($select=x;$filter=y),B` -> {"A": {"$select": "x", "$filter": "y"}, "B": {}}."""
    items: dict[str, dict[str, str]] = {}
    if not text.strip():
        return items
    depth, start = 0, 0
    for i, char in enumerate(text + ","):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            item = text[start:i].strip()
            start = i + 1
            name, _, inner = item.partition("(")
            nested: dict[str, str] = {}
            for part in inner.removesuffix(")").split(";") if inner else ():
                key, _, value = part.partition("=")
                nested[key.strip()] = value.strip()
            items[name.strip()] = nested
    return items


def _project(item: dict[str, Any], select: str | None, type_name: str) -> dict[str, Any]:
    if select is None:
        return item
    names = [n.strip() for n in select.split(",")]
    for name in names:
        if name not in item:
            raise unknown_property(name, f"Microsoft.Dynamics.CRM.{type_name}")
    keep = {"@odata.type", "MetadataId", *names}
    return {k: v for k, v in item.items() if k in keep}


def _matching(items: list[dict[str, Any]], options: Mapping[str, str], type_name: str) -> list[bool]:
    """Which full (unprojected) items pass `$filter`: Dataverse filters before it selects."""
    if "$filter" not in options:
        return [True] * len(items)
    properties = {k: _edm(v) for item in items for k, v in item.items()}
    predicate = parse_filter(options["$filter"], properties, f"Microsoft.Dynamics.CRM.{type_name}")
    return [predicate(item) for item in items]


def _edm(value: object) -> str | None:
    if isinstance(value, bool):
        return "Edm.Boolean"
    if isinstance(value, int):
        return "Edm.Int32"
    return "Edm.String" if isinstance(value, str) else None


def _entity_view(tenant: Tenant, table: ServedTable, options: Mapping[str, str]) -> dict[str, Any]:
    view = _project(entity(table), options.get("$select"), "EntityMetadata")
    for name, nested in _expansions(options.get("$expand", "")).items():
        if name != "Attributes":
            raise unknown_property(name, "Microsoft.Dynamics.CRM.EntityMetadata")
        if "$expand" in nested:
            raise unknown_property(nested["$expand"], "Microsoft.Dynamics.CRM.AttributeMetadata")
        view["Attributes"] = _attribute_views(tenant, table, nested, None)
    return view


def _attribute_views(
    tenant: Tenant, table: ServedTable, options: Mapping[str, str], cast: str | None
) -> list[dict[str, Any]]:
    columns = [c for c in _served_columns(table) if cast is None or _class(c) == cast]
    keep = _matching([attribute(tenant, table, c) for c in columns], options, cast or "AttributeMetadata")
    views = [
        _attribute_view(tenant, table, c, options, cast) for c, k in zip(columns, keep, strict=True) if k
    ]
    return [v for v in views if v is not None]


def _class(column: ServedColumn) -> str:
    return _ATTRIBUTE_TYPES[_schema_type(column)][1]


def _attribute_view(
    tenant: Tenant, table: ServedTable, column: ServedColumn, options: Mapping[str, str], cast: str | None
) -> dict[str, Any] | None:
    """The attribute as seen through `cast` (None when it is not of that class)."""
    if cast is not None and _class(column) != cast:
        return None
    full = attribute(tenant, table, column)
    allowed = (
        full if cast else {k: v for k, v in full.items() if k in (*_BASE_ATTRIBUTE_PROPS, "@odata.type")}
    )
    type_name = cast or "AttributeMetadata"
    view = _project(dict(allowed), options.get("$select"), type_name)
    for name, nested in _expansions(options.get("$expand", "")).items():
        if name not in ("OptionSet", "GlobalOptionSet") or cast not in _OPTION_SET_CLASSES:
            raise unknown_property(name, f"Microsoft.Dynamics.CRM.{type_name}")
        # A column's choice is either its own (under OptionSet) or a global one (under
        # GlobalOptionSet); the other navigation property expands to null.
        if (name == "GlobalOptionSet") != (column.global_option_set is not None):
            view[name] = None
        else:
            view[name] = _project(option_set(table, column), nested.get("$select"), "OptionSetMetadata")
    return view
