"""The notifier against the simulator: the note upserted on the record through the real Dataverse
client, the card posted to the Teams sink through the real webhook client, the state in memory."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Iterator, Sequence
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from diagnostics.adapters.http import RetryPolicy
from diagnostics.app.container import Container
from diagnostics.app.notify import UNIT_SUBJECTS, MonitorNotifier, notify_gone
from diagnostics.catalog import finding
from diagnostics.lifecycle import SILENCE, Silence
from diagnostics.messages import InvoiceUnit, TenantPeriodUnit, unit_key
from diagnostics.model import Finding, Report, Statistics, Subject
from diagnostics.note import note_id
from diagnostics.render_card import announced
from diagnostics.settings import load_settings
from simulator import Simulator, load_fixture
from simulator.connect import connection
from tests.fakes import FakeBus, FakeClock, InMemoryStateStore

SAMPLE = Path(__file__).resolve().parents[2] / "simulator" / "samples" / "sample-tenant.json"
BLOCKED = "3a496486-0f7b-56ee-afa0-d8b3fea8006c"
INVOICE = Subject(type="provider_invoice", id=BLOCKED, name="Microsoft G0113579246 2026-10")
UNIT = InvoiceUnit(invoice_id=BLOCKED)


async def _no_sleep(_: float) -> None:
    return None


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(load_fixture(SAMPLE)) as running:
        yield running


@pytest.fixture
async def container(sim: Simulator) -> AsyncIterator[Container]:
    built = Container.from_connection(
        connection(sim, retry=RetryPolicy(max_attempts=3, sleep=_no_sleep, jitter=lambda d: d)),
        settings=load_settings({"DIAG_TEAMS_WEBHOOK_URL": sim.teams_webhook_url + "?sig=s3cret"}),
        bus=FakeBus(),
        state=InMemoryStateStore(),
        clock=FakeClock(sim.now),
    )
    yield built
    await built.aclose()


def blocked(severity: str = "error") -> Finding:
    return finding(
        "US_BLOCKED_UNRESOLVED_CUSTOMER",
        INVOICE,
        "2026-10",
        "Usage is blocked by a customer reference",
        {"references": [{"reference": "r1", "name": "Tailspin Toys", "provider_account_exists": False}]},
        ["Create the provider account"],
        severity=severity,  # type: ignore[arg-type]
    )


def report(at: datetime, findings: Sequence[Finding]) -> Report:
    return Report(
        as_of=at,
        period="2026-10",
        statistics=Statistics.of(findings, checks=1, passed=0),
        findings=tuple(findings),
    )


def posts(sim: Simulator) -> list[dict[str, list[str]]]:
    return [{k: v for k, v in announced(json.loads(p.body)).items() if v} for p in sim.teams_received]


async def test_one_note_and_one_post_for_an_unchanged_finding_then_resolved_and_all_clear(
    sim: Simulator, container: Container
) -> None:
    assert isinstance(container.notifier, MonitorNotifier)
    now = sim.now
    for n in range(5):
        await container.notifier.notify(
            UNIT, report(now + timedelta(days=n), [blocked()]), at=now + timedelta(days=n)
        )
    [note] = sim.recorded_notes()
    assert note.annotation_id == note_id(INVOICE)
    assert note.object_id == BLOCKED
    assert note.writes == 1
    assert note.subject == "Usage-invoice diagnosis: 1 open (error)"
    assert "Tailspin Toys (r1) — no provider account with this id" in (note.text or "")
    assert posts(sim) == [{"new": [blocked().dedup_key]}]
    url = sim.teams_received[0].body.decode()
    assert f"main.aspx?etn=work365_providerinvoice&id={BLOCKED}&pagetype=entityrecord" in url

    later = now + timedelta(days=6)
    await container.notifier.notify(UNIT, report(later, []), at=later)
    await container.notifier.notify(UNIT, report(later, []), at=later + timedelta(days=1))
    [note] = sim.recorded_notes()
    assert note.writes == 2
    assert note.subject == "Usage-invoice diagnosis: all clear"
    assert f"All clear since {later:%Y-%m-%d %H:%M} UTC." in (note.text or "")
    assert posts(sim)[1:] == [{"resolved": [blocked().dedup_key]}]


async def test_a_severity_rise_posts_once(sim: Simulator, container: Container) -> None:
    now = sim.now
    await container.notifier.notify(UNIT, report(now, [blocked("warning")]), at=now)
    for n in (1, 2):
        at = now + timedelta(days=n)
        await container.notifier.notify(UNIT, report(at, [blocked("critical")]), at=at)
    assert posts(sim) == [{"new": [blocked().dedup_key]}, {"escalated": [blocked().dedup_key]}]
    [note] = sim.recorded_notes()
    assert note.writes == 2
    assert note.subject == "Usage-invoice diagnosis: 1 open (critical)"


async def test_a_failed_post_is_posted_by_the_next_run_and_never_twice(
    sim: Simulator, container: Container, caplog: pytest.LogCaptureFixture
) -> None:
    now = sim.now
    sim.teams_outages = [(now, now + timedelta(days=1))]
    with caplog.at_level(logging.DEBUG):
        await container.notifier.notify(UNIT, report(now, [blocked()]), at=now)
    assert sim.teams_received == []
    assert sim.requests[("POST", "/teams/webhook")] == 3  # 503 retried, then left for the next run
    assert "s3cret" not in caplog.text
    assert "the Teams post failed" in caplog.text
    sim.teams_outages = []  # the simulator's clock stands still here: end the outage by hand
    for n in (1, 2):
        at = now + timedelta(days=n)
        await container.notifier.notify(UNIT, report(at, [blocked()]), at=at)
    assert posts(sim) == [{"new": [blocked().dedup_key]}]


async def test_a_resolution_whose_post_failed_is_posted_by_the_next_run_and_never_twice(
    sim: Simulator, container: Container
) -> None:
    # Found by the soak: once its findings are gone, a subject was no longer looked at, so a
    # resolution whose post failed (or that another delivery held the claim of) was never told.
    now = sim.now
    await container.notifier.notify(UNIT, report(now, [blocked()]), at=now)
    sim.teams_outages = [(now, now + timedelta(days=1))]  # the simulator's clock stands still
    await container.notifier.notify(UNIT, report(now + timedelta(days=1), []), at=now + timedelta(days=1))
    assert posts(sim) == [{"new": [blocked().dedup_key]}]
    sim.teams_outages = []
    for n in (2, 3):
        at = now + timedelta(days=n)
        await container.notifier.notify(UNIT, report(at, []), at=at)
    assert posts(sim) == [{"new": [blocked().dedup_key]}, {"resolved": [blocked().dedup_key]}]


async def test_a_delivery_that_fails_after_claiming_leaves_its_posts_to_the_redelivery(
    sim: Simulator, container: Container
) -> None:
    # Found by the soak: the note write failed after the run had claimed its post; the delivery
    # came again at once and saw the claim held, so the finding was never announced.
    now = sim.now
    sim.inject(status=503, times=3, path_prefix="/api/data/v9.2/annotations")
    with pytest.raises(Exception):  # noqa: B017, PT011 - whatever the note write raises
        await container.notifier.notify(UNIT, report(now, [blocked()]), at=now)
    assert posts(sim) == []
    await container.notifier.notify(UNIT, report(now, [blocked()]), at=now)  # the redelivery
    assert posts(sim) == [{"new": [blocked().dedup_key]}]


async def test_a_4xx_is_not_retried(sim: Simulator, container: Container) -> None:
    sim.inject(status=400, path_prefix="/teams/", times=1)
    await container.notifier.notify(UNIT, report(sim.now, [blocked()]), at=sim.now)
    assert sim.requests[("POST", "/teams/webhook")] == 1
    assert sim.teams_received == []


async def test_a_silenced_finding_never_posts_and_stays_in_the_note_marked(
    sim: Simulator, container: Container
) -> None:
    until = (sim.now + timedelta(days=3)).date()
    silence = Silence(until=until, reason="MS ticket 42", dedup_key=blocked().dedup_key)
    await container.state.put(SILENCE, silence.key, silence.to_value(), etag=None)
    for n in range(3):
        at = sim.now + timedelta(days=n)
        await container.notifier.notify(UNIT, report(at, [blocked()]), at=at)
    assert sim.teams_received == []
    [note] = sim.recorded_notes()
    assert f"silenced until {until.isoformat()}" in (note.text or "")
    assert note.writes == 1


async def test_a_deleted_invoice_resolves_what_was_told_about_it(
    sim: Simulator, container: Container
) -> None:
    await container.notifier.notify(UNIT, report(sim.now, [blocked()]), at=sim.now)
    later = sim.now + timedelta(days=1)
    await notify_gone(container.notifier, container.state, UNIT, at=later)
    assert posts(sim) == [{"new": [blocked().dedup_key]}, {"resolved": [blocked().dedup_key]}]


def _on_contracts(sim: Simulator, extra: Sequence[str] = ()) -> list[Finding]:
    """A finding on each of the sample's first three contracts, and on the contracts in `extra`."""
    ids = [r["work365_billingcontractid"] for r in sim.rows("work365_billingcontract")][:3]
    return [
        finding(
            "CONTRACT_INVOICE_DATE_TOO_EARLY",
            Subject(type="billing_contract", id=contract, name=f"contract {n}"),
            "2026-10",
            "The contract invoices before the usage arrives",
            {},
            ["Move the invoice date"],
            severity="warning",
        )
        for n, contract in enumerate([*ids, *extra])
    ]


