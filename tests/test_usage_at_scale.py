"""The unresolved-references check on a large tenant: references are looked up through indexes,
so thousands of references against thousands of provider accounts take a moment, not minutes."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from diagnostics.checks.context import Context
from diagnostics.checks.usage import check_usage_summaries
from diagnostics.model import Note, PIStatus, ProviderAccount, Snapshot
from diagnostics.settings import Thresholds
from tests.test_engine import MICROSOFT, NOW, invoice

ACCOUNTS = 5_000
REFERENCES = 2_000


def _account(i: int) -> ProviderAccount:
    return ProviderAccount(
        id=f"pa-{i}",
        name=f"Customer {i:05d} Ltd",
        account_id=None,  # unmapped: every customer reference stays unresolved
        provider_specific_id=f"{i:08d}-0000-4000-8000-000000000000",
        provider_id="p1",
        sync_disabled=i % 3 == 0,
        active=True,
        created_on=datetime(2025, 1, 1, tzinfo=UTC),
        modified_on=None,
    )


def test_thousands_of_references_against_thousands_of_accounts() -> None:
    rows = ["Type,Id,Name,Message"]
    rows += [f"Customer,{i:08d}-0000-4000-8000-000000000000,,not found" for i in range(0, REFERENCES, 2)]
    rows += [
        f"Subscription,{i:08d}-1111-4000-8000-000000000000,,subscription of Customer {i:05d} Ltd"
        for i in range(1, REFERENCES, 2)
    ]
    pi = invoice(status=PIStatus.ERROR, status_label="Error")
    note = Note(
        id="n1",
        invoice_id=pi.id,
        filename="errors.csv",
        content="\r\n".join(rows).encode(),
        created_on=NOW,
    )
    snap = Snapshot(
        as_of=NOW,
        period="2026-10",
        providers=(MICROSOFT,),
        provider_invoices=(pi,),
        notes=(note,),
        provider_accounts=tuple(_account(i) for i in range(ACCOUNTS)),
    )

    started = time.process_time()
    findings = check_usage_summaries(Context(snap, Thresholds()))
    assert time.process_time() - started < 2.0  # about 0.1 s here; scanning per reference took minutes

    by_code = {f.code: f for f in findings}
    customers = by_code["US_BLOCKED_UNRESOLVED_CUSTOMER"].evidence["references"]
    assert len(customers) == REFERENCES // 2
    assert all(r["provider_account_exists"] for r in customers)
    subscriptions = by_code["US_BLOCKED_UNRESOLVED_SUBSCRIPTION"].evidence["references"]
    assert len(subscriptions) == REFERENCES // 2
    # each subscription's customer was found from the name in its message
    assert [r["customer_provider_account_id"] for r in subscriptions] == [
        f"pa-{i}" for i in range(1, REFERENCES, 2)
    ]
