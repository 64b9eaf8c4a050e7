"""A partner's tenant of any size, reproducible from a seed, with a chosen share of planted faults.

`python -m simulator generate --customers N [--seed S] > fixture.json`

What it holds, for the period before `now` (October 2026; September is billed and closed):
- one Microsoft Partner Center provider and one provider invoice per period covering every Microsoft
  customer, its usage total the sum of its usage rows;
- indirect providers (manual import) whose customers' usage is on one manual invoice each;
- per customer a billing contract (next invoice dates spread over the rest of the month, each late
  enough for the provider's invoice) and
  `subscriptions` usage-based subscriptions, each with `usage` usage summaries on the period's invoice;
- planted faults, each on a seeded share of the subscriptions: no markup (SUB_MARKUP_MISSING), no
  billing contract (SUB_NOT_ON_ACTIVE_CONTRACT), an archived, uninvoiced usage row (USAGE_ARCHIVED);
  and on a share of the contracts, an invoice date before the provider's invoice can be in
  (CONTRACT_INVOICE_DATE_TOO_EARLY).

`generate()` also returns what it planted, so that a test can compare a scan's findings with it.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

NOW = "2026-11-12T09:00:00Z"
PERIODS = (("2026-09", "2026-09-30", "2026-10-08"), ("2026-10", "2026-10-31", "2026-11-08"))
INDIRECT = ("Pax8", "TD SYNNEX")
INDIRECT_SHARE = 0.1  # customers bought through an indirect provider
_NS = uuid.UUID("6f1c1a52-4f0e-4d51-9a53-2d2a4c5e7a10")

MARKUP_MISSING = "SUB_MARKUP_MISSING"
NO_CONTRACT = "SUB_NOT_ON_ACTIVE_CONTRACT"
ARCHIVED = "USAGE_ARCHIVED"
TOO_EARLY = "CONTRACT_INVOICE_DATE_TOO_EARLY"


@dataclass(frozen=True)
class Shares:
    """The share of subscriptions each fault is planted on (a subscription gets at most one), and
    of contracts invoiced too early."""

    markup_missing: float = 0.01
    no_contract: float = 0.01
    archived: float = 0.01
    too_early: float = 0.01


@dataclass
class Generated:
    fixture: dict[str, Any]
    # finding code -> the ids of the subscriptions (or contracts) it was planted on
    planted: dict[str, set[str]] = field(default_factory=dict)


def generate(
    customers: int,
    seed: int = 1,
    *,
    subscriptions: int = 5,
    usage: int = 10,
    shares: Shares | None = None,
) -> Generated:
    """A tenant of `customers` customers, each with `subscriptions` subscriptions of `usage` usage
    rows in the open period; the same seed gives the same tenant."""
    if customers < 1 or subscriptions < 1 or usage < 1:
        raise ValueError("customers, subscriptions and usage must each be at least 1")
    return _Builder(random.Random(seed), seed, shares or Shares()).build(customers, subscriptions, usage)


class _Builder:
    def __init__(self, rng: random.Random, seed: int, shares: Shares) -> None:
        self.rng, self.seed, self.shares = rng, seed, shares
        self.rows: dict[str, list[dict[str, Any]]] = {
            t: []
            for t in (
                "work365_provider",
                "work365_providerinvoice",
                "account",
                "work365_provideraccount",
                "work365_billingcontract",
                "work365_subscription",
                "work365_usagesummary",
            )
        }
        self.planted: dict[str, set[str]] = {
            MARKUP_MISSING: set(),
            NO_CONTRACT: set(),
            ARCHIVED: set(),
            TOO_EARLY: set(),
        }
        self.totals: dict[str, int] = {}  # provider invoice id -> usage total in cents

    def gid(self, name: str) -> str:
        return str(uuid.uuid5(_NS, f"{self.seed}:{name}"))

    def build(self, customers: int, subscriptions: int, usage: int) -> Generated:
        microsoft = self.provider("Microsoft", "Microsoft Partner Center", 8)
        invoices = {microsoft: self.invoices(microsoft, "Microsoft", "G")}
        for n, name in enumerate(INDIRECT):
            provider = self.provider(name, "Manual", 10 + n)
            invoices[provider] = self.invoices(provider, name, f"M{n}")
        indirect = [p for p in invoices if p != microsoft]
        for c in range(customers):
            through = self.rng.choice(indirect) if self.rng.random() < INDIRECT_SHARE else microsoft
            self.customer(c, through, invoices[through], subscriptions, usage)
        for pi in self.rows["work365_providerinvoice"]:
            pi["work365_providerinvoice_usagetotal"] = (
                self.totals.get(pi["work365_providerinvoiceid"], 0) / 100
            )
        fixture = {
            "fixture_version": 1,
            "description": (
                f"generated (seed {self.seed}): {customers} customers, {customers * subscriptions} "
                f"subscriptions, {len(self.rows['work365_usagesummary'])} usage summaries"
            ),
            "now": NOW,
            "dataverse": {"rows": self.rows},
            "partner_center": {"enabled": True, "invoices": []},
        }
        return Generated(fixture, self.planted)

    def provider(self, name: str, kind: str, invoice_day: int) -> str:
        pid = self.gid(f"provider {name}")
        self.rows["work365_provider"].append(
            {
                "work365_providerid": pid,
                "work365_name": name,
                "work365_provider_type": kind,
                "work365_provider_invoiceday": invoice_day,
                "createdon": "2024-11-02T09:00:00Z",
            }
        )
        return pid

    def invoices(self, provider: str, name: str, prefix: str) -> dict[str, str]:
        """One provider invoice per period; the period -> its id."""
        out = {}
        for n, (period, end, dated) in enumerate(PERIODS):
            pi = self.gid(f"pi {name} {period}")
            self.rows["work365_providerinvoice"].append(
                {
                    "work365_providerinvoiceid": pi,
                    "work365_name": f"{name} {period}",
                    "work365_providerinvoice_invoicenumber": f"{prefix}{9000000 + n:010d}",
                    "work365_providerinvoice_provider": provider,
                    "work365_providerinvoice_invoicedate": dated,
                    "work365_providerinvoice_billingperiodstart": f"{period}-01",
                    "work365_providerinvoice_billingperiodend": end,
                    "statuscode": "Active",
                    "createdon": f"{dated}T05:45:00Z",
                }
            )
            out[period] = pi
        return out

    def customer(
        self, c: int, provider: str, invoices: dict[str, str], subscriptions: int, usage: int
    ) -> None:
        acc, bc = self.gid(f"account {c}"), self.gid(f"contract {c}")
        name = f"Customer {c:05d}"
        self.rows["account"].append({"accountid": acc, "name": name})
        self.rows["work365_provideraccount"].append(
            {
                "work365_provideraccountid": self.gid(f"provider account {c}"),
                "work365_provideraccount_name": name,
                "work365_provideraccount_account": acc,
                "work365_provideraccount_providerspecificaccountid": self.gid(f"tenant {c}"),
                "work365_provideraccount_provider": provider,
            }
        )
        # Invoice days spread over the rest of the month, none due yet, each at least the contract
        # gap (7 days) after Microsoft's invoice day (8); a planted one early in the next month.
        if self.rng.random() < self.shares.too_early:
            next_invoice = f"2026-12-{self.rng.randrange(1, 8):02d}"
            self.planted[TOO_EARLY].add(bc)
        else:
            next_invoice = f"2026-11-{self.rng.randrange(15, 29):02d}"
        self.rows["work365_billingcontract"].append(
            {
                "work365_billingcontractid": bc,
                "work365_name": f"{name} – Azure",
                "work365_billingcontract_customer": acc,
                "work365_billingcontract_startdate": "2025-01-15",
                "work365_billingcontract_nextinvoicedate": next_invoice,
                "statecode": "Active",
            }
        )
        for s in range(subscriptions):
            self.subscription(f"{c}-{s}", acc, bc, invoices, usage)

    def subscription(self, key: str, acc: str, bc: str, invoices: dict[str, str], usage: int) -> None:
        sub = self.gid(f"subscription {key}")
        fault = self.fault()
        row: dict[str, Any] = {
            "work365_subscriptionid": sub,
            "work365_subscription_subscriptionname": f"Azure plan {key}",
            "work365_subscription_customer": acc,
            "work365_subscription_product": self.gid("product azure"),
            "work365_subscription_providersubscriptionid": self.gid(f"azure subscription {key}"),
            "work365_subscription_subscriptiontype": "Usage Based",
            "statuscode": "Active",
            "createdon": "2025-01-15T00:00:00Z",
        }
        if fault != NO_CONTRACT:
            row["work365_subscription_billingcontract"] = bc
        if fault != MARKUP_MISSING:
            row["work365_subscription_markup"] = 17.647
        self.rows["work365_subscription"].append(row)
        if fault is not None:
            self.planted[fault].add(sub)
        # September: billed, on a customer invoice.
        self.usage(f"{key} sep", sub, acc, invoices["2026-09"], "2026-09", invoiced=True)
        for u in range(usage):
            self.usage(
                f"{key} {u}", sub, acc, invoices["2026-10"], "2026-10", archived=fault == ARCHIVED and u == 0
            )

    def fault(self) -> str | None:
        draw, edge = self.rng.random(), 0.0
        for code, share in (
            (MARKUP_MISSING, self.shares.markup_missing),
            (NO_CONTRACT, self.shares.no_contract),
            (ARCHIVED, self.shares.archived),
        ):
            edge += share
            if draw < edge:
                return code
        return None

    def usage(
        self,
        key: str,
        sub: str,
        acc: str,
        pi: str,
        period: str,
        *,
        invoiced: bool = False,
        archived: bool = False,
    ) -> None:
        cents = self.rng.randrange(100, 100_000)
        self.totals[pi] = self.totals.get(pi, 0) + cents
        end = "2026-09-30" if period == "2026-09" else "2026-10-31"
        created = "2026-10-09T06:30:00Z" if period == "2026-09" else "2026-11-09T06:30:00Z"
        row: dict[str, Any] = {
            "work365_usagesummaryid": self.gid(f"usage {key}"),
            "work365_usagesummary_providerinvoice": pi,
            "work365_usagesummary_subscription": sub,
            "work365_usagesummary_customer": acc,
            "work365_usagesummary_chargestartdate": f"{period}-01",
            "work365_usagesummary_chargeenddate": end,
            "work365_usagesummary_cost": cents / 100,
            "work365_usagesummary_markup": 17.647,
            "createdon": created,
        }
        if invoiced:
            row["work365_usagesummary_invoice"] = self.gid(f"customer invoice {acc} {period}")
        if archived:
            row["statuscode"] = "Archived"
        self.rows["work365_usagesummary"].append(row)


def planted_pairs(generated: Generated) -> Iterator[tuple[str, str]]:
    """(finding code, subscription id) of every planted fault."""
    for code, subs in generated.planted.items():
        for sub in subs:
            yield code, sub
