"""Runbook step 2: does the provider invoice have usage summaries, and if not, which references
(customer, subscription, currency) are unresolved?

Work 365 imports no usage at all while any usage line has an unresolved reference; the references
come from the invoice's errors.csv note and from its message (a reference only the message names is
reported like any other, `found_in: message`). Each reference is looked up again *now*: a reference
that resolves today was fixed after the import, and the invoice must be re-imported. Every finding
built from a note carries what the parser made of it (`notes`, with its warnings).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from diagnostics.catalog import finding
from diagnostics.checks.context import Context, ParsedNotes, iso, pi_subject, subscription_subject
from diagnostics.model import Currency, Finding, ProviderAccount, ProviderInvoice, Subscription
from diagnostics.refcsv import Reference, RefKind, references_in_message


@dataclass
class Resolution:
    reference: Reference
    resolved: bool
    evidence: dict[str, Any]
    fixed_at: datetime | None = None  # when the record that now resolves it was last changed
    found_in: str = "errors.csv"  # or "message": only the invoice's message names it


def _fold(value: str | None) -> str | None:
    return None if value is None else value.strip().casefold() or None


def _index(items: Iterable[Any], key: Callable[[Any], str | None]) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for item in items:
        folded = _fold(key(item))
        if folded is not None:
            out.setdefault(folded, []).append(item)
    return out


@dataclass
class _Lookups:
    """The records references are looked up in, indexed once per check (no scan per reference)."""

    accounts: dict[str, list[ProviderAccount]] = field(default_factory=dict)
    subscriptions: dict[str, list[Subscription]] = field(default_factory=dict)
    currencies: dict[str, list[Currency]] = field(default_factory=dict)
    owners: dict[str, list[tuple[int, str, ProviderAccount]]] = field(default_factory=dict)

    @classmethod
    def of(cls, ctx: Context) -> _Lookups:
        return cls(
            accounts=_index(ctx.snap.provider_accounts, lambda pa: pa.provider_specific_id),
            subscriptions=_index(ctx.snap.subscriptions, lambda s: s.provider_subscription_id),
            currencies=_index(ctx.snap.currencies, lambda c: c.iso_code),
            owners=_owner_keys(ctx.snap.provider_accounts),
        )


def _latest(*moments: datetime | None) -> datetime | None:
    present = [m for m in moments if m is not None]
    return max(present) if present else None


def _resolve_customer(ctx: Context, look: _Lookups, ref: Reference) -> Resolution:
    accounts = look.accounts.get(_fold(ref.id) or "", [])
    evidence: dict[str, Any] = {
        "reference": ref.id,
        "name": ref.name,
        "provider_account_exists": bool(accounts),
    }
    if not accounts:
        return Resolution(ref, False, evidence)
    pa = accounts[0]
    evidence |= {
        "provider_account_id": pa.id,
        "provider_account_name": pa.name,
        "account_column_empty": pa.account_id is None,
        "account_id": pa.account_id,
        "account_name": ctx.snap.account_names.get(pa.account_id or ""),
        "sync_disabled": pa.sync_disabled,
        "provider_account_active": pa.active,
    }
    resolved = pa.account_id is not None and pa.active
    return Resolution(ref, resolved, evidence, _latest(pa.modified_on, pa.created_on) if resolved else None)


_WORD = re.compile(r"\w+")


def _owner_keys(accounts: Sequence[ProviderAccount]) -> dict[str, list[tuple[int, str, ProviderAccount]]]:
    """Provider accounts by the first word of their tenant id and of their name (casefolded), so a
    reference's text is matched word by word instead of against every account."""
    out: dict[str, list[tuple[int, str, ProviderAccount]]] = {}
    for order, pa in enumerate(accounts):
        for key in (pa.provider_specific_id, pa.name):
            folded = (key or "").casefold()
            first = _WORD.search(folded)
            if len(folded) >= 4 and first:
                out.setdefault(first.group(0), []).append((order, folded, pa))
    return out


def _owner_account(look: _Lookups, ref: Reference) -> ProviderAccount | None:
    """The provider account an unresolved subscription belongs to, when errors.csv names it.

    The layout is not published: the customer may appear in the reference's name or message as its
    tenant id or tenant name. The first such account (in the tenant's order) is taken.
    """
    text = f"{ref.name or ''} {ref.message or ''}".casefold()
    found = [
        (order, pa)
        for word in dict.fromkeys(_WORD.findall(text))
        for order, key, pa in look.owners.get(word, ())
        if key in text
    ]
    return min(found, key=lambda item: item[0])[1] if found else None


