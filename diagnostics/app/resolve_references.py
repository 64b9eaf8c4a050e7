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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from diagnostics.adapters.dataverse import Query
from diagnostics.app.container import Container
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


@dataclass(frozen=True)
class ReferenceResult:
    unit: str
    findings: int
    references: int = 0
    notified: bool = False
    note: str = ""


def _same(a: str | None, b: str | None) -> bool:
    return a is not None and b is not None and a.strip().casefold() == b.strip().casefold()


def _customer_ref(records: ReferenceRecords, ref: Reference) -> dict[str, Any]:
    found = [a for a in records.accounts if _same(a.provider_specific_id, ref.id)]
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
    evidence["resolved"] = any(a.account_id is not None and a.active for a in found)
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
    request: ReferenceRequest, invoice: ProviderInvoice, records: ReferenceRecords, *, now: datetime
) -> Report:
    """Pure: the invoice's US_BLOCKED_UNRESOLVED_* findings with what each reference finds now.
    A kind whose references all resolve now has no finding (the check says re-import next)."""
    subject = pi_subject(invoice)
    findings: list[Finding] = []
    builders: dict[str, Callable[[ReferenceRecords, Reference], dict[str, Any]]] = {
        "customer": _customer_ref,
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


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _any_of(column: str, values: Sequence[str]) -> str:
    return " or ".join(f"{column} eq {_literal(v)}" for v in values)


async def read_reference_records(
    dv: DataverseReader, schema: ResolvedSchema, thresholds: Thresholds, request: ReferenceRequest
) -> ReferenceRecords:
    """One `$batch` (the invoice and each kind's lookups), and a second one only for the customers'
    other usage subscriptions."""
    loader = Loader(schema, thresholds)
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
    )


# --- the use case -------------------------------------------------------------------------------


def _fingerprint(report: Report) -> str:
    evidence = [[f.dedup_key, f.severity, f.evidence.get("references")] for f in report.findings]
    return hashlib.sha256(json.dumps(evidence, sort_keys=True, default=str).encode()).hexdigest()


async def handle_references(c: Container, body: bytes) -> ReferenceResult:
    """Handle one `reference-resolution` message. Raises on failure; the caller classifies it."""
    request = decode_reference(body)
    now = c.clock()
    unit = InvoiceUnit(invoice_id=request.invoice_id)
    key = f"pi:{request.invoice_id}"
    verification = await c.schema.get()
    if _READS & verification.schema.unavailable.keys():
        # The checks report SCHEMA_MISMATCH or READ_ACCESS_LIMITED; these records cannot be read.
        return ReferenceResult(key, 0, len(request.references), note="records unreadable: not looked up")
    records = await read_reference_records(c.dataverse, verification.schema, c.thresholds, request)
    if records.invoice is None:
        return ReferenceResult(key, 0, len(request.references), note="the invoice is gone")
    report = reference_report(request, records.invoice, records, now=now)
    stored = await c.state.get(REFERENCES, key)
    current = _fingerprint(report)
    if report.findings and (stored is None or stored.value.get("fingerprint") != current):
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
    return ReferenceResult(key, len(report.findings), len(request.references), notified=notified)
