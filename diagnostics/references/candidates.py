"""The CRM records that might fix a customer reference, read in as few round trips as possible.

Which accounts to read: never every account, one request per row. For each customer reference the
handler adds ONE query to the `$batch` it sends anyway: the accounts whose name contains one of the
distinctive words of the customer's name (`contains(name,'tailspin')`, case-insensitive in
Dataverse), or whose website holds the customer's web domain, at most `_TOP` of them. The matcher
(`match.rank`) then decides which of those are plausible and how sure it is.

Other provider accounts of the same customer (the same provider-specific id under another provider,
or the same name) that are mapped tell which account the customer already is: their Account ids go
into `Party.linked_account_ids`.

Partner Center, where configured, says whether it knows the customer (its customers API, app-only,
read-only) and gives the customer's domain.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from diagnostics.adapters.dataverse import Query, odata_string
from diagnostics.errors import NotFoundError, ServiceError
from diagnostics.metadata import ResolvedSchema
from diagnostics.references import names
from diagnostics.references.domains import search_label
from diagnostics.references.match import Candidate

_TOP = 25  # accounts per customer reference: enough for every plausible one, never the whole table
_ACCOUNT = "account"


def search_tokens(name: str | None) -> list[str]:
    """The distinctive words of a customer's name to prefilter accounts on, longest first (the
    matcher's `names.search_tokens`: safe inside an OData literal)."""
    return list(names.search_tokens(name)) if name else []


def account_query(schema: ResolvedSchema, name: str | None, domain: str | None) -> Query | None:
    """The accounts that might be the customer: a name holding one of its distinctive words, or a
    website holding its domain. None when there is nothing to search on."""
    name_column = schema.col(_ACCOUNT, "name")
    website = schema.col(_ACCOUNT, "websiteurl")
    terms = [f"contains({name_column},{odata_string(t)})" for t in search_tokens(name)]
    label = search_label(domain)  # "contoso" of contoso.co.uk: contoso.com matches too
    if label:
        terms.append(f"contains({website},{odata_string(label)})")
    if not terms:
        return None
    return Query(
        schema.entity_set(_ACCOUNT),
        (schema.col(_ACCOUNT, "accountid"), name_column, website),
        " or ".join(terms),
        top=_TOP,
    )


def candidates_from(schema: ResolvedSchema, rows: Iterable[Mapping[str, Any]]) -> list[Candidate]:
    """The rows of `account_query` as candidates (a row without an id or a name is skipped)."""
    key, name, website = (schema.col(_ACCOUNT, c) for c in ("accountid", "name", "websiteurl"))
    out = []
    for row in rows:
        account_id, account_name = row.get(key), row.get(name)
        if isinstance(account_id, str) and isinstance(account_name, str) and account_name.strip():
            site = row.get(website)
            out.append(Candidate(account_id.lower(), account_name, site if isinstance(site, str) else None))
    return out


# --- Partner Center ---------------------------------------------------------------------------------


@runtime_checkable
class CustomerLister(Protocol):
    """Partner Center's customers API (app-only, read-only)."""

    async def list_customers(self) -> list[dict[str, Any]]: ...


@dataclass(frozen=True)
class PartnerCustomer:
    id: str  # the customer's tenant id: Microsoft's provider-specific id of a customer
    name: str | None
    domain: str | None


@dataclass(frozen=True)
class PartnerCenterView:
    """What Partner Center says of the customers; `status` in words when it could not say."""

    customers: Mapping[str, PartnerCustomer]
    status: str  # "read", "not configured", or why it could not be read

    @property
    def read(self) -> bool:
        return self.status == "read"

    def knows(self, reference: str) -> str:
        """Whether Partner Center knows the customer, in words for the evidence."""
        if not self.read:
            return f"not asked: Partner Center {self.status}"
        customer = self.customers.get(reference.strip().lower())
        if customer is None:
            return "Partner Center does not know this customer id"
        domain = f" ({customer.domain})" if customer.domain else ""
        return f"Partner Center knows it as {customer.name or '?'}{domain}"