def _resolve_subscription(ctx: Context, look: _Lookups, ref: Reference) -> Resolution:
    subs = look.subscriptions.get(_fold(ref.id) or "", [])
    evidence: dict[str, Any] = {"reference": ref.id, "name": ref.name, "subscription_exists": bool(subs)}
    if subs:
        sub = subs[0]
        evidence |= {"subscription_id": sub.id, "subscription": sub.name, "subscription_active": sub.active}
        return Resolution(ref, sub.active, evidence, _latest(sub.modified_on, sub.created_on))
    owner = _owner_account(look, ref)
    if owner is not None:
        evidence |= {
            "customer_provider_account_id": owner.id,
            "customer": owner.name,
            "provider_account_sync_disabled": owner.sync_disabled,
        }
        existing = [
            s
            for s in ctx.snap.subscriptions
            if s.is_usage and owner.account_id is not None and s.customer_id == owner.account_id
        ]
        if existing:
            # Migrated Azure customers have a "Subscription ID" (synced) and an "Azure subscription
            # ID" that becomes this unresolved reference (scenario 15, [S42]).
            evidence["migrated_azure_subscription_id_likely"] = True
            evidence["existing_usage_subscriptions"] = [
                {"id": s.id, "name": s.name, "provider_subscription_id": s.provider_subscription_id}
                for s in existing
            ]
    return Resolution(ref, False, evidence)


def _resolve_currency(ctx: Context, look: _Lookups, ref: Reference) -> Resolution:
    found = look.currencies.get(_fold(ref.id) or "", [])
    active = [c for c in found if c.active]
    evidence: dict[str, Any] = {
        "reference": ref.id,
        "currency_exists": bool(found),
        "currency_active": bool(active),
    }
    if active:
        return Resolution(ref, True, evidence, active[0].modified_on)
    return Resolution(ref, False, evidence)


_RESOLVERS: dict[RefKind, Callable[[Context, _Lookups, Reference], Resolution]] = {
    RefKind.CUSTOMER: _resolve_customer,
    RefKind.SUBSCRIPTION: _resolve_subscription,
    RefKind.CURRENCY: _resolve_currency,
}

_BLOCKED_CODE = {
    RefKind.CUSTOMER: "US_BLOCKED_UNRESOLVED_CUSTOMER",
    RefKind.SUBSCRIPTION: "US_BLOCKED_UNRESOLVED_SUBSCRIPTION",
    RefKind.CURRENCY: "US_BLOCKED_UNRESOLVED_CURRENCY",
}

_OPEN_NOTES = (
    "Work 365 → Provider Invoices → view 'Inactive Provider Invoices' → open this invoice → Notes → "
    "open errors.csv to see every unresolved reference."
)
_READ_MESSAGE = (
    "Work 365 → Provider Invoices → open this invoice and read its message: it names the unresolved "
    "references listed in the evidence (found_in: message); no errors.csv lists them."
)
_DELETE_AND_REIMPORT = (
    "When every reference is fixed, delete this provider invoice in Work 365 (local only; Partner Center is "
    "not touched); the next daily sync re-imports it, or run Provider Invoices → Sync Provider Invoice."
)
_REGENERATE = (
    "Generate again, by hand, the usage invoices of contracts whose invoice date has passed "
    "(Billing Contract → Generate Invoice for the current billing cycle)."
)


def _where(res: Sequence[Resolution]) -> str:
    """Where to read the references: errors.csv, unless only the message names them."""
    return _READ_MESSAGE if res and all(r.found_in == "message" for r in res) else _OPEN_NOTES


def _customer_steps(res: Sequence[Resolution]) -> list[str]:
    steps = [
        _where(res),
        "Run Sync Provider Accounts (Provider record → Work 365 ribbon → Sync Provider Accounts).",
    ]
    if any(r.evidence.get("account_column_empty") for r in res):
        steps.append(
            "In Provider Accounts, fill the Account column of each provider account listed in the evidence "
            "with the customer's CRM account."
        )
    if any(not r.evidence.get("provider_account_exists") for r in res):
        steps.append(
            "For a customer id with no provider account: find the customer (e.g. in older reconciliation "
            "files), create a Provider Account with the tenant name as Provider Name, map it to the CRM "
            "Account, and set Provider Specific Id to the id from errors.csv."
        )
    if any(r.evidence.get("sync_disabled") for r in res):
        steps.append("Enable sync on the provider accounts whose sync is disabled.")
    return [*steps, _DELETE_AND_REIMPORT, _REGENERATE]


