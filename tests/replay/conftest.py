"""Timeline fixtures of the replay tests, and one replay per configuration, shared by the tests
that read it (a replay starts a simulator, a broker and AMQP links: a few seconds each)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from replay_support import run_monitor

NOW = "2026-11-09T06:00:00Z"
EU, US = "provider-microsoft-eu", "provider-microsoft-us"
INVOICE_EU, INVOICE_US = "pi-eu-2026-10", "pi-us-2026-10"
# The replays run with a 4-day pull window and no look-back at earlier months, so that a window
# opens and closes within a few simulated days and each day plans three units: the two invoices
# and the tenant-wide checks.
ENV = {"DIAG_PULL_WINDOW_DAYS": "4", "DIAG_GAP_LOOKBACK_MONTHS": "0", "DIAG_SCHEDULE": "0 0 7 * * *"}


def _provider(key: str, name: str) -> dict[str, Any]:
    return {
        "work365_providerid": key,
        "work365_name": name,
        "work365_provider_type": "Microsoft Partner Center",
        "work365_provider_invoiceday": 8,
    }


def _invoice(key: str, provider: str, number: str, created: str) -> dict[str, Any]:
    return {
        "work365_providerinvoiceid": key,
        "work365_name": f"Microsoft {number} 2026-10",
        "work365_providerinvoice_invoicenumber": number,
        "work365_providerinvoice_provider": provider,
        "work365_providerinvoice_invoicedate": "2026-11-08",
        "work365_providerinvoice_billingperiodstart": "2026-10-01",
        "work365_providerinvoice_billingperiodend": "2026-10-31",
        "work365_providerinvoice_totalamount": 1200.0,
        "work365_providerinvoice_usagetotal": 0,
        "transactioncurrencyid": "usd",
        "statuscode": "Populating",
        "createdon": created,
    }


def window_tenant() -> dict[str, Any]:
    """Two Microsoft invoices imported on the 9th without usage: the EU one gets its usage on the
    11th; the US one never does, and its pull window closes on the 13th."""
    usage = [
        {
            "work365_usagesummaryid": f"usage-eu-{i}",
            "work365_name": f"Usage oct-Contoso-{i}",
            "work365_usagesummary_providerinvoice": INVOICE_EU,
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
    return {
        "fixture_version": 1,
        "description": "two October invoices waiting for usage: one gets it, one never does",
        "now": NOW,
        "dataverse": {
            "rows": {
                "account": [{"accountid": "contoso", "name": "Contoso"}],
                "transactioncurrency": [
                    {"transactioncurrencyid": "usd", "isocurrencycode": "USD", "currencyname": "US Dollar"}
                ],
                "work365_provider": [_provider(EU, "Microsoft EU"), _provider(US, "Microsoft US")],
                "work365_provideraccount": [
                    {
                        "work365_provideraccountid": "pa-contoso",
                        "work365_provideraccount_name": "Contoso",
                        "work365_provideraccount_providerspecificaccountid": "3f2a9c1e-5b7d-4e8f-9a0b-1c2d3e4f5a6b",
                        "work365_provideraccount_provider": EU,
                        "work365_provideraccount_account": "contoso",
                        "work365_provideraccount_syncstatus": "Enabled",
                        "createdon": "2025-01-01T00:00:00Z",
                    }
                ],
                "work365_billingcontract": [
                    {
                        "work365_billingcontractid": "bc-contoso",
                        "work365_name": "Contoso – Azure",
                        "work365_billingcontract_customer": "contoso",
                        "work365_billingcontract_startdate": "2025-01-20",
                        "work365_billingcontract_nextinvoicedate": "2026-11-20",
                        "work365_billingcontract_billingpolicy": "Arrears",
                        "work365_billingcontract_billingfrequency": "Monthly",
                        "work365_billingcontract_billingoffset": 0,
                        "statecode": "Active",
                        "createdon": "2025-01-01T00:00:00Z",
                    }
                ],
                "work365_subscription": [
                    {
                        "work365_subscriptionid": "sub-contoso-azure",
                        "work365_subscription_subscriptionname": "Microsoft Azure",
                        "work365_subscription_customer": "contoso",
                        "work365_subscription_billingcontract": "bc-contoso",
                        "work365_subscription_provider": EU,
                        "work365_subscription_providersubscriptionid": "a1b2c3d4-1111-4aaa-8bbb-0c0d0e0f1011",
                        "work365_subscription_subscriptiontype": "Usage Based",
                        "work365_subscription_markup": 15.0,
                        "statuscode": "Active",
                        "createdon": "2025-01-01T00:00:00Z",
                    }
                ],
                "work365_providerinvoice": [
                    _invoice(INVOICE_EU, EU, "G0000000001", "2026-11-09T05:00:00Z"),
                    _invoice(INVOICE_US, US, "G0000000002", "2026-11-09T05:30:00Z"),
                ],
            }
        },
        "partner_center": {"enabled": False},
        "timeline": [
            {
                "at": "2026-11-11T04:00:00Z",
                "description": "Work 365 pulls the EU invoice's usage",
                "upsert": {
                    "work365_providerinvoice": [
                        {
                            "work365_providerinvoiceid": INVOICE_EU,
                            "statuscode": "Active",
                            "work365_providerinvoice_usagetotal": 1200.0,
                        }
                    ],
                    "work365_usagesummary": usage,
                },
            }
        ],
    }


@pytest.fixture(scope="session")
def window_fixture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("fixtures") / "window.json"
    path.write_text(json.dumps(window_tenant(), indent=1), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def replay_env() -> Iterator[None]:
    """The replays' settings, as app settings in the environment, for the module's tests (the runs
    they share are made once); undone after, so no other test sees them."""
    patch = pytest.MonkeyPatch()
    for name, value in ENV.items():
        patch.setenv(name, value)
    yield
    patch.undo()


@pytest.fixture(scope="module")
def window_run(replay_env: None, window_fixture: Path) -> tuple[int, dict[str, Any]]:
    return run_monitor("--simulate", str(window_fixture))
