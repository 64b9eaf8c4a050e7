"""Auto-fix of unresolved references: which changes to make, and making them through a small writer.

Only where the partner allowed it, per kind (`DIAG_AUTOFIX_MAP_ACCOUNTS`, `DIAG_AUTOFIX_REIMPORT`,
both off by default), and only what the runbook asks a person to do:

- map a provider account whose Account is empty to the CRM account the matcher chose at the
  threshold (`match.choose`: one candidate at or above it, no other; an ambiguous match is never
  applied); never a provider account that already has an Account, never a new record;
- once every reference of the invoice resolves (after the mapping), delete the provider invoice so
  that Work 365 re-imports it, and never one that has usage summaries (asked just before deleting).

`plan` is pure: proposals + settings + missing privileges → the changes, or why none. `apply` makes
them in order through `FixWriter` and returns what it did, each change with when and the value it
replaced; a dry run returns what it would do and writes nothing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol

from diagnostics.references.match import Proposal

ChangeKind = Literal["map_account", "delete_invoice"]
PROVIDER_ACCOUNT = "work365_provideraccount"
PROVIDER_INVOICE = "work365_providerinvoice"


@dataclass(frozen=True)
class AutofixSettings:
    map_accounts: bool = False
    reimport: bool = False
    min_confidence: float = 0.9
    dry_run: bool = False

    @property
    def enabled(self) -> bool:
        return self.map_accounts or self.reimport


@dataclass(frozen=True)
class AccountRef:
    """The one provider account a customer reference names."""

    id: str
    name: str | None
    account_id: str | None
    active: bool


@dataclass(frozen=True)
class RefState:
    """What planning needs of one reference of the invoice."""

    kind: str  # customer | subscription | currency
    reference: str
    name: str | None
    resolved: bool
    provider_accounts: tuple[AccountRef, ...] = ()
    chosen: Proposal | None = None  # match.choose at the threshold
    verdict: str = ""  # confident | ambiguous | uncertain | no candidate


@dataclass(frozen=True)
class Change:
    kind: ChangeKind
    table: str  # default table name of the record changed
    record_id: str
    what: str  # in words: "map provider account Tailspin Toys to account Tailspin Toys (95%: …)"
    previous: str | None = None  # the value replaced (an empty Account: None)
    value: str | None = None  # the new value (an account id); None for a delete

    def record(self, at: datetime, *, dry_run: bool) -> dict[str, Any]:
        """The change as the state, the evidence and the note keep it."""
        out: dict[str, Any] = {
            "kind": self.kind,
            "table": self.table,
            "record_id": self.record_id,
            "what": ("would " if dry_run else "") + self.what,
            "value": self.value,
            "at": at.isoformat(),
            "dry_run": dry_run,
        }
        if self.kind == "map_account":
            out["previous"] = self.previous  # the Account before (empty: None)
        return out


@dataclass(frozen=True)
class Plan:
    maps: tuple[Change, ...] = ()
    # the invoice to delete once every reference resolves after the maps (checked again then)
    delete: Change | None = None
    not_applied: tuple[str, ...] = ()  # why something that could be fixed is not, in words
    missing_privileges: tuple[str, ...] = ()

    @property
    def changes(self) -> tuple[Change, ...]:
        return (*self.maps, *((self.delete,) if self.delete else ()))


def _percent(proposal: Proposal) -> str:
    reasons = "; ".join(proposal.reasons)
    return f"{round(proposal.confidence * 100)}%" + (f": {reasons}" if reasons else "")


def _map_change(ref: RefState, settings: AutofixSettings) -> tuple[Change | None, str | None]:
    """The mapping of one customer reference, or why there is none (None, None: nothing to say)."""
    if ref.kind != "customer" or ref.resolved:
        return None, None
    label = ref.name or ref.reference
    if len(ref.provider_accounts) != 1:
        why = (
            "no provider account has this id"
            if not ref.provider_accounts
            else "several provider accounts have this id"
        )
        return None, f"{label}: not mapped, {why} (the tool never creates or merges records)"
    account = ref.provider_accounts[0]
    if account.account_id is not None:
        return None, f"{label}: not mapped, its provider account already has an Account (inactive?)"
    if not account.active:
        return None, f"{label}: not mapped, its provider account is inactive"
    if ref.chosen is None:
        return None, f"{label}: not mapped, no single confident match ({ref.verdict or 'no candidate'})"
    if ref.chosen.confidence < settings.min_confidence:
        return None, f"{label}: not mapped, the best match is below DIAG_AUTOFIX_MIN_CONFIDENCE"
    what = (
        f"map provider account {account.name or account.id} to account {ref.chosen.candidate.name} "
        f"({_percent(ref.chosen)})"
    )
    return Change("map_account", PROVIDER_ACCOUNT, account.id, what, None, ref.chosen.candidate.id), None


def plan(
    refs: Sequence[RefState],
    *,
    invoice_id: str,
    invoice_name: str,
    settings: AutofixSettings,
    missing_privileges: Sequence[str] = (),
) -> Plan:
    """Pure: the changes auto-fix makes for one invoice's references, in order, or why none.

    Missing privileges of an enabled fix stop every change (the tool applies nothing it could not
    finish). The delete is planned when every reference resolves once the planned maps are made;
    whether it is made is decided again after them, with the invoice's usage summaries."""
    if not settings.enabled:
        return Plan()
    if missing_privileges:
        return Plan(
            not_applied=(
                "auto-fix applies nothing: the tool's identity lacks "
                + ", ".join(sorted(missing_privileges)),
            ),
            missing_privileges=tuple(sorted(missing_privileges)),
        )
    maps: list[Change] = []
    why: list[str] = []
    fixed: set[str] = set()
    for ref in refs:
        change, reason = _map_change(ref, settings) if settings.map_accounts else (None, None)
        if change is not None:
            maps.append(change)
            fixed.add(ref.reference.strip().lower())
        elif reason is not None:
            why.append(reason)
    delete = None
    if settings.reimport:
        open_refs = [r for r in refs if not r.resolved and r.reference.strip().lower() not in fixed]
        if open_refs:
            names = ", ".join(r.name or r.reference for r in open_refs)
            why.append(
                f"the invoice is not re-imported: {len(open_refs)} reference(s) still unresolved ({names})"
            )
        else:
            delete = Change(
                "delete_invoice",
                PROVIDER_INVOICE,
                invoice_id,
                f"delete provider invoice {invoice_name} so that Work 365 re-imports it (every reference resolves)",
            )
    return Plan(tuple(maps), delete, tuple(why))


