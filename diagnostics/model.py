"""The domain model: Work 365 records as the checks need them, the snapshot, and findings.

Records carry *meanings* (`PIStatus.ERROR`, `is_usage`), never Dataverse option values: the
snapshot loader translates labels through the schema map so the checks stay independent of a
partner's customisations.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, model_validator

from diagnostics.messages import CustomerRange, InvoiceUnit, Unit


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# The records a tenant holds by the ten thousand (subscriptions, provider accounts, contracts,
# schedules, customer invoices) and the usage rows read by the hundred thousand are frozen, slotted
# dataclasses rather than pydantic models: a third of the memory and a fraction of the time to build
# (the loader's row readers have checked every value's type already). A snapshot still validates
# them from plain dicts (`Snapshot.model_validate`), as pydantic does any dataclass.


class ProviderKind(StrEnum):
    AUTOMATIC_USAGE = "automatic_usage"  # Microsoft Partner Center: imports usage by itself
    MANUAL = "manual"  # invoices created by hand, left Populating until someone activates them
    OTHER = "other"  # distributors, Do Nothing, Linked, Rest: no automatic usage feed


class PIStatus(StrEnum):
    POPULATING = "populating"
    ACTIVE_USAGE = "active_usage"
    ACTIVE = "active"
    ERROR = "error"
    UNKNOWN = "unknown"  # a label the schema map does not know (reported, never guessed)


class ScheduleStatus(StrEnum):
    PENDING = "pending"
    ERROR = "error"
    INVOICED = "invoiced"
    UNKNOWN = "unknown"


class Provider(Frozen):
    id: str
    name: str
    type_label: str | None
    kind: ProviderKind
    invoice_day: int | None  # None: not set; the checks use the default day


class ProviderInvoice(Frozen):
    id: str
    name: str
    invoice_number: str | None
    provider_id: str | None
    invoice_date: date | None
    period_start: date | None
    period_end: date | None
    total_amount: Decimal | None
    usage_total: Decimal | None
    message: str | None
    currency_id: str | None
    status: PIStatus
    status_label: str | None
    created_on: datetime
    modified_on: datetime | None


@dataclass(frozen=True, slots=True, kw_only=True)
class UsageSummary:
    id: str
    provider_invoice_id: str | None
    subscription_id: str | None
    customer_id: str | None
    invoice_id: str | None
    charge_start: date | None
    charge_end: date | None
    cost: Decimal | None
    markup: Decimal | None
    archived: bool
    created_on: datetime


_ZERO = Decimal(0)


@dataclass(slots=True)
class UsageTotals:
    """How many usage summaries, their cost, and when the first and the last were synced."""

    rows: int = 0
    cost: Decimal = _ZERO
    first_synced: datetime | None = None
    last_synced: datetime | None = None

    def add(self, cost: Decimal | None, created: datetime, rows: int = 1) -> None:
        self.rows += rows
        if cost is not None:
            self.cost += cost
        if self.first_synced is None or created < self.first_synced:
            self.first_synced = created
        if self.last_synced is None or created > self.last_synced:
            self.last_synced = created

    def merge(self, other: UsageTotals) -> None:
        if other.rows:
            self.rows += other.rows
            self.cost += other.cost
            for moment in (other.first_synced, other.last_synced):
                if moment is not None:
                    self.add(None, moment, rows=0)

    def copy(self) -> UsageTotals:
        return UsageTotals(self.rows, self.cost, self.first_synced, self.last_synced)


_NONE = UsageTotals()  # the shared "no rows" of a group without archived usage; never changed
_MARKUPS: dict[tuple[Decimal, ...], tuple[Decimal, ...]] = {}  # one tuple per set of markups


@dataclass(slots=True)
class UsageGroup:
    """The usage summaries of one subscription (None: rows without one) on one provider invoice,
    reduced to what the checks read of them: the rows themselves are never all held at once (a
    10,000-customer tenant has 500,000 in a month, and 50,000 of these groups). Every figure is a
    sum, a count, a minimum or a maximum, so the result does not depend on the order the pages
    arrive in. Kept small: what most groups lack (archived rows, several charge days) is allocated
    only when a row brings it."""

    invoice_id: str
    subscription_id: str | None
    all: UsageTotals = field(default_factory=UsageTotals)
    invoiced: int = 0  # rows on a customer invoice
    markups: tuple[Decimal, ...] = ()  # the distinct markups the rows carry
    # Uninvoiced and not archived: what the next invoice run should bill.
    pending: UsageTotals = field(default_factory=UsageTotals)
    # Archived and uninvoiced: never billed. Their ids are evidence (sorted once loaded).
    archived: UsageTotals = field(default_factory=lambda: _NONE)
    archived_ids: list[str] = field(default_factory=list)
    # The rows' last charge day (charge end, else start): `sole_day` while every row has the same
    # (None: none has one), `days` once they differ.
    sole_day: date | None = None
    days: dict[date | None, UsageTotals] | None = None

    def add(self, u: UsageSummary) -> None:
        self.add_row(
            u.id, u.invoice_id, u.charge_end or u.charge_start, u.cost, u.markup, u.archived, u.created_on
        )

    def add_row(
        self,
        id: str,
        invoice_id: str | None,
        day: date | None,
        cost: Decimal | None,
        markup: Decimal | None,
        archived: bool,
        created: datetime,
    ) -> None:
        """One usage summary, given by what the figures read of it (`day`: its last charge day)."""
        self._add_day(day, cost, created)
        self.all.add(cost, created)
        if invoice_id:
            self.invoiced += 1
        if markup is not None and markup not in self.markups:
            self._markups((*self.markups, markup))
        if invoice_id is None:
            if archived:
                if self.archived is _NONE:
                    self.archived = UsageTotals()
                self.archived.add(cost, created)
                self.archived_ids.append(id)
            else:
                self.pending.add(cost, created)

    def _markups(self, markups: tuple[Decimal, ...]) -> None:
        self.markups = _MARKUPS.setdefault(markups, markups)

    def _add_day(self, day: date | None, cost: Decimal | None, created: datetime) -> None:
        """Before `all` counts the row: while `days` is None, `all` is the sole day's totals."""
        if self.days is None:
            if self.all.rows == 0:
                self.sole_day = day
                return
            if day == self.sole_day:
                return
            self.days, self.sole_day = {self.sole_day: self.all.copy()}, None
        self.days.setdefault(day, UsageTotals()).add(cost, created)

    def _day_map(self) -> dict[date | None, UsageTotals]:
        if self.days is not None:
            return self.days
        return {self.sole_day: self.all.copy()} if self.all.rows else {}

    def after(self, end: date) -> UsageTotals:
        """The rows whose last charge day is after `end`."""
        if self.days is None:
            return self.all if self.sole_day is not None and self.sole_day > end else _NONE
        out = UsageTotals()
        for day, totals in self.days.items():
            if day is not None and day > end:
                out.merge(totals)
        return out

    def merge(self, other: UsageGroup) -> None:
        if not other.all.rows:
            return
        if not self.all.rows:
            self.sole_day = other.sole_day
            self.days = None if other.days is None else {d: t.copy() for d, t in other.days.items()}
        elif self.days is None and other.days is None and self.sole_day == other.sole_day:
            pass
        else:
            days = {d: t.copy() for d, t in self._day_map().items()}
            for day, totals in other._day_map().items():
                days.setdefault(day, UsageTotals()).merge(totals)
            self.days, self.sole_day = days, None
        self.all.merge(other.all)
        self.invoiced += other.invoiced
        self._markups((*self.markups, *(m for m in other.markups if m not in self.markups)))
        self.pending.merge(other.pending)
        if other.archived.rows:
            if self.archived is _NONE:
                self.archived = UsageTotals()
            self.archived.merge(other.archived)
            self.archived_ids.extend(other.archived_ids)


