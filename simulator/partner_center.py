"""Partner Center's invoice list, `GET /v1/invoices?size=N&offset=M` (platform-apis.md 1.3).

The collection shape is Partner Center's: `totalCount` is the number of items on the page (as in
Microsoft's own example), and a client pages by following `links.next` until it is absent.
"""

from __future__ import annotations

import re
from typing import Any

from simulator.fixture import PartnerCenterFixture
from simulator.wire import Request, Response, json_response

DEFAULT_PAGE = 200
_INVOICE = re.compile(r"^/v1/invoices/[^/]+(?:/.*)?$")


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
    if _INVOICE.match(request.path):
        # Get-by-id and statements accept App+User tokens only; the simulator issues app-only ones.
        return _error(403, "Forbidden", "This operation requires App+User authentication.", request)
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
    items = [_item(i) for i in fixture.invoices[offset : offset + size]]
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


def _item(invoice: dict[str, Any]) -> dict[str, Any]:
    item = dict(invoice)
    item.setdefault("links", {"self": {"uri": f"/invoices/{invoice['id']}", "method": "GET", "headers": []}})
    item.setdefault("attributes", {"objectType": "Invoice"})
    return item
