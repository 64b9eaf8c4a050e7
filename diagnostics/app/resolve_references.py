"""The reference-resolution handler (queue `reference-resolution`), first version: read-only.

For each unresolved reference of a provider invoice it reads the records that bear on it, now:
- a customer: the provider account with that provider-specific id, its Account column and sync;
- a subscription: the subscription with that provider subscription id, and the customer's other
  usage subscriptions (the migrated-Azure case);
- a currency: the currencies with that ISO code, active or not.
They go into the evidence of the invoice's `US_BLOCKED_UNRESOLVED_*` findings (the same dedup keys
the check reported), and the people are notified when what was found changed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from diagnostics.access import missing_write_privileges
from diagnostics.adapters.dataverse import Query, odata_string
from diagnostics.app.container import Container
from diagnostics.app.recheck import recheck_time
from diagnostics.app.reference_fixes import (
    DataverseFixes,
    FixOutcome,
    Reimport,
    autofix_settings,
    fix_references,
    schedule_confirmation,
    write_changes_note,
)
from diagnostics.catalog import finding
from diagnostics.checks.context import iso, pi_subject
from diagnostics.errors import ServiceError
from diagnostics.messages import InvoiceUnit, Reference, ReferenceRequest, decode_reference
from diagnostics.metadata import ResolvedSchema
from diagnostics.model import (
    Currency,
    Finding,
    ProviderAccount,
    ProviderInvoice,
    Report,
    Statistics,
    Subscription,
)
from diagnostics.ports import ConflictError
from diagnostics.references.autofix import AccountRef, RefState, plan
from diagnostics.references.candidates import (
    CustomerLister,
    PartnerCenterView,
    SubscriptionLister,
    account_query,
    candidates_from,
    partner_subscription_words,
    read_partner_customers,
    read_partner_subscriptions,
    search_tokens,
)
from diagnostics.references.match import (
    DEFAULT_THRESHOLD,
    Candidate,
    Party,
    Proposal,
    choose,
    normalised_name,
    rank,
)
from diagnostics.service import Verification
from diagnostics.settings import Thresholds
from diagnostics.snapshot_loader import (  # the loader's row builders: one reading of a row
    DataverseReader,
    Loader,
    _account_names,
    _currency,
    _provider_account,
    _provider_invoice,
    _subscription,
)

log = logging.getLogger("diagnostics.app.references")

_READS = frozenset({"provider_invoices", "provider_accounts", "subscriptions", "currencies"})
REFERENCES = "references"  # state kind: fingerprint of what was last notified, per invoice
_CODES = {
    "customer": "US_BLOCKED_UNRESOLVED_CUSTOMER",
    "subscription": "US_BLOCKED_UNRESOLVED_SUBSCRIPTION",
    "currency": "US_BLOCKED_UNRESOLVED_CURRENCY",
}


@dataclass(frozen=True)
class ReferenceRecords:
    """What Dataverse holds now for one request's references."""

    invoice: ProviderInvoice | None
    accounts: tuple[ProviderAccount, ...] = ()
    subscriptions: tuple[Subscription, ...] = ()
    currencies: tuple[Currency, ...] = ()
    account_names: dict[str, str] = field(default_factory=dict)
    # per customer reference id (lower case): the CRM accounts its name or domain prefilter found
    crm: dict[str, tuple[Candidate, ...]] = field(default_factory=dict)
    # mapped provider accounts named like a customer of the request (other providers' accounts)
    named_accounts: tuple[ProviderAccount, ...] = ()
    partner_center: PartnerCenterView = field(default_factory=lambda: PartnerCenterView({}, "not asked"))
    # Partner Center's subscriptions per customer tenant id (lower case), or why not read
    partner_subscriptions: dict[str, tuple[dict[str, Any], ...] | str] = field(default_factory=dict)


@dataclass(frozen=True)
class ReferenceResult:
    unit: str
    findings: int
    references: int = 0
    notified: bool = False
    note: str = ""
    # auto-fix: off, nothing to do, applied, dry run, busy, privileges missing; changes made now
    autofix: str = ""
    changes: int = 0


def _same(a: str | None, b: str | None) -> bool:
    return a is not None and b is not None and a.strip().casefold() == b.strip().casefold()


