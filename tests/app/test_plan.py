"""The planner: its rules as pure decisions, and its cheap read against the simulator."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import pytest

from diagnostics.app.container import Container, counting_requests
from diagnostics.app.notify import MonitorNotifier
from diagnostics.app.plan import (
    PLANNER,
    WATERMARK,
    PlanResult,
    PlanView,
    plan_today,
    plan_units,
    run_planner,
)
from diagnostics.app.recheck import check_message
from diagnostics.errors import ServiceUnreachable
from diagnostics.messages import CONTRACTS_PER_UNIT, ContractsUnit, MessageError, decode_check
from diagnostics.model import PIStatus, ProviderKind
from diagnostics.ports import Stored
from diagnostics.schema import SchemaMap
from diagnostics.settings import Thresholds, load_settings
from simulator import Simulator
from simulator.connect import connection
from tests.app.builders import MANUAL, contract, invoice, provider
from tests.app.conftest import BLOCKED, NO_WAIT
from tests.fakes import FakeBus, FakeClock, InMemoryStateStore, RecordingNotifier

NOW = datetime(2026, 11, 12, 7, 0, tzinfo=UTC)
T = Thresholds()
OLD = datetime(2026, 10, 9, 6, 0, tzinfo=UTC)  # September's invoice, long done


def keys(
    view: PlanView, watermark: datetime | None = NOW - timedelta(days=1), now: datetime = NOW
) -> list[str]:
    return [r.message_id.split(":", 1)[1].rsplit(":", 1)[0] for r in plan_units(view, watermark, now, T)]


def healthy_history() -> list:  # type: ignore[type-arg]
    # Invoices for every watched period, Active with usage, created long ago: nothing to plan.
    return [
        invoice(f"pi-{p}", period=p, created=OLD - timedelta(days=30 * n))
        for n, p in enumerate(["2026-10", "2026-09", "2026-08", "2026-07"])
    ]


def test_a_quiet_tenant_plans_only_the_tenant_unit() -> None:
    view = PlanView((provider(),), tuple(healthy_history()), (), frozenset())
    assert keys(view) == ["tenant:2026-10"]


def test_every_request_is_for_today_with_a_stable_message_id() -> None:
    view = PlanView((provider(),), tuple(healthy_history()), (), frozenset())
    [request] = plan_units(view, NOW - timedelta(days=1), NOW, T)
    assert (request.day, request.reason) == (date(2026, 11, 12), "planned")
    assert request.message_id == "check:tenant:2026-10:2026-11-12"


def test_invoices_created_or_modified_since_the_watermark() -> None:
    touched = invoice("pi-touched", period="2026-07", created=OLD, modified=NOW - timedelta(hours=3))
    view = PlanView((provider(),), (*healthy_history(), touched), (), frozenset())
    assert "pi:pi-touched" in keys(view)
    # Without a watermark (first run) every invoice of the watched periods is planned once.
    assert "pi:pi-2026-09" in keys(view, watermark=None)
    assert "pi:pi-2026-09" not in keys(view)


def test_expected_invoices_on_or_after_their_invoice_day_that_are_missing() -> None:
    history = [i for i in healthy_history() if i.id not in ("pi-2026-10", "pi-2026-08")]
    view = PlanView((provider(), provider(MANUAL, ProviderKind.MANUAL)), tuple(history), (), frozenset())
    planned = keys(view)
    assert "expected:aaaaaaaa-0000-4000-8000-000000000001:2026-10" in planned
    assert "expected:aaaaaaaa-0000-4000-8000-000000000001:2026-08" in planned  # an open period's gap
    assert not any(k.startswith(f"expected:{MANUAL}") for k in planned)  # no automatic feed
    # Before October's invoice day (Nov 8) the missing October invoice is not due yet.
    before = datetime(2026, 11, 7, 7, 0, tzinfo=UTC)
    assert "expected:aaaaaaaa-0000-4000-8000-000000000001:2026-10" not in keys(view, now=before)


def test_invoices_inside_the_pull_window_or_past_it_without_usage() -> None:
    fresh = invoice("pi-fresh", period="2026-10", created=NOW - timedelta(days=3))
    stale = invoice(
        "pi-stale", period="2026-09", created=NOW - timedelta(days=40), status=PIStatus.ERROR, usage_total="0"
    )
    done = invoice("pi-done", period="2026-08", created=NOW - timedelta(days=70))
    view = PlanView((provider(),), (fresh, stale, done), (), frozenset())
    planned = keys(view)
    assert {"pi:pi-fresh", "pi:pi-stale"} <= set(planned)
    assert "pi:pi-done" not in planned


def _batches(view: PlanView, now: datetime = NOW) -> list[ContractsUnit]:
    return [
        r.unit for r in plan_units(view, NOW - timedelta(days=1), now, T) if isinstance(r.unit, ContractsUnit)
    ]


def test_usage_contracts_invoicing_within_the_at_risk_days() -> None:
    soon = contract("c-soon", date(2026, 11, 14))
    today = contract("c-today", date(2026, 11, 12))
    later = contract("c-later", date(2026, 11, 20))
    past = contract("c-past", date(2026, 11, 11))
    no_usage = contract("c-licences", date(2026, 11, 13))
    inactive = contract("c-ended", date(2026, 11, 13), active=False)
    usage = frozenset({"c-soon", "c-today", "c-later", "c-past", "c-ended"})
    view = PlanView(
        (provider(),), tuple(healthy_history()), (soon, later, no_usage, today, past, inactive), usage
    )
    [batch] = _batches(view)
    assert (batch.period, batch.contract_ids) == ("2026-10", ("c-soon", "c-today"))


def _many(n: int) -> PlanView:
    contracts = tuple(contract(f"c-{i:04d}", date(2026, 11, 13)) for i in range(n))
    return PlanView((provider(),), tuple(healthy_history()), contracts, frozenset(c.id for c in contracts))


def test_at_risk_contracts_are_checked_in_sorted_batches_of_at_most_a_hundred() -> None:
    assert CONTRACTS_PER_UNIT == 100
    batches = _batches(_many(250))
    assert [len(b.contract_ids) for b in batches] == [100, 100, 50]
    ids = [c for b in batches for c in b.contract_ids]
    assert ids == sorted(ids) == [f"c-{i:04d}" for i in range(250)]  # each once, in order
    assert [len(b.contract_ids) for b in _batches(_many(100))] == [100]
    assert [len(b.contract_ids) for b in _batches(_many(101))] == [100, 1]
    assert _batches(_many(0)) == []


def test_a_batch_keeps_its_message_id_all_day_and_a_changed_batch_gets_another() -> None:
    morning = [r.message_id for r in plan_units(_many(150), None, NOW, T)]
    again = [r.message_id for r in plan_units(_many(150), None, NOW + timedelta(hours=5), T)]
    assert morning == again  # a repeat publish is dropped by the broker
    # The same contracts listed in another order are the same batches.
    view = _many(150)
    shuffled = PlanView(view.providers, view.invoices, view.contracts[::-1], view.usage_contract_ids)
    assert [r.message_id for r in plan_units(shuffled, None, NOW, T)] == morning
    # One more contract: its batch is a new message (not dropped as the morning's duplicate).
    grown = [r.message_id for r in plan_units(_many(151), None, NOW, T)]
    contracts = [m for m in grown if m.startswith("check:contracts:")]
    assert len(contracts) == 2
    assert contracts[0] in morning
    assert contracts[1] not in morning
    # The next day, new ids.
    tomorrow = plan_units(_many(150), None, NOW + timedelta(days=1), T)
    assert not {r.message_id for r in tomorrow} & set(morning)


def test_a_batch_message_round_trips_and_stays_small() -> None:
    [request] = [r for r in plan_units(_many(100), None, NOW, T) if isinstance(r.unit, ContractsUnit)]
    body = check_message(request).body
    assert len(body) < 5_000
    assert decode_check(body) == request
    assert [u.contract_id for u in request.unit.contracts()] == list(request.unit.contract_ids)
    raw = json.loads(body)
    raw["unit"]["contract_ids"] = []
    with pytest.raises(MessageError, match="contract_ids"):  # an empty batch is not one of ours
        decode_check(json.dumps(raw).encode())


def test_a_unit_named_by_several_rules_is_planned_once() -> None:
    fresh = invoice("pi-fresh", period="2026-10", created=NOW - timedelta(hours=2), status=PIStatus.ERROR)
    view = PlanView((provider(),), (fresh,), (), frozenset())
    planned = keys(view)
    assert planned.count("pi:pi-fresh") == 1
    assert len(planned) == len(set(planned))


async def test_run_planner_publishes_and_moves_the_watermark(container: Container, sim: Simulator) -> None:
    await container.schema.get()  # the schema read is the container's, cached: not the plan's cost
    bus = container.bus
    assert isinstance(bus, FakeBus)
    sim.reset_counts()
    with counting_requests() as tally:
        result = await run_planner(container)
    assert tally.count <= 2  # one $batch, and the usage contracts' subscriptions
    assert not any("usagesummar" in path for _, path in sim.requests)
    requests = [decode_check(body) for body in bus.bodies("invoice-checks")]
    assert result.published == len(requests)
    keys_ = {r.message_id for r in requests}
    assert "check:tenant:2026-10:2026-11-12" in keys_
    # The blocked October Microsoft invoice (created Nov 9, no usage) is inside its window.
    assert "check:pi:3a496486-0f7b-56ee-afa0-d8b3fea8006c:2026-11-12" in keys_
    state = container.state
    assert isinstance(state, InMemoryStateStore)
    stored = await state.get(WATERMARK, PLANNER)
    assert stored is not None
    assert datetime.fromisoformat(stored.value["at"]) < sim.now

    # The same day again: the same message ids, which the broker drops as duplicates.
    again = await run_planner(container, past_due=True)
    assert again.watermark is not None
    assert 1 <= again.published < result.published  # only what changed since, and what is open
    assert len(bus.sent) == len(requests)
    assert bus.dropped_duplicates == again.published


async def test_a_failed_plan_raises_for_the_timer_retry_and_keeps_the_watermark(
    container: Container, sim: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    await run_planner(container)
    stored = await container.state.get(WATERMARK, PLANNER)
    sim.inject(status=503, path_prefix="/api/data")
    try:
        with pytest.raises(ServiceUnreachable):
            await plan_today(past_due=True, container=lambda: container)
    finally:
        sim.clear_faults()
    assert await container.state.get(WATERMARK, PLANNER) == stored
    assert any(r.getMessage().startswith("plan failed past_due=True") for r in caplog.records)


async def test_a_missed_day_catches_up_from_the_watermark() -> None:
    # The plan of Nov 10 ran; Nov 11's did not. Nov 12's plans what changed on Nov 11 too.
    changed = invoice(
        "pi-late", period="2026-07", created=OLD, modified=datetime(2026, 11, 11, 15, tzinfo=UTC)
    )
    view = PlanView((provider(),), (*healthy_history(), changed), (), frozenset())
    assert "pi:pi-late" in keys(view, watermark=datetime(2026, 11, 10, 6, 50, tzinfo=UTC))


async def _planned_with(sim: Simulator, columns: dict[str, str]) -> tuple[PlanResult, list[str]]:
    # A schema map naming a column the environment does not have: the real verification marks it
    # unreadable, as it would for a partner whose Work 365 differs.
    built = Container.from_connection(
        connection(sim, retry=NO_WAIT, schema_map=SchemaMap(columns=columns, source="test")),
        settings=load_settings({}),
        bus=FakeBus(),
        state=InMemoryStateStore(),
        notifier=RecordingNotifier(),
        clock=FakeClock(sim.now),
    )
    try:
        result = await run_planner(built)
        assert isinstance(built.bus, FakeBus)
        return result, [decode_check(b).message_id for b in built.bus.bodies("invoice-checks")]
    finally:
        await built.aclose()


async def test_without_the_contracts_next_invoice_date_only_the_contract_rule_is_skipped(
    sim: Simulator,
) -> None:
    result, ids = await _planned_with(
        sim, {"work365_billingcontract.work365_billingcontract_nextinvoicedate": "w365_missing"}
    )
    assert not result.blind
    assert not any(i.startswith("check:contract:") for i in ids)
    assert f"check:pi:{BLOCKED}:2026-11-12" in ids


async def test_without_the_invoices_period_the_plan_is_only_the_tenant_unit(sim: Simulator) -> None:
    result, ids = await _planned_with(
        sim, {"work365_providerinvoice.work365_providerinvoice_billingperiodstart": "w365_missing"}
    )
    assert result.blind
    assert ids == ["check:tenant:2026-10:2026-11-12"]  # its report says what cannot be read


class _UnlistableStateStore(InMemoryStateStore):
    """A state store whose listing fails, as Table Storage's does when it cannot be reached."""

    async def list(self, kind: str) -> list[tuple[str, Stored]]:
        raise ServiceUnreachable("Table Storage could not be reached")


async def test_a_failed_sweep_is_logged_and_the_plan_stands(
    sim: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    state = _UnlistableStateStore()
    built = Container.from_connection(
        connection(sim, retry=NO_WAIT),
        settings=load_settings({}),
        bus=FakeBus(),
        state=state,
        notifier=MonitorNotifier(state, notes=None, teams=None, dataverse_url=None),
        clock=FakeClock(sim.now),
    )
    try:
        result = await run_planner(built)
    finally:
        await built.aclose()
    assert isinstance(built.bus, FakeBus)
    assert result.published == len(built.bus.bodies("invoice-checks")) >= 1
    assert result.unchecked == 0
    assert await state.get(WATERMARK, PLANNER) is not None  # the plan moved on
    assert any("the sweep of findings no longer checked failed" in r.getMessage() for r in caplog.records)
