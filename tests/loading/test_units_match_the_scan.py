"""Scoping loses nothing: on every scenario tenant, each unit of work's findings are the full scan's
findings about that unit's subjects (same dedup keys, same observations), read through the real
clients against the simulator; and together the units see every finding of the scan."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from diagnostics.adapters.http import RetryPolicy
from diagnostics.checks.context import Context
from diagnostics.engine import _focus_subjects
from diagnostics.errors import InvoiceNotFound
from diagnostics.loading import load_unit, review
from diagnostics.loading.units import codes_for, per_contract
from diagnostics.messages import (
    ContractsUnit,
    ContractUnit,
    ExpectedInvoiceUnit,
    InvoiceUnit,
    TenantPeriodUnit,
    Unit,
    unit_key,
)
from diagnostics.model import Finding, Report, Snapshot
from diagnostics.periods import add_months
from diagnostics.service import check_unit, scan
from diagnostics.settings import Thresholds
from simulator import Simulator
from simulator.connect import connection
from tests.loading.support import open_clients, row_period

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"
FIXTURES = sorted(p for p in SCENARIOS.glob("*.json") if p.stem != "expected")
SAMPLE = Path(__file__).resolve().parents[2] / "simulator" / "samples" / "sample-tenant.json"
_NO_RETRY = RetryPolicy(max_attempts=1)  # Partner Center down in some tenants: no retrying
_T = Thresholds()


def _units(sim: Simulator, period: str, open_periods: tuple[str, ...]) -> list[Unit]:
    """Every unit of the tenant: the tenant-wide one, each provider's expected invoice of the period
    and the look-back, each contract, each provider invoice of the period and of the earlier open
    periods."""
    units: list[Unit] = [TenantPeriodUnit(period=period)]
    units += [
        ExpectedInvoiceUnit(provider_id=r["work365_providerid"], period=add_months(period, -back))
        for r in sim.rows("work365_provider")
        for back in range(_T.gap_lookback_months + 1)
    ]
    units += [
        ContractUnit(contract_id=r["work365_billingcontractid"], period=period)
        for r in sim.rows("work365_billingcontract")
    ]
    units += [
        InvoiceUnit(invoice_id=r["work365_providerinvoiceid"])
        for r in sim.rows("work365_providerinvoice")
        if row_period(r) in {period, *open_periods}
    ]
    return units


def _belongs(scanned: Report, unit: Unit, snapshot: Snapshot) -> dict[str, Finding]:
    """The scan's findings that are the unit's: its codes, its subjects, its period (the tenant unit
    and an expected invoice look back over the earlier periods themselves)."""
    subjects = _focus_subjects(Context(snapshot, _T)) or set()
    any_period = isinstance(unit, TenantPeriodUnit | ExpectedInvoiceUnit)
    return {
        f.dedup_key: f
        for f in scanned.findings
        # a record that cannot be read fails its own subject in every report that reads it
        if (f.code in codes_for(unit) or f.code == "CHECK_FAILED")
        and f.subject.id in subjects
        and (any_period or f.period == snapshot.period)
    }


def _observed(f: Finding) -> tuple[str, dict[str, Any]]:
    # Muting and severity roll-up depend on the rest of the report, which a unit holds only in part;
    # what the finding observed must be the same.
    evidence = {k: v for k, v in f.evidence.items() if k != "severity_raised"}
    return f.title.split("; ")[0], evidence


async def _unit_reports(sim: Simulator, period: str) -> list[tuple[Unit, Snapshot, Report]]:
    async with open_clients(sim, retry=_NO_RETRY) as (dv, pc, schema):
        tenant = await load_unit(dv, pc, schema, _T, TenantPeriodUnit(period=period), as_of=sim.now)
        out = []
        for unit in _units(sim, period, tenant.open_periods):
            snapshot = await load_unit(dv, pc, schema, _T, unit, as_of=sim.now)
            out.append((unit, snapshot, review(snapshot, _T)))
        return out


@pytest.mark.parametrize("fixture", [*FIXTURES, SAMPLE], ids=[p.stem for p in [*FIXTURES, SAMPLE]])
def test_each_unit_reports_what_the_scan_reports_about_its_subjects(fixture: Path) -> None:
    with Simulator(fixture) as sim:
        scanned = asyncio.run(scan(connection(sim, retry=_NO_RETRY), sim.now))
        covered: set[str] = set()
        for unit, snapshot, report in asyncio.run(_unit_reports(sim, scanned.period)):
            expected = _belongs(scanned, unit, snapshot)
            got = {f.dedup_key: f for f in report.findings if f.subject.type != "tenant"}
            assert set(got) == set(expected), f"{unit_key(unit)}: {sorted(set(got) ^ set(expected))}"
            for key, item in got.items():
                assert _observed(item) == _observed(expected[key]), f"{unit_key(unit)}: {key}"
            covered |= set(got)
    assert covered == {f.dedup_key for f in scanned.findings if f.subject.type != "tenant"}


def test_an_unknown_invoice_is_not_found() -> None:
    with Simulator(SAMPLE) as sim:
        unit = InvoiceUnit(invoice_id="00000000-0000-4000-8000-000000000001")
        with pytest.raises(InvoiceNotFound, match="00000000-0000-4000-8000-000000000001"):
            asyncio.run(check_unit(connection(sim, retry=_NO_RETRY), unit, sim.now))


async def _batch_and_singles(sim: Simulator, period: str) -> tuple[list[tuple[str, Report]], list[Report]]:
    ids = tuple(sorted(r["work365_billingcontractid"] for r in sim.rows("work365_billingcontract")))
    async with open_clients(sim, retry=_NO_RETRY) as (dv, pc, schema):
        batch = await load_unit(
            dv, pc, schema, _T, ContractsUnit(period=period, contract_ids=ids), as_of=sim.now
        )
        split = [(unit_key(u), r) for u, r in per_contract(batch, review(batch, _T))]
        singles = []
        for contract in ids:
            unit = ContractUnit(contract_id=contract, period=period)
            singles.append(review(await load_unit(dv, pc, schema, _T, unit, as_of=sim.now), _T))
        return split, singles


@pytest.mark.parametrize("fixture", [*FIXTURES, SAMPLE], ids=[p.stem for p in [*FIXTURES, SAMPLE]])
def test_a_batch_of_contracts_reports_each_contract_as_its_own_unit_does(fixture: Path) -> None:
    """The planner's batch, told per contract, is what each contract's own unit reports: the same
    findings (muting and roll-up included) under the same unit key, so notes and alerts are the same."""
    with Simulator(fixture) as sim:
        if not sim.rows("work365_billingcontract"):
            pytest.skip("no contracts")
        period = asyncio.run(scan(connection(sim, retry=_NO_RETRY), sim.now)).period
        split, singles = asyncio.run(_batch_and_singles(sim, period))
    assert [key for key, _ in split] == [
        f"contract:{c}:{period}"
        for c in sorted(r["work365_billingcontractid"] for r in sim.rows("work365_billingcontract"))
    ]
    for (key, got), expected in zip(split, singles, strict=True):
        assert got.findings == expected.findings, key
        assert got.statistics.findings == expected.statistics.findings, key
