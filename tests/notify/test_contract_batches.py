"""A batch of contracts (the planner's `ContractsUnit`) tells people what its contracts' own units
(`ContractUnit`) told them: the same notes (text and number of writes) and the same changes posted
to Teams, day after day as the sample tenant's timeline plays out, but in one card per check. Through
the real handler, clients and simulator; a duplicate delivery and a failed one change nothing."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from diagnostics.adapters.http import RetryPolicy
from diagnostics.app.container import Container
from diagnostics.app.delivery import deliver
from diagnostics.app.handle_check import handle_check
from diagnostics.messages import QUEUE_INVOICE_CHECKS, CheckRequest, ContractsUnit, ContractUnit, Unit, encode
from diagnostics.periods import period_under_review
from diagnostics.render_card import announced
from diagnostics.settings import load_settings
from simulator import Simulator, load_fixture
from simulator.connect import connection
from tests.fakes import FakeBus, FakeClock, FakeMessageActions, InMemoryStateStore, ReceivedMessage

SAMPLE = Path(__file__).resolve().parents[2] / "simulator" / "samples" / "sample-tenant.json"
# Days after the fixture's now: the timeline's changes land between them; the last is past
# DIAG_TEAMS_REPEAT_DAYS, so reminders fall due.
DAYS = (0, 1, 3, 5, 9)


async def _no_sleep(_: float) -> None:
    return None


@dataclass(frozen=True)
class Told:
    notes: list[tuple[str, str | None, str | None, int]]  # annotation id, subject line, text, writes
    changes: list[tuple[int, str, str]]  # (day, change, dedup key), each day's in order
    cards: list[int]  # Teams posts per day
    failed: int  # deliveries that failed (and came again)


async def _deliver(container: Container, unit: Unit, *, times: int = 1) -> int:
    """Deliver the unit's check `times`, each until completed; returns how many deliveries failed."""
    request = CheckRequest(unit=unit, day=container.clock().date())
    failed = 0
    for _ in range(times):
        for _attempt in range(3):  # a failed delivery comes again (Service Bus)
            actions = FakeMessageActions()
            message = ReceivedMessage(encode(request), message_id=request.message_id)
            await deliver(QUEUE_INVOICE_CHECKS, message, actions, handle_check, container=lambda: container)
            [(action, *_)] = actions.settled
            if action == "complete":
                break
            failed += 1
        else:
            raise AssertionError(f"{request.message_id} was never completed")
    return failed


async def _monitor(
    sim: Simulator, *, batched: bool, duplicate: bool = False, fail_first: bool = False
) -> Told:
    clock = FakeClock(sim.now)
    container = Container.from_connection(
        connection(sim, retry=RetryPolicy(max_attempts=2, sleep=_no_sleep, jitter=lambda d: d)),
        settings=load_settings({"DIAG_TEAMS_WEBHOOK_URL": sim.teams_webhook_url + "?sig=s3cret"}),
        bus=FakeBus(),
        state=InMemoryStateStore(),
        clock=clock,
    )
    contracts = sorted(r["work365_billingcontractid"] for r in sim.rows("work365_billingcontract"))
    start, changes, cards, failed = sim.now, [], [], 0
    try:
        for day in DAYS:
            clock.now = start + timedelta(days=day)
            sim.advance_to(clock.now)
            period = period_under_review(clock.now)
            if fail_first and day == DAYS[0]:
                # The change set of the day's notes fails (rolled back), and so does the first of
                # the note-by-note writes that follow, twice (both attempts): the delivery fails
                # after the batch's contracts have claimed their posts, and is delivered again.
                sim.inject(status=503, times=1, path_prefix="/api/data/v9.2/annotations", in_batch=True)
                sim.inject(status=503, times=2, path_prefix="/api/data/v9.2/annotations")
            posted_before = len(sim.teams_received)
            units: Sequence[Unit] = (
                [ContractsUnit(period=period, contract_ids=tuple(contracts))]
                if batched
                else [ContractUnit(contract_id=c, period=period) for c in contracts]
            )
            for unit in units:
                failed += await _deliver(container, unit, times=2 if duplicate else 1)
            today = sim.teams_received[posted_before:]
            cards.append(len(today))
            told = [
                (change, key)
                for p in today
                for change, keys in announced(json.loads(p.body)).items()
                for key in keys
            ]
            changes += [(day, change, key) for change, key in sorted(told)]
    finally:
        await container.aclose()
    notes = sorted((n.annotation_id, n.subject, n.text, n.writes) for n in sim.recorded_notes())
    return Told(notes, changes, cards, failed)


async def test_a_batch_tells_each_contract_as_its_own_unit_did_in_one_card_a_check() -> None:
    with Simulator(load_fixture(SAMPLE)) as sim:
        singles = await _monitor(sim, batched=False)
    with Simulator(load_fixture(SAMPLE)) as sim:
        batch = await _monitor(sim, batched=True)
    assert len(singles.notes) >= 3, "the sample's contracts have notes to compare"
    assert {change for _, change, _ in singles.changes} >= {"new", "resolved"}
    assert batch.notes == singles.notes
    assert batch.changes == singles.changes
    assert max(singles.cards) > 1  # one card per contract that had something to tell
    assert all(n <= 1 for n in batch.cards)
    assert sum(batch.cards) == sum(1 for n in singles.cards if n)


async def test_a_duplicate_or_failed_delivery_of_a_batch_changes_nothing_told() -> None:
    with Simulator(load_fixture(SAMPLE)) as sim:
        once = await _monitor(sim, batched=True)
    with Simulator(load_fixture(SAMPLE)) as sim:
        twice = await _monitor(sim, batched=True, duplicate=True)
    with Simulator(load_fixture(SAMPLE)) as sim:
        failed = await _monitor(sim, batched=True, fail_first=True)
    assert once.failed == 0
    assert failed.failed == 1
    assert twice == once
    assert failed.notes == once.notes
    assert failed.changes == once.changes
