"""Auto-fix of an invoice's unresolved references, against Dataverse and the state store.

The decisions are `diagnostics.references.autofix` (pure); this module makes them happen once:

- a claim in the state store (kind "autofix", key `pi:<invoice>`, written with its ETag) lets one
  delivery apply at a time; a concurrent delivery of the same message finds the claim and applies
  nothing; a change already recorded there is never made again (a repeated delivery after the
  mapping finds the provider account mapped anyway, and the invoice gone after the delete);
- each change is recorded as soon as it is made (what, when, the value it replaced), kept in the
  state, shown in the invoice's note, and in a note "changes made" on the provider's record, which
  survives the invoice's deletion;
- after the delete, a re-check of the expected invoice (provider + period) is scheduled on
  `invoice-checks` for the next re-check time; that check confirms the re-import (`confirm_reimport`),
  or schedules itself again for as long as Work 365 may take (`DIAG_REIMPORT_GRACE_DAYS` + 1 days).
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from diagnostics.adapters.dataverse import Query, odata_string
from diagnostics.errors import NotFoundError
from diagnostics.messages import QUEUE_INVOICE_CHECKS, CheckRequest, ExpectedInvoiceUnit, encode
from diagnostics.metadata import ResolvedSchema
from diagnostics.model import ProviderInvoice
from diagnostics.note import NOTE_NAMESPACE, SUBJECT_PREFIX, change_words
from diagnostics.ports import ConflictError, MessageBus, OutgoingMessage, StateStore
from diagnostics.references.autofix import Applied, AutofixSettings, FixWriter, Plan, apply
from diagnostics.settings import Settings, Thresholds
from diagnostics.snapshot_loader import Loader, _provider_invoice

log = logging.getLogger("diagnostics.app.references")

AUTOFIX = (
    "autofix"  # state kind: per invoice the changes made and the claim; per provider+period the re-import
)
_PA, _PI, _US, _ACCOUNT = (
    "work365_provideraccount",
    "work365_providerinvoice",
    "work365_usagesummary",
    "account",
)


def autofix_settings(settings: Settings) -> AutofixSettings:
    return AutofixSettings(
        map_accounts=settings.autofix_map_accounts,
        reimport=settings.autofix_reimport,
        min_confidence=settings.autofix_min_confidence,
        dry_run=settings.autofix_dry_run,
    )


# --- the writer over Dataverse -------------------------------------------------------------------


class Querier(Protocol):
    async def query(self, q: Query) -> list[dict[str, Any]]: ...


async def has_usage_summaries(dv: Querier, schema: ResolvedSchema, invoice_id: str) -> bool:
    """Whether the invoice has a usage summary: one row asked for, just before a delete."""
    column = f"_{schema.col(_US, 'work365_usagesummary_providerinvoice')}_value"
    query = Query(
        schema.entity_set(_US),
        (schema.col(_US, "work365_usagesummaryid"),),
        f"{column} eq {invoice_id}",
        top=1,
    )
    return bool(await dv.query(query))


class RecordWriter(Querier, Protocol):
    """What auto-fix needs of the Dataverse client."""

    async def update(self, entity_set: str, id: str, body: dict[str, Any]) -> None: ...

    async def delete(self, entity_set: str, id: str) -> None: ...

    async def navigation_property(self, table: str, lookup: str, target: str | None = None) -> str: ...


class DataverseFixes:
    """`FixWriter` on Dataverse: the provider account's Account set by `@odata.bind` (update, never
    create), the invoice deleted, its usage summaries asked for just before."""

    def __init__(
        self, dv: RecordWriter, schema: ResolvedSchema, references_resolve: Callable[[], Awaitable[bool]]
    ) -> None:
        self._dv = dv
        self._schema = schema
        self._references_resolve = references_resolve

    async def map_account(self, provider_account_id: str, account_id: str) -> None:
        schema = self._schema
        table, target = schema.schema_map.table(_PA), schema.schema_map.table(_ACCOUNT)
        navigation = await self._dv.navigation_property(
            table, schema.col(_PA, "work365_provideraccount_account"), target
        )
        body = {f"{navigation}@odata.bind": f"/{schema.entity_set(_ACCOUNT)}({account_id})"}
        await self._dv.update(schema.entity_set(_PA), provider_account_id, body)

    async def references_resolve(self) -> bool:
        return await self._references_resolve()

    async def has_usage(self, invoice_id: str) -> bool:
        return await has_usage_summaries(self._dv, self._schema, invoice_id)

    async def delete_invoice(self, invoice_id: str) -> None:
        # NotFound: an earlier attempt deleted it and its answer was lost; gone is what was wanted.
        with contextlib.suppress(NotFoundError):
            await self._dv.delete(self._schema.entity_set(_PI), invoice_id)


# --- applying once ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class FixOutcome:
    status: str  # for the log: off, nothing to do, applied, dry run, busy, privileges missing
    changes: tuple[dict[str, Any], ...] = ()  # every change recorded for the invoice (or would be)
    made: int = 0  # changes made by this delivery
    deleted: bool = False
    not_applied: tuple[str, ...] = ()


def _done_before(value: dict[str, Any]) -> set[tuple[str, str]]:
    return {(str(c.get("kind")), str(c.get("record_id"))) for c in value.get("changes") or []}


def _without_done(the_plan: Plan, done: set[tuple[str, str]]) -> Plan:
    maps = tuple(c for c in the_plan.maps if (c.kind, c.record_id) not in done)
    delete = the_plan.delete
    if delete is not None and (delete.kind, delete.record_id) in done:
        delete = None
    return Plan(maps, delete, the_plan.not_applied, the_plan.missing_privileges)


class _Claim:
    """The invoice's auto-fix record, held by this run while it applies."""

    def __init__(self, state: StateStore, key: str, run: str) -> None:
        self.state, self.key, self.run = state, key, run
        self.value: dict[str, Any] = {"changes": []}
        self.etag: str | None = None

    async def take(self, now: datetime, hold: timedelta) -> bool:
        stored = await self.state.get(AUTOFIX, self.key)
        self.value = dict(stored.value) if stored else {"changes": []}
        claim = self.value.get("claim")
        if isinstance(claim, dict) and claim.get("by") != self.run:
            since = datetime.fromisoformat(str(claim.get("at")))
            if now - since < hold:
                return False  # another delivery is applying right now
        self.value["claim"] = {"by": self.run, "at": now.isoformat()}
        try:
            self.etag = await self.state.put(
                AUTOFIX, self.key, self.value, etag=stored.etag if stored else None
            )
        except ConflictError:
            return False
        return True

    async def record(self, change: dict[str, Any]) -> None:
        self.value["changes"] = [*(self.value.get("changes") or []), change]
        self.etag = await self.state.put(AUTOFIX, self.key, self.value, etag=self.etag)

    async def release(self) -> None:
        self.value["claim"] = None
        self.etag = await self.state.put(AUTOFIX, self.key, self.value, etag=self.etag)


