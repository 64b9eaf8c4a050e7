"""The default Work 365 schema (contracts/work365-schema.md) and the user's overrides of it.

Work 365 does not publish its schema, so every table and column the tool reads is named here once,
under its *default* logical name. The rest of the code always speaks in these default names; a
`SchemaMap` translates them to the names a partner's environment really uses (one JSON override
file, only what differs) and maps option-set labels to the meanings the checks need.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from diagnostics.errors import InputError
from diagnostics.jsonfile import read_json_object

AttributeType = Literal[
    "Uniqueidentifier",
    "String",
    "Memo",
    "Lookup",
    "DateTime",
    "DateOnly",
    "Money",
    "Decimal",
    "Integer",
    "Boolean",
    "State",
    "Status",
    "Picklist",
]


@dataclass(frozen=True)
class ColumnDef:
    logical: str
    display: str
    type: AttributeType
    target: str | None = None  # lookup target table (default name)
    options: tuple[str, ...] = ()  # picklist labels, in option-value order


@dataclass(frozen=True)
class TableDef:
    logical: str
    display: str
    entity_set: str
    primary_key: str
    primary_name: str
    columns: tuple[ColumnDef, ...]
    # statuscode label -> statecode label; empty for tables without state (annotation)
    status: tuple[tuple[str, str], ...] = ()

    def column(self, logical: str) -> ColumnDef:
        for col in self.columns:
            if col.logical == logical:
                return col
        raise KeyError(f"{self.logical}.{logical}")

    @property
    def column_names(self) -> frozenset[str]:
        return frozenset(c.logical for c in self.columns)


def _c(
    logical: str, display: str, type_: AttributeType, target: str | None = None, *options: str
) -> ColumnDef:
    return ColumnDef(logical, display, type_, target, tuple(options))


def _standard(pk: str, *, state: bool = True) -> tuple[ColumnDef, ...]:
    cols = [
        _c(pk, "Id", "Uniqueidentifier"),
        _c("createdon", "Created On", "DateTime"),
        _c("modifiedon", "Modified On", "DateTime"),
    ]
    if state:
        cols += [_c("statecode", "Status", "State"), _c("statuscode", "Status Reason", "Status")]
    return tuple(cols)


_ACTIVE_INACTIVE = (("Active", "Active"), ("Inactive", "Inactive"))

PROVIDER_TYPES = (
    "Microsoft Partner Center",
    "Manual",
    "Do Nothing",
    "Linked Subscription",
    "Rest",
    "Pax8",
    "TD SYNNEX",
    "StreamOne Ion",
    "Crayon",
    "Ingram Micro",
)

DEFAULT_TABLES: tuple[TableDef, ...] = (
    TableDef(
        "work365_provider",
        "Provider",
        "work365_providers",
        "work365_providerid",
        "work365_name",
        (
            *_standard("work365_providerid"),
            _c("work365_name", "Name", "String"),
            _c("work365_provider_type", "Provider Type", "Picklist", None, *PROVIDER_TYPES),
            _c("work365_provider_invoiceday", "Invoice Day", "Integer"),
        ),
        _ACTIVE_INACTIVE,
    ),
    TableDef(
        "work365_providerinvoice",
        "Provider Invoice",
        "work365_providerinvoices",
        "work365_providerinvoiceid",
        "work365_name",
        (
            *_standard("work365_providerinvoiceid"),
            _c("work365_name", "Name", "String"),
            _c("work365_providerinvoice_invoicenumber", "Invoice Number", "String"),
            _c("work365_providerinvoice_provider", "Provider", "Lookup", "work365_provider"),
            _c("work365_providerinvoice_invoicedate", "Invoice Date", "DateOnly"),
            _c("work365_providerinvoice_billingperiodstart", "Billing Period Start", "DateOnly"),
            _c("work365_providerinvoice_billingperiodend", "Billing Period End", "DateOnly"),
            _c("work365_providerinvoice_totalamount", "Total Amount", "Money"),
            _c("work365_providerinvoice_usagetotal", "Amount Totals - Usage", "Money"),
            _c("work365_providerinvoice_message", "Message", "Memo"),
            _c("transactioncurrencyid", "Currency", "Lookup", "transactioncurrency"),
        ),
        (("Populating", "Active"), ("Active Usage", "Active"), ("Active", "Active"), ("Error", "Inactive")),
    ),
    TableDef(
        "work365_usagesummary",
        "Usage Summary",
        "work365_usagesummaries",
        "work365_usagesummaryid",
        "work365_name",
        (
            *_standard("work365_usagesummaryid"),
            _c("work365_name", "Name", "String"),
            _c(
                "work365_usagesummary_providerinvoice",
                "Provider Invoice",
                "Lookup",
                "work365_providerinvoice",
            ),
            _c("work365_usagesummary_subscription", "Subscription", "Lookup", "work365_subscription"),
            _c("work365_usagesummary_customer", "Customer", "Lookup", "account"),
            _c("work365_usagesummary_invoice", "Invoice", "Lookup", "invoice"),
            _c("work365_usagesummary_chargestartdate", "Charge Start Date", "DateOnly"),
            _c("work365_usagesummary_chargeenddate", "Charge End Date", "DateOnly"),
            _c("work365_usagesummary_cost", "Cost", "Money"),
            _c("work365_usagesummary_markup", "Markup %", "Decimal"),
        ),
        (("Active", "Active"), ("Archived", "Inactive")),
    ),
    TableDef(
        "work365_provideraccount",
        "Provider Account",
        "work365_provideraccounts",
        "work365_provideraccountid",
        "work365_provideraccount_name",
        (
            *_standard("work365_provideraccountid"),
            _c("work365_provideraccount_name", "Provider Name", "String"),
            _c("work365_provideraccount_account", "Account", "Lookup", "account"),
            _c("work365_provideraccount_providerspecificaccountid", "Provider Specific Id", "String"),
            _c("work365_provideraccount_provider", "Provider", "Lookup", "work365_provider"),
            _c("work365_provideraccount_syncstatus", "Sync Status", "Picklist", None, "Enabled", "Disabled"),
        ),
        _ACTIVE_INACTIVE,
    ),
    TableDef(
        "work365_subscription",
        "Subscription",
        "work365_subscriptions",
        "work365_subscriptionid",
        "work365_subscription_subscriptionname",
        (
            *_standard("work365_subscriptionid"),
            _c("work365_subscription_subscriptionname", "Subscription Name", "String"),
            _c("work365_subscription_customer", "Customer", "Lookup", "account"),
            _c(
                "work365_subscription_billingcontract",
                "Billing Contract",
                "Lookup",
                "work365_billingcontract",
            ),
            _c("work365_subscription_product", "Product", "Lookup", "product"),
            _c("work365_subscription_provider", "Provider", "Lookup", "work365_provider"),
            _c("work365_subscription_providersubscriptionid", "Provider Subscription ID", "String"),
            _c(
                "work365_subscription_subscriptiontype",
                "Subscription Type",
                "Picklist",
                None,
                "License Based",
                "Usage Based",
                "Tiered",
                "Service Based",
            ),
            _c("work365_subscription_markup", "Markup Percentage", "Decimal"),
            _c("work365_subscription_billablestatus", "Billable Status", "Boolean"),
            _c("work365_subscription_effectivestartdate", "Effective Start Date", "DateOnly"),
            _c("work365_subscription_currentcycleconsumption", "Current Cycle Consumption", "Money"),
            _c("work365_subscription_minimumcommitment", "Minimum Commitment", "Money"),
        ),
        (
            ("Active", "Active"),
            ("Inactive", "Inactive"),
            ("Cancelled", "Inactive"),
            ("Suspended", "Inactive"),
            ("Expired", "Inactive"),
        ),
    ),
    TableDef(
        "work365_billingcontract",
        "Billing Contract",
        "work365_billingcontracts",
        "work365_billingcontractid",
        "work365_name",
        (
            *_standard("work365_billingcontractid"),
            _c("work365_name", "Name", "String"),
            _c("work365_billingcontract_customer", "Customer", "Lookup", "account"),
            _c("work365_billingcontract_startdate", "Start Date", "DateOnly"),
            _c("work365_billingcontract_nextinvoicedate", "Next Invoice Date", "DateOnly"),
            _c(
                "work365_billingcontract_billingpolicy",
                "Billing Policy",
                "Picklist",
                None,
                "Advance",
                "Arrears",
            ),
            _c(
                "work365_billingcontract_billingfrequency",
                "Billing Frequency",
                "Picklist",
                None,
                "Monthly",
                "Quarterly",
                "Annual",
            ),
            _c("work365_billingcontract_billingoffset", "Billing Offset", "Integer"),
            _c("work365_billingcontract_enddate", "End Date", "DateOnly"),
            _c("work365_billingcontract_autorenew", "Auto Renew", "Boolean"),
        ),
        _ACTIVE_INACTIVE,
    ),
    TableDef(
        "work365_billingschedule",
        "Billing Schedule",
        "work365_billingschedules",
        "work365_billingscheduleid",
        "work365_name",
        (
            *_standard("work365_billingscheduleid"),
            _c("work365_name", "Name", "String"),
            _c(
                "work365_billingschedule_billingcontract",
                "Billing Contract",
                "Lookup",
                "work365_billingcontract",
            ),
            _c("work365_billingschedule_scheduledate", "Schedule Date", "DateOnly"),
            _c("work365_billingschedule_cyclestart", "Cycle Start", "DateOnly"),
            _c("work365_billingschedule_cycleend", "Cycle End", "DateOnly"),
            _c("work365_billingschedule_invoice", "Resulting Invoice", "Lookup", "invoice"),
            _c("work365_billingschedule_rundate", "Run Date", "DateTime"),
            _c("work365_billingschedule_runtype", "Run Type", "Picklist", None, "Manual", "Automatic"),
            _c("work365_billingschedule_message", "Message", "Memo"),
            _c("work365_billingschedule_correlationid", "Correlation ID", "String"),
        ),
        (("Pending", "Active"), ("Error", "Active"), ("Invoiced", "Inactive")),
    ),
    TableDef(
        "invoice",
        "Invoice",
        "invoices",
        "invoiceid",
        "name",
        (
            *_standard("invoiceid"),
            _c("name", "Name", "String"),
            _c("invoicenumber", "Invoice ID", "String"),
            _c("totalamount", "Total Amount", "Money"),
            _c("work365_invoice_billingcontract", "Billing Contract", "Lookup", "work365_billingcontract"),
            _c("work365_invoice_billingdate", "Billing Date", "DateOnly"),
        ),
        (("Draft", "Active"), ("Billed", "Active"), ("Complete", "Paid"), ("Canceled", "Canceled")),
    ),
    TableDef(
        "account",
        "Account",
        "accounts",
        "accountid",
        "name",
        # websiteurl: the customer's web domain, one way the reference handler matches a customer.
        (
            *_standard("accountid"),
            _c("name", "Account Name", "String"),
            _c("websiteurl", "Website", "String"),
        ),
        _ACTIVE_INACTIVE,
    ),
    TableDef(
        "transactioncurrency",
        "Currency",
        "transactioncurrencies",
        "transactioncurrencyid",
        "currencyname",
        (
            *_standard("transactioncurrencyid"),
            _c("isocurrencycode", "Currency Code", "String"),
            _c("currencyname", "Currency Name", "String"),
        ),
        _ACTIVE_INACTIVE,
    ),
    TableDef(
        "product",
        "Product",
        "products",
        "productid",
        "name",
        (
            *_standard("productid"),
            _c("name", "Name", "String"),
            _c("productnumber", "Product ID", "String"),
        ),
        _ACTIVE_INACTIVE,
    ),
    TableDef(
        "annotation",
        "Note",
        "annotations",
        "annotationid",
        "subject",
        (
            *_standard("annotationid", state=False),
            _c("subject", "Title", "String"),
            _c("notetext", "Description", "Memo"),
            _c("filename", "File Name", "String"),
            _c("mimetype", "Mime Type", "String"),
            _c("documentbody", "Document", "Memo"),
            _c("filesize", "File Size (Bytes)", "Integer"),
            _c("isdocument", "Is Document", "Boolean"),
            _c("objectid", "Regarding", "Lookup", None),
            _c("objecttypecode", "Object Type", "String"),
        ),
    ),
)

TABLES: Mapping[str, TableDef] = {t.logical: t for t in DEFAULT_TABLES}

# Meanings the checks need, keyed "table.column", each with its default labels (matched
# case-insensitively). Users add synonyms in the override file; defaults are never removed.
DEFAULT_LABELS: Mapping[str, Mapping[str, tuple[str, ...]]] = {
    "work365_providerinvoice.statuscode": {
        "populating": ("Populating",),
        "active_usage": ("Active Usage",),
        "active": ("Active",),
        "error": ("Error",),
    },
    "work365_usagesummary.statuscode": {"active": ("Active",), "archived": ("Archived",)},
    "work365_billingschedule.statuscode": {
        "pending": ("Pending",),
        "error": ("Error",),
        "invoiced": ("Invoiced",),
    },
    "work365_subscription.statuscode": {
        "active": ("Active",),
        "inactive": ("Inactive", "Cancelled", "Suspended", "Expired"),
    },
    "work365_billingcontract.statecode": {"active": ("Active",), "inactive": ("Inactive",)},
    "work365_provideraccount.statecode": {"active": ("Active",), "inactive": ("Inactive",)},
    "transactioncurrency.statecode": {"active": ("Active",), "inactive": ("Inactive",)},
    "work365_provider.work365_provider_type": {
        # Only Microsoft's CSP integration imports usage automatically (work365-domain.md §1.7).
        "automatic_usage": ("Microsoft Partner Center", "Microsoft CSP", "Microsoft"),
        "manual": ("Manual",),
    },
    "work365_provideraccount.work365_provideraccount_syncstatus": {
        "enabled": ("Enabled",),
        "disabled": ("Disabled",),
    },
    "work365_subscription.work365_subscription_subscriptiontype": {"usage": ("Usage Based", "Usage")},
}


@dataclass(frozen=True)
class SchemaMap:
    """Default names → environment names, and labels → meanings.

    Built from the defaults plus the user's override file. Only what differs is written there:
    `{"tables": {default: actual}, "columns": {"table.column": actual}, "labels": {"table.column":
    {meaning: [synonym, ...]}}}`.
    """

    tables: Mapping[str, str] = field(default_factory=dict)
    columns: Mapping[str, str] = field(default_factory=dict)
    labels: Mapping[str, Mapping[str, tuple[str, ...]]] = field(default_factory=lambda: DEFAULT_LABELS)
    source: str = "defaults"

    def table(self, default: str) -> str:
        return self.tables.get(default, default)

    def column(self, table: str, default: str) -> str:
        return self.columns.get(f"{table}.{default}", default)

    def meaning_of(self, table: str, column: str, label: str | None) -> str | None:
        """The meaning of an option label, or None when the label is unknown to the map."""
        if label is None:
            return None
        wanted = label.strip().casefold()
        for meaning, synonyms in self.labels.get(f"{table}.{column}", {}).items():
            if any(s.casefold() == wanted for s in synonyms):
                return meaning
        return None

    def labels_for(self, table: str, column: str, meaning: str) -> tuple[str, ...]:
        return self.labels.get(f"{table}.{column}", {}).get(meaning, ())

    def to_override_json(self) -> dict[str, object]:
        out: dict[str, object] = {}
        if self.tables:
            out["tables"] = dict(self.tables)
        if self.columns:
            out["columns"] = dict(self.columns)
        extra = _label_additions(self.labels)
        if extra:
            out["labels"] = extra
        return out


def _label_additions(
    labels: Mapping[str, Mapping[str, tuple[str, ...]]],
) -> dict[str, dict[str, list[str]]]:
    extra: dict[str, dict[str, list[str]]] = {}
    for key, meanings in labels.items():
        for meaning, synonyms in meanings.items():
            defaults = {s.casefold() for s in DEFAULT_LABELS.get(key, {}).get(meaning, ())}
            added = [s for s in synonyms if s.casefold() not in defaults]
            if added:
                extra.setdefault(key, {})[meaning] = added
    return extra


def _known_column(key: str) -> tuple[str, str]:
    table, _, column = key.partition(".")
    if table not in TABLES:
        raise InputError(f"schema map: unknown table {table!r} in {key!r}; use a default table name")
    if column not in TABLES[table].column_names:
        raise InputError(f"schema map: unknown column {key!r}; use 'table.column' with default names")
    return table, column


def _strings(value: object, where: str) -> Mapping[str, str]:
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and v for k, v in value.items()
    ):
        raise InputError(f"schema map: {where} must be an object of non-empty strings")
    return value


def build_schema_map(overrides: Mapping[str, object], source: str) -> SchemaMap:
    unknown = set(overrides) - {"tables", "columns", "labels", "$comment"}
    if unknown:
        raise InputError(
            f"schema map {source}: unknown key(s) {sorted(unknown)}; allowed: tables, columns, labels"
        )
    tables = _strings(overrides.get("tables", {}), "'tables'")
    for name in tables:
        if name not in TABLES:
            raise InputError(f"schema map {source}: unknown table {name!r}; use a default table name")
    columns = _strings(overrides.get("columns", {}), "'columns'")
    for key in columns:
        _known_column(key)
    labels: dict[str, dict[str, tuple[str, ...]]] = {k: dict(v) for k, v in DEFAULT_LABELS.items()}
    raw_labels = overrides.get("labels", {})
    if not isinstance(raw_labels, dict):
        raise InputError(f"schema map {source}: 'labels' must be an object")
    for key, meanings in raw_labels.items():
        _known_column(key)
        if not isinstance(meanings, dict):
            raise InputError(f"schema map {source}: labels of {key!r} must map meanings to label lists")
        for meaning, synonyms in meanings.items():
            if not isinstance(synonyms, list) or not all(isinstance(s, str) and s for s in synonyms):
                raise InputError(f"schema map {source}: labels {key}.{meaning} must be a list of strings")
            current = labels.setdefault(key, {}).get(meaning, ())
            labels[key][meaning] = tuple(dict.fromkeys([*current, *synonyms]))
    return SchemaMap(tables=dict(tables), columns=dict(columns), labels=labels, source=source)


def load_schema_map(path: Path | None) -> SchemaMap:
    """The defaults, or the defaults with the user's override file applied."""
    if path is None:
        return SchemaMap()
    raw = read_json_object(path, f"schema map file {path}")
    return build_schema_map(raw, str(path))