def _subscription_steps(res: Sequence[Resolution]) -> list[str]:
    steps = [
        _where(res),
        "Copy each unresolved subscription id; find its customer in Partner Center; open that customer's "
        "Billing Contract and add a subscription: Subscription Type = Usage Based, Product = Microsoft Azure, "
        "Markup %, and the provider subscription id = the id from errors.csv.",
    ]
    if any(r.evidence.get("migrated_azure_subscription_id_likely") for r in res):
        steps.append(
            "Migrated Azure customer: Partner Center shows both a 'Subscription ID' and an 'Azure subscription "
            "ID'. Add a second usage subscription (e.g. 'Microsoft Azure 2', Product = Microsoft Azure, the "
            "Azure markup %, provider 'Do Nothing') and paste the Azure subscription ID before saving."
        )
    if any(r.evidence.get("provider_account_sync_disabled") for r in res):
        steps.append(
            "The customer's provider account has sync disabled, so its subscriptions never sync: enable sync "
            "on the provider account (or create the subscription by hand)."
        )
    return [*steps, _DELETE_AND_REIMPORT, _REGENERATE]


def _currency_steps(res: Sequence[Resolution]) -> list[str]:
    return [
        _where(res),
        "Add (or activate) each currency listed in the evidence: Settings → Business Management → "
        "Currencies, with the ISO code from errors.csv (INFERRED: Work 365 does not publish this step).",
        _DELETE_AND_REIMPORT,
        _REGENERATE,
    ]


_STEPS: dict[RefKind, Callable[[Sequence[Resolution]], list[str]]] = {
    RefKind.CUSTOMER: _customer_steps,
    RefKind.SUBSCRIPTION: _subscription_steps,
    RefKind.CURRENCY: _currency_steps,
}
_NOUN = {RefKind.CUSTOMER: "customer", RefKind.SUBSCRIPTION: "subscription", RefKind.CURRENCY: "currency"}


def _pull_window_evidence(ctx: Context, pi: ProviderInvoice) -> dict[str, Any]:
    ends = pi.created_on + timedelta(days=ctx.t.pull_window_days)
    return {"pull_window_ends": iso(ends), "pull_window_expired": ctx.now >= ends}


def _reference_evidence(res: Resolution, resolved: bool) -> dict[str, Any]:
    # `kind`: what the reference handler looks up again (auto-fix re-imports once all resolve).
    return res.evidence | {"resolved": resolved, "found_in": res.found_in, "kind": res.reference.kind.value}


def _blocked(
    ctx: Context, pi: ProviderInvoice, notes: ParsedNotes, kind: RefKind, res: list[Resolution]
) -> Finding:
    unresolved = [r for r in res if not r.resolved]
    count = len(unresolved)
    title = f"Usage import blocked: {count} unresolved {_NOUN[kind]} reference{'' if count == 1 else 's'}"
    evidence = {
        "provider_invoice_id": pi.id,
        "invoice_number": pi.invoice_number,
        "status": pi.status_label,
        "message": pi.message,
        "usage_summaries": ctx.usage_totals(pi).rows,
        "references": [_reference_evidence(r, r.resolved) for r in res],
        **_pull_window_evidence(ctx, pi),
        "notes": notes.files,
    }
    return finding(_BLOCKED_CODE[kind], pi_subject(pi), ctx.period, title, evidence, _STEPS[kind](unresolved))


def _after_resolution(
    ctx: Context, pi: ProviderInvoice, notes: ParsedNotes, res: list[Resolution]
) -> Finding:
    fixed_at = _latest(*(r.fixed_at for r in res))
    evidence: dict[str, Any] = {
        "provider_invoice_id": pi.id,
        "invoice_number": pi.invoice_number,
        "references": [_reference_evidence(r, True) for r in res],
        "last_fix_at": iso(fixed_at),
        "usage_summaries": 0,
        **_pull_window_evidence(ctx, pi),
        "notes": notes.files,
    }
    grace = timedelta(days=ctx.t.reimport_grace_days)
    if fixed_at is None or ctx.now - fixed_at < grace:
        return finding(
            "REFERENCES_RESOLVED_REIMPORT_NEEDED",
            pi_subject(pi),
            ctx.period,
            "Every reference resolves now, but the invoice still has no usage: re-import it",
            evidence,
            [
                "Delete this provider invoice in Work 365 (local only; Partner Center is not touched) so that "
                "Work 365 re-imports it on the next daily sync, or run Provider Invoices → Sync Provider Invoice.",
                _REGENERATE,
            ],
        )
    return finding(
        "US_NOT_SYNCED_AFTER_RESOLUTION",
        pi_subject(pi),
        ctx.period,
        "References were fixed more than a day ago, and the usage still has not synced",
        evidence,
        [
            "Contact Work 365 support with this provider invoice's number and the evidence below.",
            _REGENERATE,
        ],
    )


def _unreadable(ctx: Context, pi: ProviderInvoice, notes: ParsedNotes) -> Finding:
    problems = notes.unreadable
    return finding(
        "ERRORS_FILE_UNREADABLE",
        pi_subject(pi),
        ctx.period,
        f"A references note on {pi.invoice_number or pi.name} cannot be read: {problems[0]['reason']}",
        # `notes` keeps its meaning (the notes that could not be read); the others are `readable_notes`
        {"provider_invoice_id": pi.id, "notes": problems, "readable_notes": notes.files},
        [
            _OPEN_NOTES.replace("errors.csv", "the note")
            + " Read it by hand and fix each reference it names.",
            "Tell the maintainers of this tool the layout of the file, so that it can read it next time.",
        ],
    )