_SHOWN_CANDIDATES = 5  # ranked candidates kept in the evidence per reference


@dataclass(frozen=True)
class CustomerMatch:
    """Who a customer reference is in CRM: its provider accounts, and the accounts that might be it."""

    reference: Reference
    provider_accounts: tuple[ProviderAccount, ...]
    proposals: tuple[Proposal, ...]
    chosen: Proposal | None  # the one proposal at the threshold (`match.choose`)
    threshold: float

    @property
    def resolved(self) -> bool:
        return any(a.account_id is not None and a.active for a in self.provider_accounts)

    @property
    def verdict(self) -> str:
        if self.chosen is not None:
            return "confident"
        if self.proposals and max(p.confidence for p in self.proposals) >= self.threshold:
            return "ambiguous"  # confident, but another candidate is too close (match.choose)
        return "uncertain" if self.proposals else "no candidate"


def customer_match(records: ReferenceRecords, ref: Reference, threshold: float) -> CustomerMatch:
    """Pure: the reference's provider accounts and the CRM accounts ranked by the matcher. Accounts
    other provider accounts of the same customer are mapped to are candidates too."""
    found = tuple(a for a in records.accounts if _same(a.provider_specific_id, ref.id))
    name = ref.name or next((a.name for a in found if a.name), None) or ""
    customer = records.partner_center.customers.get(ref.id.strip().lower())
    wanted = normalised_name(name)
    siblings = [a for a in found if a.account_id] + [
        a
        for a in records.named_accounts
        if a.account_id and wanted and normalised_name(a.name or "") == wanted
    ]
    linked = sorted({a.account_id for a in siblings if a.account_id})
    candidates = {c.id: c for c in records.crm.get(ref.id.strip().lower(), ())}
    for account_id in linked:
        candidates.setdefault(account_id, Candidate(account_id, records.account_names.get(account_id, "?")))
    party = Party(name, customer.domain if customer else None, tuple(linked))
    proposals = tuple(rank(party, list(candidates.values())))
    return CustomerMatch(ref, found, proposals, choose(proposals, threshold), threshold)


def _proposal_evidence(proposal: Proposal) -> dict[str, Any]:
    return {
        "account": proposal.candidate.name,
        "account_id": proposal.candidate.id,
        "website": proposal.candidate.website,
        "confidence": round(proposal.confidence, 2),
        "reasons": list(proposal.reasons),
    }


def _customer_ref(records: ReferenceRecords, ref: Reference, threshold: float) -> dict[str, Any]:
    matched = customer_match(records, ref, threshold)
    found = list(matched.provider_accounts)
    evidence: dict[str, Any] = {"reference": ref.id, "name": ref.name, "provider_account_exists": bool(found)}
    evidence["provider_accounts"] = [
        {
            "id": a.id,
            "name": a.name,
            "account_id": a.account_id,
            "account_name": records.account_names.get(a.account_id or ""),
            "account_column_empty": a.account_id is None,
            "sync_disabled": a.sync_disabled,
            "active": a.active,
            "modified_on": iso(a.modified_on),
        }
        for a in found
    ]
    evidence["resolved"] = matched.resolved
    if not matched.resolved:
        evidence |= {
            "candidates": [_proposal_evidence(p) for p in matched.proposals[:_SHOWN_CANDIDATES]],
            "match": matched.verdict,
            "partner_center": records.partner_center.knows(ref.id),
        }
    return evidence


def _subscription_evidence(records: ReferenceRecords, sub: Subscription) -> dict[str, Any]:
    return {
        "id": sub.id,
        "name": sub.name,
        "provider_subscription_id": sub.provider_subscription_id,
        "customer": records.account_names.get(sub.customer_id or ""),
        "contract_id": sub.contract_id,
        "active": sub.active,
        "status": sub.status_label,
    }


