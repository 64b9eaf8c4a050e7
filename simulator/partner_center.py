"""Partner Center's invoices (the list `GET /v1/invoices?size=N&offset=M`, `GET /v1/invoices/{id}`),
and customers (`GET /v1/customers`, `GET /v1/customers/{id}/subscriptions`).

The shapes are Microsoft's documented ones (platform-apis.md 1.3-1.5; the documentation is the only
source): `totalCount` is the number of items on the page, a client pages by following `links.next`
until it is absent, and list items carry no `billingPeriodStartDate`/`billingPeriodEndDate` -
only the invoice read by id does. That read accepts App+User tokens only, so it is refused (403)
unless the fixture sets `partner_center.invoice_by_id`.
"""

from __future__ import annotations

import base64
import re
from typing import Any

from simulator.fixture import PartnerCenterFixture
from simulator.wire import Request, Response, json_response

DEFAULT_PAGE = 200
_INVOICE = re.compile(r"^/v1/invoices/(?P<id>[^/]+)(?P<rest>/.*)?$")
_PERIOD_FIELDS = ("billingPeriodStartDate", "billingPeriodEndDate")
_SUBSCRIPTIONS = re.compile(r"^/v1/customers/(?P<id>[^/]+)/subscriptions$")
CUSTOMER_PAGE = 100  # when no size is asked
_CONTINUATION_HEADER = "MS-ContinuationToken"


def _error(status: int, name: str, description: str, request: Request) -> Response:
    return json_response(
        status,
        {"code": status, "description": description, "errorName": name, "data": [], "source": "PartnerFD"},
        _echo(request),
    )


def _echo(request: Request) -> dict[str, str]:
    """Partner Center echoes the request and correlation ids it was given."""
    return {
        name: request.headers.get(name)
        for name in ("MS-RequestId", "MS-CorrelationId")
        if name in request.headers
    }


def handle(request: Request, fixture: PartnerCenterFixture, authorized: bool) -> Response:
    if fixture.unreachable:
        return _error(503, "ServiceUnavailable", "The service is temporarily unavailable.", request)
    if not fixture.enabled or not authorized:
        return _error(
            401, "Unauthorized", "Authentication failed: no valid bearer token for Partner Center.", request
        )
    if request.method != "GET":
        return _error(405, "MethodNotAllowed", f"{request.method} is not supported here.", request)
    if request.path == "/v1/customers":
        return _customers(request, fixture)
    subscriptions = _SUBSCRIPTIONS.match(request.path)
    if subscriptions:
        return _subscriptions(request, fixture, subscriptions["id"].lower())
    by_id = _INVOICE.match(request.path)
    if by_id:
        if not fixture.invoice_by_id or by_id["rest"]:
            # Get-by-id and statements accept App+User tokens only; the simulator issues app-only ones.
            return _error(403, "Forbidden", "This operation requires App+User authentication.", request)
        found = next((i for i in fixture.invoices if i["id"] == by_id["id"]), None)
        if found is None:
            return _error(404, "NotFound", f"Invoice {by_id['id']} was not found.", request)
        return json_response(200, _item(found), _echo(request))
    if request.path != "/v1/invoices":
        return _error(404, "NotFound", f"No resource at {request.path}.", request)
    params = dict(request.params())
    try:
        size = int(params.get("size", DEFAULT_PAGE))
        offset = int(params.get("offset", 0))
    except ValueError:
        return _error(400, "BadRequest", "size and offset must be whole numbers.", request)
    if size < 1 or offset < 0:
        return _error(400, "BadRequest", "size must be positive and offset not negative.", request)
    items = [_listed(i) for i in fixture.invoices[offset : offset + size]]
    links: dict[str, Any] = {"self": _link(size, offset)}
    if offset + size < len(fixture.invoices):
        links["next"] = _link(size, offset + size)
    body = {
        "totalCount": len(items),
        "items": items,
        "links": links,
        "attributes": {"objectType": "Collection"},
    }
    return json_response(200, body, _echo(request))


