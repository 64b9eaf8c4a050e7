"""Write privileges: the simulator's `dataverse.denied_privileges`, the pure check of what the notes
and the auto-fixes need, and where a missing one is reported (the health probe, a worker's start)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import azure.functions as func
import pytest
from writes_support import client, tenant

import function_app
from diagnostics.access import (
    HeldPrivileges,
    granted,
    held_privileges,
    missing_write_privileges,
    required_privileges,
)
from diagnostics.app.container import Container, use_container
from diagnostics.metadata import fetch_metadata
from diagnostics.schema import SchemaMap
from diagnostics.settings import load_settings
from simulator import Simulator, load_fixture
from simulator.connect import connection
from simulator.fixture import FixtureError
from tests.app.conftest import NO_WAIT
from tests.fakes import FakeBus, FakeClock, InMemoryStateStore, RecordingNotifier

ALL = {"notes": True, "map_accounts": True, "reimport": True}


async def _held(sim: Simulator) -> tuple[HeldPrivileges, dict[str, Any]]:
    async with client(sim) as dv:
        meta = await fetch_metadata(dv, SchemaMap())
    assert not isinstance(meta.user_privileges, str)
    return held_privileges(meta), dict(meta.user_privileges)


def _names(answer: dict[str, Any]) -> set[str]:
    return {p["PrivilegeName"] for p in answer["RolePrivileges"]}


async def test_by_default_the_identity_may_make_every_write() -> None:
    with Simulator(load_fixture(tenant())) as sim:
        held, answer = await _held(sim)
    assert {"prvCreateNote", "prvAppendToAccount", "prvDeletework365_providerinvoice"} <= _names(answer)
    access = missing_write_privileges(held, SchemaMap(), **ALL)
    assert access.complete
    assert access.line is None


async def test_denied_privileges_are_left_out_of_retrieve_user_privileges_and_named() -> None:
    denied = [
        "prvCreateNote",
        "prvAppendTowork365_subscription",
        "prvAppendToAccount",  # a table no check reads: matched by its name, not by metadata
        "prvDeletework365_providerinvoice",
    ]
    with Simulator(load_fixture(tenant(denied_privileges=denied))) as sim:
        held, answer = await _held(sim)
    assert not set(denied) & _names(answer)
    assert "prvWriteNote" in _names(answer)

    notes_only = missing_write_privileges(held, SchemaMap(), notes=True)
    assert [m.name for m in notes_only.missing] == ["prvCreateNote", "prvAppendTowork365_subscription"]
    assert notes_only.line == (
        "the tool's identity lacks 2 write privilege(s) (for notes: prvCreateNote at User level, "
        "prvAppendTowork365_subscription at Organization level); add them to its security role in the "
        "Power Platform admin center"
    )
    everything = missing_write_privileges(held, SchemaMap(), **ALL)
    assert [(m.name, m.purpose) for m in everything.missing] == [
        ("prvCreateNote", "notes"),
        ("prvAppendTowork365_subscription", "notes"),
        ("prvAppendToAccount", "mapping provider accounts"),
        ("prvDeletework365_providerinvoice", "re-importing provider invoices"),
    ]
    line = everything.line
    assert line is not None
    assert "for mapping provider accounts: prvAppendToAccount at Organization level" in line
    assert "for re-importing provider invoices: prvDeletework365_providerinvoice" in line
    # An auto-fix that is off needs nothing.
    assert missing_write_privileges(held, SchemaMap(), notes=False, reimport=False).complete


def _answer(*items: tuple[str, str]) -> dict[str, Any]:
    return {"RolePrivileges": [{"PrivilegeName": name, "Depth": depth} for name, depth in items]}


def _held_from(*items: tuple[str, str]) -> HeldPrivileges:
    by_id, by_name = granted(_answer(*items))
    return HeldPrivileges(by_id, by_name, {}, None)


def test_depth_must_cover_the_rows_written() -> None:
    notes_at_user = [("prvCreateNote", "Basic"), ("prvWriteNote", "Basic"), ("prvAppendNote", "Basic")]
    # Custom schema names are mixed case; privilege names are compared case-folded.
    subjects = [(f"prvAppendTo{t}", "Global") for t in ("work365_ProviderInvoice", "work365_provider")]
    subjects += [
        ("prvAppendTowork365_billingcontract", "Global"),
        ("prvAppendTowork365_subscription", "Local"),
    ]
    access = missing_write_privileges(_held_from(*notes_at_user, *subjects), SchemaMap(), notes=True)
    (only,) = access.missing
    assert (only.name, only.depth, only.required) == ("prvAppendTowork365_subscription", "Local", "Global")
    assert "prvAppendTowork365_subscription at Organization level (has Business Unit)" in (access.line or "")
    assert only.as_evidence()["granted"] == "Business Unit"

    writes_at_user = [
        ("prvWritework365_provideraccount", "Basic"),
        ("prvAppendwork365_provideraccount", "Global"),
    ]
    mapping = missing_write_privileges(
        _held_from(*writes_at_user, ("prvAppendToAccount", "Global")),
        SchemaMap(),
        notes=False,
        map_accounts=True,
    )
    assert [m.name for m in mapping.missing] == ["prvWritework365_provideraccount"]


def test_privileges_that_could_not_be_read_are_never_reported_fine() -> None:
    access = missing_write_privileges(
        HeldPrivileges(unverified="WhoAmI failed: 403"), SchemaMap(), notes=True
    )
    assert not access.complete
    assert access.line == "the tool could not verify its write privileges (WhoAmI failed: 403)"
    assert missing_write_privileges(HeldPrivileges(), SchemaMap(), notes=False).complete


def test_required_privileges_follow_the_enabled_writes() -> None:
    assert required_privileges(notes=False, map_accounts=False, reimport=False) == ()
    mapping = {
        (n.table, n.access) for n in required_privileges(notes=False, map_accounts=True, reimport=False)
    }
    assert mapping == {
        ("work365_provideraccount", "Write"),
        ("work365_provideraccount", "Append"),
        ("account", "AppendTo"),
    }


@pytest.mark.parametrize(
    ("value", "says"),
    [
        (["prvWritework365_provideraccont"], "did you mean prvWritework365_provideraccount"),
        (["prvReadAccount"], "give its depth in dataverse.read_depth instead"),
        ("prvCreateNote", "must be a list of privilege names"),
        ([7], "is not a privilege"),
    ],
)
def test_a_wrong_denied_privilege_is_a_clear_fixture_error(value: object, says: str) -> None:
    with pytest.raises(FixtureError, match=says):
        load_fixture(tenant(denied_privileges=value))


# --- where it is reported ----------------------------------------------------------------------------


@pytest.fixture
def denied_notes() -> Iterator[Simulator]:
    with Simulator(load_fixture(tenant(denied_privileges=["prvCreateNote"]))) as sim:
        yield sim


@pytest.fixture
async def installed(denied_notes: Simulator) -> Container:
    built = Container.from_connection(
        connection(denied_notes, retry=NO_WAIT),
        settings=load_settings({}),
        bus=FakeBus(),
        state=InMemoryStateStore(),
        notifier=RecordingNotifier(),
        clock=FakeClock(denied_notes.now),
    )
    use_container(built)
    return built  # the autouse fixture of tests/functions closes it; here the next test replaces it


async def test_health_names_the_missing_note_privilege(installed: Container) -> None:
    try:
        response = await function_app.health(func.HttpRequest(method="GET", url="/api/health", body=b""))
        assert isinstance(response, func.HttpResponse)
        body = json.loads(response.get_body())
    finally:
        use_container(None)
        await installed.aclose()
    assert response.status_code == 503
    assert body["checks"]["dataverse"] == "ok"
    assert "prvCreateNote at User level" in body["checks"]["write_privileges"]


async def test_a_worker_names_the_missing_note_privilege_when_it_first_reads_the_environment(
    installed: Container, caplog: pytest.LogCaptureFixture
) -> None:
    try:
        with caplog.at_level(logging.ERROR, logger="diagnostics.app"):
            await installed.schema.get()
            await installed.schema.get()  # cached: said once
    finally:
        use_container(None)
        await installed.aclose()
    said = [r.getMessage() for r in caplog.records if "write privilege" in r.getMessage()]
    assert len(said) == 1
    assert "prvCreateNote" in said[0]
