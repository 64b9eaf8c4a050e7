"""Read access, verified: the identity's Read depth per table comes from WhoAmI and
RetrieveUserPrivileges; a table it cannot read in full stops exactly the checks that need it."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from diagnostics.access import granted, read_access
from diagnostics.checks import CHECKS, READS, Check
from diagnostics.checks.context import Context
from diagnostics.cli import main
from diagnostics.loading import load_period
from diagnostics.metadata import READ_COLUMNS, EntityMeta, EnvironmentMetadata
from diagnostics.model import Report, Snapshot
from diagnostics.periods import period_under_review
from diagnostics.render import to_text
from diagnostics.schema import TABLES, SchemaMap, build_schema_map, column_key
from diagnostics.service import _clients, _verify, scan
from diagnostics.settings import Thresholds
from simulator import Simulator, load_fixture
from simulator.access import privilege_name
from simulator.connect import connection
from simulator.fixture import FixtureError

SAMPLE = Path(__file__).resolve().parent.parent / "simulator" / "samples" / "sample-tenant.json"
SCENARIOS = Path(__file__).resolve().parent / "scenarios"
API = "/api/data/v9.2/"
PI = "work365_providerinvoice"


@pytest.fixture(autouse=True)
def _clean_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """The runs must not pick up settings (Partner Center, Dataverse) from the developer's shell."""
    for name in [n for n in os.environ if n.startswith("DIAG_")]:
        monkeypatch.delenv(name)


def _sample(read_depth: dict[str, str]) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(SAMPLE.read_text(encoding="utf-8"))
    doc["dataverse"]["read_depth"] = read_depth
    return doc


def _scan(doc: dict[str, Any], **inject: Any) -> tuple[Report, Simulator]:
    with Simulator(load_fixture(doc)) as sim:
        if inject:
            sim.inject(**inject)
        report = asyncio.run(scan(connection(sim), sim.now))
    return report, sim


def _stopped(report: Report) -> set[str]:
    return {f.evidence["check"] for f in report.findings if f.code == "CHECK_FAILED"}


def _needing(table: str) -> set[str]:
    parts = set(READS.parts_of(table))
    return {c.name for c in CHECKS if c.needs & parts}


# --- against the simulator ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("depth", "reported", "shown"),
    [
        ("User", "Basic", "User"),
        ("BusinessUnit", "Local", "Business Unit"),
        ("ParentChildBusinessUnit", "Deep", "Parent: Child Business Units"),
        ("None", None, "None"),
    ],
)
def test_less_than_organization_read_stops_the_checks_of_that_table(
    depth: str, reported: str | None, shown: str
) -> None:
    report, _ = _scan(_sample({PI: depth}))

    (limited,) = [f for f in report.findings if f.code == "READ_ACCESS_LIMITED"]
    (table,) = limited.evidence["tables"]
    assert table["table"] == PI
    assert table["privilege"] == "prvReadwork365_providerinvoice"
    assert (table["depth"], table["granted"], table["required"]) == (reported, shown, "Organization")
    assert limited.evidence["verified"] is True
    assert set(limited.evidence["stopped_checks"]) == _needing(PI)
    assert _stopped(report) == _needing(PI)
    # An invisible invoice is not a missing invoice.
    assert not {f.code for f in report.findings} & {"PI_MISSING_UNVERIFIED", "PI_MISSING_NOT_SYNCED"}
    # The checks that do not read provider invoices still report what they find.
    assert {"BILLING_SCHEDULE_ERROR", "SUB_NOT_ON_ACTIVE_CONTRACT"} <= {f.code for f in report.findings}
    # A stopped check never counts as passed.
    assert report.statistics.passed <= len(CHECKS) - len(_needing(PI))


def test_a_healthy_tenant_read_at_user_level_is_never_nothing_found(tmp_path: Path) -> None:
    doc = json.loads((Path(__file__).parent / "scenarios" / "healthy_invoiced_day15.json").read_text())
    baseline, _ = _scan(doc)
    assert "Nothing found" in to_text(baseline)
    doc["dataverse"]["read_depth"] = {PI: "User", "work365_usagesummary": "BusinessUnit"}
    report, _ = _scan(doc)
    text = to_text(report)
    assert "Nothing found" not in text
    assert "READ_ACCESS_LIMITED" in text
    assert report.statistics.passed == len(CHECKS) - len(_needing(PI) | _needing("work365_usagesummary"))
    assert report.statistics.passed < baseline.statistics.passed


