"""Indexes over a snapshot that several checks share. Pure: built from the snapshot and a clock."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import cached_property
from typing import Any, TypeVar

from diagnostics.model import (
    BillingContract,
    BillingSchedule,
    CustomerInvoice,
    Note,
    PIStatus,
    Provider,
    ProviderInvoice,
    ProviderKind,
    Snapshot,
    Subject,
    Subscription,
    UsageGroup,
    UsageSummary,
    UsageTotals,
)
from diagnostics.periods import add_months, day_in_following_month, period_of
from diagnostics.refcsv import ParsedRefs, Reference, RefFileError, parse_reference_file
from diagnostics.settings import Thresholds

K = TypeVar("K")
V = TypeVar("V")


def invoice_period(pi: ProviderInvoice) -> str | None:
    """The consumption month a provider invoice bills: its billing period, else the month before
    its invoice date (Microsoft invoices month M early in M+1)."""
    if pi.period_start is not None:
        return period_of(pi.period_start)
    if pi.invoice_date is not None:
        return add_months(period_of(pi.invoice_date), -1)
    return None


def pi_subject(pi: ProviderInvoice) -> Subject:
    return Subject(type="provider_invoice", id=pi.id, name=pi.name or pi.invoice_number or pi.id)


def expected_subject(provider: Provider, period: str) -> Subject:
    return Subject(
        type="expected_provider_invoice", id=f"{provider.id}:{period}", name=f"{provider.name} {period}"
    )


def contract_subject(contract: BillingContract) -> Subject:
    return Subject(type="billing_contract", id=contract.id, name=contract.name or contract.id)


def subscription_subject(sub: Subscription, account_names: Mapping[str, str]) -> Subject:
    """Named with its customer: many usage subscriptions are simply called "Microsoft Azure"."""
    name = sub.name or sub.provider_subscription_id or sub.id
    customer = account_names.get(sub.customer_id or "")
    return Subject(type="subscription", id=sub.id, name=f"{name} ({customer})" if customer else name)


def iso(value: date | datetime | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")
    return value.isoformat()


def _group(items: Iterable[V], key: Callable[[V], K | None]) -> dict[K, list[V]]:
    out: dict[K, list[V]] = defaultdict(list)
    for item in items:
        k = key(item)
        if k is not None:
            out[k].append(item)
    return dict(out)


@dataclass
class ParsedNotes:
    """The references of an invoice's errors.csv and warnings.csv notes.

    `files` says, per note that could be read, what the parser made of it (its warnings above all):
    every finding built from these references carries it as evidence.
    """

    errors: list[Reference] = field(default_factory=list)
    warnings: list[Reference] = field(default_factory=list)
    unreadable: list[dict[str, Any]] = field(default_factory=list)
    has_errors_file: bool = False
    files: list[dict[str, Any]] = field(default_factory=list)


def _file_summary(note: Note, parsed: ParsedRefs) -> dict[str, Any]:
    return {
        "note_id": note.id,
        "filename": note.filename,
        "rows": parsed.rows,
        "references": len(parsed.references),
        "skipped_rows": parsed.skipped_rows,
        "encoding": parsed.encoding,
        "parser_warnings": list(parsed.warnings),
    }


def parse_notes(notes: Iterable[Note]) -> ParsedNotes:
    out = ParsedNotes()
    for note in notes:
        name = note.filename.casefold()
        if name not in ("errors.csv", "warnings.csv"):
            continue
        out.has_errors_file |= name == "errors.csv"
        problem = {"note_id": note.id, "filename": note.filename}
        if note.content is None:
            reason = note.decode_error or "the note has no file content"
            out.unreadable.append(problem | {"reason": reason})
            continue
        try:
            parsed = parse_reference_file(note.content)
        except RefFileError as exc:
            out.unreadable.append(problem | {"reason": str(exc)})
            continue
        if parsed.rows and not parsed.references:
            # Rows, and not one reference the tool could read (every id empty, or the ids under a
            # header it does not know): never a pass.
            reason = f"{parsed.rows} row(s) but no usable reference"
            detail = next((w for w in parsed.warnings if "skipped" in w), None)
            out.unreadable.append(
                problem
                | {
                    "reason": f"{reason} ({detail})" if detail else reason,
                    "parser_warnings": list(parsed.warnings),
                }
            )
            continue
        out.files.append(_file_summary(note, parsed))
        (out.errors if name == "errors.csv" else out.warnings).extend(parsed.references)
    return out


@dataclass(frozen=True)
class Context:
    snap: Snapshot
    t: Thresholds

    @property
    def now(self) -> datetime:
        return self.snap.as_of

    @property
    def today(self) -> date:
        return self.snap.as_of.date()

    @property
    def period(self) -> str:
        return self.snap.period

    @cached_property
    def providers(self) -> dict[str, Provider]:
        return {p.id: p for p in self.snap.providers}

    def invoice_day(self, provider: Provider | None) -> int:
        if provider is None or not provider.invoice_day:
            return self.t.default_invoice_day
        return provider.invoice_day

    def due_date(self, provider: Provider | None, period: str) -> date:
        return day_in_following_month(period, self.invoice_day(provider))

    @cached_property
    def invoices_by_provider_period(self) -> dict[tuple[str | None, str], list[ProviderInvoice]]:
        out: dict[tuple[str | None, str], list[ProviderInvoice]] = defaultdict(list)
        for pi in self.snap.provider_invoices:
            period = invoice_period(pi)
            if period is not None:
                out[(pi.provider_id, period)].append(pi)
        return dict(out)

    def invoices_for(self, provider_id: str | None, period: str) -> list[ProviderInvoice]:
        return self.invoices_by_provider_period.get((provider_id, period), [])

    @cached_property
    def reviewed_invoices(self) -> list[ProviderInvoice]:
        """The provider invoices of the period under review (or just the one being diagnosed)."""
        if self.snap.focus_invoice_id is not None:
            return [pi for pi in self.snap.provider_invoices if pi.id == self.snap.focus_invoice_id]
        return [pi for pi in self.snap.provider_invoices if invoice_period(pi) == self.period]

    def provider_of(self, pi: ProviderInvoice) -> Provider | None:
        return self.providers.get(pi.provider_id or "")

    def kind_of(self, pi: ProviderInvoice) -> ProviderKind | None:
        provider = self.provider_of(pi)
        return provider.kind if provider else None

    def usage_of(self, pi: ProviderInvoice) -> list[UsageGroup]:
        """The invoice's usage summaries, reduced per subscription (ordered by subscription id)."""
        return self.snap.usage.of_invoice(pi.id)

    def usage_totals(self, pi: ProviderInvoice) -> UsageTotals:
        """How many usage summaries the invoice has, and when the first and the last were synced."""
        counted = self.snap.usage_counted.get(pi.id)
        if counted is not None:
            return counted.copy()
        totals = UsageTotals()
        for group in self.usage_of(pi):
            totals.merge(group.all)
        return totals

    def usage_subscription_ids(self, invoice_id: str) -> set[str]:
        return {g.subscription_id for g in self.snap.usage.of_invoice(invoice_id) if g.subscription_id}

    @cached_property
    def notes_by_invoice(self) -> dict[str, list[Note]]:
        return _group(self.snap.notes, lambda n: n.invoice_id)

    @cached_property
    def _parsed(self) -> dict[str, ParsedNotes]:
        return {pi_id: parse_notes(notes) for pi_id, notes in self.notes_by_invoice.items()}

    def parsed_notes(self, pi: ProviderInvoice) -> ParsedNotes:
        return self._parsed.get(pi.id) or ParsedNotes()

    @cached_property
    def subscriptions(self) -> dict[str, Subscription]:
        return {s.id: s for s in self.snap.subscriptions}

    @cached_property
    def usage_subscriptions(self) -> list[Subscription]:
        return [s for s in self.snap.subscriptions if s.is_usage and s.active]

    @cached_property
    def contracts(self) -> dict[str, BillingContract]:
        return {c.id: c for c in self.snap.contracts}

    @cached_property
    def schedules_by_contract(self) -> dict[str, list[BillingSchedule]]:
        return _group(self.snap.schedules, lambda s: s.contract_id)

    @cached_property
    def invoices_by_contract(self) -> dict[str, list[CustomerInvoice]]:
        return _group(self.snap.invoices, lambda i: i.contract_id)

    @cached_property
    def _currency_codes(self) -> dict[str, str]:
        return {c.id: c.iso_code for c in self.snap.currencies if c.iso_code}

    def currency_of(self, pi: ProviderInvoice | None) -> str | None:
        """The ISO code of the invoice's currency; None when it has none or it is unknown."""
        return self._currency_codes.get(pi.currency_id or "") if pi is not None else None

    @cached_property
    def _provider_invoices_by_id(self) -> dict[str, ProviderInvoice]:
        return {pi.id: pi for pi in self.snap.provider_invoices}

    def currency_of_usage(self, usage: Iterable[UsageSummary]) -> str | None:
        """The ISO code of these usage summaries' currency, which is their provider invoice's (usage has
        no currency column); None when any is unknown or they differ, so no sum is shown as one currency."""
        codes = {
            self.currency_of(self._provider_invoices_by_id.get(u.provider_invoice_id or "")) for u in usage
        }
        return codes.pop() if len(codes) == 1 else None

    def currency_of_groups(self, groups: Iterable[UsageGroup]) -> str | None:
        """`currency_of_usage` for usage reduced per invoice and subscription."""
        codes = {self.currency_of(self._provider_invoices_by_id.get(g.invoice_id)) for g in groups}
        return codes.pop() if len(codes) == 1 else None

    @cached_property
    def customer_invoices(self) -> dict[str, CustomerInvoice]:
        return {i.id: i for i in self.snap.invoices}

    @cached_property
    def reviewed_usage_by_subscription(self) -> dict[str, list[UsageGroup]]:
        """The usage of the reviewed provider invoices, per subscription: one group per invoice, in
        the order of the reviewed invoices."""
        return _group(
            (g for pi in self.reviewed_invoices for g in self.usage_of(pi)), lambda g: g.subscription_id
        )

    def usage_contracts(self) -> list[BillingContract]:
        """Contracts that hold at least one active usage subscription, in a stable order."""
        ids = {s.contract_id for s in self.usage_subscriptions if s.contract_id}
        return sorted((self.contracts[i] for i in ids if i in self.contracts), key=lambda c: c.name or c.id)

    @cached_property
    def _usage_subscriptions_by_contract(self) -> dict[str, list[Subscription]]:
        return _group(self.usage_subscriptions, lambda s: s.contract_id)

    def usage_subscriptions_on(self, contract: BillingContract) -> list[Subscription]:
        # Indexed once: the timing checks ask this of every contract (a scan was O(contracts²)).
        return self._usage_subscriptions_by_contract.get(contract.id, [])

    def automatic_providers(self) -> list[Provider]:
        return [p for p in self.snap.providers if p.kind is ProviderKind.AUTOMATIC_USAGE]

    def has_usage(self, pi: ProviderInvoice) -> bool:
        counted = self.snap.usage_counted.get(pi.id)
        return (
            bool(self.usage_of(pi))
            or pi.id in self.snap.invoices_with_usage
            or (counted is not None and counted.rows > 0)
        )

    def is_active_with_usage(self, pi: ProviderInvoice) -> bool:
        return pi.status in (PIStatus.ACTIVE, PIStatus.ACTIVE_USAGE) and self.has_usage(pi)
