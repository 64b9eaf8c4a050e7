"""The shared tenant of the simulator's tests (imported by conftest.py and the test modules)."""

from __future__ import annotations

import copy
from typing import Any

import httpx

from simulator import Simulator

API = "/api/data/v9.2/"
PROVIDER = "11111111-1111-4111-8111-111111111111"
INVOICE_ERROR = "22222222-2222-4222-8222-222222222201"
INVOICE_ACTIVE = "22222222-2222-4222-8222-222222222202"
INVOICE_POPULATING = "22222222-2222-4222-8222-222222222203"
ACCOUNT = "33333333-3333-4333-8333-333333333333"
NOTE = "44444444-4444-4444-8444-444444444444"

_TENANT: dict[str, Any] = {
    "fixture_version": 1,
    "description": "three provider invoices, one in Error with an errors.csv note",
    "now": "2026-11-12T09:00:00Z",
    "dataverse": {
        "rows": {
            "work365_provider": [
                {
                    "work365_providerid": PROVIDER,
                    "work365_name": "Microsoft",
                    "work365_provider_type": "Microsoft Partner Center",
                    "work365_provider_invoiceday": 8,
                }
            ],
            "work365_providerinvoice": [
                {
                    "work365_providerinvoiceid": INVOICE_ERROR,
                    "work365_name": "Microsoft G012345678 2026-10",
                    "work365_providerinvoice_invoicenumber": "G012345678",
                    "work365_providerinvoice_provider": PROVIDER,
                    "work365_providerinvoice_invoicedate": "2026-11-08",
                    "work365_providerinvoice_billingperiodstart": "2026-10-01",
                    "work365_providerinvoice_totalamount": 1234.56,
                    "work365_providerinvoice_message": "Unresolved references",
                    "statuscode": "Error",
                    "createdon": "2026-11-08T06:30:00Z",
                },
                {
                    "work365_providerinvoiceid": INVOICE_ACTIVE,
                    "work365_name": "Microsoft G000000001 2026-09",
                    "work365_providerinvoice_invoicenumber": "G000000001",
                    "work365_providerinvoice_provider": PROVIDER,
                    "work365_providerinvoice_invoicedate": "2026-10-08",
                    "work365_providerinvoice_totalamount": 99,
                    "statuscode": "Active",
                    "createdon": "2026-10-08T06:30:00+02:00",
                },
                {
                    "work365_providerinvoiceid": INVOICE_POPULATING,
                    "work365_name": "Pax8 P-1 2026-10",
                    "work365_providerinvoice_invoicenumber": "O'Brien-1",
                    "statuscode": "Populating",
                },
            ],
            "account": [{"accountid": ACCOUNT, "name": "Contoso", "new_region": "EU"}],
            "annotation": [
                {
                    "annotationid": NOTE,
                    "objectid": INVOICE_ERROR,
                    "objecttypecode": "work365_providerinvoice",
                    "subject": "Import errors",
                    "filename": "errors.csv",
                    "document_text": "Type,Id,Name,Message\r\nCustomer,abc,Contoso,Not found",
                }
            ],
        }
    },
    "partner_center": {
        "enabled": True,
        "invoices": [
            {
                "id": f"G00000000{i}",
                "invoiceDate": "2026-11-08T00:00:00Z",
                "totalCharges": 10.5 * i,
                "currencyCode": "USD",
                "invoiceType": "OneTime",
                "documentType": "Invoice",
            }
            for i in range(5)
        ],
    },
}


def tenant_dict() -> dict[str, Any]:
    """A fresh copy of the shared tenant, for tests that change it before loading."""
    return copy.deepcopy(_TENANT)


def client_for(sim: Simulator, token: str | None = None) -> httpx.Client:
    """An httpx client that trusts the simulator and carries a token it issued."""
    headers = {"Accept": "application/json", "OData-Version": "4.0", "OData-MaxVersion": "4.0"}
    headers["Authorization"] = f"Bearer {token or sim.issue_token(sim.dataverse_url + '/.default')}"
    return httpx.Client(base_url=sim.base_url, verify=sim.ssl_context(), headers=headers, timeout=10)
