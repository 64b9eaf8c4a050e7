"""Auto-fix end to end through the use cases, on a timeline tenant through the real clients and the
real notifier: the check publishes the references, the reference handler maps, deletes and
schedules the re-check, the re-check confirms the re-import; the simulator records every write and
every note."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import pytest

from diagnostics.app.container import Container
from diagnostics.app.delivery import deliver
from diagnostics.app.handle_check import handle_check
from diagnostics.app.health import health
from diagnostics.app.reference_fixes import AUTOFIX, changes_note_id
from diagnostics.app.resolve_references import handle_references
from diagnostics.messages import (
    QUEUE_INVOICE_CHECKS,
    QUEUE_REFERENCE_RESOLUTION,
    CheckRequest,
    InvoiceUnit,
    encode,
)
from diagnostics.model import Subject
from diagnostics.note import note_id
from diagnostics.settings import load_settings
from simulator import Simulator, load_fixture
from simulator.connect import connection
from tests.app.conftest import NO_WAIT
from tests.fakes import FakeBus, FakeClock, FakeMessageActions, InMemoryStateStore, ReceivedMessage
from tests.references import autofix_tenant as t

ON = {"DIAG_AUTOFIX_MAP_ACCOUNTS": "true", "DIAG_AUTOFIX_REIMPORT": "true"}
CHANGES_NOTE = changes_note_id(t.PROVIDER, "2026-10")


class World:
    def __init__(self, sim: Simulator, container: Container) -> None:
        self.sim, self.c = sim, container

    @property
    def bus(self) -> FakeBus:
        assert isinstance(self.c.bus, FakeBus)
        return self.c.bus

    async def check(self, body: bytes, message_id: str = "check") -> FakeMessageActions:
        actions = FakeMessageActions()
        message = ReceivedMessage(body, message_id=message_id)
        await deliver(QUEUE_INVOICE_CHECKS, message, actions, handle_check, container=lambda: self.c)
        return actions

    async def resolve(self) -> FakeMessageActions:
        [body] = self.bus.bodies(QUEUE_REFERENCE_RESOLUTION)
        actions = FakeMessageActions()
        message = ReceivedMessage(body, message_id="refs")
        await deliver(
            QUEUE_REFERENCE_RESOLUTION, message, actions, handle_references, container=lambda: self.c
        )
        return actions

    async def blocked(self) -> None:
        await self.check(
            encode(CheckRequest(unit=InvoiceUnit(invoice_id=t.INVOICE), day=self.sim.now.date()))
        )

    def note(self, annotation_id: str) -> str:
        """The text of a note the simulator holds (or held, before its record was deleted)."""
        [note] = [n for n in self.sim.recorded_notes() if n.annotation_id == annotation_id]
        return str(note.text)

    def invoice_note(self) -> str:
        return self.note(note_id(Subject(type="provider_invoice", id=t.INVOICE, name="")))

    def writes(self, table: str) -> list[dict[str, Any]]:
        return [w for w in self.sim.writes if w["table"] == table]

    def work365_writes(self) -> list[dict[str, Any]]:
        """Every write but the monitor's own notes."""
        return [w for w in self.sim.writes if w["table"] != "annotation"]

    def move_to(self, moment: datetime) -> None:
        self.sim.advance_to(moment)
        assert isinstance(self.c.clock, FakeClock)
        self.c.clock.now = moment


@pytest.fixture
async def world(request: pytest.FixtureRequest) -> AsyncIterator[World]:
    doc, env = request.param
    with Simulator(load_fixture(doc)) as sim:
        container = Container.from_connection(
            connection(sim, retry=NO_WAIT),
            settings=load_settings(env),
            bus=FakeBus(),
            state=InMemoryStateStore(),
            clock=FakeClock(sim.now),
        )
        yield World(sim, container)
        await container.aclose()


@pytest.mark.parametrize("world", [(t.confident(), {})], indirect=True)
async def test_with_auto_fix_off_the_candidates_are_in_the_note_and_nothing_is_written(world: World) -> None:
    await world.blocked()
    await world.resolve()
    note = world.invoice_note()
    assert f"Tailspin Toys ({t.TENANT_ID}) — provider account exists, Account column empty" in note
    assert "best match: Tailspin Toys (95%" in note
    assert world.work365_writes() == []
    assert not [s for s in world.bus.scheduled.values() if "expected" in s.message.message_id]


