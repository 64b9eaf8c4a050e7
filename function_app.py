"""Azure Functions entry points (Python v2 programming model). Triggers only: each function parses
its input, calls one function of `diagnostics`, and returns.

No `from __future__ import annotations` here: the worker reads the parameters' annotations to inject
the Service Bus SDK types (the received message and its settlement actions).

Cold start: the app's own modules (pydantic models, httpx, azure-identity, the Service Bus client)
are imported inside each function, when it first runs. The Service Bus extension cannot wait: the
worker resolves these annotations (`typing.get_type_hints`) when it indexes the functions, right
after importing this module, and recognises the SDK types through the registry the extension fills
when imported; so its import (most of it azure-servicebus) is part of every cold start.
`make bench` measures both.
"""

import azure.functions as func
from azurefunctions.extensions.bindings import servicebus

from diagnostics.queues import QUEUE_INVOICE_CHECKS, QUEUE_REFERENCE_RESOLUTION, SERVICEBUS_CONNECTION

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)


@app.function_name(name="plan_checks")
@app.timer_trigger(schedule="%DIAG_SCHEDULE%", arg_name="timer", run_on_startup=False, use_monitor=True)
@app.retry(
    strategy="exponential_backoff",
    max_retry_count="3",
    minimum_interval="00:00:30",
    maximum_interval="00:10:00",
)
async def plan_checks(timer: func.TimerRequest) -> None:
    """Daily: publish one check per unit of work that needs one today."""
    from diagnostics.app.plan import plan_today

    await plan_today(past_due=timer.past_due)


@app.function_name(name="invoice_checks")
@app.service_bus_queue_trigger(
    arg_name="message",
    queue_name=QUEUE_INVOICE_CHECKS,
    connection=SERVICEBUS_CONNECTION,
    auto_complete_messages=False,
)
async def invoice_checks(
    message: servicebus.ServiceBusReceivedMessage, message_actions: servicebus.ServiceBusMessageActions
) -> None:
    """Check one unit; settles the message itself (complete, abandon, or dead-letter with a reason)."""
    from diagnostics.app.delivery import deliver
    from diagnostics.app.handle_check import handle_check

    await deliver(QUEUE_INVOICE_CHECKS, message, message_actions, handle_check)


@app.function_name(name="reference_resolution")
@app.service_bus_queue_trigger(
    arg_name="message",
    queue_name=QUEUE_REFERENCE_RESOLUTION,
    connection=SERVICEBUS_CONNECTION,
    auto_complete_messages=False,
)
async def reference_resolution(
    message: servicebus.ServiceBusReceivedMessage, message_actions: servicebus.ServiceBusMessageActions
) -> None:
    """Look up an invoice's unresolved references again; settles the message itself."""
    from diagnostics.app.delivery import deliver
    from diagnostics.app.resolve_references import handle_references

    await deliver(QUEUE_REFERENCE_RESOLUTION, message, message_actions, handle_references)


@app.function_name(name="diagnose_invoice")
@app.route(route="invoices/{id}/diagnose", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
async def diagnose_invoice(req: func.HttpRequest) -> func.HttpResponse:
    """POST /api/invoices/{id}/diagnose[?as_of=ISO] → the report JSON of that provider invoice."""
    from diagnostics.http_api import diagnose_request

    result = await diagnose_request(req.route_params.get("id", ""), as_of=req.params.get("as_of"))
    return func.HttpResponse(result.body, status_code=result.status, mimetype="application/json")


@app.function_name(name="partner_center_events")
@app.route(route="partner-center/events", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
async def partner_center_events(req: func.HttpRequest) -> func.HttpResponse:
    """POST /api/partner-center/events: Partner Center's invoice-ready webhook → checks of the period."""
    from diagnostics.http_api import partner_center_event

    result = await partner_center_event(req.get_body())
    return func.HttpResponse(result.body, status_code=result.status, mimetype="application/json")


@app.function_name(name="health")
@app.route(route="health", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
async def health(req: func.HttpRequest) -> func.HttpResponse:
    """GET /api/health: 200 when Dataverse, Service Bus and the state store answer, else 503."""
    from diagnostics.http_api import health_request

    result = await health_request()
    return func.HttpResponse(result.body, status_code=result.status, mimetype="application/json")


@app.function_name(name="runbook")
@app.route(route="runbook/{code}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
async def runbook(req: func.HttpRequest) -> func.HttpResponse:
    """GET /api/runbook/{code}: a finding's runbook page. Anonymous: the pages are the project's
    public documentation, holding no tenant data, and the links in notes and Teams cards must open
    for every reader without a function key (a key in a link would give it away)."""
    from diagnostics.runbook_pages import page

    result = page(req.route_params.get("code", ""))
    return func.HttpResponse(
        result.body, status_code=result.status, headers={"Content-Type": result.content_type}
    )