async def recorded_changes(state: StateStore, invoice_id: str) -> tuple[dict[str, Any], ...]:
    stored = await state.get(AUTOFIX, f"pi:{invoice_id}")
    if stored is None:
        return ()
    return (*(stored.value.get("changes") or []), *(stored.value.get("dry_run") or []))


async def fix_references(
    state: StateStore,
    the_plan: Plan,
    writer: FixWriter,
    *,
    invoice_id: str,
    settings: AutofixSettings,
    now: datetime,
    hold: timedelta,
) -> FixOutcome:
    """Apply the plan once (see the module's docstring); a dry run records what it would do."""
    key = f"pi:{invoice_id}"
    if not settings.enabled:
        return FixOutcome("off", await recorded_changes(state, invoice_id))
    if the_plan.missing_privileges:
        return FixOutcome(
            "privileges missing", await recorded_changes(state, invoice_id), not_applied=the_plan.not_applied
        )
    if settings.dry_run:
        would = await apply(the_plan, writer, at=now, dry_run=True)
        await _keep_dry_run(state, key, would)
        return FixOutcome("dry run", await recorded_changes(state, invoice_id), not_applied=would.not_applied)
    claim = _Claim(state, key, uuid.uuid4().hex)
    if not the_plan.changes:
        return FixOutcome(
            "nothing to do", await recorded_changes(state, invoice_id), not_applied=the_plan.not_applied
        )
    if not await claim.take(now, hold):
        return FixOutcome("busy", await recorded_changes(state, invoice_id))
    try:
        todo = _without_done(the_plan, _done_before(claim.value))
        applied: Applied = await apply(todo, writer, at=now, dry_run=False, recorded=claim.record)
    finally:
        await claim.release()
    status = "applied" if applied.changes else "nothing to do"
    return FixOutcome(
        status,
        tuple(claim.value.get("changes") or []),
        made=len(applied.changes),
        deleted=applied.deleted,
        not_applied=applied.not_applied,
    )


