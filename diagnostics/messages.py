"""The units of work of the monitor and the versioned messages that carry them on Service Bus.

A *unit* is what one check handler loads and checks: one provider invoice, one expected provider
invoice (provider + period) that may be missing, one billing contract, or the tenant-wide checks of
the open periods. The message id is the stable key of unit + day, so that the broker's duplicate
detection drops a repeat publish of the same check on the same day (monitor.md).

This module is a seam agreed between the planner, the handlers, the loader and the replay: add
fields with defaults, never rename or remove one without raising `version`.
"""

from __future__ import annotations

import hashlib
import json
from datetime import date
from typing import Annotated, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

# The queue names and the connection setting live in a module without pydantic, so that
# `function_app` can name them at import without paying for the message models (cold start).
from diagnostics.queues import QUEUE_INVOICE_CHECKS, QUEUE_REFERENCE_RESOLUTION, SERVICEBUS_CONNECTION

__all__ = ["QUEUE_INVOICE_CHECKS", "QUEUE_REFERENCE_RESOLUTION", "SERVICEBUS_CONNECTION"]
MESSAGE_VERSION = 1
_MAX_BODY = 64 * 1024  # a check message is a few hundred bytes; anything larger is not ours


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


_CANONICAL_GUID = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"


class CustomerRange(_Frozen):
    """One slice of a provider invoice's usage summaries, by their customer lookup
    (`work365_usagesummary_customer`): the rows whose customer lies in [low, high) in SQL Server's
    order of uniqueidentifier (None: open on that side), or, with `no_customer`, the rows with no
    customer. A customer's contracts and subscriptions are all in one slice, so each slice's checks
    of them see all of the invoice's usage they need (diagnostics/loading/slices.py cuts them)."""

    low: str | None = Field(default=None, pattern=_CANONICAL_GUID)
    high: str | None = Field(default=None, pattern=_CANONICAL_GUID)
    no_customer: bool = False

    @model_validator(mode="after")
    def _one_kind(self) -> CustomerRange:
        if self.no_customer and (self.low is not None or self.high is not None):
            raise ValueError("a slice of the rows with no customer has no bounds")
        if self.low is not None and self.low == self.high:
            raise ValueError("an empty range of customers")
        return self

    def key(self) -> str:
        """Short and stable: the same bounds give the same key on every day (message ids, state)."""
        text = "none" if self.no_customer else f"{self.low or ''}-{self.high or ''}"
        return hashlib.sha256(text.encode()).hexdigest()[:12]


class InvoiceUnit(_Frozen):
    kind: Literal["provider_invoice"] = "provider_invoice"
    invoice_id: str  # canonical GUID of work365_providerinvoice
    # None: the invoice's own unit (the planner's): its checks, and when its usage is too large
    # for one unit (Dataverse counts at most 50,000 rows), the slices it cuts that usage into and
    # publishes. Set: one such slice, whose report tells of the subscriptions and contracts of
    # its customers, never of the invoice itself (its own unit does).
    customers: CustomerRange | None = None


class ExpectedInvoiceUnit(_Frozen):
    kind: Literal["expected_invoice"] = "expected_invoice"
    provider_id: str  # canonical GUID of work365_provider
    period: str  # YYYY-MM


class ContractUnit(_Frozen):
    kind: Literal["billing_contract"] = "billing_contract"
    contract_id: str  # canonical GUID of work365_billingcontract
    period: str


# Contracts per `ContractsUnit`: the day's at-risk contracts of a period are checked in batches of
# this many, each in the two round trips one contract takes. The loader reads a batch with `In`
# filters of at most 200 ids (snapshot_loader._IN_CHUNK, about 8 KB of URL each), so 100 contracts
# are one clause and their subscriptions (five each in the generated tenants) three: every request
# stays far under Dataverse's URL limit, and the message under 5 KB.
CONTRACTS_PER_UNIT = 100


class ContractsUnit(_Frozen):
    """Several billing contracts of one period, checked together (the planner's batches of the
    day's at-risk contracts). Its report is told per contract, as each `ContractUnit` would be."""

    kind: Literal["billing_contracts"] = "billing_contracts"
    period: str
    contract_ids: tuple[str, ...] = Field(min_length=1)  # canonical GUIDs, sorted by the planner

    def contracts(self) -> tuple[ContractUnit, ...]:
        """The batch as the units it stands for: their keys hold the notes' and alerts' state."""
        return tuple(ContractUnit(contract_id=c, period=self.period) for c in self.contract_ids)


