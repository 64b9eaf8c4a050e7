"""An invoice too large for one unit, through the check handler: its own unit publishes one check
per slice of its usage, each slice is handled as a unit of its own, and together they tell what
the on-demand diagnosis of the invoice tells — on the real clients against the simulator, with
Dataverse's real aggregate limit (a generated Microsoft invoice of 53,000 usage rows)."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Iterator
from datetime import date

import pytest

from diagnostics.app.container import Container
from diagnostics.app.delivery import deliver
from diagnostics.app.diagnose import diagnose
from diagnostics.app.handle_check import handle_check
from diagnostics.messages import QUEUE_INVOICE_CHECKS, CheckRequest, InvoiceUnit, decode_check, encode
from simulator import Simulator, load_fixture
from simulator.generate import generate
from tests.app.conftest import container_on, parts
from tests.fakes import (
    FakeMessageActions,
    ReceivedMessage,
)

_GENERATED = generate(120, usage=100)  # 60,600 usage rows, 53,000 of them on Microsoft's October invoice
_BIG = next(
    r["work365_providerinvoiceid"]
    for r in _GENERATED.fixture["dataverse"]["rows"]["work365_providerinvoice"]
    if r["work365_name"] == "Microsoft 2026-10"
)


@pytest.fixture(scope="module")
def big_sim() -> Iterator[Simulator]:
    with Simulator(load_fixture(_GENERATED.fixture)) as running:
        yield running


@pytest.fixture
async def big(big_sim: Simulator) -> AsyncIterator[Container]:
    async with container_on(big_sim) as built:
        yield built


def _message(request: CheckRequest) -> ReceivedMessage:
    return ReceivedMessage(encode(request), message_id=request.message_id)


async def _handle(container: Container, request: CheckRequest) -> FakeMessageActions:
    actions = FakeMessageActions()
    await deliver(QUEUE_INVOICE_CHECKS, _message(request), actions, handle_check, container=lambda: container)
    return actions


def _subject_of(dedup_key: str) -> str:
    _code, subject_type, rest = dedup_key.split(":", 2)  # code:type:id:period; ids may hold colons
    return f"{subject_type}:{rest.rpartition(':')[0]}"


async def test_a_big_invoice_is_checked_as_its_own_unit_and_one_unit_per_slice(big: Container) -> None:
    bus, _, notifier = parts(big)
    day = big.clock().date()
    head = CheckRequest(unit=InvoiceUnit(invoice_id=_BIG), day=day)
    actions = await _handle(big, head)
    assert actions.settled[0][0] == "complete"

    published = [(m.message_id, decode_check(m.body)) for q, m in bus.sent if q == QUEUE_INVOICE_CHECKS]
    assert len(published) >= 2  # 53,000 rows: more than one slice of at most 25,000
    slices = [request.unit for _, request in published]
    assert all(isinstance(u, InvoiceUnit) and u.invoice_id == _BIG and u.customers for u in slices)
    assert len({m for m, _ in published}) == len(published)
    for message_id, request in published:
        assert message_id == request.message_id
        assert message_id.startswith(f"check:pi:{_BIG}:customers:")
        assert (request.day, request.reason) == (day, "planned")
    assert not bus.scheduled  # the invoice has usage: no re-check, and a slice never schedules one

    # The invoice's own unit tells of the invoice (and the tool's own findings), nothing else; it
    # notifies only when it has something to tell.
    for note in notifier.notifications:
        assert note.unit_key == f"pi:{_BIG}"
        for f in note.findings:
            assert (
                _subject_of(f.dedup_key) == f"provider_invoice:{_BIG}"
                or f.dedup_key.split(":")[1] == "tenant"
            )
    told_by_head = len(notifier.notifications)

    for _, request in published:
        assert (await _handle(big, request)).settled[0][0] == "complete"
    told = notifier.notifications[told_by_head:]
    slice_keys = {f"pi:{_BIG}:customers:{u.customers.key()}" for u in slices if u.customers}
    assert told  # the generated tenant's planted faults are found in the slices
    assert {n.unit_key for n in told} <= slice_keys
    for note in told:  # a slice never tells of the invoice itself: its own unit does
        assert all(_subject_of(f.dedup_key) != f"provider_invoice:{_BIG}" for f in note.findings)
    # Nothing more published by the slices: they are not cut again.
    assert len([1 for q, _ in bus.sent if q == QUEUE_INVOICE_CHECKS]) == len(published)

    # Together they tell what the on-demand diagnosis of the invoice tells.
    whole = await diagnose(big, _BIG, big.clock())
    assert {f.dedup_key for n in notifier.notifications for f in n.findings} == {
        f.dedup_key for f in whole.findings
    }


async def test_the_same_invoice_is_cut_the_same_way_every_day(big: Container, big_sim: Simulator) -> None:
    bus, _, _ = parts(big)
    first, second = date(2026, 11, 12), date(2026, 11, 13)
    await _handle(big, CheckRequest(unit=InvoiceUnit(invoice_id=_BIG), day=first))
    await _handle(big, CheckRequest(unit=InvoiceUnit(invoice_id=_BIG), day=second))
    by_day: dict[date, list[str]] = {}
    for q, m in bus.sent:
        if q == QUEUE_INVOICE_CHECKS:
            request = decode_check(m.body)
            by_day.setdefault(request.day, []).append(m.message_id.rsplit(":", 1)[0])
    assert by_day[first] == by_day[second]


def _stuck_populating() -> dict[str, object]:
    """The generated tenant with its big invoice stuck in Populating: PI_STUCK_POPULATING is the root
    that mutes the at-risk warnings of the contracts its usage reaches (findings.md, "Inhibition")."""
    fixture = copy.deepcopy(_GENERATED.fixture)
    for row in fixture["dataverse"]["rows"]["work365_providerinvoice"]:
        if row["work365_providerinvoiceid"] == _BIG:
            row["statuscode"] = "Populating"
    return fixture


async def test_a_stuck_big_invoice_mutes_its_slices_at_risk_warnings_as_the_diagnosis_does() -> None:
    with Simulator(load_fixture(_stuck_populating())) as sim:
        async with container_on(sim) as container:
            bus, _, notifier = parts(container)
            await _handle(container, CheckRequest(unit=InvoiceUnit(invoice_id=_BIG), day=sim.now.date()))
            for queue, message in list(bus.sent):
                if queue == QUEUE_INVOICE_CHECKS:
                    await _handle(container, decode_check(message.body))
            whole = await diagnose(container, _BIG, sim.now)
    told = {(f.dedup_key, f.muted) for n in notifier.notifications for f in n.findings}
    at_risk = {(key, muted) for key, muted in told if key.startswith("USAGE_AT_RISK_NEXT_INVOICE:")}
    assert at_risk  # the slices found contracts at risk...
    assert all(muted for _, muted in at_risk)  # ...muted by the invoice stuck in Populating
    assert any(key.startswith("PI_STUCK_POPULATING:") for key, _ in told)  # told by the own unit
    assert told == {(f.dedup_key, f.muted) for f in whole.findings}
