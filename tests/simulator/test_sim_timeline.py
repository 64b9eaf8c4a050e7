"""The fixture's timeline (tenant-fixture.md, "The timeline"), the simulated clock, the fault rate and
the record of notes and Teams posts, through real HTTP clients against the running simulator."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sim_support import API, INVOICE_ERROR, NOTE, PROVIDER, client_for, tenant_dict

from diagnostics.service import scan
from simulator import FixtureError, Simulator, load_fixture
from simulator.__main__ import main
from simulator.connect import connection
from simulator.faults import RATE_KINDS

NOW = datetime(2026, 11, 12, 9, tzinfo=UTC)
T1 = "2026-11-13T10:00:00Z"
T2 = "2026-11-14T06:00:00Z"
NEW_INVOICE = "22222222-2222-4222-8222-222222222299"
PC_SCOPE = "https://api.partnercenter.microsoft.com/.default"


def _timeline_tenant() -> dict[str, Any]:
    raw = tenant_dict()
    raw["timeline"] = [
        # Out of order on purpose: entries apply in `at` order.
        {
            "at": T2,
            "description": "Work 365 re-imports the October invoice",
            "delete": {"work365_providerinvoice": [INVOICE_ERROR], "annotation": [NOTE]},
            "upsert": {
                "work365_providerinvoice": [
                    {
                        "work365_providerinvoiceid": NEW_INVOICE,
                        "work365_name": "Microsoft G012345678 2026-10",
                        "work365_providerinvoice_provider": PROVIDER,
                        "statuscode": "Active",
                    }
                ]
            },
            "partner_center": {"invoices": [{"id": "G000000001", "totalCharges": 999.0, "invoiceDate": T2}]},
        },
        {
            "at": T1,
            "description": "a person maps Contoso",
            "upsert": {
                "account": [
                    {"accountid": "33333333-3333-4333-8333-333333333333", "name": "Contoso Ltd"},
                    {"accountid": "fabrikam", "name": "Fabrikam"},
                ],
                "annotation": [
                    {"annotationid": "note-2", "objectid": INVOICE_ERROR, "notetext": "second note"}
                ],
            },
        },
    ]
    return raw


@pytest.fixture
def timeline_sim() -> Iterator[Simulator]:
    with Simulator(_timeline_tenant()) as running:
        yield running


def _accounts(http: httpx.Client) -> dict[str, dict[str, Any]]:
    rows = http.get(API + "accounts?$select=name,createdon,modifiedon,new_region").json()["value"]
    return {row["name"]: row for row in rows}


def _ids(http: httpx.Client, entity_set: str, key: str) -> set[str]:
    return {row[key] for row in http.get(f"{API}{entity_set}?$select={key}").json()["value"]}


def _pc_invoices(sim: Simulator) -> dict[str, dict[str, Any]]:
    token = sim.issue_token(PC_SCOPE)
    with httpx.Client(verify=sim.ssl_context()) as http:
        response = http.get(sim.base_url + "/v1/invoices", headers={"Authorization": f"Bearer {token}"})
    return {item["id"]: item for item in response.json()["items"]}


def test_an_upsert_is_invisible_before_its_time_and_merged_after(timeline_sim: Simulator) -> None:
    sim = timeline_sim
    with client_for(sim) as http:
        assert set(_accounts(http)) == {"Contoso"}
        assert sim.advance_to(datetime(2026, 11, 13, 9, 59, tzinfo=UTC)) == []
        assert set(_accounts(http)) == {"Contoso"}

        applied = sim.advance_to(datetime(2026, 11, 13, 10, 0, tzinfo=UTC))

        assert [entry.description for entry in applied] == ["a person maps Contoso"]
        assert {(c.table, c.action, c.name) for c in applied[0].changes} == {
            ("account", "updated", "Contoso Ltd"),
            ("account", "added", "Fabrikam"),
            ("annotation", "added", None),
        }
        accounts = _accounts(http)
        # Merged: the column not given (new_region) keeps its value; modifiedon becomes `at`.
        assert accounts["Contoso Ltd"]["new_region"] == "EU"
        assert accounts["Contoso Ltd"]["modifiedon"] == T1
        assert accounts["Contoso Ltd"]["createdon"] == "2026-11-12T09:00:00Z"
        assert accounts["Fabrikam"]["createdon"] == accounts["Fabrikam"]["modifiedon"] == T1
        # Once: a later clock does not apply it again.
        assert sim.advance_to(datetime(2026, 11, 13, 12, tzinfo=UTC)) == []
        assert sim.now == datetime(2026, 11, 13, 12, tzinfo=UTC)
        assert sim.pending_timeline() == 1


def test_a_delete_cascades_to_the_records_notes_and_partner_center_invoices_are_replaced(
    timeline_sim: Simulator,
) -> None:
    sim = timeline_sim
    with client_for(sim) as http:
        assert INVOICE_ERROR in _ids(http, "work365_providerinvoices", "work365_providerinvoiceid")
        assert _pc_invoices(sim)["G000000001"]["totalCharges"] == 10.5

        applied = sim.advance_to(datetime(2026, 11, 14, 7, tzinfo=UTC))

        assert [entry.description for entry in applied] == [
            "a person maps Contoso",
            "Work 365 re-imports the October invoice",
        ]
        invoices = _ids(http, "work365_providerinvoices", "work365_providerinvoiceid")
        assert INVOICE_ERROR not in invoices
        assert NEW_INVOICE in invoices
        # Both notes of the deleted invoice went with it: the fixture's and the one added at T1.
        assert _ids(http, "annotations", "annotationid") == set()
        deleted = [(c.table, c.id) for c in applied[1].changes if c.action == "deleted"]
        assert ("work365_providerinvoice", INVOICE_ERROR) in deleted
        assert len([t for t, _ in deleted if t == "annotation"]) == 2
        new = http.get(f"{API}work365_providerinvoices({NEW_INVOICE})").json()
        assert new["createdon"] == new["modifiedon"] == T2
        assert new["statecode"] == 0  # follows statuscode Active
    pc = _pc_invoices(sim)
    assert applied[1].invoices == ("G000000001",)
    assert pc["G000000001"]["totalCharges"] == 999.0
    assert "billingPeriodStartDate" not in pc["G000000001"]  # replaced, not merged
    assert len(pc) == 5


def test_the_clock_only_moves_forward_and_is_used_for_created_rows(timeline_sim: Simulator) -> None:
    sim = timeline_sim
    later = datetime(2026, 11, 20, 8, tzinfo=UTC)
    sim.advance_to(later)
    with pytest.raises(ValueError, match="only moves forward"):
        sim.advance_to(later - timedelta(seconds=1))
    with client_for(sim) as http:
        created = http.post(
            API + "annotations",
            json={"subject": "s", "notetext": "t"},
            headers={"Prefer": "return=representation"},
        ).json()
    assert created["createdon"] == "2026-11-20T08:00:00Z"


def test_advancing_is_safe_while_clients_read() -> None:
    raw = tenant_dict()
    raw["timeline"] = [
        {
            "at": (NOW + timedelta(minutes=i)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "upsert": {"account": [{"accountid": f"account-{i}", "name": f"A{i}"}]},
        }
        for i in range(1, 41)
    ]
    with Simulator(raw) as sim, client_for(sim) as http:
        seen: list[int] = []
        stop = threading.Event()

        def read() -> None:
            while not stop.is_set():
                seen.append(len(_accounts(http)))

        reader = threading.Thread(target=read)
        reader.start()
        try:
            for i in range(1, 41):
                sim.advance_to(NOW + timedelta(minutes=i))
        finally:
            stop.set()
            reader.join()
        assert seen == sorted(seen)  # never a half-applied or reverted state
        assert len(_accounts(http)) == 41


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (
            {"at": "2026-11-13T00:00:00Z", "upsert": {"acount": []}},
            "unknown table 'acount' in timeline[0].upsert; did you mean account?",
        ),
        (
            {"at": "2026-11-13T00:00:00Z", "delete": {"work365_providerinvoice": ["pi-nothing"]}},
            "timeline[0].delete.work365_providerinvoice: no row with id 'pi-nothing' exists then",
        ),
        (
            {"at": "2026-11-12T08:59:59Z", "upsert": {"account": [{"name": "x"}]}},
            "timeline[0].at '2026-11-12T08:59:59Z' is before the fixture's now (2026-11-12T09:00:00Z)",
        ),
        (
            {"at": "2026-11-13T00:00:00Z", "upsert": {}, "update": {}},
            "unknown key(s) 'update' in timeline[0]; allowed: at, description, upsert, delete, partner_center",
        ),
        ({"upsert": {}}, "timeline[0].at is missing"),
        ({"at": "2026-11-13"}, "timeline[0].at '2026-11-13' needs a time and a zone"),
        ({"at": "2026-11-13T00:00:00Z"}, "timeline[0] changes nothing"),
        (
            {"at": "2026-11-13T00:00:00Z", "upsert": {"account": [{"name": 5}]}},
            "timeline[0].upsert.account[0].name: expected a string",
        ),
        (
            {"at": "2026-11-13T00:00:00Z", "upsert": {"work365_providerinvoice": [{"statuscode": "Done"}]}},
            "timeline[0].upsert.work365_providerinvoice[0].statuscode: statuscode 'Done' is not a status",
        ),
        (
            {"at": "2026-11-13T00:00:00Z", "partner_center": {"invoices": [{"total": 1}]}},
            "timeline[0].partner_center.invoices[0]: 'id' (the invoice number, e.g. G012345678) is missing",
        ),
        (
            {"at": "2026-11-13T00:00:00Z", "partner_center": {"enabled": False}},
            "unknown key(s) 'enabled' in timeline[0].partner_center",
        ),
    ],
)
def test_a_bad_timeline_fails_with_one_line(entry: dict[str, Any], message: str) -> None:
    raw = tenant_dict()
    raw["timeline"] = [entry]
    with pytest.raises(FixtureError) as error:
        load_fixture(raw)
    text = str(error.value)
    assert "\n" not in text
    assert message in text


def test_a_delete_is_checked_against_the_rows_of_its_time() -> None:
    raw = tenant_dict()
    # Deleting a row the timeline adds later is an error; after it was added, it is not.
    add = {"at": T2, "upsert": {"account": [{"accountid": "late", "name": "Late"}]}}
    raw["timeline"] = [{"at": T1, "delete": {"account": ["late"]}}, add]
    with pytest.raises(FixtureError, match=r"timeline\[0\].delete.account: no row with id 'late'"):
        load_fixture(raw)
    raw["timeline"] = [{"at": "2026-11-15T00:00:00Z", "delete": {"account": ["late"]}}, add]
    assert [entry.index for entry in load_fixture(raw).timeline] == [1, 0]
    # A note deleted with its record is gone: deleting it later again is an error.
    raw["timeline"] = [
        {"at": T1, "delete": {"work365_providerinvoice": [INVOICE_ERROR]}},
        {"at": T2, "delete": {"annotation": [NOTE]}},
    ]
    with pytest.raises(FixtureError, match=r"timeline\[1\].delete.annotation: no row with id"):
        load_fixture(raw)


# --- the fault rate --------------------------------------------------------------------------------


def _statuses(sim: Simulator, http: httpx.Client, n: int) -> list[str]:
    outcomes = []
    for _ in range(n):
        try:
            response = http.get(API + "accounts")
        except httpx.TransportError:
            outcomes.append("dropped")
        else:
            outcomes.append(str(response.status_code))
            if response.status_code == 429:
                assert 0 < float(response.headers["Retry-After"]) <= 1
    return outcomes


def test_a_fault_rate_fails_a_seeded_share_of_requests_in_every_way() -> None:
    with Simulator(tenant_dict(), tls=False) as sim, client_for(sim) as http:
        sim.set_fault_rate(0.5, seed=7, slow=0.01)
        first = _statuses(sim, http, 60)
        injected = dict(sim.faults.injected)
        sim.set_fault_rate(0.5, seed=7, slow=0.01)
        second = _statuses(sim, http, 60)

    assert first == second  # the same seed, the same failures
    failed = sum(1 for outcome in first if outcome != "200")
    assert 15 <= failed <= 40
    assert set(injected) == set(RATE_KINDS)
    assert failed == injected["throttled"] + injected["unavailable"] + injected["dropped"]
    assert {"429", "503", "dropped"} <= set(first)


def test_a_fault_rate_spares_the_token_endpoint_and_stops_when_cleared() -> None:
    with Simulator(tenant_dict(), tls=False) as sim, client_for(sim) as http:
        sim.set_fault_rate(1.0, seed=1, slow=0.01)
        with httpx.Client(base_url=sim.base_url, verify=sim.ssl_context()) as plain:
            discovery = plain.get(f"/{sim.tenant_id}/v2.0/.well-known/openid-configuration")
        assert discovery.status_code == 200
        started = time.perf_counter()
        outcomes = _statuses(sim, http, 12)
        assert time.perf_counter() - started < 5
        # Every request failed or was slow (and then served).
        assert outcomes.count("200") == sim.faults.injected["slow"]
        assert sum(sim.faults.injected.values()) == 12
        sim.clear_faults()
        assert _statuses(sim, http, 5) == ["200"] * 5


def test_a_bad_fault_rate_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with Simulator(tenant_dict()) as sim, pytest.raises(ValueError, match="between 0 and 1"):
        sim.set_fault_rate(1.5)
    with pytest.raises(SystemExit) as exit_:
        main(["serve", "fixture.json", "--fault-rate", "1.5", "--seed", "3"])
    assert exit_.value.code == 2
    assert "bad --fault-rate '1.5': give a share between 0 and 1" in capsys.readouterr().err


# --- what the simulator records --------------------------------------------------------------------


def test_notes_are_recorded_once_per_id_with_their_writes_and_teams_posts_with_time_and_size(
    timeline_sim: Simulator,
) -> None:
    sim = timeline_sim
    sim.advance_to(datetime(2026, 11, 13, 7, tzinfo=UTC))
    note_id = "55555555-5555-4555-8555-555555555555"
    with client_for(sim) as http:
        for text in ("v1", "v2"):
            body = {
                "subject": f"Usage-invoice diagnosis: {text}",
                "notetext": text,
                "objecttypecode": "work365_providerinvoice",
                "objectid_work365_providerinvoice@odata.bind": f"/work365_providerinvoices({INVOICE_ERROR})",
            }
            assert http.patch(f"{API}annotations({note_id})", json=body).status_code == 204
        card = b'{"type": "message", "attachments": []}'
        teams = http.post(sim.teams_webhook_url, content=card, headers={"Content-Type": "application/json"})
        assert teams.status_code == 202

    [note] = sim.recorded_notes()
    assert (note.annotation_id, note.object_id, note.writes) == (note_id, INVOICE_ERROR, 2)
    assert (note.subject, note.text) == ("Usage-invoice diagnosis: v2", "v2")
    assert note.last_written == "2026-11-13T07:00:00Z"
    [post] = sim.teams_received
    assert (post.at, post.body, post.size) == (datetime(2026, 11, 13, 7, tzinfo=UTC), card, len(card))


# --- the sample tenant's month ---------------------------------------------------------------------


def test_the_sample_tenants_month_blocks_then_resolves_the_october_invoice() -> None:
    sample = Path(__file__).resolve().parents[2] / "simulator" / "samples" / "sample-tenant.json"

    def october_codes(sim: Simulator, at: datetime) -> set[str]:
        sim.advance_to(at)
        report = asyncio.run(scan(connection(sim), at))
        return {f.code for f in report.findings if f.subject.name == "Microsoft G0113579246 2026-10"}

    with Simulator(sample) as sim:
        assert {"US_BLOCKED_UNRESOLVED_CUSTOMER", "US_BLOCKED_UNRESOLVED_SUBSCRIPTION"} <= october_codes(
            sim, sim.now
        )
        # A person fixes every reference on the 13th; the invoice still has to be re-imported.
        assert "REFERENCES_RESOLVED_REIMPORT_NEEDED" in october_codes(
            sim, datetime(2026, 11, 14, 7, tzinfo=UTC)
        )
        # Deleted on the 14th, re-imported Active with usage on the 15th: nothing left on it.
        assert october_codes(sim, datetime(2026, 11, 15, 7, tzinfo=UTC)) == set()
        invoices = {r["work365_name"]: r for r in sim.rows("work365_providerinvoice")}
        assert invoices["Microsoft G0113579246 2026-10"]["work365_providerinvoice_usagetotal"] > 0
        assert sim.pending_timeline() == 2  # Northwind invoices on the 16th; the indirect invoice on the 17th
