"""The alerts replay's tenant: findings that stay, rise and resolve over ten simulated days."""

from __future__ import annotations

import copy
from typing import Any

from conftest import EU, US, _invoice, window_tenant

CHECKSUM = "pi-checksum-2026-10"  # warning before the usage-file day (11th), error after; fixed the 15th
IMPORT_ERROR = "pi-import-error-2026-10"  # in Error all along, unchanged
IMPORT_MESSAGE = (
    "An error occurred while downloading the invoice line items: The remote server returned an error: "
    "(401) Unauthorized."
)
CHECKSUM_MESSAGE = (
    "Checksum validation failed: invoice total 1200.00 does not match the sum of line items 1187.55 "
    "(difference 12.45)."
)


def _usage(invoice: str) -> list[dict[str, Any]]:
    return [
        {
            "work365_usagesummaryid": f"usage-{invoice}-{i}",
            "work365_name": f"Usage oct-Contoso-{i}",
            "work365_usagesummary_providerinvoice": invoice,
            "work365_usagesummary_subscription": "sub-contoso-azure",
            "work365_usagesummary_customer": "contoso",
            "work365_usagesummary_chargestartdate": start,
            "work365_usagesummary_chargeenddate": end,
            "work365_usagesummary_cost": 600.0,
            "work365_usagesummary_markup": 15.0,
            "statuscode": "Active",
        }
        for i, (start, end) in enumerate((("2026-10-01", "2026-10-15"), ("2026-10-16", "2026-10-31")))
    ]


def alerts_tenant() -> dict[str, Any]:
    tenant = copy.deepcopy(window_tenant())
    tenant["description"] = "an invoice in Error all along; a checksum difference that rises, then is fixed"
    rows = tenant["dataverse"]["rows"]
    checksum = _invoice(CHECKSUM, EU, "G0000000003", "2026-11-09T05:00:00Z")
    checksum |= {"statuscode": "Error", "work365_providerinvoice_message": CHECKSUM_MESSAGE}
    failed = _invoice(IMPORT_ERROR, US, "G0000000004", "2026-11-09T05:30:00Z")
    failed |= {"statuscode": "Error", "work365_providerinvoice_message": IMPORT_MESSAGE}
    rows["work365_providerinvoice"] = [checksum, failed]
    rows["work365_usagesummary"] = _usage(CHECKSUM)[:0] + _usage(IMPORT_ERROR)
    tenant["timeline"] = [
        {
            "at": "2026-11-15T04:00:00Z",
            "description": "the checksum override is entered; Work 365 imports the usage",
            "upsert": {
                "work365_providerinvoice": [
                    {
                        "work365_providerinvoiceid": CHECKSUM,
                        "statuscode": "Active",
                        "work365_providerinvoice_usagetotal": 1200.0,
                        "work365_providerinvoice_message": None,
                    }
                ],
                "work365_usagesummary": _usage(CHECKSUM),
            },
        }
    ]
    return tenant