# --- What the tool reads: one registry ----------------------------------------------------------
#
# Every check declares the snapshot parts it needs and the columns and status meanings it reads
# beyond them (diagnostics/checks/__init__.py); each part names the columns its loading itself
# needs (keys, the joins and filters of the queries, what the shared indexes of the checks use).
# The loader's `$select` and the metadata verification both derive from this registry, so a column
# no check reads is neither read nor verified, and a difference stops only the checks that read it.


def column_key(table: str, column: str) -> str:
    """The failure key of one column (default names): checks that read it need it."""
    return f"{table}.{column}"


def label_key(table: str, column: str) -> str:
    """The failure key of the status or choice meanings of one column (default names)."""
    return f"{table}.{column} (labels)"


@dataclass(frozen=True)
class PartRead:
    """One snapshot part: the table it is read from and what its loading itself reads."""

    table: str
    columns: tuple[str, ...]
    labels: tuple[str, ...] = ()  # columns whose option labels the part's rows turn into meanings


@dataclass(frozen=True)
class Reads:
    """What one check reads: its parts, plus further `(table, column)`s and the columns whose
    option labels it needs as meanings (those columns are read too)."""

    parts: tuple[str, ...]
    columns: tuple[tuple[str, str], ...] = ()
    labels: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class ReadRegistry:
    parts: Mapping[str, PartRead]
    checks: Mapping[str, Reads]

    def __post_init__(self) -> None:
        for name, reads in self.checks.items():
            for part in reads.parts:
                if part not in self.parts:
                    raise ValueError(f"check {name} needs unknown snapshot part {part!r}")
            for table, column in (*reads.columns, *reads.labels):
                TABLES[table].column(column)  # KeyError: a declaration with no such default column
        for read in self.parts.values():
            for column in (*read.columns, *read.labels):
                TABLES[read.table].column(column)

    def tables(self) -> tuple[str, ...]:
        """The tables read, in the default schema's order."""
        used = {p.table for p in self.parts.values()}
        return tuple(t for t in TABLES if t in used)

    def parts_of(self, table: str) -> tuple[str, ...]:
        return tuple(name for name, p in self.parts.items() if p.table == table)

    def columns(self, table: str) -> tuple[str, ...]:
        """Every column of `table` that some part or check reads, in the default schema's order."""
        wanted = {c for p in self.parts.values() if p.table == table for c in (*p.columns, *p.labels)}
        wanted |= {c for r in self.checks.values() for t, c in (*r.columns, *r.labels) if t == table}
        return tuple(c.logical for c in TABLES[table].columns if c.logical in wanted)

    def label_columns(self, table: str) -> tuple[str, ...]:
        """The columns of `table` whose option labels some part or check turns into meanings."""
        wanted = {c for p in self.parts.values() if p.table == table for c in p.labels}
        wanted |= {c for r in self.checks.values() for t, c in r.labels if t == table}
        return tuple(c.logical for c in TABLES[table].columns if c.logical in wanted)

    def needs(self, check: str) -> frozenset[str]:
        """The failure keys of everything the check reads: its parts, their columns and labels,
        and its own columns and labels. Any of them failing stops the check."""
        reads = self.checks[check]
        keys = set(reads.parts)
        for name in reads.parts:
            part = self.parts[name]
            keys |= {column_key(part.table, c) for c in (*part.columns, *part.labels)}
            keys |= {label_key(part.table, c) for c in part.labels}
        keys |= {column_key(t, c) for t, c in (*reads.columns, *reads.labels)}
        keys |= {label_key(t, c) for t, c in reads.labels}
        return frozenset(keys)