async def test_a_runs_notes_are_written_in_one_round_trip(sim: Simulator, container: Container) -> None:
    await container.schema.get()  # verified once, as the handler does before notifying
    before = sim.request_count("/api/data/v9.2/$batch")
    await container.notifier.notify(UNIT, report(sim.now, _on_contracts(sim)), at=sim.now)
    assert sim.request_count("/api/data/v9.2/$batch") - before == 1  # one change set
    assert sim.request_count("/api/data/v9.2/annotations") == 0  # no note on its own
    assert len(sim.recorded_notes()) == 3
    assert {n.writes for n in sim.recorded_notes()} == {1}


async def test_a_gone_record_rolls_the_change_set_back_and_the_others_are_written_one_by_one(
    sim: Simulator, container: Container
) -> None:
    gone = "0b0b0b0b-0000-4000-8000-00000000dead"
    await container.notifier.notify(UNIT, report(sim.now, _on_contracts(sim, [gone])), at=sim.now)
    notes = sim.recorded_notes()
    assert len(notes) == 3
    assert gone not in {n.object_id for n in notes}
    assert sim.request_count("/api/data/v9.2/annotations") == 4  # one by one, the gone one refused
    assert len(sim.teams_received) == 1  # the run's posts still go out, in one card


async def test_a_unit_that_never_saw_anything_stores_nothing(sim: Simulator, container: Container) -> None:
    # Most contracts of a batch have no findings: no state item each, every day.
    await container.notifier.notify(UNIT, report(sim.now, []), at=sim.now)
    assert await container.state.get(UNIT_SUBJECTS, unit_key(UNIT)) is None
    await container.notifier.notify(UNIT, report(sim.now, [blocked()]), at=sim.now)
    assert await container.state.get(UNIT_SUBJECTS, unit_key(UNIT)) is not None
    for n in (1, 2):  # resolved, then (its resolution posted) no longer looked at: kept as empty
        later = sim.now + timedelta(days=n)
        await container.notifier.notify(UNIT, report(later, []), at=later)
    stored = await container.state.get(UNIT_SUBJECTS, unit_key(UNIT))
    assert stored is not None
    assert stored.value == {"subjects": {}}