class UsageIndex:
    """The usage summaries read, reduced per provider invoice and subscription (`UsageGroup`).

    Built page by page while the rows arrive (`add`), then `finish`ed once; read-only after that.
    """

    def __init__(self) -> None:
        self._groups: dict[tuple[str, str | None], UsageGroup] = {}
        self._by_invoice: dict[str, list[UsageGroup]] = {}

    @classmethod
    def of(cls, rows: Iterable[UsageSummary]) -> UsageIndex:
        index = cls()
        for row in rows:
            index.add(row)
        return index.finish()

    def add(self, u: UsageSummary) -> None:
        """One usage summary; a row on no provider invoice is not one any check reads."""
        if u.provider_invoice_id is not None:
            self.group(u.provider_invoice_id, u.subscription_id).add(u)

    def group(self, invoice_id: str, subscription_id: str | None) -> UsageGroup:
        """The group of one provider invoice and subscription, started empty if new."""
        key = (invoice_id, subscription_id)
        group = self._groups.get(key)
        if group is None:
            group = self._groups[key] = UsageGroup(invoice_id, subscription_id)
            self._by_invoice.setdefault(invoice_id, []).append(group)
        return group

    def merge(self, other: UsageIndex) -> None:
        for key, group in other._groups.items():
            mine = self._groups.get(key)
            if mine is None:
                mine = self._groups[key] = UsageGroup(group.invoice_id, group.subscription_id)
                self._by_invoice.setdefault(group.invoice_id, []).append(mine)
            mine.merge(group)

    def finish(self) -> UsageIndex:
        """Put what depends on arrival order in one order: groups by subscription, ids and markups
        sorted."""
        for groups in self._by_invoice.values():
            groups.sort(key=lambda g: g.subscription_id or "")
        for group in self._groups.values():
            group.archived_ids.sort()
            group._markups(tuple(sorted(group.markups)))
        return self

    def of_invoice(self, invoice_id: str) -> list[UsageGroup]:
        """The groups of one provider invoice, by subscription id."""
        return self._by_invoice.get(invoice_id, [])

    def invoice_ids(self) -> list[str]:
        return list(self._by_invoice)

    def subscription_ids(self) -> set[str]:
        return {sub for _, sub in self._groups if sub is not None}

    def rows(self) -> int:
        return sum(g.all.rows for g in self._groups.values())

    def __bool__(self) -> bool:
        return bool(self._groups)