def test_full_read_reports_nothing_and_reads_no_table_twice() -> None:
    report, sim = _scan(_sample({PI: "Organization"}))
    assert "READ_ACCESS_LIMITED" not in {f.code for f in report.findings}
    assert not _stopped(report)
    assert sim.requests[("GET", API + "WhoAmI")] == 1
    privileges = [k for k in sim.requests if "RetrieveUserPrivileges" in k[1]]
    assert len(privileges) == 1


@pytest.mark.parametrize("path", ["WhoAmI", "systemusers("])
def test_privileges_that_cannot_be_read_stop_every_dataverse_check(path: str) -> None:
    report, _ = _scan(_sample({}), status=403, path_prefix=API + path, in_batch=True)
    (limited,) = [f for f in report.findings if f.code == "READ_ACCESS_LIMITED"]
    assert limited.evidence["verified"] is False
    assert "403" in limited.evidence["reason"]
    assert _stopped(report) == {c.name for c in CHECKS}
    assert report.statistics.passed == 0
    assert "Nothing found" not in to_text(report)


# --- the simulator's answers, as Dataverse gives them ---------------------------------------------


def _client(sim: Simulator) -> httpx.Client:
    token = sim.issue_token(sim.dataverse_url + "/.default")
    return httpx.Client(
        base_url=sim.base_url,
        verify=sim.ssl_context(),
        headers={"Accept": "application/json", "Authorization": f"Bearer {token}"},
        timeout=10,
    )


def test_simulator_serves_privileges_and_depths_in_dataverse_shapes() -> None:
    doc = _sample({PI: "User", "annotation": "None"})
    with Simulator(load_fixture(doc)) as sim, _client(sim) as http:
        user = http.get(API + "WhoAmI").json()["UserId"]
        answer = http.get(API + f"systemusers({user})/Microsoft.Dynamics.CRM.RetrieveUserPrivileges()").json()
        invoices = http.get(API + "work365_providerinvoices?$select=work365_name").json()
        notes = http.get(API + "annotations?$select=filename")
        meta = http.get(
            API + "EntityDefinitions(LogicalName='annotation')?$select=LogicalName,Privileges"
        ).json()
        other = http.get(
            API
            + f"systemusers({'0' * 8}-0000-0000-0000-{'0' * 12})/Microsoft.Dynamics.CRM.RetrieveUserPrivileges()"
        )
    assert answer["@odata.context"].endswith("#Microsoft.Dynamics.CRM.RetrieveUserPrivilegesResponse")
    by_name = {p["PrivilegeName"]: p for p in answer["RolePrivileges"]}
    assert by_name["prvReadwork365_providerinvoice"]["Depth"] == "Basic"
    assert by_name["prvReadwork365_subscription"]["Depth"] == "Global"
    assert "prvReadNote" not in by_name  # no Read on notes at all
    assert set(by_name["prvReadAccount"]) == {
        "Depth",
        "PrivilegeId",
        "BusinessUnitId",
        "PrivilegeName",
        "RecordFilterId",
        "RecordFilterUniqueName",
    }
    assert invoices["value"] == []  # the identity owns none of them
    assert notes.status_code == 403
    assert notes.json()["error"]["code"] == "0x80040220"
    assert "prvReadNote" in notes.json()["error"]["message"]
    read = next(p for p in meta["Privileges"] if p["PrivilegeType"] == "Read")
    assert read["Name"] == "prvReadNote"
    assert other.status_code == 404


