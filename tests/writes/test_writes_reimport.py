"""The simulated Work 365 re-import: a provider invoice a client deletes is imported again at the
next daily import run on the simulated clock, healthy (with the fixture's `reimports` usage) when
every reference of its errors.csv now resolves, else in Error with the same errors.csv again.
Driven through the real client (the writes) and the simulated clock (the import run)."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

import pytest
from writes_support import ACCOUNT, ERRORS_CSV, INVOICE, PROVIDER, PROVIDER_ACCOUNT, client, tenant

from diagnostics.adapters.dataverse import Write
from diagnostics.adapters.http import RetryPolicy
from diagnostics.errors import ServiceError
from simulator import Simulator, load_fixture
from simulator.fixture import FixtureError

PI = "work365_providerinvoice"
NUMBER = "G012345678"
NEW_ID = "66666666-6666-4666-8666-666666666601"
IMPORT_RUN = datetime(2026, 11, 13, 6, 0, tzinfo=UTC)  # the day after the fixture's now (09:00)
REIMPORTS = {
    INVOICE: {
        "work365_providerinvoice": {
            "work365_providerinvoiceid": NEW_ID,
            "work365_providerinvoice_usagetotal": 150.0,
        },
        "work365_usagesummary": [
            {"work365_usagesummary_customer": ACCOUNT, "work365_usagesummary_cost": 100.0},
            {"work365_usagesummary_customer": ACCOUNT, "work365_usagesummary_cost": 50.0},
        ],
    }
}


def _doc(**top: Any) -> dict[str, Any]:
    doc = tenant()
    doc.update(top)
    return doc


def _invoices(sim: Simulator) -> list[dict[str, Any]]:
    return [r for r in sim.rows(PI) if r["work365_providerinvoice_invoicenumber"] == NUMBER]


def _status(sim: Simulator, row: dict[str, Any]) -> int:
    return int(row["statuscode"])


def _notes_on(sim: Simulator, invoice_id: str) -> list[dict[str, Any]]:
    return [n for n in sim.rows("annotation") if n["_objectid_value"] == invoice_id]


async def _map_account(sim: Simulator, retry: RetryPolicy) -> None:
    async with client(sim, retry) as dv:
        navigation = await dv.navigation_property(
            "work365_provideraccount", "work365_provideraccount_account"
        )
        await dv.update(
            "work365_provideraccounts",
            PROVIDER_ACCOUNT,
            {f"{navigation}@odata.bind": f"/accounts({ACCOUNT})"},
        )


async def _delete(sim: Simulator, retry: RetryPolicy, invoice_id: str) -> None:
    async with client(sim, retry) as dv:
        await dv.delete("work365_providerinvoices", invoice_id)


async def test_a_fixed_invoice_is_imported_again_at_the_next_run_with_its_usage(retry: RetryPolicy) -> None:
    with Simulator(load_fixture(_doc(reimports=REIMPORTS))) as sim:
        await _map_account(sim, retry)
        await _delete(sim, retry, INVOICE)
        assert _invoices(sim) == []
        (scheduled,) = sim.tenant.pending_timeline()
        assert scheduled.at == IMPORT_RUN
        assert sim.advance_to(datetime(2026, 11, 13, 5, 59, tzinfo=UTC)) == []
        (applied,) = sim.advance_to(IMPORT_RUN)

        (invoice,) = _invoices(sim)
        usage = [
            u
            for u in sim.rows("work365_usagesummary")
            if u["_work365_usagesummary_providerinvoice_value"] == NEW_ID
        ]
        assert invoice["work365_providerinvoiceid"] == NEW_ID
        assert _status(sim, invoice) == sim.option_value(PI, "statuscode", "Active")
        assert invoice["work365_providerinvoice_usagetotal"] == 150.0
        assert invoice["_work365_providerinvoice_provider_value"] == PROVIDER
        assert invoice["createdon"] == "2026-11-13T06:00:00Z"
        assert sorted(u["work365_usagesummary_cost"] for u in usage) == [50.0, 100.0]
        assert _notes_on(sim, NEW_ID) == []
        assert "its references resolve" in applied.description
        assert [(c.table, c.action) for c in applied.changes] == [
            (PI, "added"),
            ("work365_usagesummary", "added"),
            ("work365_usagesummary", "added"),
        ]
        assert sim.pending_timeline() == 0


async def test_an_invoice_deleted_before_its_references_resolve_comes_back_in_error(
    retry: RetryPolicy,
) -> None:
    with Simulator(load_fixture(_doc(reimports=REIMPORTS))) as sim:
        await _delete(sim, retry, INVOICE)  # the customer is still unmapped
        (applied,) = sim.advance_to(IMPORT_RUN)

        (invoice,) = _invoices(sim)
        new_id = invoice["work365_providerinvoiceid"]
        assert new_id not in (INVOICE, NEW_ID)
        assert _status(sim, invoice) == sim.option_value(PI, "statuscode", "Error")
        assert sim.rows("work365_usagesummary") == []
        (note,) = _notes_on(sim, new_id)
        assert note["filename"] == "errors.csv"
        assert base64.b64decode(note["documentbody"]).decode() == ERRORS_CSV
        assert "still unresolved" in applied.description

        # Fixed now: deleting the re-imported invoice brings the usage at the following run.
        await _map_account(sim, retry)
        await _delete(sim, retry, new_id)
        sim.advance_to(datetime(2026, 11, 14, 6, 0, tzinfo=UTC))
        (again,) = _invoices(sim)
        assert _status(sim, again) == sim.option_value(PI, "statuscode", "Active")
        assert len(sim.rows("work365_usagesummary")) == 2


@pytest.mark.parametrize(
    ("line", "fix"),
    [
        (
            "Subscription,sub-azure-1,Azure plan,Subscription not found",
            {
                "work365_subscription": [
                    {
                        "work365_subscriptionid": "sub-1",
                        "work365_subscription_providersubscriptionid": "SUB-AZURE-1",
                    }
                ]
            },
        ),
        (
            "Currency,EUR,Euro,Currency not found",
            {"transactioncurrency": [{"transactioncurrencyid": "eur", "isocurrencycode": "EUR"}]},
        ),
    ],
)
async def test_every_reference_must_resolve(retry: RetryPolicy, line: str, fix: dict[str, Any]) -> None:
    doc = _doc(reimports=REIMPORTS)
    for note in doc["dataverse"]["rows"]["annotation"]:
        if note.get("filename") == "errors.csv":
            note["document_text"] = ERRORS_CSV + line + "\r\n"
    with Simulator(load_fixture(doc)) as sim:
        await _map_account(sim, retry)
        await _delete(sim, retry, INVOICE)
        sim.advance_to(IMPORT_RUN)
        (first,) = _invoices(sim)
        assert _status(sim, first) == sim.option_value(PI, "statuscode", "Error")

    doc["dataverse"]["rows"] |= fix
    with Simulator(load_fixture(doc)) as sim:
        await _map_account(sim, retry)
        await _delete(sim, retry, INVOICE)
        sim.advance_to(IMPORT_RUN)
        (fixed,) = _invoices(sim)
        assert _status(sim, fixed) == sim.option_value(PI, "statuscode", "Active")


async def test_a_manual_provider_invoice_is_not_imported_again(retry: RetryPolicy) -> None:
    doc = _doc()
    doc["dataverse"]["rows"]["work365_provider"][0]["work365_provider_type"] = "Do Nothing"
    with Simulator(load_fixture(doc)) as sim:
        await _delete(sim, retry, INVOICE)
        assert sim.tenant.pending_timeline() == ()
        assert sim.advance_to(datetime(2026, 11, 20, tzinfo=UTC)) == []
        assert _invoices(sim) == []


async def test_a_deleted_invoice_without_a_reimports_entry_comes_back_without_usage(
    retry: RetryPolicy,
) -> None:
    with Simulator(load_fixture(_doc())) as sim:
        await _map_account(sim, retry)
        await _delete(sim, retry, INVOICE)
        sim.advance_to(IMPORT_RUN)
        (invoice,) = _invoices(sim)
        assert _status(sim, invoice) == sim.option_value(PI, "statuscode", "Active")
        assert sim.rows("work365_usagesummary") == []


@pytest.mark.parametrize(
    ("reimports", "says"),
    [
        ({"pi-nosuch": {}}, "no provider invoice has the id 'pi-nosuch'"),
        ({INVOICE: {"usage": []}}, "unknown key"),
        ({INVOICE: {"work365_usagesummary": {}}}, "must be a list of row objects"),
        ({INVOICE: {"work365_providerinvoice": {"statuscode": "Done"}}}, "statuscode"),
        ([], "reimports must be an object"),
    ],
)
def test_a_wrong_reimports_section_is_a_clear_fixture_error(reimports: object, says: str) -> None:
    with pytest.raises(FixtureError, match=says):
        load_fixture(_doc(reimports=reimports))


async def test_an_invoice_the_timeline_imports_again_is_not_imported_twice(retry: RetryPolicy) -> None:
    scripted = {
        "at": "2026-11-13T05:50:00Z",
        "description": "a person syncs the invoice by hand",
        "upsert": {
            PI: [
                {
                    "work365_providerinvoiceid": NEW_ID,
                    "work365_providerinvoice_invoicenumber": NUMBER,
                    "work365_providerinvoice_provider": PROVIDER,
                    "statuscode": "Active",
                }
            ]
        },
    }
    with Simulator(load_fixture(_doc(timeline=[scripted]))) as sim:
        await _delete(sim, retry, INVOICE)
        assert len(sim.tenant.pending_timeline()) == 2
        applied = sim.advance_to(datetime(2026, 11, 14, tzinfo=UTC))
        assert [a.description for a in applied] == ["a person syncs the invoice by hand"]
        assert [r["work365_providerinvoiceid"] for r in _invoices(sim)] == [NEW_ID]


async def test_a_delete_in_a_change_set_that_rolls_back_imports_nothing(retry: RetryPolicy) -> None:
    with Simulator(load_fixture(_doc())) as sim:
        async with client(sim, retry) as dv:
            with pytest.raises(ServiceError):
                await dv.change_set(
                    [
                        Write("DELETE", f"work365_providerinvoices({INVOICE})"),
                        Write("PATCH", f"work365_provideraccounts({PROVIDER_ACCOUNT})", {"nosuchcolumn": 1}),
                    ]
                )
        assert len(_invoices(sim)) == 1
        assert sim.tenant.pending_timeline() == ()
