"""The simulated Work 365 import run: a provider invoice that a client deletes is imported again.

Work 365 does not touch Partner Center when its provider invoice record is deleted; its next daily
sync imports the invoice again (work365-domain.md, 3.9 and 4.2: after the unresolved references of
an invoice with zero usage summaries are fixed, the invoice is deleted and re-imported). The
simulator does the same for an invoice deleted through the Web API: at the next import run
(`IMPORT_TIME` UTC, strictly after the delete, on the simulated clock) a new provider invoice row for
the same Partner Center invoice appears. Whether it is healthy depends on the tenant then:

- every reference in the deleted invoice's errors.csv now resolves (a customer has a provider
  account with an Account and sync not Disabled; a subscription exists by its provider subscription
  id; a currency is active; a product exists by number or name): the new row is Active, with the
  fixture's `reimports` entry applied (columns of the row, its usage summaries);
- otherwise: the new row is in Error again with a copy of the same errors.csv note, and no usage.

Only invoices of an automatic provider (Partner Center) are re-imported, or any invoice the fixture's
`reimports` names; timeline entries that delete rows are the fixture's own story and re-import
nothing.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

from diagnostics.refcsv import RefFileError, RefKind, parse_reference_file
from simulator.fixture import Reimport

if TYPE_CHECKING:
    from simulator.tenant import Row, ServedTable, Tenant

IMPORT_TIME = time(6, 0)  # Work 365's daily provider invoice sync, UTC
INVOICES = "work365_providerinvoice"
AUTOMATIC_PROVIDERS = ("Microsoft Partner Center", "Microsoft CSP", "Microsoft")
_NAMESPACE = uuid.UUID("0b7d3f5e-2c1a-4e8b-9f60-5a4d3c2b1e0f")


@dataclass(frozen=True)
class PendingReimport:
    """A deleted provider invoice waiting for the next import run."""

    at: datetime
    old_id: str
    row: Row  # the deleted invoice as it was served
    errors: tuple[Row, ...]  # its errors.csv notes, deleted with it
    spec: Reimport | None  # what a successful re-import brings (fixture `reimports`)

    @property
    def description(self) -> str:
        return f"Work 365 re-imports the deleted provider invoice {self.old_id}"


def next_import_run(after: datetime) -> datetime:
    run = datetime.combine(after.astimezone(UTC).date(), IMPORT_TIME, tzinfo=UTC)
    return run if run > after else run + timedelta(days=1)


def _label(table: ServedTable, row: Row, column: str) -> str | None:
    served = table.by_default.get(column)
    if served is None:
        return None
    option = served.option(row.values.get(served.prop))
    return option.default_label if option else None


def _value(table: ServedTable, row: Row, column: str) -> Any:
    served = table.by_default.get(column)
    return row.values.get(served.prop) if served is not None else None


def reimportable(tenant: Tenant, row: Row, spec: Reimport | None) -> bool:
    if spec is not None:
        return True
    invoices = tenant.tables[INVOICES]
    provider_id = _value(invoices, row, "work365_providerinvoice_provider")
    providers = tenant.tables["work365_provider"]
    provider = providers.rows.get(str(provider_id)) if provider_id else None
    return (
        provider is not None and _label(providers, provider, "work365_provider_type") in AUTOMATIC_PROVIDERS
    )


def errors_notes(tenant: Tenant, invoice_id: str) -> tuple[Row, ...]:
    notes = tenant.tables["annotation"]
    return tuple(
        note
        for note in notes.rows.values()
        if _value(notes, note, "objectid") == invoice_id
        and str(_value(notes, note, "filename") or "").casefold() == "errors.csv"
    )


def _active(table: ServedTable, row: Row) -> bool:
    return table.definition.status == () or _label(table, row, "statecode") in (None, "Active")


def _matches(tenant: Tenant, table_name: str, columns: tuple[str, ...], wanted: str) -> list[Row]:
    table = tenant.tables[table_name]
    return [
        row
        for row in table.rows.values()
        if _active(table, row)
        and any(str(_value(table, row, c) or "").strip().casefold() == wanted for c in columns)
    ]


def resolves(tenant: Tenant, kind: RefKind, reference_id: str) -> bool:
    """Whether Work 365's import would resolve this reference in the tenant as it is now."""
    wanted = reference_id.strip().casefold()
    if kind is RefKind.CUSTOMER:
        accounts = tenant.tables["work365_provideraccount"]
        return any(
            _value(accounts, row, "work365_provideraccount_account") is not None
            and _label(accounts, row, "work365_provideraccount_syncstatus") != "Disabled"
            for row in _matches(
                tenant,
                "work365_provideraccount",
                ("work365_provideraccount_providerspecificaccountid",),
                wanted,
            )
        )
    if kind is RefKind.SUBSCRIPTION:
        return bool(
            _matches(tenant, "work365_subscription", ("work365_subscription_providersubscriptionid",), wanted)
        )
    if kind is RefKind.CURRENCY:
        return bool(_matches(tenant, "transactioncurrency", ("isocurrencycode",), wanted))
    if kind is RefKind.PRODUCT:
        return bool(_matches(tenant, "product", ("productnumber", "name"), wanted))
    return False


def all_resolve(tenant: Tenant, errors: tuple[Row, ...]) -> bool:
    """Every reference of the errors.csv notes resolves now; an unreadable note never does."""
    notes = tenant.tables["annotation"]
    for note in errors:
        body = _value(notes, note, "documentbody")
        try:
            parsed = parse_reference_file(base64.b64decode(str(body or "")))
        except (RefFileError, binascii.Error, ValueError):
            return False
        if not all(resolves(tenant, r.kind, r.id) for r in parsed.references):
            return False
    return True


def new_id(pending: PendingReimport, what: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"{pending.old_id}:{pending.at.isoformat()}:{what}"))
