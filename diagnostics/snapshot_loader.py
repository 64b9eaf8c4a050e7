"""Reading Dataverse rows into the domain model: the row decoder, the builders of each record, the
query builder (`Loader`), Partner Center's invoice list, and the invoice lookup by id or number.

The query plans that use them live in `diagnostics/loading/`: one period and its open periods
(`period.py`), one unit of work (`plans.py`). A part that fails (permission, malformed row) is
recorded in `Snapshot.failures`, so the checks that need it report CHECK_FAILED; the rest of the
diagnosis still runs.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import re
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from functools import cache, lru_cache
from typing import Any, Protocol, TypeVar

from diagnostics.adapters.dataverse import Page, Query, canonical_guid, canonical_or_same, odata_string
from diagnostics.checks.pulled import usage_invoices
from diagnostics.errors import AuthError, InvoiceNotFound, ServiceError
from diagnostics.metadata import ResolvedSchema
from diagnostics.model import (
    BillingContract,
    BillingSchedule,
    Currency,
    CustomerInvoice,
    Note,
    PartnerCenterInvoice,
    PartnerCenterView,
    PIStatus,
    Provider,
    ProviderAccount,
    ProviderInvoice,
    ProviderKind,
    ScheduleStatus,
    Subscription,
    UnreadableRecord,
    UsageIndex,
    UsageSummary,
)
from diagnostics.periods import add_months, period_end, period_of, period_start
from diagnostics.schema import TABLES, column_key
from diagnostics.settings import Thresholds

T = TypeVar("T")
_IN_CHUNK = 200  # ids per Microsoft.Dynamics.CRM.In filter: keeps each request far below URL limits
_NAME = "@OData.Community.Display.V1.FormattedValue"
_LOOKUP_TABLE = "@Microsoft.Dynamics.CRM.lookuplogicalname"
_MAX_PERIOD_READS = 20  # Partner Center invoices read by id for their billing period, per check


class DataverseReader(Protocol):
    max_concurrency: int | None  # requests in flight at most; None: no cap

    async def query(self, q: Query) -> list[dict[str, Any]]: ...

    async def batch(self, queries: Sequence[Query]) -> list[list[dict[str, Any]] | ServiceError]: ...

    async def batch_pages(self, queries: Sequence[Query]) -> list[AsyncIterator[Page] | ServiceError]: ...

    def pages(self, q: Query) -> AsyncIterator[Page]: ...


class InvoiceLister(Protocol):
    async def list_invoices(self) -> list[dict[str, Any]]: ...

    async def read_invoices(self, invoice_ids: Sequence[str]) -> list[dict[str, Any] | ServiceError]: ...


class RowError(ValueError):
    """A row whose value cannot be read as the schema says."""


def _shown(value: object) -> str:
    """A value for a one-line reason: short, and never the repr of a deeply nested structure."""
    if isinstance(value, str | int | float | bool):
        text = repr(value)
        return text if len(text) <= 60 else text[:59] + "…"
    if isinstance(value, dict):
        return "an object"
    return "a list" if isinstance(value, list) else type(value).__name__


# The same few values recur in every row of a large table (the import's createdon, a markup): parsed
# once, and the records share the (immutable) result.
_PARSED_CACHE = 4096


@lru_cache(maxsize=_PARSED_CACHE)
def _moment(value: str) -> datetime:
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


@lru_cache(maxsize=_PARSED_CACHE)
def _number(text: str) -> Decimal | None:
    try:
        number = Decimal(text)
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


@lru_cache(maxsize=_PARSED_CACHE)
def _day(value: str) -> dt.date:
    return _moment(value).date()


# An id as Dataverse writes it: already canonical, so it is taken as it is (no parse and format).
_CANONICAL_GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


class TableReading:
    """What reading one table's rows through one schema works out once rather than per row (the
    scan reads half a million usage rows): each column's key in a row, each option value's label
    and meaning."""

    def __init__(self, table: str, schema: ResolvedSchema) -> None:
        self.table, self.schema = table, schema
        self._keys: dict[str, str] = {}
        self._options: dict[tuple[str, int | None], tuple[str | None, str | None]] = {}

    def key(self, column: str) -> str:
        key = self._keys.get(column)
        if key is None:
            actual = self.schema.col(self.table, column)
            key = self._keys[column] = f"_{actual}_value" if _is_lookup(self.table, column) else actual
        return key

    def option(self, column: str, value: int | None) -> tuple[str | None, str | None]:
        """The label of an option value, and its meaning."""
        found = self._options.get((column, value))
        if found is None:
            label = self.schema.label(self.table, column, value)
            meaning = self.schema.schema_map.meaning_of(self.table, column, label)
            found = self._options[(column, value)] = (label, meaning)
        return found


class Row:
    """One Dataverse row read through the resolved schema, by default column names; `reading`
    (shared by the rows of one table) keeps what does not change from row to row."""

    __slots__ = ("_reading", "raw", "schema", "table")

    def __init__(
        self, table: str, raw: dict[str, Any], schema: ResolvedSchema, reading: TableReading | None = None
    ) -> None:
        self.table, self.raw, self.schema = table, raw, schema
        self._reading = reading or TableReading(table, schema)

    def _key(self, column: str) -> str:
        return self._reading.key(column)

    def value(self, column: str) -> Any:
        return self.raw.get(self._key(column))

    def formatted(self, column: str) -> str | None:
        shown = self.raw.get(f"{self._key(column)}{_NAME}")
        return shown if isinstance(shown, str) else None

    def text(self, column: str) -> str | None:
        value = self.value(column)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise RowError(f"{self.table}.{column} is {_shown(value)}, not text")
        if isinstance(value, str) and _is_lookup(self.table, column):
            # One string per id however many rows point at it (50,000 subscriptions name the same
            # product and 10,000 customers): a large tenant's records hold ids above all.
            return sys.intern(value)
        return str(value)

    def required(self, column: str) -> str:
        value = self.text(column)
        if not value:
            raise RowError(f"{self.table} row has no {column}")
        return value

    def guid(self, column: str) -> str:
        """A row id, canonical: the loaders put ids into `$filter`s, and only GUIDs go in unquoted."""
        value = self.required(column)
        if _CANONICAL_GUID.fullmatch(value):
            return value
        try:
            return canonical_guid(value)
        except ValueError:
            raise RowError(f"{self.table} row has a {column} that is not a GUID") from None

    def decimal(self, column: str) -> Decimal | None:
        value = self.value(column)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise RowError(f"{self.table}.{column} is {_shown(value)}, not a number")
        number = _number(str(value))
        if number is None:  # not a number, or NaN, which would make every comparison a check makes raise
            raise RowError(f"{self.table}.{column} is {_shown(value)}, not a number")
        return number

    def integer(self, column: str) -> int | None:
        value = self.value(column)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise RowError(f"{self.table}.{column} is {_shown(value)}, not a whole number")
        try:
            return int(value)
        except (ValueError, OverflowError):
            raise RowError(f"{self.table}.{column} is {_shown(value)}, not a whole number") from None

    def boolean(self, column: str) -> bool | None:
        value = self.value(column)
        if value is None or isinstance(value, bool):
            return value
        if value in (0, 1) and isinstance(value, int):
            return bool(value)
        raise RowError(f"{self.table}.{column} is {_shown(value)}, not true or false")

    def day(self, column: str) -> dt.date | None:
        return self._dated(column, _day)

    def moment(self, column: str) -> dt.datetime | None:
        return self._dated(column, _moment)

    def _dated(self, column: str, parse: Callable[[str], T]) -> T | None:
        value = self.value(column)
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            raise RowError(f"{self.table}.{column} is {_shown(value)}, not a date")
        try:
            return parse(value)
        except ValueError:
            raise RowError(f"{self.table}.{column} is {_shown(value)}, not a date") from None
        except OverflowError:  # the edge of the calendar, moved past it by its offset
            raise RowError(f"{self.table}.{column} is {_shown(value)}, a date out of range") from None

    def created(self) -> dt.datetime:
        moment = self.moment("createdon")
        if moment is None:
            raise RowError(f"{self.table} row has no createdon")
        return moment

    def label(self, column: str) -> str | None:
        return self._option(column)[0]

    def meaning(self, column: str) -> str | None:
        return self._option(column)[1]

    def _option(self, column: str) -> tuple[str | None, str | None]:
        value = self.value(column)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise RowError(f"{self.table}.{column} is {_shown(value)}, not an option value")
        return self._reading.option(column, value)


def _provider(r: Row) -> Provider:
    meaning = r.meaning("work365_provider_type")
    kind = {"automatic_usage": ProviderKind.AUTOMATIC_USAGE, "manual": ProviderKind.MANUAL}.get(
        meaning or "", ProviderKind.OTHER
    )
    return Provider(
        id=r.guid("work365_providerid"),
        name=r.text("work365_name") or "(unnamed provider)",
        type_label=r.label("work365_provider_type"),
        kind=kind,
        invoice_day=r.integer("work365_provider_invoiceday"),
    )


def _provider_invoice(r: Row) -> ProviderInvoice:
    meaning = r.meaning("statuscode")
    return ProviderInvoice(
        id=r.guid("work365_providerinvoiceid"),
        name=r.text("work365_name") or "",
        invoice_number=r.text("work365_providerinvoice_invoicenumber"),
        provider_id=r.text("work365_providerinvoice_provider"),
        invoice_date=r.day("work365_providerinvoice_invoicedate"),
        period_start=r.day("work365_providerinvoice_billingperiodstart"),
        period_end=r.day("work365_providerinvoice_billingperiodend"),
        total_amount=r.decimal("work365_providerinvoice_totalamount"),
        usage_total=r.decimal("work365_providerinvoice_usagetotal"),
        message=r.text("work365_providerinvoice_message"),
        currency_id=r.text("transactioncurrencyid"),
        status=_pi_status(meaning),
        status_label=r.label("statuscode"),
        created_on=r.created(),
        modified_on=r.moment("modifiedon"),
    )


def _usage(r: Row) -> UsageSummary:
    return UsageSummary(
        id=r.guid("work365_usagesummaryid"),
        provider_invoice_id=r.text("work365_usagesummary_providerinvoice"),
        subscription_id=r.text("work365_usagesummary_subscription"),
        customer_id=r.text("work365_usagesummary_customer"),
        invoice_id=r.text("work365_usagesummary_invoice"),
        charge_start=r.day("work365_usagesummary_chargestartdate"),
        charge_end=r.day("work365_usagesummary_chargeenddate"),
        cost=r.decimal("work365_usagesummary_cost"),
        markup=r.decimal("work365_usagesummary_markup"),
        archived=r.meaning("statuscode") == "archived",
        created_on=r.created(),
    )


_US = "work365_usagesummary"
_USAGE_COLUMNS = (
    "work365_usagesummaryid",
    "work365_usagesummary_providerinvoice",
    "work365_usagesummary_subscription",
    "work365_usagesummary_customer",
    "work365_usagesummary_invoice",
    "work365_usagesummary_chargestartdate",
    "work365_usagesummary_chargeenddate",
    "work365_usagesummary_cost",
    "work365_usagesummary_markup",
    "statuscode",
    "createdon",
)


class _UsageRows:
    """Usage rows straight into a `UsageIndex`, half a million of them in a month: what `_usage`
    reads, read with the column keys worked out once and no record built in between. A row with
    any value this does not take as it is (a value of another type, an id not in canonical form,
    a date that does not parse) is left to `_usage`, which reads it or says what is wrong with it:
    both give the same figures for every row this takes."""

    def __init__(self, reading: TableReading) -> None:
        self._keys = tuple(reading.key(column) for column in _USAGE_COLUMNS)
        self._reading = reading
        # What the rows' values were read as, by value: a month's rows repeat few dates and markups.
        # Looked up here rather than through `_moment`, `_day`, `_number` (which fill these on a
        # miss): half a million rows make the calls themselves count.
        self._moments: dict[str, datetime] = {}
        self._days: dict[str, dt.date] = {}
        # By the float itself: two equal floats other than zero (0.0 and -0.0 are equal, and read
        # differently) have the same text, so the same Decimal.
        self._floats: dict[float, Decimal] = {}
        self._archived: dict[int | None, bool] = {}

    def add(self, raw: Any, index: UsageIndex) -> bool:
        """Add the row to `index`; False (nothing added) when it is to be read by `_usage`."""
        if type(raw) is not dict:
            return False
        get = raw.get
        k_id, k_pi, k_sub, k_customer, k_invoice, k_start, k_end, k_cost, k_markup, k_status, k_created = (
            self._keys
        )
        row_id, created = get(k_id), get(k_created)
        if type(row_id) is not str or type(created) is not str or not _CANONICAL_GUID.fullmatch(row_id):
            return False
        pi, sub, invoice, customer = get(k_pi), get(k_sub), get(k_invoice), get(k_customer)
        # Lookups are text or empty; the customer is not a figure, but a row whose value is
        # malformed is unreadable.
        for value in (pi, sub, invoice, customer):
            if value is not None and type(value) is not str:
                return False
        status = get(k_status)
        if status is not None and type(status) is not int:
            return False
        try:
            created_on = self._moments.get(created) or self._moment(created)
            start, end = self._day(get(k_start)), self._day(get(k_end))
            cost, markup = self._number(get(k_cost)), self._number(get(k_markup))
            archived = self._archived.get(status)
            if archived is None:
                archived = self._archived[status] = (
                    self._reading.option("statuscode", status)[1] == "archived"
                )
        except _NotPlain:
            return False
        except _MALFORMED:  # a date out of range, say: `_usage` says so
            return False
        if pi is not None:
            intern = sys.intern  # one string per id however many rows name it (see `Row.text`)
            group = index.group(intern(pi), None if sub is None else intern(sub))
            day = end if end is not None else start
            group.add_row(
                row_id, None if invoice is None else intern(invoice), day, cost, markup, archived, created_on
            )
        return True

    def _moment(self, value: str) -> datetime:
        moment = _moment(value)
        if len(self._moments) < _PARSED_CACHE:
            self._moments[value] = moment
        return moment

    def _day(self, value: Any) -> dt.date | None:
        if value is None or value == "":
            return None
        if type(value) is not str:
            raise _NotPlain
        day = self._days.get(value)
        if day is None:
            day = _day(value)
            if len(self._days) < _PARSED_CACHE:
                self._days[value] = day
        return day

    def _number(self, value: Any) -> Decimal | None:
        if value is None:
            return None
        kind = type(value)
        if kind is float:
            number = self._floats.get(value)
            if number is None:
                # What `_number(str(value))` gives, without its cache: costs are seldom repeated.
                number = Decimal(repr(value))
                if not number.is_finite():  # NaN, an infinity: `_usage` says so
                    raise _NotPlain
                if value and len(self._floats) < _PARSED_CACHE:
                    self._floats[value] = number
            return number
        if kind is not int and kind is not str:
            raise _NotPlain
        number = _number(str(value))
        if number is None:  # not a number, or not finite: `_usage` says so
            raise _NotPlain
        return number


class _NotPlain(Exception):
    """A value `_UsageRows` leaves to the general reader."""


def _provider_account(r: Row) -> ProviderAccount:
    sync = r.meaning("work365_provideraccount_syncstatus")
    return ProviderAccount(
        id=r.guid("work365_provideraccountid"),
        name=r.text("work365_provideraccount_name"),
        account_id=r.text("work365_provideraccount_account"),
        provider_specific_id=r.text("work365_provideraccount_providerspecificaccountid"),
        provider_id=r.text("work365_provideraccount_provider"),
        sync_disabled=None if sync is None else sync == "disabled",
        active=r.meaning("statecode") != "inactive",
        created_on=r.created(),
        modified_on=r.moment("modifiedon"),
    )


def _subscription(r: Row) -> Subscription:
    return Subscription(
        id=r.guid("work365_subscriptionid"),
        name=r.text("work365_subscription_subscriptionname"),
        customer_id=r.text("work365_subscription_customer"),
        contract_id=r.text("work365_subscription_billingcontract"),
        product_id=r.text("work365_subscription_product"),
        provider_id=r.text("work365_subscription_provider"),
        provider_subscription_id=r.text("work365_subscription_providersubscriptionid"),
        type_label=r.label("work365_subscription_subscriptiontype"),
        is_usage=r.meaning("work365_subscription_subscriptiontype") == "usage",
        markup=r.decimal("work365_subscription_markup"),
        active=r.meaning("statuscode") == "active",
        status_label=r.label("statuscode"),
        created_on=r.created(),
        modified_on=r.moment("modifiedon"),
    )


def _contract(r: Row) -> BillingContract:
    return BillingContract(
        id=r.guid("work365_billingcontractid"),
        name=r.text("work365_name"),
        customer_id=r.text("work365_billingcontract_customer"),
        start_date=r.day("work365_billingcontract_startdate"),
        next_invoice_date=r.day("work365_billingcontract_nextinvoicedate"),
        billing_policy=r.label("work365_billingcontract_billingpolicy"),
        billing_frequency=r.label("work365_billingcontract_billingfrequency"),
        billing_offset=r.integer("work365_billingcontract_billingoffset"),
        end_date=r.day("work365_billingcontract_enddate"),
        auto_renew=r.boolean("work365_billingcontract_autorenew"),
        active=r.meaning("statecode") != "inactive",
    )


def _pi_status(meaning: str | None) -> PIStatus:
    try:
        return PIStatus(meaning or "unknown")
    except ValueError:
        return PIStatus.UNKNOWN


def _schedule_status(meaning: str | None) -> ScheduleStatus:
    try:
        return ScheduleStatus(meaning or "unknown")
    except ValueError:
        return ScheduleStatus.UNKNOWN


def _schedule(r: Row) -> BillingSchedule:
    meaning = r.meaning("statuscode")
    return BillingSchedule(
        id=r.guid("work365_billingscheduleid"),
        name=r.text("work365_name"),
        contract_id=r.text("work365_billingschedule_billingcontract"),
        schedule_date=r.day("work365_billingschedule_scheduledate"),
        cycle_start=r.day("work365_billingschedule_cyclestart"),
        cycle_end=r.day("work365_billingschedule_cycleend"),
        invoice_id=r.text("work365_billingschedule_invoice"),
        run_date=r.moment("work365_billingschedule_rundate"),
        run_type=r.label("work365_billingschedule_runtype"),
        message=r.text("work365_billingschedule_message"),
        correlation_id=r.text("work365_billingschedule_correlationid"),
        status=_schedule_status(meaning),
        status_label=r.label("statuscode"),
    )


def _invoice(r: Row) -> CustomerInvoice:
    return CustomerInvoice(
        id=r.guid("invoiceid"),
        name=r.text("name"),
        number=r.text("invoicenumber"),
        contract_id=r.text("work365_invoice_billingcontract"),
        billing_date=r.day("work365_invoice_billingdate"),
        created_on=r.created(),
    )


def _currency(r: Row) -> Currency:
    return Currency(
        id=r.guid("transactioncurrencyid"),
        iso_code=r.text("isocurrencycode"),
        name=r.text("currencyname"),
        active=r.meaning("statecode") != "inactive",
        modified_on=r.moment("modifiedon"),
    )


def _note(r: Row) -> Note:
    body = r.text("documentbody")
    size = r.integer("filesize")
    content: bytes | None = None
    problem: str | None = None
    if body:
        try:
            content = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            problem = "the note's document body is not valid base64"
    elif size:
        # A file, and no body: the note was over the size limit, so its body was never asked for
        # (see note_queries).
        problem = f"too large: the file is {size:,} bytes, over the limit DIAG_NOTE_MAX_BYTES"
    else:
        problem = "the note has no file attached"
    return Note(
        id=r.guid("annotationid"),
        invoice_id=r.guid("objectid"),
        filename=r.text("filename") or "",
        content=content,
        decode_error=problem,
        created_on=r.created(),
    )


def _pc_invoice(raw: dict[str, Any]) -> PartnerCenterInvoice:
    def moment(key: str) -> datetime | None:
        value = raw.get(key)
        if not value:
            return None
        try:
            parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
            return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
        except OverflowError:  # a date at the edge of the calendar, moved past it by its offset
            raise ValueError(f"{key} {value!r} is out of range") from None

    total = raw.get("totalCharges")
    try:
        charges = None if total is None or isinstance(total, bool) else Decimal(str(total))
    except InvalidOperation:
        raise ValueError(f"totalCharges {total!r} is not a number") from None
    if charges is not None and not charges.is_finite():
        raise ValueError(f"totalCharges {total!r} is not a number")
    invoice_date = moment("invoiceDate")
    start, end = moment("billingPeriodStartDate"), moment("billingPeriodEndDate")
    inferred = (
        start is None
        and invoice_date is not None
        and str(raw.get("invoiceType") or "").casefold() == "onetime"
    )
    if inferred and invoice_date is not None:
        # Microsoft's documented list leaves the billing period out; a one-time (new-commerce)
        # invoice bills the calendar month before the month it is dated in (platform-apis.md 1.7;
        # Microsoft's billing documentation is the only source for that rule).
        billed = add_months(period_of(invoice_date.date()), -1)
        start = datetime.combine(period_start(billed), dt.time(), UTC)
        end = datetime.combine(period_end(billed), dt.time(), UTC)
    return PartnerCenterInvoice(
        id=str(raw.get("id", "")),
        invoice_date=invoice_date,
        period_start=start,
        period_end=end,
        total_charges=charges,
        currency_code=raw.get("currencyCode"),
        invoice_type=raw.get("invoiceType"),
        document_type=raw.get("documentType"),
        period_inferred=inferred,
    )


class Loader:
    """Builds the queries of one snapshot and turns their rows into the domain model."""

    def __init__(self, schema: ResolvedSchema, thresholds: Thresholds) -> None:
        self.schema = schema
        self.t = thresholds
        self._readings: dict[str, TableReading] = {}
        self._usage_rows: _UsageRows | None = None

    def reading(self, table: str) -> TableReading:
        """What the rows of `table` share (see `TableReading`): one per table and loader."""
        found = self._readings.get(table)
        if found is None:
            found = self._readings[table] = TableReading(table, self.schema)
        return found

    def query(self, table: str, filter_: str | None = None, *, annotations: bool = False) -> Query:
        # What the checks read (their declarations), less what the environment lacks: a missing
        # column stops the checks that read it (SCHEMA_MISMATCH), not the whole query.
        select = tuple(
            self.c(table, c)
            for c in self.schema.select[table]
            if column_key(table, c) not in self.schema.missing
        )
        return Query(self.schema.entity_set(table), select, filter_, annotations=annotations)

    def c(self, table: str, column: str) -> str:
        actual = self.schema.col(table, column)
        return f"_{actual}_value" if _is_lookup(table, column) else actual

    def in_filter(self, table: str, column: str, values: Iterable[str]) -> list[str]:
        ordered = sorted(set(values))
        out = []
        for start in range(0, len(ordered), _IN_CHUNK):
            # PropertyValues are strings; ids in canonical form, quotes doubled (never raw input).
            chunk = ",".join(odata_string(canonical_or_same(v)) for v in ordered[start : start + _IN_CHUNK])
            out.append(
                f"Microsoft.Dynamics.CRM.In(PropertyName='{self.c(table, column)}',PropertyValues=[{chunk}])"
            )
        return out

    def rows(self, table: str, raw_rows: Sequence[dict[str, Any]], build: Callable[[Row], T]) -> list[T]:
        """Every row as a record; RowError for the first that cannot be read."""
        out = []
        reading = self.reading(table)
        for index, raw in enumerate(raw_rows):
            try:
                out.append(_build(build, Row(table, raw, self.schema, reading)))
            except RowError as exc:
                raise RowError(f"row {index + 1}: {exc}") from None
        return out

    def records(
        self, part: str, table: str, raw_rows: Sequence[Any], build: Callable[[Row], T]
    ) -> tuple[list[T], list[UnreadableRecord]]:
        """The rows that can be read as records, and one UnreadableRecord per row that cannot."""
        out: list[T] = []
        bad: list[UnreadableRecord] = []
        reading = self.reading(table)
        for index, raw in enumerate(raw_rows):
            try:
                out.append(_build(build, Row(table, raw, self.schema, reading)))
            except RowError as exc:
                bad.append(self._unreadable(part, table, index + 1, raw, str(exc)))
        return out, bad

    def reduce_usage(self, raw_rows: Sequence[Any], index: UsageIndex) -> list[UnreadableRecord]:
        """Usage summary rows reduced into `index` (`UsageIndex`), never held as records; one
        UnreadableRecord per row that cannot be read (numbered within `raw_rows`)."""
        if self._usage_rows is None:
            self._usage_rows = _UsageRows(self.reading(_US))
        plain = self._usage_rows
        bad: list[UnreadableRecord] = []
        for number, raw in enumerate(raw_rows, start=1):
            if not plain.add(raw, index):
                records, unreadable = self.records("usage_summaries", _US, [raw], _usage)
                for record in records:
                    index.add(record)
                bad += [u.model_copy(update={"row": number}) for u in unreadable]
        return bad

    def _unreadable(self, part: str, table: str, row: int, raw: Any, reason: str) -> UnreadableRecord:
        subject_type, owner = _RECORD_SUBJECTS.get(part, ("tenant", None))
        column = owner or TABLES[table].primary_key
        subject_id = None
        if subject_type != "tenant" and isinstance(raw, dict):
            value = raw.get(self.c(table, column))
            subject_id = value if isinstance(value, str) and value else None
        record_id = raw.get(self.c(table, TABLES[table].primary_key)) if isinstance(raw, dict) else None
        return UnreadableRecord(
            part=part,
            table=table,
            row=row,
            record_id=record_id if isinstance(record_id, str) else None,
            reason=reason,
            # a record whose owner cannot be told stops the checks of the whole tenant's records
            subject_type=subject_type if subject_id else "tenant",
            subject_id=subject_id,
        )


# Whose checks an unreadable record stops: the record itself (None) or the record a lookup names.
_RECORD_SUBJECTS: dict[str, tuple[str, str | None]] = {
    "provider_invoices": ("provider_invoice", None),
    "usage_summaries": ("provider_invoice", "work365_usagesummary_providerinvoice"),
    "notes": ("provider_invoice", "objectid"),
    "subscriptions": ("subscription", None),
    "contracts": ("billing_contract", None),
    "schedules": ("billing_contract", "work365_billingschedule_billingcontract"),
    "invoices": ("billing_contract", "work365_invoice_billingcontract"),
}
# What a malformed value can raise on its way into a record (pydantic's ValidationError is a
# ValueError, decimal's InvalidOperation an ArithmeticError, a nested value too deep a RecursionError).
_MALFORMED = (ValueError, TypeError, ArithmeticError, LookupError, AttributeError, RecursionError)


def _build(build: Callable[[Row], T], row: Row) -> T:
    if not isinstance(row.raw, dict):
        raise RowError(f"{row.table} row is {_shown(row.raw)}, not an object")
    try:
        return build(row)
    except RowError:
        raise
    except _MALFORMED as exc:
        raise RowError(f"{row.table} row cannot be read ({type(exc).__name__}: {_first_line(exc)})") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0][:150] if text else "") or type(exc).__name__


@cache  # the default schema is fixed; every value of every row asks (row decoding's hot path)
def _is_lookup(table: str, column: str) -> bool:
    return TABLES[table].column(column).type == "Lookup"


_FILES = "(filename eq 'errors.csv' or filename eq 'warnings.csv')"


def note_queries(loader: Loader, invoice_ids: Iterable[str]) -> list[tuple[str, Query]]:
    """The errors.csv / warnings.csv notes of these invoices, as two queries of one round trip:
    those under the size limit (`Thresholds.note_max_bytes`) with their body, those over it without
    (they are reported as too large; a 50 MB body is never downloaded)."""
    size = loader.c("annotation", "filesize")
    body = loader.c("annotation", "documentbody")
    limit = loader.t.note_max_bytes
    small = f"{_FILES} and ({size} le {limit} or {size} eq null)"
    large = f"{_FILES} and {size} gt {limit}"
    out: list[tuple[str, Query]] = []
    for clause in loader.in_filter("annotation", "objectid", invoice_ids):
        out.append(("notes", loader.query("annotation", f"{clause} and {small}")))
        whole = loader.query("annotation", f"{clause} and {large}")
        out.append(("notes", replace(whole, select=tuple(c for c in whole.select if c != body))))
    return out


def _pc_invoices(raw: Sequence[Any]) -> tuple[list[PartnerCenterInvoice], list[str]]:
    """Partner Center's invoice records, read one by one: a malformed record (a date out of range,
    a total that is not a number, an item that is not an object) becomes an invoice whose period is
    unknown, so that the month it might bill is reported unverified, never as a Microsoft delay.
    Returns the invoices and a one-line reason per malformed record."""
    out: list[PartnerCenterInvoice] = []
    malformed: list[str] = []
    for index, item in enumerate(raw):
        try:
            out.append(_pc_invoice(item))
            continue
        except _MALFORMED as exc:
            reason = _first_line(exc)
        fields = item if isinstance(item, dict) else {}

        def text(key: str, fields: dict[str, Any] = fields) -> str | None:
            value = fields.get(key)
            return value[:100] if isinstance(value, str) and value else None

        ident = text("id") or f"#{index + 1}"
        # The reason is one line: an id with a line break or control character is shown quoted.
        malformed.append(f"invoice {ident if ident.isprintable() else repr(ident)}: {reason}")
        out.append(
            PartnerCenterInvoice(
                id=ident,
                invoice_date=None,
                period_start=None,
                period_end=None,
                total_charges=None,
                currency_code=None,
                invoice_type=text("invoiceType"),
                document_type=text("documentType"),
            )
        )
    return out, malformed


async def _partner_center(client: InvoiceLister | None, period: str) -> PartnerCenterView:
    if client is None:
        return PartnerCenterView(
            state="not_configured", reason="Partner Center is not configured for this tool"
        )
    try:
        invoices, malformed = _pc_invoices(await client.list_invoices())
        invoices, period_error = await _read_missing_periods(client, invoices, period)
        if malformed:
            more = f" (and {len(malformed) - 1} more)" if len(malformed) > 1 else ""
            said = f"Partner Center answered a malformed invoice record: {malformed[0]}{more}"
            period_error = f"{said}; {period_error}" if period_error else said
        return PartnerCenterView(state="ok", invoices=tuple(invoices), period_error=period_error)
    except ServiceError as exc:
        return PartnerCenterView(state="unreachable", reason=str(exc))
    except (ValueError, TypeError) as exc:
        return PartnerCenterView(state="unreachable", reason=f"Partner Center answered malformed data: {exc}")


async def _read_missing_periods(
    client: InvoiceLister, invoices: list[PartnerCenterInvoice], period: str
) -> tuple[list[PartnerCenterInvoice], str | None]:
    """Read by id the invoices that could bill `period` but came without a billing period.

    Only those candidates are read (at most `_MAX_PERIOD_READS`): invoices dated before the period
    began cannot bill it. What stays unknown is said in the returned message.
    """
    begins = period_start(period)
    candidates = [
        inv
        for inv in usage_invoices(invoices)
        if inv.period_start is None and (inv.invoice_date is None or inv.invoice_date.date() >= begins)
    ]
    if not candidates:
        return invoices, None
    read = candidates[:_MAX_PERIOD_READS]
    answers = await client.read_invoices([inv.id for inv in read])
    found: dict[str, PartnerCenterInvoice] = {}
    failures: list[str] = []
    for inv, answer in zip(read, answers, strict=True):
        if isinstance(answer, AuthError):
            failures.append(
                f"Partner Center refused it ({answer.status}): Microsoft allows reading an invoice by id "
                "to App+User sign-ins only, and this tool signs in as an app"
            )
            continue
        if isinstance(answer, ServiceError):
            failures.append(str(answer))
            continue
        try:
            full = _pc_invoice(answer)
        except _MALFORMED as exc:
            failures.append(f"invoice {inv.id} read by id is malformed: {_first_line(exc)}")
            continue
        if full.period_start is not None:
            found[inv.id] = full
    unknown = [inv.id for inv in candidates if inv.id not in found]
    if not unknown:
        return [found.get(inv.id, inv) for inv in invoices], None
    message = (
        f"Partner Center's invoice list gave no billing period for {', '.join(unknown[:5])}"
        f"{f' and {len(unknown) - 5} more' if len(unknown) > 5 else ''}"
    )
    if failures:
        message += f", and reading them by id failed: {failures[0]}"
    elif len(candidates) > len(read):
        message += f"; only {len(read)} are read by id per check"
    else:
        message += ", nor did reading them by id"
    return [found.get(inv.id, inv) for inv in invoices], message


async def find_invoice(dv: DataverseReader, loader: Loader, key: str) -> ProviderInvoice:
    """The provider invoice with this id or invoice number (InputError when there is none)."""
    table = "work365_providerinvoice"
    by_id = _looks_like_guid(key)
    column = "work365_providerinvoiceid" if by_id else "work365_providerinvoice_invoicenumber"
    literal = canonical_guid(key) if by_id else odata_string(key)
    rows = await dv.query(loader.query(table, f"{loader.c(table, column)} eq {literal}"))
    found = loader.rows(table, rows, _provider_invoice)
    if not found:
        raise InvoiceNotFound(f"no provider invoice with {'id' if by_id else 'invoice number'} {key!r}")
    return sorted(found, key=lambda pi: pi.created_on)[-1]


def _looks_like_guid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return len(text.strip("{}")) == 36


# Snapshot part -> (table, row builder).
_PARTS: dict[str, tuple[str, Callable[[Row], Any]]] = {
    "providers": ("work365_provider", _provider),
    "provider_invoices": ("work365_providerinvoice", _provider_invoice),
    "provider_accounts": ("work365_provideraccount", _provider_account),
    "subscriptions": ("work365_subscription", _subscription),
    "contracts": ("work365_billingcontract", _contract),
    "currencies": ("transactioncurrency", _currency),
    "usage_summaries": ("work365_usagesummary", _usage),
    "notes": ("annotation", _note),
    "schedules": ("work365_billingschedule", _schedule),
    "invoices": ("invoice", _invoice),
}


def _usage_type_filter(loader: Loader) -> str | None:
    values = loader.schema.values_meaning(
        "work365_subscription", "work365_subscription_subscriptiontype", "usage"
    )
    if not values:
        return None  # verification reports the missing label; read every subscription meanwhile
    column = loader.c("work365_subscription", "work365_subscription_subscriptiontype")
    return " or ".join(f"{column} eq {v}" for v in values)


def _account_names(rows: list[dict[str, Any]], account_table: str = "account") -> dict[str, str]:
    """Customer names from the lookups' formatted values: no extra request for account names.

    Only a lookup annotated as pointing at the account table counts: without the annotation the
    formatted value may name a provider, a contract or a contact, never to be shown as a customer.
    """
    names = {}
    formatted = f"_value{_NAME}"  # made once: every key of every row is looked at
    for raw in rows:
        if type(raw) is not dict:
            continue  # a row that is not an object is the record builders' to report
        for key, value in raw.items():
            if key.endswith(formatted) and isinstance(value, str):
                lookup = raw.get(key.removesuffix(_NAME))
                logical = raw.get(key.removesuffix(_NAME) + _LOOKUP_TABLE)
                if isinstance(lookup, str) and logical == account_table:
                    names[lookup] = value
    return names


def _read(
    loader: Loader,
    part: str,
    answer: list[dict[str, Any]] | ServiceError,
    failures: dict[str, str],
    unreadable: list[UnreadableRecord] | None = None,
) -> list[Any]:
    """The part's rows as domain records; a failed part is recorded in `failures`, a malformed
    record in `unreadable` (the rest of the part is used), nothing is raised."""
    if isinstance(answer, ServiceError):
        failures[part] = str(answer)
        return []
    table, build = _PARTS[part]
    if unreadable is None:
        try:
            return loader.rows(table, answer, build)
        except RowError as exc:
            failures[part] = f"malformed data in {table}: {exc}"
            return []
    records, bad = loader.records(part, table, answer, build)
    unreadable.extend(bad)
    return records
