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

With `timeline_days` (`--timeline DAYS`) it also writes a seeded `timeline` (tenant-fixture.md) of
what happens over those days after `now`, so that the monitor has something to follow:
- TD SYNNEX's October invoice is imported late (the day after `now`) with no usage, which lands over
  the next days until the invoice is Active with its usage total;
- a person fixes half of each planted fault, each on a day of their own (markup set, subscription
  put on its contract, archived usage restored, invoice date moved after the provider's invoice);
- each contract invoices on its next invoice date: its October usage gets a customer invoice and the
  date moves on a month;
- in December, Microsoft's November invoice is imported a day or two after its invoice day, its
  usage landing over three days; Pax8's in one go; TD SYNNEX's never.

`generate()` also returns what it planted and what the timeline does (`events`), so that a test can
compare a scan's findings with them.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

NOW = "2026-11-12T09:00:00Z"
NOVEMBER = ("2026-11", "2026-11-30", "2026-12-08")
PERIODS = (("2026-09", "2026-09-30", "2026-10-08"), ("2026-10", "2026-10-31", "2026-11-08"))
INDIRECT = ("Pax8", "TD SYNNEX")
INDIRECT_SHARE = 0.1  # customers bought through an indirect provider
_NS = uuid.UUID("6f1c1a52-4f0e-4d51-9a53-2d2a4c5e7a10")

MARKUP_MISSING = "SUB_MARKUP_MISSING"
NO_CONTRACT = "SUB_NOT_ON_ACTIVE_CONTRACT"
ARCHIVED = "USAGE_ARCHIVED"
TOO_EARLY = "CONTRACT_INVOICE_DATE_TOO_EARLY"

# The timeline's events (Generated.events): what happened to which ids.
LATE_INVOICE = "invoice imported late"  # provider invoice ids
USAGE_LANDED = "usage landed"  # provider invoice ids whose usage landed in several steps
NEVER_IMPORTED = "invoice never imported"  # "<provider id>:<period>"
CONTRACT_INVOICED = "contract invoiced"  # billing contract ids
FIXED = "fixed "  # + finding code: the subscription (or contract) ids a person fixed


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
    # timeline event (LATE_INVOICE, FIXED + code, ...) -> the ids it happened to; empty without one
    events: dict[str, set[str]] = field(default_factory=dict)

    def fixed(self, code: str) -> set[str]:
        return self.events.get(FIXED + code, set())


def generate(
    customers: int,
    seed: int = 1,
    *,
    subscriptions: int = 5,
    usage: int = 10,
    shares: Shares | None = None,
    timeline_days: int = 0,
) -> Generated:
    """A tenant of `customers` customers, each with `subscriptions` subscriptions of `usage` usage
    rows in the open period; with `timeline_days`, what happens over those days after `now`. The
    same seed gives the same tenant (and the tenant without a timeline is the same either way)."""
    if customers < 1 or subscriptions < 1 or usage < 1:
        raise ValueError("customers, subscriptions and usage must each be at least 1")
    if not 0 <= timeline_days <= 60:
        raise ValueError("timeline_days must be from 0 (no timeline) to 60")
    built = _Builder(random.Random(seed), seed, shares or Shares()).build(customers, subscriptions, usage)
    if timeline_days:
        _Timeline(built, random.Random(f"{seed}:timeline"), seed, usage, timeline_days).write()
    return built


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


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _next_month(day: date) -> date:
    year, month = (day.year + 1, 1) if day.month == 12 else (day.year, day.month + 1)
    return day.replace(year=year, month=month, day=min(day.day, 28))


class _Timeline:
    """Writes the fixture's `timeline` from its rows and what was planted; its own random stream, so
    the tenant is the same with or without one (but for the invoice it imports late)."""

    def __init__(self, built: Generated, rng: random.Random, seed: int, usage: int, days: int) -> None:
        self.built, self.rng, self.seed, self.usage = built, rng, seed, usage
        self.rows: dict[str, list[dict[str, Any]]] = built.fixture["dataverse"]["rows"]
        self.start = datetime.fromisoformat(NOW.replace("Z", "+00:00"))
        self.end = self.start + timedelta(days=days)
        self.entries: list[tuple[datetime, int, dict[str, Any]]] = []
        self.events: dict[str, set[str]] = built.events
        # When each usage row exists (a row must exist before a later entry changes it).
        self.usage_from: dict[str, datetime] = {}
        # Contracts whose invoice date a person moved: when, and to which date.
        self.moved: dict[str, tuple[datetime, str]] = {}

    def write(self) -> None:
        providers = {p["work365_name"]: p["work365_providerid"] for p in self.rows["work365_provider"]}
        self.late_october(providers[INDIRECT[1]])
        self.fixes()
        self.invoicing()
        self.november(providers)
        entries = [entry for at, _, entry in sorted(self.entries, key=lambda e: (e[0], e[1]))]
        self.built.fixture["timeline"] = entries

    def at(self, moment: datetime, description: str, **change: Any) -> None:
        if self.start < moment < self.end:
            self.entries.append(
                (moment, len(self.entries), {"at": _iso(moment), "description": description, **change})
            )

    def day(self, offset: int, hour: int, minute: int = 0) -> datetime:
        midnight = datetime.combine(self.start.date() + timedelta(days=offset), datetime.min.time(), UTC)
        return midnight + timedelta(hours=hour, minutes=minute)

    # -- usage landing over days -----------------------------------------------------------------

    def landing(
        self, invoice: dict[str, Any], usage: list[dict[str, Any]], first: datetime, steps: int
    ) -> None:
        """The invoice imported at `first` without usage, then its usage in `steps` parts, one a day
        at 04:00, the last making it Active with its usage total."""
        pi = invoice["work365_providerinvoiceid"]
        total = round(sum(round(u["work365_usagesummary_cost"] * 100) for u in usage)) / 100
        imported = {
            **invoice,
            "statuscode": "Populating",
            "work365_providerinvoice_usagetotal": 0,
            "createdon": _iso(first),
        }
        self.at(
            first,
            f"{invoice['work365_name']} is imported, its usage still to come",
            upsert={"work365_providerinvoice": [imported]},
        )
        if first < self.end and first.date() > date.fromisoformat(
            invoice["work365_providerinvoice_invoicedate"]
        ):
            self.events.setdefault(LATE_INVOICE, set()).add(pi)
        parts = [usage[n::steps] for n in range(steps)]
        for n, part in enumerate(parts, start=1):
            moment = datetime.combine(first.date() + timedelta(days=n), datetime.min.time(), UTC) + timedelta(
                hours=4
            )
            change: dict[str, Any] = {
                "work365_usagesummary": [{**u, "createdon": _iso(moment)} for u in part]
            }
            if n == steps:
                change["work365_providerinvoice"] = [
                    {
                        "work365_providerinvoiceid": pi,
                        "statuscode": "Active",
                        "work365_providerinvoice_usagetotal": total,
                    }
                ]
                if moment < self.end:
                    self.events.setdefault(USAGE_LANDED, set()).add(pi)
            self.at(moment, f"usage of {invoice['work365_name']} lands ({n} of {steps})", upsert=change)
            for u in part:
                self.usage_from[u["work365_usagesummaryid"]] = moment

    def late_october(self, provider: str) -> None:
        """TD SYNNEX's October invoice, with its usage, leaves the rows for the timeline."""
        rows = self.rows
        [invoice] = [
            i
            for i in rows["work365_providerinvoice"]
            if i["work365_providerinvoice_provider"] == provider
            and i["work365_providerinvoice_billingperiodstart"].startswith("2026-10")
        ]
        pi = invoice["work365_providerinvoiceid"]
        rows["work365_providerinvoice"].remove(invoice)
        late = [u for u in rows["work365_usagesummary"] if u["work365_usagesummary_providerinvoice"] == pi]
        rows["work365_usagesummary"] = [
            u for u in rows["work365_usagesummary"] if u["work365_usagesummary_providerinvoice"] != pi
        ]
        self.landing(invoice, late, self.day(1, 6), 3)

    # -- a person fixes half of each planted fault ----------------------------------------------

    def fixes(self) -> None:
        subs = {s["work365_subscriptionid"]: s for s in self.rows["work365_subscription"]}
        contract_of = {
            c["work365_billingcontract_customer"]: c["work365_billingcontractid"]
            for c in self.rows["work365_billingcontract"]
        }
        archived = {
            u["work365_usagesummary_subscription"]: u["work365_usagesummaryid"]
            for u in self.rows["work365_usagesummary"]
            if u.get("statuscode") == "Archived"
        }
        days = (self.end - self.start).days
        for code in (MARKUP_MISSING, NO_CONTRACT, ARCHIVED, TOO_EARLY):
            # An archived row still to land (late invoice) cannot be restored before it exists.
            candidates = sorted(i for i in self.built.planted[code] if code != ARCHIVED or i in archived)
            for subject in self.rng.sample(candidates, (len(candidates) + 1) // 2):
                moment = self.day(
                    self.rng.randrange(1, max(days, 2)), self.rng.randrange(9, 17), self.rng.randrange(60)
                )
                change = self.fix(code, subject, moment, subs, contract_of, archived)
                self.at(moment, f"a person fixes {code} on {subject}", upsert=change)
                if moment < self.end:
                    self.events.setdefault(FIXED + code, set()).add(subject)

    def fix(
        self,
        code: str,
        subject: str,
        moment: datetime,
        subs: dict[str, dict[str, Any]],
        contract_of: dict[str, str],
        archived: dict[str, str],
    ) -> dict[str, Any]:
        if code == MARKUP_MISSING:
            return {
                "work365_subscription": [
                    {"work365_subscriptionid": subject, "work365_subscription_markup": 17.647}
                ]
            }
        if code == NO_CONTRACT:
            contract = contract_of[subs[subject]["work365_subscription_customer"]]
            return {
                "work365_subscription": [
                    {"work365_subscriptionid": subject, "work365_subscription_billingcontract": contract}
                ]
            }
        if code == ARCHIVED:
            return {
                "work365_usagesummary": [
                    {"work365_usagesummaryid": archived[subject], "statuscode": "Active"}
                ]
            }
        moved = f"2026-12-{self.rng.randrange(16, 29):02d}"  # TOO_EARLY: after the provider's invoice
        self.moved[subject] = (moment, moved)
        return {
            "work365_billingcontract": [
                {"work365_billingcontractid": subject, "work365_billingcontract_nextinvoicedate": moved}
            ]
        }

    # -- contracts invoice on their days --------------------------------------------------------

    def invoicing(self) -> None:
        """On its next invoice date (06:00) a contract bills the October usage of its subscriptions
        that is there by then, and its next invoice date moves on a month."""
        by_sub: dict[str, list[dict[str, Any]]] = {}
        for u in self.rows["work365_usagesummary"]:
            if u["work365_usagesummary_chargestartdate"].startswith("2026-10"):
                by_sub.setdefault(u["work365_usagesummary_subscription"], []).append(u)
        for entry in self.entries:  # the late invoice's usage, once it has landed
            for u in entry[2].get("upsert", {}).get("work365_usagesummary", []):
                if "work365_usagesummary_cost" in u:
                    by_sub.setdefault(u["work365_usagesummary_subscription"], []).append(u)
        subs_of: dict[str, list[str]] = {}
        for s in self.rows["work365_subscription"]:
            if "work365_subscription_billingcontract" in s:
                subs_of.setdefault(s["work365_subscription_billingcontract"], []).append(
                    s["work365_subscriptionid"]
                )
        by_moment: dict[datetime, dict[str, list[dict[str, Any]]]] = {}
        for contract in self.rows["work365_billingcontract"]:
            bc = contract["work365_billingcontractid"]
            due = date.fromisoformat(contract["work365_billingcontract_nextinvoicedate"])
            moment = datetime.combine(due, datetime.min.time(), UTC) + timedelta(hours=6)
            if bc in self.moved and self.moved[bc][0] < moment:  # moved before it came
                due = date.fromisoformat(self.moved[bc][1])
                moment = datetime.combine(due, datetime.min.time(), UTC) + timedelta(hours=6)
            if not self.start < moment < self.end:
                continue
            self.events.setdefault(CONTRACT_INVOICED, set()).add(bc)
            change = by_moment.setdefault(moment, {"work365_billingcontract": [], "work365_usagesummary": []})
            change["work365_billingcontract"].append(
                {
                    "work365_billingcontractid": bc,
                    "work365_billingcontract_nextinvoicedate": _next_month(due).isoformat(),
                }
            )
            change["work365_usagesummary"] += [
                {
                    "work365_usagesummaryid": u["work365_usagesummaryid"],
                    "work365_usagesummary_invoice": self.gid(f"customer invoice {bc} 2026-10"),
                }
                for sub in subs_of.get(bc, [])
                for u in by_sub.get(sub, [])
                if u.get("statuscode") != "Archived"
                and self.usage_from.get(u["work365_usagesummaryid"], self.start) < moment
            ]
        for moment, change in by_moment.items():
            count = len(change["work365_billingcontract"])
            self.at(moment, f"{count} contract{'s' if count > 1 else ''} invoice", upsert=change)

    # -- the next month's invoices ----------------------------------------------------------------

    def november(self, providers: dict[str, str]) -> None:
        if self.end <= self.day(26, 0):  # nothing of November's invoices happens in this timeline
            return
        period, end, _ = NOVEMBER
        customers_of: dict[str, str] = {
            pa["work365_provideraccount_account"]: pa["work365_provideraccount_provider"]
            for pa in self.rows["work365_provideraccount"]
        }
        usage: dict[str, list[dict[str, Any]]] = {}
        for s in self.rows["work365_subscription"]:
            provider = customers_of[s["work365_subscription_customer"]]
            for u in range(self.usage):
                cents = self.rng.randrange(100, 100_000)
                usage.setdefault(provider, []).append(
                    {
                        "work365_usagesummaryid": self.gid(
                            f"usage {s['work365_subscriptionid']} {period} {u}"
                        ),
                        "work365_usagesummary_subscription": s["work365_subscriptionid"],
                        "work365_usagesummary_customer": s["work365_subscription_customer"],
                        "work365_usagesummary_chargestartdate": f"{period}-01",
                        "work365_usagesummary_chargeenddate": end,
                        "work365_usagesummary_cost": cents / 100,
                        "work365_usagesummary_markup": 17.647,
                    }
                )
        for name, prefix, imported, steps in (
            ("Microsoft", "G", self.day(27 + self.rng.randrange(2), 5, 45), 3),
            (INDIRECT[0], "M0", self.day(28, 8), 1),
        ):
            pi = self.gid(f"pi {name} {period}")
            invoice = {
                "work365_providerinvoiceid": pi,
                "work365_name": f"{name} {period}",
                "work365_providerinvoice_invoicenumber": f"{prefix}{9000000 + 2:010d}",
                "work365_providerinvoice_provider": providers[name],
                "work365_providerinvoice_invoicedate": "2026-12-08",
                "work365_providerinvoice_billingperiodstart": f"{period}-01",
                "work365_providerinvoice_billingperiodend": end,
            }
            rows = [{**u, "work365_usagesummary_providerinvoice": pi} for u in usage.get(providers[name], [])]
            self.landing(invoice, rows, imported, steps)
        self.events.setdefault(NEVER_IMPORTED, set()).add(f"{providers[INDIRECT[1]]}:{period}")

    def gid(self, name: str) -> str:
        return str(uuid.uuid5(_NS, f"{self.seed}:{name}"))
