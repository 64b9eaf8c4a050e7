"""Small builders of domain records for the pure planner and re-check tests."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from diagnostics.model import BillingContract, PIStatus, Provider, ProviderInvoice, ProviderKind

MICROSOFT = "aaaaaaaa-0000-4000-8000-000000000001"
MANUAL = "aaaaaaaa-0000-4000-8000-000000000002"


def provider(
    id: str = MICROSOFT, kind: ProviderKind = ProviderKind.AUTOMATIC_USAGE, day: int | None = 8
) -> Provider:
    return Provider(id=id, name=id[-4:], type_label=None, kind=kind, invoice_day=day)


def invoice(
    id: str,
    *,
    period: str,
    created: datetime,
    status: PIStatus = PIStatus.ACTIVE,
    usage_total: str | None = "10",
    provider_id: str = MICROSOFT,
    modified: datetime | None = None,
) -> ProviderInvoice:
    year, month = (int(p) for p in period.split("-"))
    return ProviderInvoice(
        id=id,
        name=f"invoice {id}",
        invoice_number=None,
        provider_id=provider_id,
        invoice_date=None,
        period_start=date(year, month, 1),
        period_end=None,
        total_amount=None,
        usage_total=None if usage_total is None else Decimal(usage_total),
        message=None,
        currency_id=None,
        status=status,
        status_label=status.value,
        created_on=created,
        modified_on=modified or created,
    )


def contract(id: str, next_invoice: date | None, *, active: bool = True) -> BillingContract:
    return BillingContract(
        id=id,
        name=id,
        customer_id=None,
        start_date=None,
        next_invoice_date=next_invoice,
        billing_policy=None,
        billing_frequency=None,
        billing_offset=None,
        end_date=None,
        auto_renew=None,
        active=active,
    )