async def _keep_dry_run(state: StateStore, key: str, applied: Applied) -> None:
    """What a dry run would do, replaced on each run (not a history: nothing happened)."""
    stored = await state.get(AUTOFIX, key)
    value = dict(stored.value) if stored else {"changes": []}
    previous = [{k: v for k, v in c.items() if k != "at"} for c in value.get("dry_run") or []]
    current = [{k: v for k, v in c.items() if k != "at"} for c in applied.changes]
    if previous == current and stored is not None:
        return  # the same as last time: keep when it was first seen
    value["dry_run"] = list(applied.changes)
    with contextlib.suppress(ConflictError):  # a concurrent dry run recorded the same
        await state.put(AUTOFIX, key, value, etag=stored.etag if stored else None)


# --- the re-import and its confirmation ------------------------------------------------------------


@dataclass(frozen=True)
class Reimport:
    """A provider invoice the tool deleted so that Work 365 imports it again."""

    provider_id: str
    period: str
    invoice_id: str
    invoice_number: str | None
    invoice_name: str
    deleted_at: datetime
    changes: tuple[dict[str, Any], ...] = field(default=())

    @property
    def key(self) -> str:
        return reimport_key(self.provider_id, self.period)


def reimport_key(provider_id: str, period: str) -> str:
    return f"reimport:{provider_id}:{period}"


def confirmation_request(
    provider_id: str, period: str, now: datetime, daily_at: Any
) -> tuple[CheckRequest, datetime]:
    """The re-check of the expected invoice, due at the next re-check time after `now`."""
    day = now.astimezone(UTC).date() + timedelta(days=1)
    at = datetime.combine(day, daily_at, tzinfo=UTC)
    unit = ExpectedInvoiceUnit(provider_id=provider_id, period=period)
    return CheckRequest(unit=unit, day=day, reason="recheck"), at


async def schedule_confirmation(
    bus: MessageBus, state: StateStore, reimport: Reimport, *, now: datetime, daily_at: Any
) -> None:
    """Schedule the re-check that confirms the re-import; remembered under the provider + period,
    so the re-check knows what it confirms. Idempotent: a repeat finds it scheduled."""
    stored = await state.get(AUTOFIX, reimport.key)
    if stored is not None and stored.value.get("invoice_id") == reimport.invoice_id:
        return
    request, at = confirmation_request(reimport.provider_id, reimport.period, now, daily_at)
    number = await bus.schedule(
        QUEUE_INVOICE_CHECKS, OutgoingMessage(request.message_id, encode(request), "check"), at
    )
    value = {
        "invoice_id": reimport.invoice_id,
        "invoice_number": reimport.invoice_number,
        "invoice_name": reimport.invoice_name,
        "deleted_at": reimport.deleted_at.isoformat(),
        "changes": list(reimport.changes),
        "sequence_number": number,
        "confirmed": False,
    }
    try:
        await state.put(AUTOFIX, reimport.key, value, etag=stored.etag if stored else None)
    except ConflictError:
        await bus.cancel(QUEUE_INVOICE_CHECKS, [number])  # a concurrent delivery scheduled it


# --- the note of the changes -------------------------------------------------------------------------


def changes_note_id(provider_id: str, period: str) -> str:
    return str(uuid.uuid5(NOTE_NAMESPACE, f"autofix:{provider_id}:{period}"))


def changes_note(period: str, changes: Sequence[dict[str, Any]]) -> tuple[str, str]:
    """(subject, text) of the note on the provider's record that lists what auto-fix changed."""
    subject = f"{SUBJECT_PREFIX}: changes made ({period})"
    lines = [
        f"What the usage-invoice diagnosis changed in Work 365 for {period} (auto-fix), oldest first:",
        "",
        *(f"- {change_words(c)}" for c in changes),
        "",
        "Auto-fix is on because DIAG_AUTOFIX_MAP_ACCOUNTS or DIAG_AUTOFIX_REIMPORT is set. To undo a "
        "mapping, clear the provider account's Account column (the value before is shown above).",
    ]
    return subject, "\n".join(lines)


class NoteUpserter(Protocol):
    async def upsert(self, entity_set: str, id: str, body: dict[str, Any]) -> None: ...