@dataclass(frozen=True, slots=True, kw_only=True)
class ProviderAccount:
    id: str
    name: str | None
    account_id: str | None
    provider_specific_id: str | None
    provider_id: str | None
    sync_disabled: bool | None  # None: the environment has no sync-status value
    active: bool
    created_on: datetime
    modified_on: datetime | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Subscription:
    id: str
    name: str | None
    customer_id: str | None
    contract_id: str | None
    product_id: str | None
    provider_id: str | None
    provider_subscription_id: str | None
    type_label: str | None
    is_usage: bool
    markup: Decimal | None
    active: bool
    status_label: str | None
    created_on: datetime
    modified_on: datetime | None


@dataclass(frozen=True, slots=True, kw_only=True)
class BillingContract:
    id: str
    name: str | None
    customer_id: str | None
    start_date: date | None
    next_invoice_date: date | None
    billing_policy: str | None
    billing_frequency: str | None
    billing_offset: int | None
    end_date: date | None
    auto_renew: bool | None
    active: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class BillingSchedule:
    id: str
    name: str | None
    contract_id: str | None
    schedule_date: date | None
    cycle_start: date | None
    cycle_end: date | None
    invoice_id: str | None
    run_date: datetime | None
    run_type: str | None
    message: str | None
    correlation_id: str | None
    status: ScheduleStatus
    status_label: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class CustomerInvoice:
    id: str
    name: str | None
    number: str | None
    contract_id: str | None
    billing_date: date | None
    created_on: datetime


