"""Dataverse queries: $select, $filter, $orderby, $top, $count, $apply, annotations, single rows, errors."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sim_support import (
    ACCOUNT,
    API,
    INVOICE_ACTIVE,
    INVOICE_ERROR,
    NOTE,
    PROVIDER,
    client_for,
)

from simulator import Simulator

INVOICES = API + "work365_providerinvoices"
ERROR, ACTIVE, POPULATING = 870420003, 1, 870420000


def _numbers(response: httpx.Response) -> set[str]:
    assert response.status_code == 200, response.text
    return {r["work365_providerinvoice_invoicenumber"] for r in response.json()["value"]}


def _error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"code", "message"}
    return error


def test_rows_without_select_carry_every_column_in_wire_form(client: httpx.Client) -> None:
    response = client.get(INVOICES)
    assert response.headers["OData-Version"] == "4.0"
    body = response.json()
    assert body["@odata.context"].endswith("/api/data/v9.2/$metadata#work365_providerinvoices")
    row = next(r for r in body["value"] if r["work365_providerinvoiceid"] == INVOICE_ERROR)
    assert row["@odata.etag"].startswith('W/"')
    assert row["statuscode"] == ERROR
    assert row["statecode"] == 1
    assert row["_work365_providerinvoice_provider_value"] == PROVIDER
    assert "work365_providerinvoice_provider" not in row
    assert row["work365_providerinvoice_invoicedate"] == "2026-11-08"
    assert row["createdon"] == "2026-11-08T06:30:00Z"
    assert row["work365_providerinvoice_totalamount"] == 1234.56
    assert row["work365_providerinvoice_usagetotal"] is None  # unset columns are served as null
    assert "statuscode@OData.Community.Display.V1.FormattedValue" not in row


def test_option_values_are_the_published_ones(sim: Simulator) -> None:
    assert sim.option_value("work365_providerinvoice", "statuscode", "Error") == ERROR
    assert sim.option_value("work365_providerinvoice", "statuscode", "Active") == ACTIVE
    assert sim.option_value("work365_providerinvoice", "statecode", "Active") == 0
    assert sim.option_value("work365_subscription", "statuscode", "Inactive") == 2
    assert (
        sim.option_value("work365_billingcontract", "work365_billingcontract_billingpolicy", "Arrears")
        == 870420001
    )


def test_select_returns_the_selected_columns_and_the_key(client: httpx.Client) -> None:
    response = client.get(
        INVOICES, params={"$select": "work365_name,_work365_providerinvoice_provider_value"}
    )
    row = response.json()["value"][0]
    assert list(row) == [
        "@odata.etag",
        "work365_name",
        "_work365_providerinvoice_provider_value",
        "work365_providerinvoiceid",
    ]
    assert response.json()["@odata.context"].endswith(
        "#work365_providerinvoices(work365_name,_work365_providerinvoice_provider_value)"
    )


@pytest.mark.parametrize("column", ["work365_nam", "work365_providerinvoice_provider"])
def test_select_of_an_unknown_property_is_a_400_like_dataverse(client: httpx.Client, column: str) -> None:
    error = _error(client.get(INVOICES, params={"$select": f"work365_name,{column}"}), 400)
    assert error["code"] == "0x80060888"
    assert error["message"] == (
        f"Could not find a property named '{column}' on type 'Microsoft.Dynamics.CRM.work365_providerinvoice'."
    )


FILTERS = [
    (f"statuscode eq {ERROR}", {"G012345678"}),
    (f"statuscode ne {ERROR}", {"G000000001", "O'Brien-1"}),
    ("statecode eq 0", {"G000000001", "O'Brien-1"}),
    ("work365_providerinvoice_totalamount gt 99", {"G012345678"}),
    ("work365_providerinvoice_totalamount ge 99", {"G012345678", "G000000001"}),
    ("work365_providerinvoice_totalamount lt 1234.56", {"G000000001"}),
    ("work365_providerinvoice_totalamount le 1234.56", {"G012345678", "G000000001"}),
    ("work365_providerinvoice_totalamount eq null", {"O'Brien-1"}),
    ("work365_providerinvoice_totalamount ne null", {"G012345678", "G000000001"}),
    ("null eq work365_providerinvoice_totalamount", {"O'Brien-1"}),
    (f"_work365_providerinvoice_provider_value eq {PROVIDER.upper()}", {"G012345678", "G000000001"}),
    ("work365_providerinvoice_invoicedate ge 2026-11-01", {"G012345678"}),
    ("work365_providerinvoice_invoicedate lt 2026-11-08", {"G000000001"}),
    ("createdon lt 2026-10-08T06:00:00Z", {"G000000001"}),  # 06:30+02:00 is 04:30Z
    ("createdon ge 2026-10-08T06:00:00+02:00", {"G000000001", "G012345678", "O'Brien-1"}),
    ("createdon ge 2026-11-09", {"O'Brien-1"}),  # a date against a datetime: midnight UTC
    ("work365_name eq 'microsoft g012345678 2026-10'", {"G012345678"}),  # case-insensitive, as Dataverse
    ("work365_providerinvoice_invoicenumber eq 'O''Brien-1'", {"O'Brien-1"}),
    ("contains(work365_name,'microsoft')", {"G012345678", "G000000001"}),
    ("startswith(work365_name,'Pax8')", {"O'Brien-1"}),
    ("endswith(work365_name,'2026-09')", {"G000000001"}),
    (
        f"Microsoft.Dynamics.CRM.In(PropertyName='statuscode',PropertyValues=['{POPULATING}','{ACTIVE}'])",
        {"G000000001", "O'Brien-1"},
    ),
    (
        "Microsoft.Dynamics.CRM.In(PropertyName='work365_providerinvoice_invoicenumber',PropertyValues=['g012345678'])",
        {"G012345678"},
    ),
    (
        f"Microsoft.Dynamics.CRM.NotIn(PropertyName='statuscode',PropertyValues=['{ERROR}'])",
        {"G000000001", "O'Brien-1"},
    ),
    # and binds tighter than or
    (
        f"statuscode eq {ACTIVE} or statuscode eq {ERROR} and work365_providerinvoice_totalamount gt 5000",
        {"G000000001"},
    ),
    (
        f"(statuscode eq {ACTIVE} or statuscode eq {ERROR}) and work365_providerinvoice_totalamount gt 100",
        {"G012345678"},
    ),
    (f"not (statuscode eq {ACTIVE})", {"G012345678", "O'Brien-1"}),
    (f"not statuscode eq {ACTIVE} and statecode eq 0", {"O'Brien-1"}),
    (
        "work365_providerinvoice_totalamount gt 1 and work365_providerinvoice_totalamount lt 100",
        {"G000000001"},
    ),
]


@pytest.mark.parametrize(("expression", "expected"), FILTERS, ids=[f[0][:60] for f in FILTERS])
def test_filter(client: httpx.Client, expression: str, expected: set[str]) -> None:
    assert _numbers(client.get(INVOICES, params={"$filter": expression})) == expected


BAD_FILTERS = [
    (
        "work365_nam eq 'x'",
        "Could not find a property named 'work365_nam' on type 'Microsoft.Dynamics.CRM.work365_providerinvoice'.",
    ),
    ("statuscode eq 'Error'", "Found operand types 'Edm.Int32' and 'Edm.String' for operator kind 'Equal'"),
    (f"_work365_providerinvoice_provider_value eq '{PROVIDER}'", "operand types 'Edm.Guid' and 'Edm.String'"),
    ("work365_providerinvoice_invoicedate gt 'x'", "operand types 'Edm.Date' and 'Edm.String'"),
    ("statuscode eqq 1", "Syntax error at position 12 in 'statuscode eqq 1'."),
    ("(statuscode eq 1", "Syntax error"),
    ("work365_providerinvoice_invoicedate eq 2026-13-01", "The literal '2026-13-01'"),
    (
        "Microsoft.Dynamics.CRM.In(PropertyName='nope',PropertyValues=['1'])",
        "Could not find a property named 'nope'",
    ),
    (
        "Microsoft.Dynamics.CRM.In(PropertyName='statuscode',PropertyValues=['x'])",
        "The value 'x' is not valid for Edm.Int32",
    ),
    (
        "Microsoft.Dynamics.CRM.Today(PropertyName='createdon')",
        "The function 'Microsoft.Dynamics.CRM.Today' is not supported",
    ),
]


@pytest.mark.parametrize(("expression", "message"), BAD_FILTERS, ids=[f[0][:40] for f in BAD_FILTERS])
def test_bad_filter_is_a_400_naming_the_bad_part(client: httpx.Client, expression: str, message: str) -> None:
    assert message in _error(client.get(INVOICES, params={"$filter": expression}), 400)["message"]


def test_orderby_several_columns_with_nulls_first_ascending(client: httpx.Client) -> None:
    def order(spec: str) -> list[str]:
        response = client.get(
            INVOICES, params={"$orderby": spec, "$select": "work365_providerinvoice_invoicenumber"}
        )
        return [r["work365_providerinvoice_invoicenumber"] for r in response.json()["value"]]

    assert order("work365_providerinvoice_totalamount") == ["O'Brien-1", "G000000001", "G012345678"]
    assert order("work365_providerinvoice_totalamount desc") == ["G012345678", "G000000001", "O'Brien-1"]
    assert order("statecode asc,work365_name desc") == ["O'Brien-1", "G000000001", "G012345678"]
    assert "'nope'" in _error(client.get(INVOICES, params={"$orderby": "nope desc"}), 400)["message"]
    assert (
        "Syntax error"
        in _error(client.get(INVOICES, params={"$orderby": "work365_name down"}), 400)["message"]
    )


def test_top_and_count(client: httpx.Client) -> None:
    body = client.get(INVOICES, params={"$top": "1", "$count": "true", "$orderby": "work365_name"}).json()
    assert body["@odata.count"] == 3
    assert [r["work365_name"] for r in body["value"]] == ["Microsoft G000000001 2026-09"]
    assert "@odata.nextLink" not in body
    assert "$top" in _error(client.get(INVOICES, params={"$top": "x"}), 400)["message"]
    count = client.get(INVOICES + "/$count")
    assert (count.status_code, count.text) == (200, "3")


def test_formatted_values_and_lookup_annotations_when_asked(client: httpx.Client) -> None:
    params = {
        "$select": "statuscode,_work365_providerinvoice_provider_value",
        "$filter": f"statuscode eq {ERROR}",
    }
    everything = client.get(INVOICES, params=params, headers={"Prefer": 'odata.include-annotations="*"'})
    assert everything.headers["Preference-Applied"] == 'odata.include-annotations="*"'
    row = everything.json()["value"][0]
    assert row["statuscode@OData.Community.Display.V1.FormattedValue"] == "Error"
    lookup = "_work365_providerinvoice_provider_value"
    assert row[f"{lookup}@OData.Community.Display.V1.FormattedValue"] == "Microsoft"
    assert row[f"{lookup}@Microsoft.Dynamics.CRM.lookuplogicalname"] == "work365_provider"

    formatted_only = 'odata.include-annotations="OData.Community.Display.V1.FormattedValue"'
    row = client.get(INVOICES, params=params, headers={"Prefer": formatted_only}).json()["value"][0]
    assert row[f"{lookup}@OData.Community.Display.V1.FormattedValue"] == "Microsoft"
    assert f"{lookup}@Microsoft.Dynamics.CRM.lookuplogicalname" not in row


def test_polymorphic_regarding_lookup_of_a_note(client: httpx.Client) -> None:
    prefer = {"Prefer": 'odata.include-annotations="*"'}
    note = client.get(API + f"annotations({NOTE})", headers=prefer).json()
    assert note["_objectid_value"] == INVOICE_ERROR
    assert note["_objectid_value@Microsoft.Dynamics.CRM.lookuplogicalname"] == "work365_providerinvoice"
    assert note["_objectid_value@OData.Community.Display.V1.FormattedValue"] == "Microsoft G012345678 2026-10"
    assert note["objecttypecode"] == "work365_providerinvoice"
    listed = client.get(
        API + "annotations", params={"$filter": f"_objectid_value eq {INVOICE_ERROR}", "$select": "filename"}
    )
    assert [n["filename"] for n in listed.json()["value"]] == ["errors.csv"]


def test_single_row_property_and_value(client: httpx.Client) -> None:
    row = client.get(INVOICES + f"({INVOICE_ACTIVE.upper()})", params={"$select": "work365_name"}).json()
    assert row["work365_name"] == "Microsoft G000000001 2026-09"
    assert row["@odata.context"].endswith("#work365_providerinvoices(work365_name)/$entity")
    assert set(row) == {"@odata.context", "@odata.etag", "work365_name", "work365_providerinvoiceid"}
    value = client.get(API + f"annotations({NOTE})/documentbody/$value")
    assert value.text.startswith("VHlwZSxJZCxOYW1l")
    prop = client.get(API + f"accounts({ACCOUNT})/name").json()
    assert prop["value"] == "Contoso"


def test_not_found_answers(client: httpx.Client) -> None:
    missing = "99999999-9999-4999-8999-999999999999"
    error = _error(client.get(INVOICES + f"({missing})"), 404)
    assert error == {
        "code": "0x80040217",
        "message": f"work365_providerinvoice With Id = {missing} Does Not Exist",
    }
    error = _error(client.get(API + "work365_providerinvoice"), 404)
    assert error["message"] == "Resource not found for the segment 'work365_providerinvoice'."
    assert "alternate keys" in _error(client.get(INVOICES + "(work365_name='x')"), 400)["message"]


def test_unsupported_and_repeated_query_options(client: httpx.Client) -> None:
    assert (
        _error(client.get(INVOICES, params={"$skip": "1"}), 400)["message"]
        == "The query parameter $skip is not supported"
    )
    assert "more than once" in _error(client.get(INVOICES + "?$top=1&$top=2"), 400)["message"]
    assert "fetchXml" in _error(client.get(INVOICES, params={"fetchXml": "<fetch/>"}), 400)["message"]


def test_who_am_i(client: httpx.Client) -> None:
    assert set(client.get(API + "WhoAmI").json()) >= {"UserId", "BusinessUnitId", "OrganizationId"}


def test_apply_count_and_groupby(client: httpx.Client) -> None:
    total = client.get(INVOICES, params={"$apply": "aggregate($count as count)"}).json()["value"]
    assert total == [{"count": 3}]
    groups = client.get(INVOICES, params={"$apply": "groupby((statecode),aggregate($count as n))"}).json()[
        "value"
    ]
    assert sorted(groups, key=lambda g: g["statecode"]) == [
        {"statecode": 0, "n": 2},
        {"statecode": 1, "n": 1},
    ]
    filtered = client.get(INVOICES, params={"$apply": "filter(statecode eq 0)/aggregate($count as c)"})
    assert filtered.json()["value"] == [{"c": 2}]
    assert (
        "not supported"
        in _error(client.get(INVOICES, params={"$apply": "aggregate(statecode with median as s)"}), 400)[
            "message"
        ]
    )


def test_without_a_valid_token_dataverse_answers_401(sim: Simulator) -> None:
    with httpx.Client(base_url=sim.base_url, verify=sim.ssl_context()) as anonymous:
        assert set(_error(anonymous.get(INVOICES), 401)) == {"code", "message"}
    with client_for(sim, token="forged") as forged:
        assert forged.get(INVOICES).status_code == 401


def test_a_get_url_over_32768_characters_is_a_414(client: httpx.Client) -> None:
    def url(length: int) -> str:
        start = INVOICES + "?$filter=work365_name%20eq%20%27"
        return start + "a" * (length - len(start) - 3) + "%27"

    assert len(url(32_768)) == 32_768
    assert client.get(url(32_768)).status_code == 200
    too_long = client.get(url(32_769))
    assert too_long.status_code == 414
    assert too_long.json()["error"]["message"] == "The request URL is longer than 32768 characters."


def test_a_column_the_fixture_adds_is_served_filterable_and_in_metadata(client: httpx.Client) -> None:
    rows = client.get(
        API + "accounts", params={"$filter": "new_region eq 'eu'", "$select": "name,new_region"}
    )
    assert [(r["name"], r["new_region"]) for r in rows.json()["value"]] == [("Contoso", "EU")]
    attribute = client.get(
        API + "EntityDefinitions(LogicalName='account')/Attributes(LogicalName='new_region')"
    )
    assert attribute.json()["AttributeType"] == "String"