async def write_changes_note(
    dv: NoteUpserter,
    schema: ResolvedSchema,
    *,
    provider_id: str,
    period: str,
    changes: Sequence[dict[str, Any]],
) -> None:
    subject, text = changes_note(period, changes)
    table = schema.schema_map.table("work365_provider")
    body = {
        "subject": subject,
        "notetext": text,
        f"objectid_{table}@odata.bind": f"/{schema.entity_set('work365_provider')}({provider_id})",
    }
    await dv.upsert(schema.entity_set("annotation"), changes_note_id(provider_id, period), body)


# --- confirming the re-import ------------------------------------------------------------------------


async def confirm_reimport(
    dv: InvoiceFinder,
    bus: MessageBus,
    state: StateStore,
    schema: ResolvedSchema,
    thresholds: Thresholds,
    unit: ExpectedInvoiceUnit,
    *,
    now: datetime,
    daily_at: Any,
) -> str:
    """On the re-check of an expected invoice whose provider invoice auto-fix deleted: is it
    imported again? Records the answer as a change (the changes note, the log); schedules itself
    again while Work 365 may still be re-importing. Returns what it found, for the log ("" when
    the tool deleted no invoice of this provider and period)."""
    key = reimport_key(unit.provider_id, unit.period)
    stored = await state.get(AUTOFIX, key)
    if stored is None or stored.value.get("confirmed"):
        return ""
    value = dict(stored.value)
    deleted_at = datetime.fromisoformat(str(value["deleted_at"]))
    found = await _reimported(
        dv, schema, thresholds, unit.provider_id, value.get("invoice_number"), deleted_at
    )
    wait_until = deleted_at + timedelta(days=thresholds.reimport_grace_days + 1)
    if found is None and now < wait_until:
        request, at = confirmation_request(unit.provider_id, unit.period, now, daily_at)
        value["sequence_number"] = await bus.schedule(
            QUEUE_INVOICE_CHECKS, OutgoingMessage(request.message_id, encode(request), "check"), at
        )
        with contextlib.suppress(ConflictError):  # a concurrent delivery did the same
            await state.put(AUTOFIX, key, value, etag=stored.etag)
        return "re-import awaited"
    if found is None:
        what = (
            f"provider invoice {value.get('invoice_name')} was not re-imported within "
            f"{thresholds.reimport_grace_days + 1} day(s) of its deletion: run Provider Invoices → "
            "Sync Provider Invoice in Work 365"
        )
        outcome = "re-import missing"
    else:
        invoice, usage = found
        what = (
            f"re-import confirmed: provider invoice {invoice.name} imported again on "
            f"{invoice.created_on.strftime('%Y-%m-%d %H:%M')} UTC, status {invoice.status_label or '?'}, "
            f"{'with' if usage else 'no'} usage summaries yet"
        )
        outcome = "re-import confirmed"
    change = {
        "kind": "reimport_confirmed" if found else "reimport_missing",
        "what": what,
        "at": now.isoformat(),
    }
    value["changes"] = [*(value.get("changes") or []), change]
    value["confirmed"] = True
    try:
        await state.put(AUTOFIX, key, value, etag=stored.etag)
    except ConflictError:
        return outcome  # a concurrent delivery recorded it
    await write_changes_note(
        dv, schema, provider_id=unit.provider_id, period=unit.period, changes=value["changes"]
    )
    log.info("auto-fix %s provider=%s period=%s", outcome, unit.provider_id, unit.period)
    return outcome


class InvoiceFinder(Querier, NoteUpserter, Protocol):
    """What confirming a re-import needs of the Dataverse client."""


async def _reimported(
    dv: InvoiceFinder,
    schema: ResolvedSchema,
    thresholds: Thresholds,
    provider_id: str,
    invoice_number: Any,
    deleted_at: datetime,
) -> tuple[ProviderInvoice, bool] | None:
    """The provider's invoice with that number created after the deletion, and whether it has usage."""
    loader = Loader(schema, thresholds)
    provider = f"{loader.c(_PI, 'work365_providerinvoice_provider')} eq {provider_id}"
    since = f"createdon ge {deleted_at.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%SZ')}"
    number = (
        f" and {loader.c(_PI, 'work365_providerinvoice_invoicenumber')} eq {odata_string(str(invoice_number))}"
        if invoice_number
        else ""
    )
    rows = await dv.query(loader.query(_PI, f"{provider} and {since}{number}", annotations=True))
    invoices = sorted(loader.rows(_PI, rows, _provider_invoice), key=lambda i: i.created_on)
    if not invoices:
        return None
    invoice = invoices[0]
    return invoice, await has_usage_summaries(dv, schema, invoice.id)
