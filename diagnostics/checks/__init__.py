"""The checks: pure functions from a snapshot context to findings, one module per runbook branch.

Each check names the snapshot parts it needs, so that a part that could not be loaded turns the
check into a CHECK_FAILED finding instead of a silent pass.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from diagnostics.checks import extended, pulled, status, timing, usage
from diagnostics.checks.context import Context
from diagnostics.model import Finding


@dataclass(frozen=True)
class Check:
    name: str
    needs: frozenset[str]
    run: Callable[[Context], list[Finding]]


def _check(name: str, run: Callable[[Context], list[Finding]], *needs: str) -> Check:
    return Check(name, frozenset(needs), run)


_INVOICES = ("providers", "provider_invoices", "usage_summaries", "notes")

CHECKS: tuple[Check, ...] = (
    _check("invoice_pulled", pulled.check_invoice_pulled, "providers", "provider_invoices"),
    _check(
        "unresolved_references",
        usage.check_usage_summaries,
        *_INVOICES,
        "provider_accounts",
        "subscriptions",
        "currencies",
    ),
    _check("write_in_products", usage.check_write_in_products, *_INVOICES, "subscriptions"),
    _check(
        "contract_timing",
        timing.check_contract_timing,
        *_INVOICES,
        "subscriptions",
        "contracts",
        "schedules",
        "invoices",
    ),
    _check("invoice_state", status.check_invoice_state, *_INVOICES),
    _check("zero_placeholder", extended.check_zero_placeholder, *_INVOICES),
    _check("period_gap", extended.check_period_gap, "providers", "provider_invoices"),
    _check("markup", extended.check_markup, *_INVOICES, "subscriptions"),
    _check("archived_usage", extended.check_archived_usage, *_INVOICES, "subscriptions"),
    _check("billing_schedules", extended.check_billing_schedules, "subscriptions", "contracts", "schedules"),
    _check("contract_expired", extended.check_contract_expired, *_INVOICES, "subscriptions", "contracts"),
    _check("subscription_contracts", extended.check_subscription_contracts, "subscriptions", "contracts"),
)