def _text(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def partner_customers(raw: Sequence[Any]) -> dict[str, PartnerCustomer]:
    """Partner Center's customer objects (`id`, `companyProfile.companyName`, `.domain`) by id."""
    out = {}
    for item in raw:
        if not isinstance(item, dict):
            continue
        customer_id = _text(item.get("id"))
        raw_profile = item.get("companyProfile")
        profile: dict[str, Any] = raw_profile if isinstance(raw_profile, dict) else {}
        if customer_id is None:
            continue
        out[customer_id.lower()] = PartnerCustomer(
            customer_id.lower(), _text(profile.get("companyName")), _text(profile.get("domain"))
        )
    return out


async def read_partner_customers(client: CustomerLister | None) -> PartnerCenterView:
    """Partner Center's customers, or why they could not be read (never raises: Partner Center only
    adds a reason; the candidates stand without it)."""
    if client is None:
        return PartnerCenterView({}, "not configured")
    try:
        raw = await client.list_customers()
    except ServiceError as exc:
        return PartnerCenterView({}, f"could not be read ({_first_line(exc)})")
    return PartnerCenterView(partner_customers(raw), "read")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return re.sub(r"\s+", " ", text[0])[:200] if text else type(exc).__name__


@runtime_checkable
class SubscriptionLister(Protocol):
    """Partner Center's subscriptions of one customer (app-only, read-only)."""

    async def list_subscriptions(self, customer_id: str) -> list[dict[str, Any]]: ...


# Customers whose subscription lists are read at once: few, because Microsoft advises against high
# parallelism towards Partner Center (platform-apis.md 1.8); an invoice's customers are seldom more.
MAX_CONCURRENT_SUBSCRIPTION_LISTS = 4


async def read_partner_subscriptions(
    client: SubscriptionLister | None,
    customer_ids: Iterable[str],
    *,
    concurrency: int = MAX_CONCURRENT_SUBSCRIPTION_LISTS,
) -> dict[str, tuple[dict[str, Any], ...] | str]:
    """Each customer's Partner Center subscriptions (by tenant id, lower case, in order), or why they
    could not be read; empty when Partner Center is not configured. The lists are read at the same
    time, at most `concurrency` at once; a customer whose list fails is said so, the others stand."""
    if client is None:
        return {}
    if concurrency < 1:
        raise ValueError(f"concurrency must be at least 1, got {concurrency}")
    gate = asyncio.Semaphore(concurrency)

    async def listed(customer: str) -> tuple[dict[str, Any], ...] | str:
        async with gate:
            try:
                return tuple(s for s in await client.list_subscriptions(customer) if isinstance(s, dict))
            except NotFoundError:
                # An answer, not a failure: Partner Center has no such customer (not a wrong URL).
                return "cannot be listed: Partner Center does not know this customer"
            except ServiceError as exc:
                return f"could not be read ({_first_line(exc)})"

    try:
        async with asyncio.TaskGroup() as group:
            reads = {
                customer: group.create_task(listed(customer))
                for customer in sorted({c.strip().lower() for c in customer_ids})
            }
    except BaseExceptionGroup as failed:
        # Anything but a ServiceError is a bug: the other reads are cancelled, and it is raised as
        # itself (not wrapped in a group), as it was when the lists were read one after another.
        raise failed.exceptions[0] from None
    return {customer: read.result() for customer, read in reads.items()}


def partner_subscription_words(
    listed: tuple[dict[str, Any], ...] | str | None, reference: str
) -> tuple[str | None, bool]:
    """(what Partner Center says of a subscription reference, whether it is likely a migrated Azure
    customer's "Azure subscription ID"): Partner Center lists its own subscription ids, not the
    Azure subscription ids under an Azure plan, which is what Work 365 then cannot resolve."""
    if listed is None:
        return None, False
    if isinstance(listed, str):
        return f"Partner Center's subscriptions of the customer {listed}", False
    wanted = reference.strip().lower()
    same = next((s for s in listed if str(s.get("id") or "").strip().lower() == wanted), None)
    if same is not None:
        name = same.get("friendlyName") or same.get("offerName") or "?"
        return f"Partner Center lists it as {name} ({same.get('status') or 'status unknown'})", False
    plans = [
        s for s in listed if "azure" in str(s.get("offerName") or s.get("friendlyName") or "").casefold()
    ]
    if plans:
        plan = plans[0].get("friendlyName") or plans[0].get("offerName")
        return (
            f"not a Partner Center subscription id of the customer, who has {plan}: likely its Azure "
            "subscription ID (migrated Azure)",
            True,
        )
    return "not a subscription id Partner Center lists for the customer", False