class TenantPeriodUnit(_Frozen):
    """The tenant-wide checks (markup, contracts, schedules) of `period` and the open periods
    before it, as one unit, so that a problem found there is also seen to resolve."""

    kind: Literal["tenant_period"] = "tenant_period"
    period: str


Unit = Annotated[
    InvoiceUnit | ExpectedInvoiceUnit | ContractUnit | ContractsUnit | TenantPeriodUnit,
    Field(discriminator="kind"),
]


def unit_key(unit: Unit) -> str:
    """Stable, short, readable: used in message ids, state keys and logs."""
    if isinstance(unit, InvoiceUnit):
        if unit.customers is not None:
            return f"pi:{unit.invoice_id}:customers:{unit.customers.key()}"
        return f"pi:{unit.invoice_id}"
    if isinstance(unit, ExpectedInvoiceUnit):
        return f"expected:{unit.provider_id}:{unit.period}"
    if isinstance(unit, ContractUnit):
        return f"contract:{unit.contract_id}:{unit.period}"
    if isinstance(unit, ContractsUnit):
        # A digest of the set, not the batch's number: the same contracts give the same key (a
        # repeat publish the same day is dropped), while a plan that sees a different set (a
        # past-due run, a contract moved into the window) gets new keys instead of having a changed
        # batch dropped as a duplicate of the morning's, which would leave contracts unchecked.
        digest = hashlib.sha256(",".join(sorted(unit.contract_ids)).encode()).hexdigest()[:16]
        return f"contracts:{unit.period}:{len(unit.contract_ids)}:{digest}"
    return f"tenant:{unit.period}"


CheckReason = Literal["planned", "recheck", "event", "on_demand"]


class CheckRequest(_Frozen):
    """One unit to check on one day (queue `invoice-checks`)."""

    version: Literal[1] = 1
    unit: Unit
    day: date  # the UTC day the check is for; part of the message id
    reason: CheckReason = "planned"

    @property
    def message_id(self) -> str:
        # A re-check has its own id: it must not take the place of (or be dropped as a duplicate
        # of) the planner's check of the same unit on the same day.
        prefix = "recheck" if self.reason == "recheck" else "check"
        return f"{prefix}:{unit_key(self.unit)}:{self.day.isoformat()}"


class Reference(_Frozen):
    type: Literal["customer", "subscription", "currency", "product", "unknown"]
    id: str
    name: str | None = None
    # The customer's provider account, when the check could tell whose subscription it is: the
    # reference handler then looks at that customer's other usage subscriptions.
    provider_account_id: str | None = None


class ReferenceRequest(_Frozen):
    """The unresolved references of one provider invoice (queue `reference-resolution`)."""

    version: Literal[1] = 1
    invoice_id: str
    period: str
    day: date
    references: tuple[Reference, ...]

    @property
    def message_id(self) -> str:
        return f"refs:{self.invoice_id}:{self.day.isoformat()}"


class MessageError(ValueError):
    """A message body that is not one of ours: permanent, dead-lettered at once."""

    def __init__(self, reason: str, description: str) -> None:
        super().__init__(description)
        self.reason = reason  # short and stable: DeadLetterReason
        self.description = description  # one readable line: DeadLetterErrorDescription


def encode(message: CheckRequest | ReferenceRequest) -> bytes:
    return message.model_dump_json().encode("utf-8")


M = TypeVar("M", CheckRequest, ReferenceRequest)


def _decode(body: bytes, model: type[M]) -> M:
    if len(body) > _MAX_BODY:
        raise MessageError(
            "MessageTooLarge", f"the message body has {len(body)} bytes; ours have under 64 KB"
        )
    try:
        raw = json.loads(body)
    except (ValueError, RecursionError):
        raise MessageError("MalformedMessage", "the message body is not JSON") from None
    if not isinstance(raw, dict):
        raise MessageError("MalformedMessage", "the message body is not a JSON object")
    version = raw.get("version")
    if version != MESSAGE_VERSION:
        raise MessageError(
            "UnsupportedVersion", f"message version {str(version)[:20]!r} is not supported (this app reads 1)"
        )
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise MessageError("MalformedMessage", f"{model.__name__}.{where}: {first['msg']}") from None


def decode_check(body: bytes) -> CheckRequest:
    return _decode(body, CheckRequest)


def decode_reference(body: bytes) -> ReferenceRequest:
    return _decode(body, ReferenceRequest)