def _subscription_ref(records: ReferenceRecords, ref: Reference) -> dict[str, Any]:
    found = [s for s in records.subscriptions if _same(s.provider_subscription_id, ref.id)]
    evidence: dict[str, Any] = {
        "reference": ref.id,
        "name": ref.name,
        "subscription_exists": bool(found),
        "subscriptions": [_subscription_evidence(records, s) for s in found],
        "resolved": any(s.active for s in found),
    }
    owner = next((a for a in records.accounts if a.id == ref.provider_account_id), None)
    if owner is not None:
        others = [
            s
            for s in records.subscriptions
            if s.is_usage and owner.account_id and s.customer_id == owner.account_id and s not in found
        ]
        evidence |= {
            "customer_provider_account_id": owner.id,
            "customer": owner.name,
            "provider_account_sync_disabled": owner.sync_disabled,
            "customer_usage_subscriptions": [_subscription_evidence(records, s) for s in others],
            # Migrated Azure customers are billed under an "Azure subscription ID" that Work 365
            # does not know, while their usage subscription carries the old id.
            "migrated_azure_subscription_id_likely": bool(others) and not found,
        }
        listed = records.partner_subscriptions.get((owner.provider_specific_id or "").strip().lower())
        said, _ = partner_subscription_words(listed, ref.id)
        if said is not None:
            evidence["partner_center"] = said
    return evidence


def _currency_evidence(records: ReferenceRecords, ref: Reference) -> dict[str, Any]:
    found = [c for c in records.currencies if _same(c.iso_code, ref.id)]
    return {
        "reference": ref.id,
        "currency_exists": bool(found),
        "currencies": [{"id": c.id, "name": c.name, "active": c.active} for c in found],
        "resolved": any(c.active for c in found),
    }


_STEPS = {
    "customer": [
        "For each reference, look at the provider accounts in the evidence: fill the empty Account column "
        "with the customer's CRM account, enable sync where it is disabled, or create the provider account "
        "with the reference as its Provider Specific Id when none exists.",
    ],
    "subscription": [
        "For each reference with no subscription, add a usage subscription on the customer's billing contract "
        "with the reference as its provider subscription id; where the evidence says the customer is a "
        "migrated Azure customer, add it next to the existing usage subscription (provider 'Do Nothing').",
    ],
    "currency": ["Add or activate each currency in the evidence, with the ISO code from errors.csv."],
}
_AFTER = (
    "When every reference resolves, delete this provider invoice in Work 365 so that it is re-imported; "
    "the monitor checks it again and says when usage arrives."
)


def reference_report(
    request: ReferenceRequest,
    invoice: ProviderInvoice,
    records: ReferenceRecords,
    *,
    now: datetime,
    threshold: float = DEFAULT_THRESHOLD,
    changes: Sequence[dict[str, Any]] = (),
    auto_fix: str | None = None,
) -> Report:
    """Pure: the invoice's US_BLOCKED_UNRESOLVED_* findings with what each reference finds now.
    A kind whose references all resolve now has no finding (the check says re-import next)."""
    subject = pi_subject(invoice)
    findings: list[Finding] = []
    builders: dict[str, Callable[[ReferenceRecords, Reference], dict[str, Any]]] = {
        "customer": lambda records, ref: _customer_ref(records, ref, threshold),
        "subscription": _subscription_ref,
        "currency": _currency_evidence,
    }
    for kind, code in _CODES.items():
        refs = [r for r in request.references if r.type == kind]
        if not refs:
            continue
        evidence = [builders[kind](records, r) for r in refs]
        unresolved = [e for e in evidence if not e["resolved"]]
        if not unresolved:
            continue
        count = len(unresolved)
        findings.append(
            finding(
                code,
                subject,
                request.period,
                f"Usage import blocked: {count} unresolved {kind} reference{'' if count == 1 else 's'} "
                "(looked up again)",
                {
                    "provider_invoice_id": invoice.id,
                    "invoice_number": invoice.invoice_number,
                    "references": evidence,
                    "looked_up_at": iso(now),
                    "changes": list(changes),
                    "auto_fix": auto_fix,
                },
                [*_STEPS[kind], _AFTER],
            )
        )
    by_severity = dict.fromkeys(("critical", "error", "warning", "info"), 0)
    for item in findings:
        by_severity[item.severity] += 1
    return Report(
        as_of=now,
        period=request.period,
        statistics=Statistics(
            checks=1, passed=0 if findings else 1, findings=len(findings), by_severity=by_severity
        ),
        findings=tuple(findings),
    )


# --- the read -----------------------------------------------------------------------------------


def _any_of(column: str, values: Sequence[str]) -> str:
    return " or ".join(f"{column} eq {odata_string(v)}" for v in values)