class FixWriter(Protocol):
    """What applying needs: the two writes, and the two questions asked just before deleting."""

    async def map_account(self, provider_account_id: str, account_id: str) -> None: ...

    async def references_resolve(self) -> bool:
        """Read the references again: does every one resolve now?"""
        ...

    async def has_usage(self, invoice_id: str) -> bool: ...

    async def delete_invoice(self, invoice_id: str) -> None: ...


@dataclass(frozen=True)
class Applied:
    changes: tuple[dict[str, Any], ...]  # Change.record(...) of what was done (or would be)
    not_applied: tuple[str, ...]

    @property
    def deleted(self) -> bool:
        return any(c["kind"] == "delete_invoice" and not c["dry_run"] for c in self.changes)


Recorder = Callable[[dict[str, Any]], Awaitable[None]]


async def _keep(_: dict[str, Any]) -> None:
    return None


async def apply(
    the_plan: Plan, writer: FixWriter, *, at: datetime, dry_run: bool, recorded: Recorder = _keep
) -> Applied:
    """Make the plan's changes in order; a dry run records what it would do and writes nothing.
    Each change made is handed to `recorded` at once, so a failure later (which raises) never
    loses the record of what was already changed."""
    done: list[dict[str, Any]] = []
    why = list(the_plan.not_applied)
    for change in the_plan.maps:
        if not dry_run:
            assert change.value is not None
            await writer.map_account(change.record_id, change.value)
        done.append(change.record(at, dry_run=dry_run))
        if not dry_run:
            await recorded(done[-1])
    delete = the_plan.delete
    if delete is not None:
        if dry_run:
            done.append(delete.record(at, dry_run=True))
        elif not await writer.references_resolve():
            why.append("the invoice is not re-imported: a reference still does not resolve after the mapping")
        elif await writer.has_usage(delete.record_id):
            why.append("the invoice is not deleted: it has usage summaries (re-import it by hand if needed)")
        else:
            await writer.delete_invoice(delete.record_id)
            done.append(delete.record(at, dry_run=False))
            await recorded(done[-1])
    return Applied(tuple(done), tuple(why))
