"""Fixture loading: every rule of contracts/tenant-fixture.md and every FixtureError."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sim_support import INVOICE_ERROR, NOTE, PROVIDER, tenant_dict

from diagnostics.errors import InputError
from simulator import FixtureError, Simulator, load_fixture
from simulator.values import is_guid


def _rows(fx: dict[str, Any], table: str) -> list[dict[str, Any]]:
    return fx["dataverse"]["rows"].setdefault(table, [])


def test_loads_from_a_file_and_keeps_now_as_aware_utc(tmp_path: Path) -> None:
    raw = tenant_dict()
    raw["now"] = "2026-11-12T10:00:00+01:00"
    path = tmp_path / "tenant.json"
    path.write_text(json.dumps(raw), encoding="utf-8")

    fx = load_fixture(path)

    assert fx.now == datetime(2026, 11, 12, 9, 0, tzinfo=UTC)
    assert fx.now.tzinfo is UTC
    assert fx.source == str(path)
    assert fx.description.startswith("three provider invoices")
    assert fx.partner_center.enabled
    assert len(fx.partner_center.invoices) == 5


def test_fixture_error_is_an_input_error() -> None:
    assert issubclass(FixtureError, InputError)


def test_defaults_statecode_createdon_and_generated_ids_are_deterministic() -> None:
    raw = tenant_dict()
    _rows(raw, "work365_usagesummary").extend(
        [{"work365_name": "a"}, {"work365_name": "b", "statecode": "Inactive"}]
    )
    _rows(raw, "work365_subscription").append({})

    first, second = load_fixture(raw), load_fixture(tenant_dict() | {"dataverse": raw["dataverse"]})

    invoices = {r["work365_providerinvoiceid"]: r for r in first.rows["work365_providerinvoice"]}
    assert invoices[INVOICE_ERROR]["statecode"] == "Inactive"  # follows statuscode Error
    assert invoices[INVOICE_ERROR]["createdon"] == "2026-11-08T06:30:00Z"
    summaries = first.rows["work365_usagesummary"]
    assert summaries[0]["createdon"] == "2026-11-12T09:00:00Z"  # defaults to now
    assert summaries[0]["modifiedon"] == summaries[0]["createdon"]
    assert (summaries[1]["statecode"], summaries[1]["statuscode"]) == ("Inactive", "Archived")
    subscription = first.rows["work365_subscription"][0]
    assert (subscription["statecode"], subscription["statuscode"]) == ("Active", "Active")  # first status
    ids = [r["work365_usagesummaryid"] for r in summaries]
    assert ids == [r["work365_usagesummaryid"] for r in second.rows["work365_usagesummary"]]
    assert len(set(ids)) == 2


def test_datetimes_are_normalised_to_utc_and_dates_to_date_only() -> None:
    raw = tenant_dict()
    _rows(raw, "work365_billingschedule").append(
        {
            "work365_billingschedule_rundate": "2026-11-01T12:00:00-05:00",
            "work365_billingschedule_cyclestart": "2026-10-01T00:00:00Z",
        }
    )
    row = load_fixture(raw).rows["work365_billingschedule"][0]
    assert row["work365_billingschedule_rundate"] == "2026-11-01T17:00:00Z"
    assert row["work365_billingschedule_cyclestart"] == "2026-10-01"


def test_labels_match_case_insensitively_and_unknown_columns_are_kept() -> None:
    raw = tenant_dict()
    _rows(raw, "work365_billingcontract").append(
        {"work365_billingcontract_billingpolicy": "arrears", "new_custom": "kept", "new_flag": True}
    )
    row = load_fixture(raw).rows["work365_billingcontract"][0]
    assert row["work365_billingcontract_billingpolicy"] == "Arrears"
    assert (row["new_custom"], row["new_flag"]) == ("kept", True)


def test_document_text_becomes_base64_documentbody_and_documentbody_is_accepted() -> None:
    raw = tenant_dict()
    encoded = base64.b64encode(b"Type;Id\nSubscription;x").decode()
    _rows(raw, "annotation").append({"objectid": PROVIDER, "documentbody": encoded})
    notes = load_fixture(raw).rows["annotation"]
    assert base64.b64decode(notes[0]["documentbody"]).decode().startswith("Type,Id,Name,Message\r\n")
    assert "document_text" not in notes[0]
    assert notes[0]["isdocument"] is True
    assert notes[1]["documentbody"] == encoded
    assert notes[1]["objecttypecode"] == "work365_provider"  # inferred from the row that has the id


def _set(path: str, value: object) -> Callable[[dict[str, Any]], None]:
    def change(fx: dict[str, Any]) -> None:
        *parents, last = path.split("/")
        node: Any = fx
        for key in parents:
            node = node[int(key)] if key.isdigit() else node[key]
        node[last] = value

    return change


def _add_row(table: str, row: dict[str, Any]) -> Callable[[dict[str, Any]], None]:
    return lambda fx: _rows(fx, table).append(row)


def _drop(key: str) -> Callable[[dict[str, Any]], None]:
    return lambda fx: fx.pop(key)


_INVOICE_0 = "dataverse/rows/work365_providerinvoice/0"

BAD_FIXTURES: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
    ("version missing", _drop("fixture_version"), "fixture_version is missing"),
    ("version 2", _set("fixture_version", 2), "fixture_version 2 is not supported; expected 1"),
    ("now missing", _drop("now"), "'now' is missing"),
    ("now naive", _set("now", "2026-11-12T09:00:00"), "needs a time and a zone"),
    ("now date only", _set("now", "2026-11-12"), "needs a time and a zone"),
    ("now garbage", _set("now", "yesterday"), "'now' 'yesterday' is not an ISO 8601 datetime"),
    ("unknown top-level key", _set("dataverce", {}), "unknown key(s) 'dataverce' in the top level"),
    ("unknown dataverse key", _set("dataverse/row", {}), "unknown key(s) 'row' in dataverse"),
    (
        "unknown partner_center key",
        _set("partner_center/enable", True),
        "unknown key(s) 'enable' in partner_center",
    ),
    (
        "unknown table",
        _set("dataverse/rows/work365_providerinvoices", []),
        "unknown table 'work365_providerinvoices' in dataverse.rows; did you mean work365_providerinvoice",
    ),
    (
        "bad status label",
        _set(f"{_INVOICE_0}/statuscode", "Eror"),
        "statuscode 'Eror' is not a status of work365_providerinvoice; known: Populating, Active Usage, Active, Error",
    ),
    (
        "bad picklist label",
        _add_row("work365_billingcontract", {"work365_billingcontract_billingpolicy": "Later"}),
        "work365_billingcontract_billingpolicy 'Later' is not an option of work365_billingcontract; known: Advance, Arrears",
    ),
    ("option value instead of label", _set(f"{_INVOICE_0}/statuscode", 2), "statuscode 2 is not a status"),
    (
        "state contradicts status",
        _set(f"{_INVOICE_0}/statecode", "Active"),
        "statuscode 'Error' belongs to statecode 'Inactive', not 'Active'",
    ),
    (
        "bad date",
        _set(f"{_INVOICE_0}/work365_providerinvoice_invoicedate", "2026-13-01"),
        "dataverse.rows.work365_providerinvoice[0].work365_providerinvoice_invoicedate: '2026-13-01' is not a date",
    ),
    (
        "bad datetime",
        _set(f"{_INVOICE_0}/createdon", "8 Nov"),
        "dataverse.rows.work365_providerinvoice[0].createdon: '8 Nov' is not an ISO 8601 datetime",
    ),
    ("lookup not an id", _set(f"{_INVOICE_0}/work365_providerinvoice_provider", 7), "7 is not an id"),
    ("money as text", _set(f"{_INVOICE_0}/work365_providerinvoice_totalamount", "12"), "expected a number"),
    (
        "integer as float",
        _add_row("work365_provider", {"work365_provider_invoiceday": 8.5}),
        "expected a whole number",
    ),
    (
        "boolean as text",
        _add_row("work365_subscription", {"work365_subscription_billablestatus": "yes"}),
        "expected true or false",
    ),
    (
        "duplicate id",
        _add_row("work365_provider", {"work365_providerid": PROVIDER}),
        f"duplicate work365_providerid {PROVIDER}",
    ),
    ("rows not a list", _set("dataverse/rows/account", {}), "dataverse.rows.account must be a list"),
    ("row not an object", _add_row("account", "Contoso"), "dataverse.rows.account[1] must be an object"),
    (
        "document_text and documentbody",
        _set("dataverse/rows/annotation/0/documentbody", "QQ=="),
        "give document_text or documentbody, not both",
    ),
    ("bad base64", _add_row("annotation", {"documentbody": "***"}), "documentbody: not valid base64"),
    (
        "unknown objecttypecode",
        _set("dataverse/rows/annotation/0/objecttypecode", "work365_invoice"),
        "unknown table 'work365_invoice' in dataverse.rows.annotation[0].objecttypecode",
    ),
    (
        "objectid nowhere",
        _add_row("annotation", {"objectid": "99999999-9999-4999-8999-999999999999"}),
        "objectid 99999999-9999-4999-8999-999999999999 is in no table of the fixture; add objecttypecode",
    ),
    (
        "rename of an unknown table",
        _set("dataverse/renames", {"tables": {"work365_usagesumary": "w365_usagesummary"}}),
        "unknown table 'work365_usagesumary' in dataverse.renames.tables; did you mean work365_usagesummary",
    ),
    (
        "rename of an unknown column",
        _set(
            "dataverse/renames",
            {"columns": {"work365_providerinvoice.work365_providerinvoice_mesage": "x_msg"}},
        ),
        "unknown column 'work365_providerinvoice_mesage' of work365_providerinvoice",
    ),
    (
        "rename to a taken name",
        _set("dataverse/renames", {"tables": {"work365_usagesummary": "account"}}),
        "gives two tables the same name",
    ),
    (
        "rename not a logical name",
        _set("dataverse/renames", {"tables": {"account": "Account"}}),
        "is not a logical name",
    ),
    (
        "unknown renames key",
        _set("dataverse/renames", {"table": {}}),
        "unknown key(s) 'table' in dataverse.renames",
    ),
    (
        "status label of an unknown status",
        _set("dataverse/status_labels", {"work365_providerinvoice": {"Completed": "Done"}}),
        "'Completed' is not a status of work365_providerinvoice; known: Populating, Active Usage, Active, Error",
    ),
    ("pc invoice without id", _set("partner_center/invoices/0/id", ""), "partner_center.invoices[0]: 'id'"),
    (
        "pc bad date",
        _set("partner_center/invoices/1/invoiceDate", "soon"),
        "partner_center.invoices[1].invoiceDate",
    ),
    (
        "pc enabled not a bool",
        _set("partner_center/enabled", "yes"),
        "partner_center.enabled must be true or false",
    ),
    (
        "pc invoice_by_id not a bool",
        _set("partner_center/invoice_by_id", 1),
        "partner_center.invoice_by_id must be true or false",
    ),
    (
        "global choice on an unknown column",
        _set("dataverse/global_option_sets", {"work365_subscription.work365_subscription_type": "w365_type"}),
        "unknown column 'work365_subscription_type' of work365_subscription in dataverse.global_option_sets; "
        "did you mean work365_subscription_subscriptiontype",
    ),
    (
        "global choice on a status column",
        _set("dataverse/global_option_sets", {"work365_providerinvoice.statuscode": "w365_status"}),
        "work365_providerinvoice.statuscode is a Status column; only choice (Picklist) columns",
    ),
    (
        "global choice name not a logical name",
        _set("dataverse/global_option_sets", {"work365_provider.work365_provider_type": "Provider Type"}),
        "is not a logical name",
    ),
]


@pytest.mark.parametrize(
    ("change", "message"), [(c, m) for _, c, m in BAD_FIXTURES], ids=[n for n, _, _ in BAD_FIXTURES]
)
def test_a_bad_fixture_fails_with_one_line_naming_the_problem(
    change: Callable[[dict[str, Any]], None], message: str
) -> None:
    raw = tenant_dict()
    change(raw)
    with pytest.raises(FixtureError) as caught:
        load_fixture(raw)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_malformed_json_names_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text(
        '{\n  "fixture_version": 1,\n  "now": "2026-11-12T09:00:00Z"\n  "dataverse": {}\n}\n',
        encoding="utf-8",
    )
    with pytest.raises(FixtureError, match=r"broken.json is not valid JSON \(line 4, column 3\)"):
        load_fixture(path)


def test_missing_file_and_non_object_file(tmp_path: Path) -> None:
    with pytest.raises(FixtureError, match="does not exist"):
        load_fixture(tmp_path / "nope.json")
    (tmp_path / "list.json").write_text("[]", encoding="utf-8")
    with pytest.raises(FixtureError, match="must hold a JSON object"):
        load_fixture(tmp_path / "list.json")


def test_without_a_partner_center_section_partner_center_is_not_configured() -> None:
    raw = tenant_dict()
    del raw["partner_center"]
    assert not load_fixture(raw).partner_center.enabled


def test_simulator_accepts_a_path_or_a_dict(tmp_path: Path) -> None:
    path = tmp_path / "tenant.json"
    path.write_text(json.dumps(tenant_dict()), encoding="utf-8")
    assert Simulator(path).tenant.tables["annotation"].rows[NOTE].values["filename"] == "errors.csv"
    assert Simulator(tenant_dict()).now == datetime(2026, 11, 12, 9, tzinfo=UTC)


def test_readable_ids_stand_for_the_same_guid_as_key_and_as_lookup() -> None:
    fixture = load_fixture(
        {
            "fixture_version": 1,
            "now": "2026-11-12T09:00:00Z",
            "dataverse": {
                "rows": {
                    "work365_provider": [{"work365_providerid": "ms", "work365_name": "Microsoft"}],
                    "work365_providerinvoice": [
                        {"work365_providerinvoiceid": "pi-1", "work365_providerinvoice_provider": "ms"}
                    ],
                }
            },
        }
    )
    (provider,) = fixture.rows["work365_provider"]
    (invoice,) = fixture.rows["work365_providerinvoice"]
    assert invoice["work365_providerinvoice_provider"] == provider["work365_providerid"]
    assert is_guid(provider["work365_providerid"])