def _unknown_kinds(ctx: Context, pi: ProviderInvoice, notes: ParsedNotes, refs: list[Reference]) -> Finding:
    return finding(
        "CHECK_FAILED",
        pi_subject(pi),
        ctx.period,
        "errors.csv lists references of a kind the tool cannot check",
        {
            "check": "unresolved_references",
            "references": [{"type": r.raw_type, "id": r.id, "name": r.name} for r in refs],
            "why": "only customer, subscription and currency references can be looked up",
            "notes": notes.files,
        },
        [
            _OPEN_NOTES,
            "Resolve these references by hand, then delete the provider invoice so it is re-imported.",
        ],
    )


def _blocking_references(notes: ParsedNotes, pi: ProviderInvoice) -> list[tuple[Reference, str]]:
    """errors.csv's references, then those only the invoice's message names."""
    out = [(ref, "errors.csv") for ref in notes.errors]
    seen = {(ref.kind, ref.id.casefold()) for ref in notes.errors}
    out += [
        (ref, "message")
        for ref in references_in_message(pi.message)
        if (ref.kind, ref.id.casefold()) not in seen
    ]
    return out


def check_usage_summaries(ctx: Context) -> list[Finding]:
    out: list[Finding] = []
    look = _Lookups.of(ctx)
    for pi in ctx.reviewed_invoices:
        notes = ctx.parsed_notes(pi)
        if notes.unreadable:
            out.append(_unreadable(ctx, pi, notes))
        if ctx.has_usage(pi):
            continue  # the usage arrived after all: an old errors.csv or message is history
        references = _blocking_references(notes, pi)
        by_kind: dict[RefKind, list[Resolution]] = {}
        for ref, found_in in references:
            if ref.kind in _RESOLVERS:
                resolution = _RESOLVERS[ref.kind](ctx, look, ref)
                resolution.found_in = found_in
                by_kind.setdefault(ref.kind, []).append(resolution)
        unknown = [r for r, _ in references if r.kind not in _RESOLVERS and r.kind is not RefKind.PRODUCT]
        if unknown:
            out.append(_unknown_kinds(ctx, pi, notes, unknown))
        blocked = {k: v for k, v in by_kind.items() if any(not r.resolved for r in v)}
        out.extend(_blocked(ctx, pi, notes, kind, res) for kind, res in blocked.items())
        if not blocked and not unknown and by_kind and not notes.unreadable:
            out.append(_after_resolution(ctx, pi, notes, [r for res in by_kind.values() for r in res]))
    return out


def _write_in(
    ctx: Context, sub: Subscription, source: str, pi: ProviderInvoice | None, notes: ParsedNotes | None = None
) -> Finding:
    evidence: dict[str, Any] = {
        "subscription_id": sub.id,
        "provider_subscription_id": sub.provider_subscription_id,
        "customer": ctx.snap.account_names.get(sub.customer_id or ""),
        "found_in": source,
    }
    if pi is not None:
        evidence["provider_invoice_id"] = pi.id
    if notes is not None:
        evidence["notes"] = notes.files
    return finding(
        "SUB_WRITE_IN_PRODUCT",
        subscription_subject(sub, ctx.snap.account_names),
        ctx.period,
        f"Usage subscription {sub.name or sub.id} has no product (write-in); this does not block usage",
        evidence,
        [
            "Optional data hygiene: open the subscription and fill Product (e.g. Microsoft Azure). "
            "This is not why usage is missing.",
        ],
    )


def check_write_in_products(ctx: Context) -> list[Finding]:
    """Usage subscriptions without a product: from warnings.csv, or found directly."""
    out: dict[str, Finding] = {}
    by_provider_id = {
        (s.provider_subscription_id or "").casefold(): s
        for s in ctx.snap.subscriptions
        if s.provider_subscription_id
    }
    for pi in ctx.reviewed_invoices:
        notes = ctx.parsed_notes(pi)
        for ref in [*notes.warnings, *(r for r in notes.errors if r.kind is RefKind.PRODUCT)]:
            sub = by_provider_id.get(ref.id.casefold()) or ctx.subscriptions.get(ref.id)
            if sub is not None and sub.product_id is None and sub.id not in out:
                out[sub.id] = _write_in(ctx, sub, "warnings.csv", pi, notes)
    for sub in ctx.usage_subscriptions:
        if sub.product_id is None and sub.id not in out:
            out[sub.id] = _write_in(ctx, sub, "subscription record", None)
    return list(out.values())