class Currency(Frozen):
    id: str
    iso_code: str | None
    name: str | None
    active: bool
    modified_on: datetime | None


class Note(Frozen):
    """An errors.csv / warnings.csv note on a provider invoice."""

    id: str
    invoice_id: str
    filename: str
    content: bytes | None  # decoded documentbody; None when the body was missing or not base64
    decode_error: str | None = None
    created_on: datetime


class PartnerCenterInvoice(Frozen):
    id: str
    invoice_date: datetime | None
    period_start: datetime | None
    period_end: datetime | None
    total_charges: Decimal | None
    currency_code: str | None
    invoice_type: str | None
    document_type: str | None
    # True when Partner Center gave no billing period and it was read from the invoice date
    # (a one-time invoice bills the calendar month before the month it is dated in).
    period_inferred: bool = False


class PartnerCenterView(Frozen):
    """What Partner Center said. `state` is never "ok" when it could not be asked.

    An invoice without a period (`period_start` None) is one whose period neither the list nor a
    read by id gave; `period_error` says why the read by id did not, when it was tried.
    """

    state: Literal["ok", "not_configured", "unreachable"]
    invoices: tuple[PartnerCenterInvoice, ...] = ()
    reason: str | None = None
    period_error: str | None = None


class UnreadableRecord(Frozen):
    """A record with a value that cannot be read (a date out of range, a number that is not one, a
    row that is not an object): left out of the snapshot, and reported as CHECK_FAILED on
    `subject_type`/`subject_id` (the record itself, or the record it belongs to; "tenant" with no id
    when it belongs to none), so the rest of its table and of the diagnosis still counts."""

    part: str
    table: str
    row: int  # 1-based position in the answer
    record_id: str | None
    reason: str
    subject_type: str
    subject_id: str | None = None


_USAGE_ROW = TypeAdapter(UsageSummary)