@pytest.mark.parametrize("world", [(t.confident(), ON)], indirect=True)
async def test_a_confident_match_is_mapped_the_invoice_deleted_and_the_reimport_confirmed(
    world: World,
) -> None:
    await world.blocked()
    actions = await world.resolve()
    assert actions.settled[0][0] == "complete"
    [patch] = world.writes("work365_provideraccount")
    assert patch["method"] == "PATCH"
    assert patch["id"] == t.PROVIDER_ACCOUNT
    assert list(patch["body"].values()) == [f"/accounts({t.ACCOUNT})"]
    [delete] = world.writes("work365_providerinvoice")
    assert (delete["method"], delete["id"]) == ("DELETE", t.INVOICE)

    state = await world.c.state.get(AUTOFIX, f"pi:{t.INVOICE}")
    assert state is not None
    assert [c["kind"] for c in state.value["changes"]] == ["map_account", "delete_invoice"]
    assert state.value["changes"][0]["previous"] is None
    [scheduled] = [s for s in world.bus.scheduled.values() if "expected" in s.message.message_id]
    assert scheduled.message.message_id == f"recheck:expected:{t.PROVIDER}:2026-10:2026-11-13"
    note = world.note(CHANGES_NOTE)
    assert "Changed 2026-11-12 09:00 UTC: map provider account Tailspin Toys to account Tailspin Toys" in note
    assert "(before: empty)" in note
    assert "delete provider invoice Microsoft G012345678 2026-10" in note

    # A second delivery of the same message: the invoice is gone, nothing is written again.
    before = len(world.work365_writes())
    await world.resolve()
    assert len(world.work365_writes()) == before

    # Work 365 re-imports it at 05:50; the re-check at its time confirms it.
    world.move_to(scheduled.at)
    await world.check(scheduled.message.body, scheduled.message.message_id)
    assert "re-import confirmed: provider invoice Microsoft G012345678 2026-10" in world.note(CHANGES_NOTE)


@pytest.mark.parametrize("world", [(t.ambiguous(), ON)], indirect=True)
async def test_an_ambiguous_match_is_never_applied(world: World) -> None:
    await world.blocked()
    await world.resolve()
    assert world.work365_writes() == []
    note = world.invoice_note()
    assert "ambiguous, choose one: Tailspin Toys (95%" in note
    assert "Tailspin Toys Limited (95%" in note
    assert "no single confident match (ambiguous)" in note


@pytest.mark.parametrize(
    "world", [(t.confident(denied=["prvDeletework365_providerinvoice"]), ON)], indirect=True
)
async def test_without_the_write_privileges_nothing_is_applied_and_the_missing_one_is_named(
    world: World,
) -> None:
    await world.blocked()
    await world.resolve()
    assert world.work365_writes() == []
    assert "the tool's identity lacks prvDeletework365_providerinvoice" in world.invoice_note()


@pytest.mark.parametrize("world", [(t.confident(), {**ON, "DIAG_AUTOFIX_DRY_RUN": "true"})], indirect=True)
async def test_a_dry_run_says_what_it_would_do_and_writes_nothing(world: World) -> None:
    await world.blocked()
    await world.resolve()
    assert world.work365_writes() == []
    note = world.invoice_note()
    assert (
        "Would change 2026-11-12 09:00 UTC: would map provider account Tailspin Toys to account Tailspin"
        in note
    )
    assert "would delete provider invoice Microsoft G012345678 2026-10" in note


@pytest.mark.parametrize("world", [(t.confident(reimport=False), ON)], indirect=True)
async def test_concurrent_deliveries_apply_each_change_once(world: World) -> None:
    await world.blocked()
    await asyncio.gather(world.resolve(), world.resolve(), world.resolve())
    assert [w["method"] for w in world.writes("work365_provideraccount")] == ["PATCH"]
    assert [w["method"] for w in world.writes("work365_providerinvoice")] == ["DELETE"]
    state = await world.c.state.get(AUTOFIX, f"pi:{t.INVOICE}")
    assert state is not None
    assert [c["kind"] for c in state.value["changes"]] == ["map_account", "delete_invoice"]
    assert len([s for s in world.bus.scheduled.values() if "expected" in s.message.message_id]) == 1


@pytest.mark.parametrize(
    "world", [(t.confident(denied=["prvAppendToAccount"], reimport=False), ON)], indirect=True
)
async def test_the_health_probe_names_what_an_enabled_auto_fix_lacks_before_it_tries(world: World) -> None:
    checked = await health(world.c)
    assert "prvAppendToAccount" in checked.checks["write_privileges"]
    assert world.work365_writes() == []


@pytest.mark.parametrize("world", [(t.fixed_by_hand(), {"DIAG_AUTOFIX_REIMPORT": "true"})], indirect=True)
async def test_references_a_person_resolved_are_reimported_when_that_is_on(world: World) -> None:
    await world.blocked()
    await world.resolve()
    assert [(w["method"], w["id"]) for w in world.work365_writes()] == [("DELETE", t.INVOICE)]
    assert "delete provider invoice Microsoft G012345678 2026-10" in world.note(CHANGES_NOTE)


@pytest.mark.parametrize("world", [(t.fixed_by_hand(), {})], indirect=True)
async def test_with_reimport_off_a_resolved_invoice_is_not_looked_up_again(world: World) -> None:
    await world.blocked()
    assert world.bus.bodies(QUEUE_REFERENCE_RESOLUTION) == []


@pytest.mark.parametrize("world", [(t.known_to_partner_center(), {})], indirect=True)
async def test_partner_center_names_the_customer_and_its_domain_finds_the_account(world: World) -> None:
    await world.blocked()
    await world.resolve()
    note = world.invoice_note()
    assert "Partner Center knows it as Tailspin Toys (tailspintoys.com)" in note
    looked_up = note.split("What the reference look-up found:", 1)[1]  # the check's line has no candidates
    [line] = [x for x in looked_up.splitlines() if x.strip().startswith(f"- Tailspin Toys ({t.TENANT_ID})")]
    assert "TT Retail (" in line
    assert "tailspintoys.com" in line.split("TT Retail (", 1)[1]
    assert world.work365_writes() == []