_PI, _US, _BS = "work365_providerinvoice", "work365_usagesummary", "work365_billingschedule"
_SUB, _BC = "work365_subscription", "work365_billingcontract"

PARTS: Mapping[str, PartRead] = {
    "providers": PartRead(
        "work365_provider",
        ("work365_providerid", "work365_name", "work365_provider_type", "work365_provider_invoiceday"),
        ("work365_provider_type",),
    ),
    # Filtered on the billing period; grouped by provider and period; named in findings.
    "provider_invoices": PartRead(
        _PI,
        (
            "work365_providerinvoiceid",
            "work365_name",
            "work365_providerinvoice_invoicenumber",
            "work365_providerinvoice_provider",
            "work365_providerinvoice_invoicedate",
            "work365_providerinvoice_billingperiodstart",
            "createdon",
        ),
    ),
    "usage_summaries": PartRead(
        _US,
        (
            "work365_usagesummaryid",
            "work365_usagesummary_providerinvoice",
            "work365_usagesummary_subscription",
            "createdon",
        ),
    ),
    # filesize first decides whether documentbody is downloaded at all (DIAG_NOTE_MAX_BYTES).
    "notes": PartRead(
        "annotation", ("annotationid", "filename", "filesize", "documentbody", "objectid", "createdon")
    ),
    "provider_accounts": PartRead("work365_provideraccount", ("work365_provideraccountid", "createdon")),
    # Filtered on the usage type; usage subscriptions that are active are what most checks index.
    "subscriptions": PartRead(
        _SUB,
        (
            "work365_subscriptionid",
            "work365_subscription_subscriptionname",
            "work365_subscription_customer",
            "work365_subscription_billingcontract",
            "work365_subscription_providersubscriptionid",
            "work365_subscription_subscriptiontype",
            "statuscode",
            "createdon",
        ),
        ("work365_subscription_subscriptiontype", "statuscode"),
    ),
    "contracts": PartRead(_BC, ("work365_billingcontractid", "work365_name")),
    "currencies": PartRead("transactioncurrency", ("transactioncurrencyid",)),
    # Filtered on the contract and the schedule date.
    "schedules": PartRead(
        _BS,
        (
            "work365_billingscheduleid",
            "work365_name",
            "work365_billingschedule_billingcontract",
            "work365_billingschedule_scheduledate",
        ),
    ),
    # Filtered on the contract and the creation date.
    "invoices": PartRead("invoice", ("invoiceid", "work365_invoice_billingcontract", "createdon")),
}
