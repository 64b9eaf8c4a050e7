"""The generated tenant's timeline (`generate(..., timeline_days=N)`, `--timeline N`): seeded, loadable,
and doing what it says - an invoice imported late whose usage lands over days, faults a person fixes,
contracts invoicing on their days, next month's invoices late or never - checked on the simulator
with the timeline applied and a scan of the result."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import pytest

from diagnostics.model import Report
from diagnostics.service import scan
from simulator import Simulator, load_fixture
from simulator.__main__ import main as simulator_main
from simulator.connect import connection
from simulator.generate import (
    ARCHIVED,
    CONTRACT_INVOICED,
    INDIRECT,
    LATE_INVOICE,
    MARKUP_MISSING,
    NEVER_IMPORTED,
    NO_CONTRACT,
    NOW,
    TOO_EARLY,
    USAGE_LANDED,
    Generated,
    Shares,
    generate,
)

START = datetime.fromisoformat(NOW.replace("Z", "+00:00"))
SHARES = Shares(0.04, 0.04, 0.04, 0.08)


@pytest.fixture(scope="module")
def week() -> Generated:
    return generate(120, seed=4, subscriptions=2, usage=3, shares=SHARES, timeline_days=7)


@pytest.fixture(scope="module")
def month() -> Generated:
    return generate(40, seed=4, subscriptions=2, usage=2, shares=SHARES, timeline_days=30)


@pytest.fixture(scope="module")
def after_the_week(week: Generated) -> tuple[Report, dict[str, dict[str, object]]]:
    """A scan at the week's end with the whole timeline applied, and the contracts as they are then."""
    with Simulator(load_fixture(week.fixture)) as sim:
        sim.advance_to(START + timedelta(days=7))
        report = asyncio.run(scan(connection(sim), sim.now))
        contracts = {r["work365_billingcontractid"]: r for r in sim.rows("work365_billingcontract")}
    return report, contracts


def _rows(generated: Generated, table: str) -> list[dict[str, object]]:
    return [row for entry in generated.fixture["timeline"] for row in entry.get("upsert", {}).get(table, [])]


def test_the_same_seed_gives_the_same_timeline_and_another_seed_another() -> None:
    one = generate(30, seed=2, timeline_days=10)
    assert one.fixture == generate(30, seed=2, timeline_days=10).fixture
    assert one.events == generate(30, seed=2, timeline_days=10).events
    assert one.fixture["timeline"] != generate(30, seed=3, timeline_days=10).fixture["timeline"]


def test_without_a_timeline_the_tenant_is_unchanged() -> None:
    assert "timeline" not in generate(30, seed=2).fixture
    plain, timed = generate(30, seed=2), generate(30, seed=2, timeline_days=10)
    # Only the invoice imported late (and its usage) leave the rows for the timeline.
    [late] = timed.events[LATE_INVOICE]
    kept = [
        r
        for r in plain.fixture["dataverse"]["rows"]["work365_usagesummary"]
        if r["work365_usagesummary_providerinvoice"] != late
    ]
    assert timed.fixture["dataverse"]["rows"]["work365_usagesummary"] == kept
    assert (
        timed.fixture["dataverse"]["rows"]["work365_subscription"]
        == plain.fixture["dataverse"]["rows"]["work365_subscription"]
    )


def test_entries_are_in_order_after_now_and_inside_the_days(week: Generated) -> None:
    moments = [datetime.fromisoformat(e["at"].replace("Z", "+00:00")) for e in week.fixture["timeline"]]
    assert moments == sorted(moments)
    assert all(START < m < START + timedelta(days=7) for m in moments)
    assert len(load_fixture(week.fixture).timeline) == len(moments)


def test_an_invoice_is_imported_late_and_its_usage_lands_over_days(week: Generated) -> None:
    [late] = week.events[LATE_INVOICE]
    assert late in week.events[USAGE_LANDED]
    assert late not in {
        r["work365_providerinvoiceid"] for r in week.fixture["dataverse"]["rows"]["work365_providerinvoice"]
    }
    landed = [
        e
        for e in week.fixture["timeline"]
        if any(
            u.get("work365_usagesummary_providerinvoice") == late
            for u in e.get("upsert", {}).get("work365_usagesummary", [])
        )
    ]
    assert len({e["at"][:10] for e in landed}) == 3
    states = [r for r in _rows(week, "work365_providerinvoice") if r["work365_providerinvoiceid"] == late]
    assert [s["statuscode"] for s in states] == ["Populating", "Active"]
    usage = [
        u
        for u in _rows(week, "work365_usagesummary")
        if u.get("work365_usagesummary_providerinvoice") == late
    ]
    assert states[-1]["work365_providerinvoice_usagetotal"] == pytest.approx(
        sum(u["work365_usagesummary_cost"] for u in usage)
    )


def test_a_fixed_fault_is_gone_and_an_unfixed_one_stays(
    week: Generated, after_the_week: tuple[Report, dict[str, dict[str, object]]]
) -> None:
    report, _ = after_the_week
    found = {(f.code, f.subject.id) for f in report.findings}
    for code in (MARKUP_MISSING, NO_CONTRACT, ARCHIVED, TOO_EARLY):
        fixed = week.fixed(code)
        assert fixed, code  # half of each, rounded up
        assert not {(code, s) for s in fixed} & found, code
    # Faults planted on rows already there at `now` and not fixed are still found.
    for code in (MARKUP_MISSING, TOO_EARLY):
        unfixed = week.planted[code] - week.fixed(code)
        assert {(code, s) for s in unfixed} <= found, code


def test_contracts_invoice_on_their_days_and_move_on_a_month(
    week: Generated, after_the_week: tuple[Report, dict[str, dict[str, object]]]
) -> None:
    _, contracts = after_the_week
    original = {
        r["work365_billingcontractid"]: r
        for r in week.fixture["dataverse"]["rows"]["work365_billingcontract"]
    }
    invoiced = week.events[CONTRACT_INVOICED]
    assert invoiced
    for bc in invoiced:
        before = datetime.fromisoformat(str(original[bc]["work365_billingcontract_nextinvoicedate"]))
        after = datetime.fromisoformat(str(contracts[bc]["work365_billingcontract_nextinvoicedate"]))
        assert (after - before).days in (28, 29, 30, 31) or bc in week.fixed(TOO_EARLY)
    billed = [u for u in _rows(week, "work365_usagesummary") if "work365_usagesummary_invoice" in u]
    assert len(billed) >= len(invoiced)


def test_next_months_invoices_come_late_or_never(month: Generated) -> None:
    imported = {
        r["work365_name"]: r
        for r in _rows(month, "work365_providerinvoice")
        if r.get("statuscode") == "Populating"
    }
    microsoft = imported["Microsoft 2026-11"]
    assert (
        datetime.fromisoformat(str(microsoft["createdon"]).replace("Z", "+00:00")).date()
        > datetime(2026, 12, 8, tzinfo=UTC).date()
    )
    assert f"{INDIRECT[1]} 2026-11" not in imported
    assert len(month.events[NEVER_IMPORTED]) == 1
    assert microsoft["work365_providerinvoiceid"] in month.events[LATE_INVOICE]


def test_the_command_prints_the_timeline(capsys: pytest.CaptureFixture[str]) -> None:
    assert simulator_main(["generate", "--customers", "3", "--seed", "9", "--timeline", "5"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads(json.dumps(generate(3, seed=9, timeline_days=5).fixture))
    load_fixture(printed)


def test_a_timeline_longer_than_sixty_days_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert simulator_main(["generate", "--customers", "3", "--timeline", "61"]) == 2
    assert "--timeline 61" in capsys.readouterr().err
