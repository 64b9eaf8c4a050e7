"""Azure Functions entry points (Python v2 programming model). Triggers only: each function parses
its input, calls one function of `diagnostics`, and returns."""

from __future__ import annotations

import azure.functions as func

from diagnostics.http_api import diagnose_request

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)


@app.function_name(name="diagnose_invoice")
@app.route(route="invoices/{id}/diagnose", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
async def diagnose_invoice(req: func.HttpRequest) -> func.HttpResponse:
    """POST /api/invoices/{id}/diagnose[?as_of=ISO] → the report JSON of that provider invoice."""
    result = await diagnose_request(req.route_params.get("id", ""), as_of=req.params.get("as_of"))
    return func.HttpResponse(result.body, status_code=result.status, mimetype="application/json")