def _customer_searches(
    loader: Loader, request: ReferenceRequest, partner: PartnerCenterView
) -> list[tuple[str, Query]]:
    """Per customer reference, the accounts its name or Partner Center's domain for it finds; and
    the mapped provider accounts named like one of the customers (the same customer elsewhere)."""
    schema, pa = loader.schema, "work365_provideraccount"
    parts: list[tuple[str, Query]] = []
    tokens: set[str] = set()
    for ref in sorted(
        {r.id.strip().lower(): r for r in request.references if r.type == "customer"}.values(),
        key=lambda r: r.id,
    ):
        customer = partner.customers.get(ref.id.strip().lower())
        name = ref.name or (customer.name if customer else None)
        query = account_query(schema, name, customer.domain if customer else None)
        if query is not None:
            parts.append((f"crm:{ref.id.strip().lower()}", query))
        tokens |= set(search_tokens(name))
    if tokens:
        name_column = loader.c(pa, "work365_provideraccount_name")
        named = " or ".join(f"contains({name_column},{odata_string(t)})" for t in sorted(tokens))
        mapped = f"{loader.c(pa, 'work365_provideraccount_account')} ne null"
        parts.append(("named_accounts", loader.query(pa, f"({named}) and {mapped}", annotations=True)))
    return parts


async def read_reference_records(
    dv: DataverseReader,
    schema: ResolvedSchema,
    thresholds: Thresholds,
    request: ReferenceRequest,
    partner_center: CustomerLister | None = None,
) -> ReferenceRecords:
    """Partner Center's customers first (when a customer is unresolved and it is configured), then
    one `$batch` (the invoice, each kind's lookups and the candidate accounts), the owners' Partner
    Center subscription lists (at the same time, a few at once), and a second Dataverse query only
    for the customers' other usage subscriptions."""
    loader = Loader(schema, thresholds)
    has_customers = any(r.type == "customer" for r in request.references)
    partner = (
        await read_partner_customers(partner_center) if has_customers else PartnerCenterView({}, "not asked")
    )
    pa, sub, cur, pi = (
        "work365_provideraccount",
        "work365_subscription",
        "transactioncurrency",
        "work365_providerinvoice",
    )
    ids = {kind: sorted({r.id for r in request.references if r.type == kind}) for kind in _CODES}
    owners = sorted({r.provider_account_id for r in request.references if r.provider_account_id})
    parts: list[tuple[str, Query]] = [
        ("invoice", loader.query(pi, f"{loader.c(pi, 'work365_providerinvoiceid')} eq {request.invoice_id}"))
    ]
    account_filters = []
    if ids["customer"]:
        account_filters.append(
            _any_of(loader.c(pa, "work365_provideraccount_providerspecificaccountid"), ids["customer"])
        )
    if owners:
        account_filters.append(
            " or ".join(f"{loader.c(pa, 'work365_provideraccountid')} eq {o}" for o in owners)
        )
    if account_filters:
        parts.append(("accounts", loader.query(pa, " or ".join(account_filters), annotations=True)))
    if ids["subscription"]:
        column = loader.c(sub, "work365_subscription_providersubscriptionid")
        parts.append(
            ("subscriptions", loader.query(sub, _any_of(column, ids["subscription"]), annotations=True))
        )
    if ids["currency"]:
        parts.append(
            ("currencies", loader.query(cur, _any_of(loader.c(cur, "isocurrencycode"), ids["currency"])))
        )

    parts += _customer_searches(loader, request, partner)

    answers: dict[str, list[dict[str, Any]]] = {}
    for (name, _), answer in zip(parts, await dv.batch([q for _, q in parts]), strict=True):
        if isinstance(answer, ServiceError):
            raise answer
        answers[name] = answer
    invoices = loader.rows(pi, answers["invoice"], _provider_invoice)
    accounts = loader.rows(pa, answers.get("accounts", []), _provider_account)
    subscriptions = loader.rows(sub, answers.get("subscriptions", []), _subscription)
    names: dict[str, str] = {}
    for rows in answers.values():
        names |= _account_names(rows)

    customers = sorted({a.account_id for a in accounts if a.id in owners and a.account_id})
    tenants = [a.provider_specific_id for a in accounts if a.id in owners and a.provider_specific_id]
    lister = partner_center if isinstance(partner_center, SubscriptionLister) else None
    records_of_pc = await read_partner_subscriptions(lister if invoices else None, tenants)
    if customers and invoices:
        column = loader.c(sub, "work365_subscription_customer")
        raw = await dv.query(
            loader.query(sub, " or ".join(f"{column} eq {c}" for c in customers), annotations=True)
        )
        names |= _account_names(raw)
        known = {s.id for s in subscriptions}
        subscriptions += [s for s in loader.rows(sub, raw, _subscription) if s.id not in known]
    return ReferenceRecords(
        invoice=invoices[0] if invoices else None,
        accounts=tuple(accounts),
        subscriptions=tuple(subscriptions),
        currencies=tuple(loader.rows(cur, answers.get("currencies", []), _currency)),
        account_names=names,
        crm={
            name.removeprefix("crm:"): tuple(candidates_from(schema, rows))
            for name, rows in answers.items()
            if name.startswith("crm:")
        },
        named_accounts=tuple(loader.rows(pa, answers.get("named_accounts", []), _provider_account)),
        partner_center=partner,
        partner_subscriptions=records_of_pc,
    )