async def test_a_finding_only_last_months_unit_saw_resolves_when_another_unit_visits(
    sim: Simulator, container: Container
) -> None:
    # Found by the soak: a finding of October fixed in November stayed open (and was reminded)
    # because only October's tenant unit had seen it, and that unit is no longer checked.
    october, november = TenantPeriodUnit(period="2026-10"), TenantPeriodUnit(period="2026-11")
    other = finding("PI_IMPORT_ERROR", INVOICE, "2026-10", "Import failed", {"message": "x"}, ["Fix it"])
    now = sim.now
    await container.notifier.notify(october, report(now, [blocked(), other]), at=now)
    assert posts(sim) == [{"new": sorted([blocked().dedup_key, other.dedup_key])}]
    for n in range(1, 6):  # the month turned: only November's unit visits; it still sees `other`
        at = now + timedelta(days=n)
        await container.notifier.notify(november, report(at, [other]), at=at)
        expected = [{"resolved": [blocked().dedup_key]}] if n >= 4 else []  # past the 3 days' grace
        assert posts(sim)[1:] == expected, n
    [note] = sim.recorded_notes()
    assert note.subject == "Usage-invoice diagnosis: 1 open (error)"


def looked_up() -> Finding:
    """The reference look-up's words for blocked(): the same dedup key, with the candidates."""
    reference = {
        "reference": "r1",
        "name": "Tailspin Toys",
        "provider_account_exists": False,
        "resolved": False,
        "candidates": [{"account": "Tailspin Toys Ltd", "confidence": 0.95, "reasons": ["same name"]}],
        "match": "confident",
    }
    return finding(
        "US_BLOCKED_UNRESOLVED_CUSTOMER",
        INVOICE,
        "2026-10",
        "Usage import blocked: 1 unresolved customer reference (looked up again)",
        {"references": [reference], "looked_up_at": "2026-11-12T07:00:00Z", "auto_fix": None},
        ["Create the provider account, or map it"],
    )


