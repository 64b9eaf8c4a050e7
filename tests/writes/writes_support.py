"""The tenant of the write tests: a provider invoice in Error whose errors.csv names one customer
without a mapped provider account, the account it should map to, and a second invoice."""

from __future__ import annotations

import copy
from typing import Any

from diagnostics.adapters.dataverse import DataverseClient
from diagnostics.adapters.http import RetryPolicy
from simulator import Simulator
from simulator.connect import sim_credential

PROVIDER = "11111111-1111-4111-8111-111111111111"
INVOICE = "22222222-2222-4222-8222-222222222201"
OTHER_INVOICE = "22222222-2222-4222-8222-222222222202"
ACCOUNT = "33333333-3333-4333-8333-333333333301"
PROVIDER_ACCOUNT = "44444444-4444-4444-8444-444444444401"
NOTE = "55555555-5555-4555-8555-555555555501"
OTHER_NOTE = "55555555-5555-4555-8555-555555555502"
TENANT_ID = "9f0c1d2e-3b4a-4c5d-8e6f-7a8b9c0d1e2f"
ERRORS_CSV = f"Type,Id,Name,Message\r\nCustomer,{TENANT_ID},Tailspin Toys,Customer not found\r\n"

_TENANT: dict[str, Any] = {
    "fixture_version": 1,
    "description": "writes: an unmapped provider account, an invoice in Error with errors.csv",
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
            "account": [{"accountid": ACCOUNT, "name": "Tailspin Toys"}],
            "work365_provideraccount": [
                {
                    "work365_provideraccountid": PROVIDER_ACCOUNT,
                    "work365_provideraccount_name": "Tailspin Toys",
                    "work365_provideraccount_providerspecificaccountid": TENANT_ID,
                    "work365_provideraccount_provider": PROVIDER,
                    "work365_provideraccount_syncstatus": "Enabled",
                }
            ],
            "work365_providerinvoice": [
                {
                    "work365_providerinvoiceid": INVOICE,
                    "work365_name": "Microsoft G012345678 2026-10",
                    "work365_providerinvoice_invoicenumber": "G012345678",
                    "work365_providerinvoice_provider": PROVIDER,
                    "work365_providerinvoice_invoicedate": "2026-11-08",
                    "statuscode": "Error",
                },
                {
                    "work365_providerinvoiceid": OTHER_INVOICE,
                    "work365_name": "Microsoft G000000001 2026-09",
                    "work365_providerinvoice_invoicenumber": "G000000001",
                    "work365_providerinvoice_provider": PROVIDER,
                    "statuscode": "Active",
                },
            ],
            "annotation": [
                {
                    "annotationid": NOTE,
                    "objectid": INVOICE,
                    "objecttypecode": "work365_providerinvoice",
                    "filename": "errors.csv",
                    "document_text": ERRORS_CSV,
                },
                {
                    "annotationid": OTHER_NOTE,
                    "objectid": OTHER_INVOICE,
                    "objecttypecode": "work365_providerinvoice",
                    "subject": "kept",
                },
            ],
        }
    },
}


def tenant(**dataverse: Any) -> dict[str, Any]:
    """A fresh copy of the tenant, with extra `dataverse` keys (e.g. denied_privileges)."""
    doc = copy.deepcopy(_TENANT)
    doc["dataverse"].update(dataverse)
    return doc


def client(sim: Simulator, retry: RetryPolicy | None = None, **kwargs: Any) -> DataverseClient:
    """The real client, signed in with the real azure-identity credential at the simulator."""
    credential = sim_credential(sim, connection_verify=sim.ca_file)
    return DataverseClient(sim.base_url, credential, verify=sim.ssl_context(), retry=retry, **kwargs)


class Sleeps:
    """Stands in for asyncio.sleep: records each pause and returns at once."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