# --- the use case -------------------------------------------------------------------------------


def reference_states(
    request: ReferenceRequest, records: ReferenceRecords, threshold: float
) -> list[RefState]:
    """Pure: each reference of the request as auto-fix plans on it (a product or unknown reference
    never resolves here, so it keeps the invoice)."""
    states = []
    for ref in request.references:
        if ref.type == "customer":
            matched = customer_match(records, ref, threshold)
            accounts = tuple(
                AccountRef(a.id, a.name, a.account_id, a.active) for a in matched.provider_accounts
            )
            states.append(
                RefState(
                    "customer", ref.id, ref.name, matched.resolved, accounts, matched.chosen, matched.verdict
                )
            )
        elif ref.type == "subscription":
            states.append(
                RefState("subscription", ref.id, ref.name, bool(_subscription_ref(records, ref)["resolved"]))
            )
        elif ref.type == "currency":
            states.append(
                RefState("currency", ref.id, ref.name, bool(_currency_evidence(records, ref)["resolved"]))
            )
        else:
            states.append(RefState(ref.type, ref.id, ref.name, False))
    return states


def _fingerprint(report: Report) -> str:
    evidence = [
        [
            f.dedup_key,
            f.severity,
            f.evidence.get("references"),
            f.evidence.get("changes"),
            f.evidence.get("auto_fix"),
        ]
        for f in report.findings
    ]
    return hashlib.sha256(json.dumps(evidence, sort_keys=True, default=str).encode()).hexdigest()


async def _autofix(
    c: Container,
    verification: Verification,
    request: ReferenceRequest,
    records: ReferenceRecords,
    partner: CustomerLister | None,
    now: datetime,
) -> FixOutcome:
    """Plan and apply the auto-fixes the settings allow, once (reference_fixes.py)."""
    settings = autofix_settings(c.settings)
    if not settings.enabled:
        return FixOutcome("off")
    assert records.invoice is not None
    schema = verification.schema
    access = missing_write_privileges(
        verification.privileges,
        schema.schema_map,
        notes=False,
        map_accounts=settings.map_accounts,
        reimport=settings.reimport,
    )
    missing = [m.name for m in access.missing] or ([access.line] if access.line else [])
    the_plan = plan(
        reference_states(request, records, settings.min_confidence),
        invoice_id=records.invoice.id,
        invoice_name=records.invoice.name,
        settings=settings,
        missing_privileges=missing,
    )

    async def references_resolve() -> bool:
        fresh = await read_reference_records(c.dataverse, schema, c.thresholds, request, partner)
        return fresh.invoice is not None and all(
            s.resolved for s in reference_states(request, fresh, settings.min_confidence)
        )

    hold = timedelta(seconds=c.settings.message_deadline_seconds)
    writer = DataverseFixes(c.dataverse, schema, references_resolve)
    return await fix_references(
        c.state, the_plan, writer, invoice_id=records.invoice.id, settings=settings, now=now, hold=hold
    )


