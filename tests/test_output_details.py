"""What the text shows: cut titles end with "…", amounts carry their currency, the sample tenant is
consistent (an Active invoice that claims usage has it)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from diagnostics.checks.context import Context
from diagnostics.engine import build_report
from diagnostics.model import Currency, PIStatus, UsageSummary
from diagnostics.render import to_text
from diagnostics.settings import Thresholds
from tests.test_engine import invoice, snapshot

SAMPLE = Path(__file__).resolve().parent.parent / "simulator" / "samples" / "sample-tenant.json"
USD = Currency(id="cur-usd", iso_code="USD", name="US Dollar", active=True, modified_on=None)


def test_a_cut_title_ends_with_an_ellipsis() -> None:
    message = "Import failed: " + "the provider's file could not be parsed because " * 6
    pi = invoice(status=PIStatus.ERROR, status_label="Error", message=message)
    (item,) = [
        f for f in build_report(snapshot(provider_invoices=(pi,)), Thresholds()).findings if not f.muted
    ]
    assert item.code == "PI_IMPORT_ERROR"
    assert item.title.endswith("…")
    assert len(item.title) < len(message)
    assert item.evidence["message"] == message  # the whole message stays in the evidence


def test_an_amount_carries_its_currency_in_the_title_and_the_text() -> None:
    pi = invoice(
        status=PIStatus.ERROR,
        status_label="Error",
        message="Checksum failed. Difference: -1329.7525",
        currency_id="cur-usd",
    )
    report = build_report(snapshot(provider_invoices=(pi,), currencies=(USD,)), Thresholds())
    checksum = next(f for f in report.findings if f.code == "PI_CHECKSUM_MISMATCH")
    assert checksum.title == "Checksum failed on G1: difference -1329.7525 USD"
    assert checksum.evidence["currency"] == "USD"
    assert "difference: -1329.7525 USD" in to_text(report)


def test_an_amount_whose_currency_is_unknown_says_so() -> None:
    pi = invoice(status=PIStatus.ERROR, status_label="Error", message="Checksum failed. Difference: 3")
    report = build_report(snapshot(provider_invoices=(pi,)), Thresholds())
    assert "difference: 3 (currency unknown)" in to_text(report)


def _rows_over_time(fixture: dict[str, Any]) -> list[dict[str, dict[str, dict[str, Any]]]]:
    """The tenant's rows at the start and after each timeline entry (upserts merged, deletes applied)."""
    keys = {
        "work365_providerinvoice": "work365_providerinvoiceid",
        "work365_usagesummary": "work365_usagesummaryid",
    }
    state = {t: {r[k]: dict(r) for r in fixture["dataverse"]["rows"].get(t, [])} for t, k in keys.items()}
    states = [json.loads(json.dumps(state))]
    for entry in sorted(fixture.get("timeline", []), key=lambda e: e["at"]):
        for table, rows in entry.get("upsert", {}).items():
            if table in keys:
                for row in rows:
                    state[table].setdefault(row[keys[table]], {}).update(row)
        for table, ids in entry.get("delete", {}).items():
            if table in keys:
                for row_id in ids:
                    state[table].pop(row_id, None)
        states.append(json.loads(json.dumps(state)))
    return states


def test_every_active_invoice_of_the_sample_tenant_that_claims_usage_has_it() -> None:
    fixture = json.loads(SAMPLE.read_text(encoding="utf-8"))
    for state in _rows_over_time(fixture):
        for pi_id, pi in state["work365_providerinvoice"].items():
            claimed = Decimal(str(pi.get("work365_providerinvoice_usagetotal") or 0))
            if pi.get("statuscode") != "Active" or claimed <= 0:
                continue
            costs = [
                Decimal(str(u.get("work365_usagesummary_cost") or 0))
                for u in state["work365_usagesummary"].values()
                if u.get("work365_usagesummary_providerinvoice") == pi_id
            ]
            assert costs, f"{pi['work365_name']} claims {claimed} of usage and has no usage summary"
            assert abs(sum(costs) - claimed) <= claimed * Decimal("0.001"), (
                pi["work365_name"],
                sum(costs),
                claimed,
            )


def _usage(id_: str, invoice_id: str | None) -> UsageSummary:
    return UsageSummary(
        id=id_,
        provider_invoice_id=invoice_id,
        subscription_id="sub-1",
        customer_id=None,
        invoice_id=None,
        charge_start=None,
        charge_end=None,
        cost=Decimal("2.50"),
        markup=None,
        archived=True,
        created_on=datetime(2026, 11, 10, tzinfo=UTC),
    )


def test_usage_costs_carry_the_currency_of_their_provider_invoice_or_say_it_is_unknown() -> None:
    eur = Currency(id="cur-eur", iso_code="EUR", name="Euro", active=True, modified_on=None)
    usd_invoice = invoice(id="pi-usd", currency_id="cur-usd")
    eur_invoice = invoice(id="pi-eur", currency_id="cur-eur")
    no_currency = invoice(id="pi-none", currency_id=None)
    ctx = Context(
        snapshot(provider_invoices=(usd_invoice, eur_invoice, no_currency), currencies=(USD, eur)),
        Thresholds(),
    )

    assert ctx.currency_of_usage([_usage("u1", "pi-usd"), _usage("u2", "pi-usd")]) == "USD"
    # Two currencies cannot be summed into one amount; an invoice without one, or one not loaded, is unknown.
    assert ctx.currency_of_usage([_usage("u1", "pi-usd"), _usage("u2", "pi-eur")]) is None
    assert ctx.currency_of_usage([_usage("u1", "pi-usd"), _usage("u2", "pi-none")]) is None
    assert ctx.currency_of_usage([_usage("u1", "pi-not-loaded")]) is None
    assert ctx.currency_of_usage([_usage("u1", None)]) is None