class Snapshot(Frozen):
    """Everything one period's diagnosis needs, loaded in as few round trips as the data allows.

    `failures` names the parts that could not be loaded (part → reason); checks that need them
    report CHECK_FAILED instead of passing. The usage summaries are held reduced (`usage`); a
    snapshot built by hand may give them as rows (`usage_summaries=`), reduced the same way.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    as_of: datetime
    period: str  # YYYY-MM under review
    providers: tuple[Provider, ...] = ()
    provider_invoices: tuple[ProviderInvoice, ...] = ()
    usage: UsageIndex = Field(default_factory=UsageIndex)
    notes: tuple[Note, ...] = ()
    provider_accounts: tuple[ProviderAccount, ...] = ()
    subscriptions: tuple[Subscription, ...] = ()
    contracts: tuple[BillingContract, ...] = ()
    schedules: tuple[BillingSchedule, ...] = ()
    invoices: tuple[CustomerInvoice, ...] = ()
    currencies: tuple[Currency, ...] = ()
    account_names: dict[str, str] = Field(default_factory=dict)
    partner_center: PartnerCenterView = PartnerCenterView(state="not_configured")
    failures: dict[str, str] = Field(default_factory=dict)
    # Records left out because a value could not be read (the rest of their part is used).
    unreadable_records: tuple[UnreadableRecord, ...] = ()
    # The unit of work this snapshot is the slice of; None: the whole tenant (`scan`).
    unit: Unit | None = None
    # Earlier periods still open (findings.md, "Open periods"), reviewed along with `period`.
    open_periods: tuple[str, ...] = ()
    # Provider invoices known to have usage summaries whose rows were not read (a scoped load asks
    # only whether there are any).
    invoices_with_usage: frozenset[str] = frozenset()
    # Provider invoices whose usage summaries were counted but not read (the own unit of an invoice
    # too large for one unit counts them by slices): invoice id -> how many, their cost, and when
    # the first and the last were synced. The checks take these over what `usage` holds of them.
    usage_counted: dict[str, UsageTotals] = Field(default_factory=dict)
    # The own unit of an invoice too large for one unit: the slices its usage is cut into, each
    # checked as a unit of its own (`InvoiceUnit.customers`). Empty for every other snapshot.
    usage_slices: tuple[CustomerRange, ...] = ()

    @model_validator(mode="before")
    @classmethod
    def _reduce_usage_rows(cls, data: Any) -> Any:
        if isinstance(data, dict) and "usage_summaries" in data:
            data = dict(data)
            rows = data.pop("usage_summaries")
            data["usage"] = UsageIndex.of(_USAGE_ROW.validate_python(r) for r in rows)
        return data

    @property
    def focus_invoice_id(self) -> str | None:
        """The one provider invoice diagnosed (`diagnose`, an invoice unit); None otherwise."""
        return self.unit.invoice_id if isinstance(self.unit, InvoiceUnit) else None


Severity = Literal["critical", "error", "warning", "info"]
SEVERITY_RANK: dict[str, int] = {"critical": 0, "error": 1, "warning": 2, "info": 3}
SubjectType = Literal[
    "provider_invoice", "expected_provider_invoice", "billing_contract", "subscription", "tenant"
]


class Subject(Frozen):
    type: SubjectType
    id: str
    name: str


class Finding(Frozen):
    code: str
    severity: Severity
    title: str
    subject: Subject
    period: str
    muted: bool = False
    muted_by: str | None = None
    # Silenced by a person until a date (monitor.md, "Silences"): stays in the report, never alerts.
    silenced: bool = False
    evidence: dict[str, Any] = Field(default_factory=dict)
    remediation: tuple[str, ...] = ()
    runbook: str
    dedup_key: str


class Statistics(Frozen):
    """The report's counts (findings.md): `by_severity` counts only the findings that alert (neither
    muted nor silenced), as the text summary does; `muted` and `silenced` count the others."""

    checks: int
    passed: int
    findings: int
    by_severity: dict[str, int]
    muted: int = 0
    silenced: int = 0

    @classmethod
    def of(cls, findings: Sequence[Finding], *, checks: int, passed: int) -> Statistics:
        by_severity = dict.fromkeys(SEVERITY_RANK, 0)
        muted = silenced = 0
        for item in findings:
            if item.muted:
                muted += 1
            elif item.silenced:
                silenced += 1
            else:
                by_severity[item.severity] += 1
        return cls(
            checks=checks,
            passed=passed,
            findings=len(findings),
            by_severity=by_severity,
            muted=muted,
            silenced=silenced,
        )


class ContractTimeline(Frozen):
    """A usage contract's invoice dates, as the timing checks saw them."""

    id: str
    name: str
    invoiced_at: tuple[datetime, ...] = ()  # runs since the period closed (schedule run or invoice)
    next_invoice_date: date | None = None


class InvoiceTimeline(Frozen):
    """One provider invoice's month (or an expected one that has not landed: `created_on` None),
    from the snapshot the checks used; the HTML report draws it (diagnostics/timeline.py)."""

    subject: Subject
    provider: str | None
    period: str
    period_end: date
    invoice_day: date  # the provider's invoice day in the following month
    usage_file_day: date
    created_on: datetime | None = None  # when Work 365 found the invoice
    status: str | None = None
    usage_first_synced: datetime | None = None
    usage_last_synced: datetime | None = None
    has_usage: bool = False  # True also when usage exists but its rows were not read
    pull_window_end: datetime | None = None  # automatic providers only
    total_amount: Decimal | None = None
    currency: str | None = None
    contracts: tuple[ContractTimeline, ...] = ()
    more_contracts: int = 0


class Report(Frozen):
    report_version: int = 1
    as_of: datetime
    period: str
    statistics: Statistics
    findings: tuple[Finding, ...]
    schema_map: str = "defaults"
    # Added field (findings.md allows it): the dates behind each reviewed invoice, for the HTML report.
    timelines: tuple[InvoiceTimeline, ...] = ()