async def test_a_blocked_invoice_checked_then_looked_up_every_day_writes_its_note_once(
    sim: Simulator, container: Container
) -> None:
    # The check tells its findings, then the reference look-up it handed the invoice to tells the
    # same findings with the candidates: each wrote its own words, so the note was written twice
    # every day and said, in the morning, what the check saw without the candidates.
    now = sim.now
    for n in range(4):
        at = now + timedelta(days=n)
        await container.notifier.notify(UNIT, report(at, [blocked("critical")]), at=at)
        look = looked_up().model_copy(
            update={"evidence": {**looked_up().evidence, "looked_up_at": at.isoformat()}}
        )
        await container.notifier.notify(UNIT, report(at, [look]), at=at + timedelta(minutes=1), partial=True)
    [note] = sim.recorded_notes()
    assert note.writes == 2  # the first day's check, then what its look-up added
    assert note.subject == "Usage-invoice diagnosis: 1 open (critical)"  # the check's severity
    text = note.text or ""
    assert "Usage is blocked by a customer reference" in text  # the check's title and steps
    assert "1. Create the provider account\n" in text
    assert "best match: Tailspin Toys Ltd (95%, same name)" in text  # the look-up's candidates
    assert "Looked up at" not in text
    assert text.index("What the reference look-up found:") < text.index("What to do:")
    assert posts(sim) == [{"new": [blocked().dedup_key]}]


async def test_a_subject_no_unit_visits_any_more_is_swept_once_as_no_longer_checked(
    sim: Simulator, container: Container
) -> None:
    # October's tenant unit saw it; the month turned and no unit visits the invoice any more: its
    # finding stayed open (the note said "1 open") for ever.
    assert isinstance(container.notifier, MonitorNotifier)
    october = TenantPeriodUnit(period="2026-10")
    now = sim.now
    await container.notifier.notify(october, report(now, [blocked()]), at=now)
    swept = [await container.notifier.sweep(now + timedelta(days=n)) for n in range(1, 15)]
    assert swept == [0, 0, 0, 0, 1] + [0] * 9  # more than a day past the 3 days' grace, once
    [note] = sim.recorded_notes()
    assert note.writes == 2
    assert note.subject == "Usage-invoice diagnosis: no longer checked (1 open when last seen, error)"
    assert f"Last seen {now:%Y-%m-%d %H:%M} UTC." in (note.text or "")
    assert posts(sim) == [{"new": [blocked().dedup_key]}]  # no reminder, no resolution: nobody saw it fixed


async def test_the_sweep_writes_a_note_whose_write_did_not_finish(
    sim: Simulator, container: Container
) -> None:
    assert isinstance(container.notifier, MonitorNotifier)
    now = sim.now
    sim.inject(status=503, times=3, path_prefix="/api/data/v9.2/annotations")
    with pytest.raises(Exception):  # noqa: B017, PT011 - whatever the note write raises
        await container.notifier.notify(UNIT, report(now, [blocked()]), at=now)
    assert sim.recorded_notes() == []
    assert await container.notifier.sweep(now + timedelta(hours=1)) == 0
    [note] = sim.recorded_notes()
    assert note.subject == "Usage-invoice diagnosis: 1 open (error)"
    await container.notifier.sweep(now + timedelta(hours=2))
    assert [n.writes for n in sim.recorded_notes()] == [1]