def test_a_renamed_table_is_checked_under_its_mapped_name() -> None:
    doc = _sample({PI: "User"})
    doc["dataverse"]["renames"] = {"tables": {PI: "cr9_providerinvoice"}}
    mapped = build_schema_map(
        {
            "tables": {PI: "cr9_providerinvoice"},
            "columns": {f"{PI}.work365_providerinvoiceid": "cr9_providerinvoiceid"},
        },
        "test map",
    )
    with Simulator(load_fixture(doc)) as sim:
        report = asyncio.run(scan(connection(sim, schema_map=mapped), sim.now))
    assert "SCHEMA_MISMATCH" not in {f.code for f in report.findings}
    (limited,) = [f for f in report.findings if f.code == "READ_ACCESS_LIMITED"]
    assert limited.evidence["tables"][0]["privilege"] == "prvReadcr9_providerinvoice"


@pytest.mark.parametrize(
    ("read_depth", "message"),
    [
        ({PI: "Global"}, "'Global' is not a depth"),
        ({"work365_providerinvoices": "User"}, "unknown table 'work365_providerinvoices'"),
    ],
)
def test_bad_read_depth_in_a_fixture_is_named(read_depth: dict[str, str], message: str) -> None:
    with pytest.raises(FixtureError, match=message):
        load_fixture(_sample(read_depth))


# --- reading RolePrivileges (pure) ----------------------------------------------------------------

INVOICE_READ = "aaaaaaaa-0000-4000-8000-000000000001"


def _meta(
    privileges: dict[str, Any] | str,
    *,
    read: tuple[str, str] | None = (INVOICE_READ, "prvReadwork365_providerinvoice"),
) -> EnvironmentMetadata:
    entities = {t: EntityMeta(t, t + "s", t, {}, {}, (f"id-{t}", f"prvRead{t}")) for t in READS.tables()}
    entities[PI] = EntityMeta(PI, PI + "s", "Provider Invoice", {}, {}, read)
    return EnvironmentMetadata({t: (t + "s", t) for t in entities}, entities, {}, privileges, "user-1")


def _all_global(*extra: dict[str, Any]) -> dict[str, Any]:
    items = [{"Depth": "Global", "PrivilegeId": f"id-{t}"} for t in READS.tables() if t != PI]
    return {"RolePrivileges": [*items, *extra]}


def test_the_older_form_without_privilege_names_is_matched_by_id() -> None:
    access = read_access(
        _meta(_all_global({"Depth": "Local", "PrivilegeId": INVOICE_READ.upper()})), SchemaMap()
    )
    assert [(t.table, t.depth) for t in access.limited] == [(PI, "Local")]


def test_a_privilege_held_through_several_roles_counts_at_its_deepest() -> None:
    answer = _all_global(
        {"Depth": "Basic", "PrivilegeId": INVOICE_READ},
        {"Depth": 3, "PrivilegeId": INVOICE_READ},  # the SDK's number for Global
        {"Depth": "Deep", "PrivilegeId": INVOICE_READ},
    )
    assert read_access(_meta(answer), SchemaMap()).complete


def test_a_name_without_an_id_is_matched_by_name_and_a_record_filter_is_limited() -> None:
    answer = _all_global({"Depth": "RecordFilter", "PrivilegeName": "PRVREADwork365_providerinvoice"})
    access = read_access(_meta(answer), SchemaMap())
    assert [(t.table, t.depth) for t in access.limited] == [(PI, "RecordFilter")]


def test_no_read_privilege_at_all_is_limited_with_no_depth() -> None:
    access = read_access(_meta(_all_global()), SchemaMap())
    assert [(t.table, t.depth) for t in access.limited] == [(PI, None)]


def test_unknown_depths_are_ignored_not_trusted() -> None:
    by_id, by_name = granted(
        {"RolePrivileges": [{"Depth": "Everything", "PrivilegeId": INVOICE_READ}, "junk"]}
    )
    assert by_id == by_name == {}


def test_without_the_tables_read_privilege_in_metadata_access_is_unverified() -> None:
    access = read_access(_meta(_all_global(), read=None), SchemaMap())
    assert access.unverified is not None
    assert "names no Read privilege" in access.unverified


def test_a_privileges_answer_that_failed_is_unverified() -> None:
    access = read_access(_meta("RetrieveUserPrivileges failed: 403"), SchemaMap())
    assert access.unverified == "RetrieveUserPrivileges failed: 403"
    assert not access.complete


