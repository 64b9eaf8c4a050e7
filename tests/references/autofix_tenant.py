"""Timeline tenants of the auto-fix tests: an October Microsoft invoice in Error whose errors.csv
names one customer, Tailspin Toys, whose provider account has an empty Account column.

- `confident()`: CRM holds one "Tailspin Toys" account: a confident match. Once the invoice is
  deleted, the simulated Work 365 imports it again at its next 06:00 UTC run.
- `ambiguous()`: CRM holds "Tailspin Toys" and "Tailspin Toys Limited": never applied.
"""

from __future__ import annotations

import copy
from typing import Any

PROVIDER = "11111111-1111-4111-8111-111111111111"
INVOICE = "22222222-2222-4222-8222-222222222201"
REIMPORTED = "22222222-2222-4222-8222-222222222299"
ACCOUNT = "33333333-3333-4333-8333-333333333301"
SECOND_ACCOUNT = "33333333-3333-4333-8333-333333333302"
PROVIDER_ACCOUNT = "44444444-4444-4444-8444-444444444401"
NOTE = "55555555-5555-4555-8555-555555555501"
TENANT_ID = "9f0c1d2e-3b4a-4c5d-8e6f-7a8b9c0d1e2f"
CURRENCY = "66666666-6666-4666-8666-666666666601"
ERRORS_CSV = f"Type,Id,Name,Message\r\nCustomer,{TENANT_ID},Tailspin Toys,Customer could not be resolved\r\n"
NOW = "2026-11-12T09:00:00Z"

_INVOICE: dict[str, Any] = {
    "work365_providerinvoiceid": INVOICE,
    "work365_name": "Microsoft G012345678 2026-10",
    "work365_providerinvoice_invoicenumber": "G012345678",
    "work365_providerinvoice_provider": PROVIDER,
    "work365_providerinvoice_invoicedate": "2026-11-08",
    "work365_providerinvoice_billingperiodstart": "2026-10-01",
    "work365_providerinvoice_billingperiodend": "2026-10-31",
    "transactioncurrencyid": CURRENCY,
    "work365_providerinvoice_message": "Usage import failed: unresolved references (see errors.csv)",
    "statuscode": "Error",
    "createdon": "2026-11-09T06:00:00Z",
}

_TENANT: dict[str, Any] = {
    "fixture_version": 1,
    "description": "auto-fix: one unmapped customer blocks the October Microsoft invoice",
    "now": NOW,
    "dataverse": {
        "rows": {
            "transactioncurrency": [
                {"transactioncurrencyid": CURRENCY, "isocurrencycode": "USD", "currencyname": "US Dollar"}
            ],
            "work365_provider": [
                {
                    "work365_providerid": PROVIDER,
                    "work365_name": "Microsoft",
                    "work365_provider_type": "Microsoft Partner Center",
                    "work365_provider_invoiceday": 8,
                }
            ],
            "account": [
                {"accountid": ACCOUNT, "name": "Tailspin Toys", "websiteurl": "https://tailspintoys.com"}
            ],
            "work365_provideraccount": [
                {
                    "work365_provideraccountid": PROVIDER_ACCOUNT,
                    "work365_provideraccount_name": "Tailspin Toys",
                    "work365_provideraccount_providerspecificaccountid": TENANT_ID,
                    "work365_provideraccount_provider": PROVIDER,
                    "work365_provideraccount_syncstatus": "Enabled",
                    "statecode": "Active",
                }
            ],
            "work365_providerinvoice": [_INVOICE],
            "annotation": [
                {
                    "annotationid": NOTE,
                    "objectid": INVOICE,
                    "objecttypecode": "work365_providerinvoice",
                    "filename": "errors.csv",
                    "document_text": ERRORS_CSV,
                }
            ],
        }
    },
    "partner_center": {"enabled": False},
}


def confident(*, denied: list[str] | None = None, reimport: bool = True) -> dict[str, Any]:
    doc = copy.deepcopy(_TENANT)
    if denied:
        doc["dataverse"]["denied_privileges"] = denied
    if not reimport:
        # Work 365 would import a deleted invoice again at its next run (the simulator does, by
        # default); here nothing is deleted that should be, so there is nothing to re-import.
        return doc
    # When the tool deletes the invoice, the simulated Work 365 imports it again at 06:00 UTC.
    doc["reimports"] = {INVOICE: {"work365_providerinvoice": {"work365_providerinvoiceid": REIMPORTED}}}
    return doc


def ambiguous() -> dict[str, Any]:
    doc = confident(reimport=False)
    doc["dataverse"]["rows"]["account"].append({"accountid": SECOND_ACCOUNT, "name": "Tailspin Toys Limited"})
    doc["dataverse"]["rows"]["account"][0].pop("websiteurl")
    return doc


def fixed_by_hand() -> dict[str, Any]:
    """A person mapped the provider account an hour ago; the invoice still waits to be re-imported."""
    doc = confident(reimport=False)
    [account] = doc["dataverse"]["rows"]["work365_provideraccount"]
    account |= {"work365_provideraccount_account": ACCOUNT, "modifiedon": "2026-11-12T08:00:00Z"}
    return doc


def known_to_partner_center() -> dict[str, Any]:
    """CRM calls the customer "TT Retail", only its website says who it is; Partner Center knows
    the customer's tenant as Tailspin Toys, tailspintoys.com."""
    doc = confident(reimport=False)
    doc["dataverse"]["rows"]["account"] = [
        {"accountid": ACCOUNT, "name": "TT Retail", "websiteurl": "https://www.tailspintoys.com/"}
    ]
    doc["partner_center"] = {
        "enabled": True,
        "customers": [
            {
                "id": TENANT_ID,
                "companyProfile": {"companyName": "Tailspin Toys", "domain": "tailspintoys.com"},
            }
        ],
    }
    return doc