def _link(size: int, offset: int) -> dict[str, Any]:
    return {"uri": f"/invoices?size={size}&offset={offset}", "method": "GET", "headers": []}


def _listed(invoice: dict[str, Any]) -> dict[str, Any]:
    """An invoice as the list shows it: without its billing period."""
    return {k: v for k, v in _item(invoice).items() if k not in _PERIOD_FIELDS}


def _item(invoice: dict[str, Any]) -> dict[str, Any]:
    item = dict(invoice)
    item.setdefault("links", {"self": {"uri": f"/invoices/{invoice['id']}", "method": "GET", "headers": []}})
    item.setdefault("attributes", {"objectType": "Invoice"})
    return item


# --- customers (our fixture extension: partner_center.customers and .subscriptions) ---------------


def _customers(request: Request, fixture: PartnerCenterFixture) -> Response:
    """`GET /v1/customers?size=N`, paged by seek as Partner Center does: a page that is not the last
    has `continuationToken` and a `links.next` of `/customers?size=N&seekOperation=Next` whose
    headers carry the token as `MS-ContinuationToken`; the next page is asked with both."""
    params = dict(request.params())
    try:
        size = int(params.get("size", CUSTOMER_PAGE))
    except ValueError:
        return _error(400, "BadRequest", "size must be a whole number.", request)
    if size < 1:
        return _error(400, "BadRequest", "size must be positive.", request)
    seek: int | None = 0
    if params.get("seekOperation", "").lower() == "next":
        seek = _seek_offset(request.headers.get(_CONTINUATION_HEADER), len(fixture.customers))
    if seek is None:
        return _error(400, "BadRequest", "The continuation token is missing or not valid.", request)
    offset = seek
    items = [_customer(c) for c in fixture.customers[offset : offset + size]]
    body: dict[str, Any] = {
        "totalCount": len(items),
        "items": items,
        "links": {"self": {"uri": f"/customers?size={size}", "method": "GET", "headers": []}},
        "attributes": {"objectType": "Collection"},
    }
    if offset + size < len(fixture.customers):
        token = base64.b64encode(f"seek:{offset + size}".encode()).decode()
        body["continuationToken"] = token
        body["links"]["next"] = {
            "uri": f"/customers?size={size}&seekOperation=Next",
            "method": "GET",
            "headers": [{"key": _CONTINUATION_HEADER, "value": token}],
        }
    return json_response(200, body, _echo(request))


def _seek_offset(token: str | None, total: int) -> int | None:
    try:
        text = base64.b64decode(token or "", validate=True).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    prefix, _, number = text.partition(":")
    if prefix != "seek" or not number.isdigit() or not 0 < int(number) <= total:
        return None
    return int(number)


def _customer(customer: dict[str, Any]) -> dict[str, Any]:
    profile = {
        "tenantId": customer["id"],
        "domain": "",
        **customer["companyProfile"],
        "attributes": {"objectType": "CustomerCompanyProfile"},
    }
    return {
        "relationshipToPartner": "reseller",
        "allowDelegatedAccess": True,
        **customer,
        "companyProfile": profile,
        "links": {"self": {"uri": f"/customers/{customer['id']}", "method": "GET", "headers": []}},
        "attributes": {"objectType": "Customer"},
    }


def _subscriptions(request: Request, fixture: PartnerCenterFixture, customer_id: str) -> Response:
    if customer_id not in {c["id"] for c in fixture.customers}:
        return _error(404, "NotFound", f"Customer {customer_id} was not found.", request)
    items = [
        {"status": "active", **s, "attributes": {"objectType": "Subscription"}}
        for s in fixture.subscriptions.get(customer_id, ())
    ]
    body = {
        "totalCount": len(items),
        "items": items,
        "links": {"self": {"uri": f"/customers/{customer_id}/subscriptions", "method": "GET", "headers": []}},
        "attributes": {"objectType": "Collection"},
    }
    return json_response(200, body, _echo(request))