async def _after_changes(
    c: Container,
    schema: ResolvedSchema,
    request: ReferenceRequest,
    invoice: ProviderInvoice,
    outcome: FixOutcome,
    now: datetime,
) -> None:
    """The note of the changes on the provider's record; after a delete, the re-check that confirms
    the re-import."""
    if not invoice.provider_id:
        return
    made = [ch for ch in outcome.changes if not ch.get("dry_run")]
    if outcome.deleted:
        reimport = Reimport(
            invoice.provider_id,
            request.period,
            invoice.id,
            invoice.invoice_number,
            invoice.name,
            now,
            tuple(made),
        )
        daily_at = recheck_time(c.settings.schedule, c.settings.recheck_delay_hours)
        await schedule_confirmation(c.bus, c.state, reimport, now=now, daily_at=daily_at)
    await write_changes_note(
        c.dataverse, schema, provider_id=invoice.provider_id, period=request.period, changes=made
    )


async def handle_references(c: Container, body: bytes) -> ReferenceResult:
    """Handle one `reference-resolution` message. Raises on failure; the caller classifies it."""
    request = decode_reference(body)
    now = c.clock()
    unit = InvoiceUnit(invoice_id=request.invoice_id)
    key = f"pi:{request.invoice_id}"
    verification = await c.schema.get()
    schema = verification.schema
    if _READS & schema.unavailable.keys():
        # The checks report SCHEMA_MISMATCH or READ_ACCESS_LIMITED; these records cannot be read.
        return ReferenceResult(key, 0, len(request.references), note="records unreadable: not looked up")
    # Partner Center's customers API (app-only, read-only) where the client offers it.
    partner = c.partner_center if isinstance(c.partner_center, CustomerLister) else None
    records = await read_reference_records(c.dataverse, schema, c.thresholds, request, partner)
    if records.invoice is None:
        return ReferenceResult(key, 0, len(request.references), note="the invoice is gone")
    invoice = records.invoice
    outcome = await _autofix(c, verification, request, records, partner, now)
    if outcome.made:
        await _after_changes(c, schema, request, invoice, outcome, now)
    if outcome.deleted:
        # Its note went with it; the confirming re-check and the changes note say what happened.
        return ReferenceResult(
            key,
            0,
            len(request.references),
            note="deleted so that Work 365 re-imports it",
            autofix=outcome.status,
            changes=outcome.made,
        )
    if outcome.made:  # what the evidence says must be what Dataverse holds after the changes
        records = await read_reference_records(c.dataverse, schema, c.thresholds, request, partner)
        invoice = records.invoice or invoice
    threshold = c.settings.autofix_min_confidence
    report = reference_report(
        request,
        invoice,
        records,
        now=now,
        threshold=threshold,
        changes=outcome.changes,
        auto_fix=_words(outcome),
    )
    stored = await c.state.get(REFERENCES, key)
    current = _fingerprint(report)
    # The living note's notifier decides itself what changed (it writes the note only when what
    # the look-up adds to the check's words differs): called each time, so a finding the check
    # reopened since gets the candidates again even when the look-up found the same.
    deciding = bool(getattr(c.notifier, "decides_changes", False))
    if report.findings and (deciding or stored is None or stored.value.get("fingerprint") != current):
        await c.notifier.notify(unit, report, at=now, partial=True)
        with contextlib.suppress(ConflictError):  # a concurrent delivery recorded it
            await c.state.put(
                REFERENCES,
                key,
                {"fingerprint": current, "at": now.isoformat()},
                etag=stored.etag if stored else None,
            )
        notified = True
    else:
        notified = False
    if outcome.not_applied:
        log.info("auto-fix not applied for %s: %s", key, "; ".join(outcome.not_applied))
    return ReferenceResult(
        key,
        len(report.findings),
        len(request.references),
        notified=notified,
        autofix=outcome.status,
        changes=outcome.made,
    )


def _words(outcome: FixOutcome) -> str | None:
    """The auto-fix line of the evidence: what it did, or why it did not."""
    if outcome.status == "off":
        return None
    said = {
        "applied": f"applied {outcome.made} change(s)",
        "dry run": "dry run (DIAG_AUTOFIX_DRY_RUN): nothing was changed",
        "busy": "another delivery is applying the changes",
        "privileges missing": "nothing applied: privileges missing",
        "nothing to do": "nothing to apply",
    }.get(outcome.status, outcome.status)
    return "; ".join([said, *outcome.not_applied])
