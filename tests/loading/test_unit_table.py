"""The table of which checks run for which unit stays whole as checks and codes are added."""

from __future__ import annotations

from diagnostics.catalog import CODES
from diagnostics.checks import CHECKS
from diagnostics.loading.units import CHECK_CODES, PER_OPEN_PERIOD, UNIT_CHECKS, codes_for
from diagnostics.messages import (
    ContractsUnit,
    ContractUnit,
    ExpectedInvoiceUnit,
    InvoiceUnit,
    TenantPeriodUnit,
)


def test_every_check_says_which_codes_it_reports_and_every_code_has_one_check() -> None:
    assert set(CHECK_CODES) == {c.name for c in CHECKS}
    reported = [code for codes in CHECK_CODES.values() for code in codes]
    assert len(reported) == len(set(reported)), "a code comes from one check"
    assert set(reported) == {code for code, info in CODES.items() if info.section <= 5}


def test_every_unit_kind_has_its_checks_and_the_scan_runs_them_all() -> None:
    kinds = {
        u.model_fields["kind"].default
        for u in (InvoiceUnit, ExpectedInvoiceUnit, ContractUnit, ContractsUnit, TenantPeriodUnit)
    }
    assert set(UNIT_CHECKS) == kinds | {"tenant"}
    assert set(UNIT_CHECKS["tenant"]) == set(CHECK_CODES)
    assert all(set(names) <= set(CHECK_CODES) for names in UNIT_CHECKS.values())
    assert set(CHECK_CODES) >= PER_OPEN_PERIOD
    # A batch of contracts is checked as each of its contracts would be.
    assert UNIT_CHECKS["billing_contracts"] == UNIT_CHECKS["billing_contract"]


def test_every_code_is_some_unit_s_so_the_monitor_sees_every_finding_the_scan_sees() -> None:
    units = (
        InvoiceUnit(invoice_id="00000000-0000-4000-8000-000000000001"),
        ExpectedInvoiceUnit(provider_id="00000000-0000-4000-8000-000000000002", period="2026-10"),
        ContractUnit(contract_id="00000000-0000-4000-8000-000000000003", period="2026-10"),
        TenantPeriodUnit(period="2026-10"),
    )
    assert set().union(*(codes_for(u) for u in units)) == codes_for(None)
