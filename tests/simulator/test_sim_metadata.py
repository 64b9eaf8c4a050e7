"""EntityDefinitions metadata shapes, and a tenant that differs from the defaults (renames, status labels)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sim_support import API, INVOICE_ACTIVE, INVOICE_ERROR, PROVIDER, client_for, tenant_dict

from diagnostics.schema import TABLES
from simulator import Simulator

DEFINITIONS = API + "EntityDefinitions"
INVOICE_DEF = DEFINITIONS + "(LogicalName='work365_providerinvoice')"


def _label(text: str) -> dict[str, Any]:
    return {
        "LocalizedLabels": [
            {"Label": text, "LanguageCode": 1033, "IsManaged": True, "MetadataId": None, "HasChanged": None}
        ],
        "UserLocalizedLabel": {
            "Label": text,
            "LanguageCode": 1033,
            "IsManaged": True,
            "MetadataId": None,
            "HasChanged": None,
        },
    }


def test_entity_definitions_filtered_by_logical_name(client: httpx.Client) -> None:
    select = "LogicalName,EntitySetName,DisplayName,PrimaryIdAttribute,PrimaryNameAttribute"
    response = client.get(
        DEFINITIONS, params={"$select": select, "$filter": "LogicalName eq 'work365_providerinvoice'"}
    )
    [item] = response.json()["value"]
    assert set(item) == {"MetadataId", *select.split(",")}
    assert item["EntitySetName"] == "work365_providerinvoices"
    assert item["DisplayName"] == _label("Provider Invoice")
    assert (item["PrimaryIdAttribute"], item["PrimaryNameAttribute"]) == (
        "work365_providerinvoiceid",
        "work365_name",
    )
    assert client.get(DEFINITIONS, params={"$filter": "LogicalName eq 'nope'"}).json()["value"] == []


def test_every_table_is_in_metadata_even_without_rows(client: httpx.Client) -> None:
    items = client.get(DEFINITIONS, params={"$select": "LogicalName,EntitySetName"}).json()["value"]
    sets = {i["LogicalName"]: i["EntitySetName"] for i in items}
    assert set(sets) == set(TABLES)
    assert sets["work365_usagesummary"] == "work365_usagesummaries"
    assert sets["transactioncurrency"] == "transactioncurrencies"
    assert sets["work365_billingschedule"] == "work365_billingschedules"


def test_entity_with_attributes_expanded(client: httpx.Client) -> None:
    params = {
        "$select": "LogicalName",
        "$expand": "Attributes($select=LogicalName,DisplayName,AttributeType)",
    }
    body = client.get(INVOICE_DEF, params=params).json()
    assert body["LogicalName"] == "work365_providerinvoice"
    attributes = {a["LogicalName"]: a for a in body["Attributes"]}
    assert set(attributes["work365_providerinvoice_invoicedate"]) == {
        "@odata.type",
        "MetadataId",
        "LogicalName",
        "DisplayName",
        "AttributeType",
    }
    types = {name: a["AttributeType"] for name, a in attributes.items()}
    assert types["work365_providerinvoice_invoicedate"] == "DateTime"
    assert types["work365_providerinvoice_provider"] == "Lookup"
    assert types["statuscode"] == "Status"
    assert types["statecode"] == "State"
    assert types["work365_providerinvoice_totalamount"] == "Money"
    assert types["work365_providerinvoiceid"] == "Uniqueidentifier"
    assert attributes["work365_providerinvoice_usagetotal"]["DisplayName"] == _label("Amount Totals - Usage")
    filtered = client.get(
        INVOICE_DEF, params={"$expand": "Attributes($select=LogicalName;$filter=AttributeType eq 'Lookup')"}
    )
    assert {a["LogicalName"] for a in filtered.json()["Attributes"]} == {
        "work365_providerinvoice_provider",
        "transactioncurrencyid",
    }


def test_date_only_columns_say_so_through_the_datetime_cast(client: httpx.Client) -> None:
    url = INVOICE_DEF + "/Attributes/Microsoft.Dynamics.CRM.DateTimeAttributeMetadata"
    items = {
        a["LogicalName"]: a for a in client.get(url, params={"$select": "LogicalName,Format"}).json()["value"]
    }
    assert items["work365_providerinvoice_invoicedate"]["Format"] == "DateOnly"
    assert items["createdon"]["Format"] == "DateAndTime"


def test_status_option_set_through_the_cast(client: httpx.Client) -> None:
    url = INVOICE_DEF + "/Attributes/Microsoft.Dynamics.CRM.StatusAttributeMetadata"
    [status] = client.get(url, params={"$select": "LogicalName", "$expand": "OptionSet"}).json()["value"]
    assert status["@odata.type"] == "#Microsoft.Dynamics.CRM.StatusAttributeMetadata"
    assert status["LogicalName"] == "statuscode"
    options = status["OptionSet"]["Options"]
    assert [(o["Value"], o["State"], o["Label"]["UserLocalizedLabel"]["Label"]) for o in options] == [
        (870420000, 0, "Populating"),
        (870420001, 0, "Active Usage"),
        (1, 0, "Active"),
        (870420003, 1, "Error"),
    ]
    assert options[0]["Label"] == _label("Populating")
    single = (
        INVOICE_DEF + "/Attributes(LogicalName='statuscode')/Microsoft.Dynamics.CRM.StatusAttributeMetadata"
    )
    body = client.get(
        single, params={"$select": "LogicalName", "$expand": "OptionSet($select=Options)"}
    ).json()
    assert [o["Value"] for o in body["OptionSet"]["Options"]] == [870420000, 870420001, 1, 870420003]
    assert set(body["OptionSet"]) == {"MetadataId", "Options"}


def test_state_and_picklist_option_sets(client: httpx.Client) -> None:
    state_url = INVOICE_DEF + "/Attributes/Microsoft.Dynamics.CRM.StateAttributeMetadata"
    [state] = client.get(state_url, params={"$expand": "OptionSet"}).json()["value"]
    options = state["OptionSet"]["Options"]
    assert [(o["Value"], o["Label"]["UserLocalizedLabel"]["Label"], o["DefaultStatus"]) for o in options] == [
        (0, "Active", 870420000),
        (1, "Inactive", 870420003),
    ]
    assert "State" not in options[0]
    picklist_url = (
        DEFINITIONS
        + "(LogicalName='work365_provider')/Attributes/Microsoft.Dynamics.CRM.PicklistAttributeMetadata"
    )
    [picklist] = client.get(picklist_url, params={"$select": "LogicalName", "$expand": "OptionSet"}).json()[
        "value"
    ]
    assert picklist["LogicalName"] == "work365_provider_type"
    assert picklist["OptionSet"]["Options"][0]["Value"] == 870420000
    assert (
        picklist["OptionSet"]["Options"][0]["Label"]["UserLocalizedLabel"]["Label"]
        == "Microsoft Partner Center"
    )
    assert "State" not in picklist["OptionSet"]["Options"][0]


def test_metadata_errors(client: httpx.Client) -> None:
    unknown = client.get(DEFINITIONS + "(LogicalName='work365_nope')", params={"$select": "LogicalName"})
    assert unknown.status_code == 404
    assert unknown.json()["error"]["message"] == "Could not find an entity with LogicalName 'work365_nope'."
    assert client.get(INVOICE_DEF + "/Attributes(LogicalName='nope')").status_code == 404
    no_cast = client.get(
        INVOICE_DEF + "/Attributes(LogicalName='statuscode')", params={"$expand": "OptionSet"}
    )
    assert no_cast.status_code == 400
    assert "'OptionSet'" in no_cast.json()["error"]["message"]
    assert client.get(DEFINITIONS, params={"$select": "LogicalNam"}).status_code == 400
    assert client.get(INVOICE_DEF + "/Attributes/Microsoft.Dynamics.CRM.NopeMetadata").status_code == 404


USAGE = "55555555-5555-4555-8555-555555555555"


@pytest.fixture(scope="module")
def renamed() -> Iterator[httpx.Client]:
    raw = tenant_dict()
    raw["dataverse"]["rows"]["work365_usagesummary"] = [
        {
            "work365_usagesummaryid": USAGE,
            "work365_usagesummary_providerinvoice": INVOICE_ERROR,
            "work365_usagesummary_cost": 5,
        }
    ]
    raw["dataverse"]["renames"] = {
        "tables": {"work365_usagesummary": "w365_usagesummary", "work365_provider": "w365_provider"},
        "columns": {
            "work365_providerinvoice.work365_providerinvoice_message": "work365_statusmessage",
            "work365_providerinvoice.work365_providerinvoice_provider": "work365_vendor",
        },
    }
    raw["dataverse"]["status_labels"] = {"work365_providerinvoice": {"Active": "Completed"}}
    with Simulator(raw) as sim, client_for(sim) as http:
        yield http


def test_renamed_tables_are_served_only_under_their_new_names(renamed: httpx.Client) -> None:
    assert renamed.get(API + "work365_usagesummaries").status_code == 404
    [row] = renamed.get(API + "w365_usagesummaries").json()["value"]
    assert row["w365_usagesummaryid"] == USAGE  # the primary key follows the table's name, as in Dataverse
    assert row["_work365_usagesummary_providerinvoice_value"] == INVOICE_ERROR
    select = "LogicalName,EntitySetName,DisplayName,PrimaryIdAttribute"
    assert (
        renamed.get(DEFINITIONS, params={"$filter": "LogicalName eq 'work365_usagesummary'"}).json()["value"]
        == []
    )
    [item] = renamed.get(
        DEFINITIONS, params={"$select": select, "$filter": "LogicalName eq 'w365_usagesummary'"}
    ).json()["value"]
    assert item["EntitySetName"] == "w365_usagesummaries"
    assert item["PrimaryIdAttribute"] == "w365_usagesummaryid"
    assert item["DisplayName"]["UserLocalizedLabel"]["Label"] == "Usage Summary"  # display names unchanged


def test_renamed_columns_in_data_filters_and_metadata(renamed: httpx.Client) -> None:
    invoices = API + "work365_providerinvoices"
    prefer = {"Prefer": 'odata.include-annotations="*"'}
    row = renamed.get(invoices + f"({INVOICE_ERROR})", headers=prefer).json()
    assert row["work365_statusmessage"] == "Unresolved references"
    assert "work365_providerinvoice_message" not in row
    assert row["_work365_vendor_value"] == PROVIDER
    assert row["_work365_vendor_value@Microsoft.Dynamics.CRM.lookuplogicalname"] == "w365_provider"
    bad = renamed.get(invoices, params={"$select": "work365_providerinvoice_message"})
    assert bad.status_code == 400
    assert (
        "Could not find a property named 'work365_providerinvoice_message'" in bad.json()["error"]["message"]
    )
    assert (
        renamed.get(
            invoices, params={"$filter": f"_work365_providerinvoice_provider_value eq {PROVIDER}"}
        ).status_code
        == 400
    )
    found = renamed.get(
        invoices, params={"$filter": f"_work365_vendor_value eq {PROVIDER}", "$select": "work365_name"}
    )
    assert len(found.json()["value"]) == 2
    attributes = renamed.get(
        DEFINITIONS + "(LogicalName='work365_providerinvoice')",
        params={"$expand": "Attributes($select=LogicalName,DisplayName)"},
    ).json()["Attributes"]
    names = {a["LogicalName"]: a["DisplayName"]["UserLocalizedLabel"]["Label"] for a in attributes}
    assert names["work365_statusmessage"] == "Message"
    assert names["work365_vendor"] == "Provider"
    assert "work365_providerinvoice_message" not in names


def test_status_labels_change_metadata_and_formatted_values_not_values(renamed: httpx.Client) -> None:
    url = DEFINITIONS + "(LogicalName='work365_providerinvoice')/Attributes(LogicalName='statuscode')"
    body = renamed.get(
        url + "/Microsoft.Dynamics.CRM.StatusAttributeMetadata", params={"$expand": "OptionSet"}
    ).json()
    labels = {o["Value"]: o["Label"]["UserLocalizedLabel"]["Label"] for o in body["OptionSet"]["Options"]}
    assert labels == {870420000: "Populating", 870420001: "Active Usage", 1: "Completed", 870420003: "Error"}
    prefer = {"Prefer": 'odata.include-annotations="OData.Community.Display.V1.FormattedValue"'}
    row = renamed.get(API + f"work365_providerinvoices({INVOICE_ACTIVE})", headers=prefer).json()
    assert row["statuscode"] == 1
    assert row["statuscode@OData.Community.Display.V1.FormattedValue"] == "Completed"
