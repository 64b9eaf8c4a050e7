"""The checks: pure functions from a snapshot context to findings, one module per runbook branch.

Each check declares what it reads (`READS`: snapshot parts, further columns, status meanings), so
that a part that could not be loaded, or a column or label the environment lacks, turns exactly
the checks that read it into CHECK_FAILED findings instead of silent passes. The loader's `$select`
and the schema verification derive from the same declarations (diagnostics/schema.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from diagnostics.checks import extended, pulled, status, timing, usage
from diagnostics.checks.context import Context
from diagnostics.model import Finding
from diagnostics.schema import PARTS, ReadRegistry, Reads


@dataclass(frozen=True)
class Check:
    name: str
    # failure keys: snapshot parts, "table.column", "table.column (labels)" (schema.py)
    needs: frozenset[str]
    run: Callable[[Context], list[Finding]]


_PI, _US, _BS = "work365_providerinvoice", "work365_usagesummary", "work365_billingschedule"
_SUB, _BC, _PA = "work365_subscription", "work365_billingcontract", "work365_provideraccount"
_CUR = "transactioncurrency"
_INVOICES = ("providers", "provider_invoices", "usage_summaries", "notes")
# The currency an amount is in (findings show money with its currency): the invoice's currency
# lookup and the currency's ISO code. Standard columns of every Dataverse table with money.
_MONEY = ((_PI, "transactioncurrencyid"), (_CUR, "isocurrencycode"))
# Usage has no currency: its cost is in the currency of the provider invoice it belongs to.
_USAGE_MONEY = ((_US, "work365_usagesummary_providerinvoice"), *_MONEY)

# What each check reads beyond its parts' own columns. Declare every column whose value the
# check's verdict depends on: an undeclared one that differs would be read as empty.
_READS: dict[str, Reads] = {
    "invoice_pulled": Reads(("providers", "provider_invoices")),
    "unresolved_references": Reads(
        (*_INVOICES, "provider_accounts", "subscriptions", "currencies"),
        (
            (_PI, "work365_providerinvoice_message"),
            (_PA, "work365_provideraccount_name"),
            (_PA, "work365_provideraccount_account"),
            (_PA, "work365_provideraccount_providerspecificaccountid"),
            (_PA, "modifiedon"),
            (_SUB, "modifiedon"),
            (_CUR, "isocurrencycode"),
            (_CUR, "currencyname"),
            (_CUR, "modifiedon"),
        ),
        (
            (_PI, "statuscode"),
            (_PA, "work365_provideraccount_syncstatus"),
            (_PA, "statecode"),
            (_CUR, "statecode"),
        ),
    ),
    "write_in_products": Reads((*_INVOICES, "subscriptions"), ((_SUB, "work365_subscription_product"),)),
    "contract_timing": Reads(
        (*_INVOICES, "subscriptions", "contracts", "schedules", "invoices", "currencies"),
        (
            (_US, "work365_usagesummary_invoice"),
            (_US, "work365_usagesummary_cost"),
            *_USAGE_MONEY,
            (_SUB, "work365_subscription_provider"),
            (_BC, "work365_billingcontract_startdate"),
            (_BC, "work365_billingcontract_nextinvoicedate"),
            (_BC, "work365_billingcontract_billingoffset"),
            (_BS, "work365_billingschedule_rundate"),
            (_BS, "work365_billingschedule_invoice"),
            ("invoice", "invoicenumber"),
        ),
        ((_PI, "statuscode"), (_US, "statuscode"), (_BC, "statecode"), (_BS, "statuscode")),
    ),
    "invoice_state": Reads(
        (*_INVOICES, "currencies"),
        ((_PI, "work365_providerinvoice_message"), *_MONEY),
        ((_PI, "statuscode"),),
    ),
    "zero_placeholder": Reads(
        (*_INVOICES, "currencies"),
        ((_PI, "work365_providerinvoice_usagetotal"), *_MONEY),
        ((_PI, "statuscode"),),
    ),
    "period_gap": Reads(("providers", "provider_invoices")),
    "markup": Reads(
        (*_INVOICES, "subscriptions"),
        (
            (_US, "work365_usagesummary_markup"),
            (_US, "work365_usagesummary_invoice"),
            (_SUB, "work365_subscription_markup"),
            (_SUB, "modifiedon"),
        ),
    ),
    "archived_usage": Reads(
        (*_INVOICES, "subscriptions", "currencies"),
        ((_US, "work365_usagesummary_cost"), (_US, "work365_usagesummary_invoice"), *_USAGE_MONEY),
        ((_US, "statuscode"),),
    ),
    "billing_schedules": Reads(
        ("subscriptions", "contracts", "schedules"),
        (
            (_BS, "work365_billingschedule_cyclestart"),
            (_BS, "work365_billingschedule_cycleend"),
            (_BS, "work365_billingschedule_invoice"),
            (_BS, "work365_billingschedule_message"),
            (_BS, "work365_billingschedule_correlationid"),
        ),
        ((_BS, "statuscode"),),
    ),
    "contract_expired": Reads(
        (*_INVOICES, "subscriptions", "contracts", "currencies"),
        (
            *_USAGE_MONEY,
            (_BC, "work365_billingcontract_enddate"),
            (_BC, "work365_billingcontract_autorenew"),
            (_US, "work365_usagesummary_chargestartdate"),
            (_US, "work365_usagesummary_chargeenddate"),
            (_US, "work365_usagesummary_cost"),
        ),
    ),
    "subscription_contracts": Reads(("subscriptions", "contracts"), (), ((_BC, "statecode"),)),
}

READS = ReadRegistry(PARTS, _READS)

_RUN: dict[str, Callable[[Context], list[Finding]]] = {
    "invoice_pulled": pulled.check_invoice_pulled,
    "unresolved_references": usage.check_usage_summaries,
    "write_in_products": usage.check_write_in_products,
    "contract_timing": timing.check_contract_timing,
    "invoice_state": status.check_invoice_state,
    "zero_placeholder": extended.check_zero_placeholder,
    "period_gap": extended.check_period_gap,
    "markup": extended.check_markup,
    "archived_usage": extended.check_archived_usage,
    "billing_schedules": extended.check_billing_schedules,
    "contract_expired": extended.check_contract_expired,
    "subscription_contracts": extended.check_subscription_contracts,
}

CHECKS: tuple[Check, ...] = tuple(Check(name, READS.needs(name), run) for name, run in _RUN.items())