def test_the_readme_names_exactly_the_privileges_the_tool_checks() -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    named = set(re.findall(r"`(prvRead\w+)` \| Organization", readme))
    with Simulator(load_fixture(_sample({}))) as sim:
        expected = {privilege_name(sim.tenant.tables[t]) for t in READS.tables()}
    assert named == expected
    assert "`prvReadUser` | any" in readme


# --- the read registry: a check reads only what it declares ---------------------------------------

# Tenants whose findings exercise every check (the sample tenant, and codes it does not show).
_DECLARATION_TENANTS = (
    SAMPLE,
    SCENARIOS / "pi_zero_placeholder.json",
    SCENARIOS / "usage_archived.json",
    SCENARIOS / "contract_expired_with_usage.json",
    SCENARIOS / "sub_markup_changed_after_import.json",
    SCENARIOS / "pi_checksum_after_usage_file_day.json",
    SCENARIOS / "us_blocked_currency_inactive.json",
)


def _findings(snapshot: Snapshot, check: Check) -> list[dict[str, Any]]:
    return [f.model_dump(mode="json") for f in check.run(Context(snapshot, Thresholds()))]


async def _undeclared_reads(sim: Simulator) -> list[str]:
    """Each check against every column of its tables, and against only what it declares: the same
    findings, or its verdict silently depends on a column that is neither read nor verified."""
    conn = connection(sim)
    period = period_under_review(sim.now)
    every = {t: tuple(c.logical for c in TABLES[t].columns) for t in READS.tables()}
    wrong = []
    async with _clients(conn) as (dv, pc):
        schema = dataclasses.replace((await _verify(dv, conn.schema_map)).schema, select=every)

        async def load(without: frozenset[str]) -> Snapshot:
            reduced = dataclasses.replace(schema, missing=schema.missing | without)
            return await load_period(dv, pc, reduced, conn.thresholds, as_of=sim.now, period=period)

        full = await load(frozenset())
        for check in CHECKS:
            tables = {READS.parts[p].table for p in check.needs if p in READS.parts}
            undeclared = {column_key(t, c) for t in tables for c in every[t]} - check.needs
            if _findings(await load(frozenset(undeclared)), check) != _findings(full, check):
                reads = await _which(check, full, load, undeclared)
                wrong.append(f"{check.name} depends on undeclared {sorted(reads)}")
    return wrong


async def _which(
    check: Check, full: Snapshot, load: Callable[[frozenset[str]], Awaitable[Snapshot]], undeclared: set[str]
) -> set[str]:
    """The undeclared columns whose absence alone changes the check's findings (for the message)."""
    return {
        key for key in undeclared if _findings(await load(frozenset({key})), check) != _findings(full, check)
    }


@pytest.mark.parametrize("tenant", _DECLARATION_TENANTS, ids=lambda p: p.stem)
def test_every_column_a_check_depends_on_is_declared(tenant: Path) -> None:
    with Simulator(load_fixture(tenant)) as sim:
        assert asyncio.run(_undeclared_reads(sim)) == []


def test_only_declared_columns_are_read_and_verified() -> None:
    declared = {t: set(READS.columns(t)) for t in READS.tables()}
    assert "work365_billingschedule_runtype" not in declared["work365_billingschedule"]
    assert {c for p in READS.parts.values() for c in p.columns if p.table == "annotation"} <= declared[
        "annotation"
    ]
    for table, columns in READ_COLUMNS.items():
        assert set(columns) == declared[table]


def test_diagnose_with_no_read_on_provider_invoices_says_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "tenant.json"
    path.write_text(json.dumps(_sample({PI: "None"})), encoding="utf-8")
    code = main(["diagnose", "G0113579246", "--simulate", str(path), "--format", "json"])
    out, err = capsys.readouterr()
    assert code == 1, err
    report = json.loads(out)
    codes = {f["code"] for f in report["findings"]}
    assert "READ_ACCESS_LIMITED" in codes
    failed = {f["evidence"]["check"] for f in report["findings"] if f["code"] == "CHECK_FAILED"}
    assert failed == _needing(PI)
