"""LocalFunctionsHost drives a small FunctionApp's triggers through the broker with the real SDK."""

from __future__ import annotations

import json
import time

import azure.functions as func
import pytest
from azure.core.credentials import AccessToken
from azure.functions.timer import TimerRequest
from azure.servicebus import ServiceBusMessage, ServiceBusReceivedMessage

from broker import Broker
from broker.functions_host import HostConfigurationError, LocalFunctionsHost
from tests.broker.conftest import Links

calls: list[tuple[str, object]] = []

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@app.timer_trigger(schedule="%TEST_SCHEDULE%", arg_name="timer")
def plan(timer: TimerRequest) -> None:
    calls.append(("plan", timer.past_due))


@app.function_name(name="auto")
@app.service_bus_queue_trigger(arg_name="msg", queue_name="host-auto", connection="TEST_SB")
async def auto(msg: ServiceBusReceivedMessage) -> None:
    if str(msg) == "fail":
        raise ValueError("poison\nsecond line is not shown")
    calls.append(("auto", (str(msg), msg.delivery_count)))


@app.function_name(name="manual")
@app.service_bus_queue_trigger(
    arg_name="msg", queue_name="%MANUAL_QUEUE%", connection="TEST_SB", auto_complete_messages=False
)
def manual(msg: ServiceBusReceivedMessage, message_actions: object) -> None:
    body = str(msg)
    calls.append(("manual", body))
    if body == "bad":
        message_actions.deadletter(  # type: ignore[attr-defined]
            msg, deadletter_reason="MalformedMessage", deadletter_error_description="the body is not JSON"
        )
    elif body == "ok":
        message_actions.complete(msg)  # type: ignore[attr-defined]
    elif body == "crash":
        raise RuntimeError("crash")
    # anything else: no settlement → the host releases the lock (abandon)


@app.route(route="items/{id}", methods=["GET", "POST"])
def item(req: func.HttpRequest) -> func.HttpResponse:
    payload = {"id": req.route_params["id"], "q": req.params.get("q"), "body": req.get_body().decode()}
    return func.HttpResponse(json.dumps(payload), mimetype="application/json")


@app.route(route="boom")
async def boom(req: func.HttpRequest) -> func.HttpResponse:
    raise RuntimeError("handler broke")


def env_for(broker: Broker) -> dict[str, str]:
    return {
        "TEST_SB": broker.connection_string,
        "TEST_SCHEDULE": "0 0 7 * * *",
        "MANUAL_QUEUE": "host-manual",
    }


async def test_drain_settles_as_the_functions_host_does(broker: Broker, links: Links) -> None:
    links.sender("host-auto").send_messages([ServiceBusMessage("one"), ServiceBusMessage("fail")])
    links.sender("host-manual").send_messages(
        [
            ServiceBusMessage("ok"),
            ServiceBusMessage("bad"),
            ServiceBusMessage("silent"),
            ServiceBusMessage("crash"),
        ]
    )
    calls.clear()
    async with LocalFunctionsHost(app, env_for(broker), idle=broker.idle, max_concurrent_calls=4) as host:
        assert host.service_bus_functions == {"auto": "host-auto", "manual": "host-manual"}
        drained = await host.drain()
        assert broker.idle("host-auto")
        assert broker.idle("host-manual")

    auto_stats, manual_stats = drained["auto"], drained["manual"]
    # "fail" raised twice (max delivery count 2) and was abandoned each time: then dead-lettered.
    assert (auto_stats.handled, auto_stats.completed, auto_stats.abandoned, auto_stats.dead_lettered) == (
        3,
        1,
        2,
        0,
    )
    assert auto_stats.errors == ["ValueError: poison", "ValueError: poison"]
    assert ("auto", ("one", 0)) in calls
    assert [d.reason for d in broker.dead_letters("host-auto")] == ["MaxDeliveryCountExceeded"]
    # manual: complete, dead-letter with the function's reason; a message left unsettled and one
    # whose function raised are abandoned by the host until the max delivery count dead-letters them.
    assert (
        manual_stats.handled,
        manual_stats.completed,
        manual_stats.dead_lettered,
        manual_stats.abandoned,
    ) == (
        6,
        1,
        1,
        4,
    )
    assert manual_stats.errors == ["RuntimeError: crash", "RuntimeError: crash"]
    assert sorted(body for name, body in calls if name == "manual") == [
        "bad",
        "crash",
        "crash",
        "ok",
        "silent",
        "silent",
    ]
    max_delivery = ("MaxDeliveryCountExceeded", "Message could not be consumed after 2 delivery attempts.")
    assert sorted((d.body, d.reason, d.description) for d in broker.dead_letters("host-manual")) == [
        (b"bad", "MalformedMessage", "the body is not JSON"),
        (b"crash", *max_delivery),
        (b"silent", *max_delivery),
    ]
    assert host.stats["manual"].handled == 6


async def test_timer_with_the_schedule_resolved_from_settings(broker: Broker) -> None:
    calls.clear()
    async with LocalFunctionsHost(app, env_for(broker)) as host:
        assert host.timer_schedules == {"plan": "0 0 7 * * *"}
        await host.fire_timer("plan", past_due=True)
        with pytest.raises(HostConfigurationError, match="no timer function 'nope'"):
            await host.fire_timer("nope")
    assert calls == [("plan", True)]


async def test_http_routes(broker: Broker) -> None:
    async with LocalFunctionsHost(app, env_for(broker)) as host:
        response = await host.call_http("POST", "/api/items/42", body=b"hi", params={"q": "x"})
        assert response.status_code == 200
        assert json.loads(response.get_body()) == {"id": "42", "q": "x", "body": "hi"}
        assert (await host.call_http("DELETE", "/api/items/42")).status_code == 404
        assert (await host.call_http("GET", "/api/nothing/here")).status_code == 404
        failed = await host.call_http("GET", "/api/boom")
        assert failed.status_code == 500
        assert b"RuntimeError: handler broke" in failed.get_body()


async def test_host_json_route_prefix_and_a_bad_duration(broker: Broker) -> None:
    host_json = {"extensions": {"http": {"routePrefix": "v1"}, "serviceBus": {"maxConcurrentCalls": 2}}}
    async with LocalFunctionsHost(app, env_for(broker), host_json=host_json) as host:
        assert (await host.call_http("GET", "/v1/items/7")).status_code == 200
        assert (await host.call_http("GET", "/api/items/7")).status_code == 404
    bad = {"extensions": {"serviceBus": {"maxAutoLockRenewalDuration": "five minutes"}}}
    with pytest.raises(HostConfigurationError, match="'five minutes' is not a duration like 00:05:00"):
        LocalFunctionsHost(app, env_for(broker), host_json=bad)


async def test_missing_settings_are_named(broker: Broker) -> None:
    with pytest.raises(HostConfigurationError, match="MANUAL_QUEUE is not set"):
        LocalFunctionsHost(app, {"TEST_SB": broker.connection_string})
    async with LocalFunctionsHost(app, {"MANUAL_QUEUE": "host-manual"}, idle=lambda _: False) as host:
        with pytest.raises(
            HostConfigurationError,
            match=r"TEST_SB \(a connection string\) or TEST_SB__fullyQualifiedNamespace",
        ):
            await host.drain()
        with pytest.raises(HostConfigurationError, match="TEST_SCHEDULE is not set"):
            _ = host.timer_schedules


class FakeCredential:
    """An async TokenCredential: what DefaultAzureCredential gives the host in Azure."""

    def __init__(self) -> None:
        self.scopes: list[str] = []

    async def get_token(self, *scopes: str, **kwargs: object) -> AccessToken:
        self.scopes.extend(scopes)
        return AccessToken("identity-token", int(time.time()) + 3600)

    async def close(self) -> None: ...


async def test_identity_based_connection(broker: Broker, links: Links) -> None:
    identity_app = func.FunctionApp()
    seen: list[str] = []

    @identity_app.service_bus_queue_trigger(arg_name="msg", queue_name="host-identity", connection="SB")
    async def on_message(msg: ServiceBusReceivedMessage) -> None:
        seen.append(str(msg))

    links.sender("host-identity").send_messages(ServiceBusMessage("via identity"))
    env = {"SB__fullyQualifiedNamespace": broker.fully_qualified_namespace}
    credential = FakeCredential()
    async with LocalFunctionsHost(identity_app, env, idle=broker.idle, credential=credential) as host:
        drained = await host.drain()
    assert seen == ["via identity"]
    assert drained["on_message"].completed == 1
    assert credential.scopes == ["https://servicebus.azure.net//.default"]
    assert (
        "sb://" + broker.fully_qualified_namespace + "/host-identity",
        "identity-token",
    ) in broker.cbs_tokens()


def test_a_function_with_parameters_the_host_cannot_supply_is_refused() -> None:
    other = func.FunctionApp()

    @other.service_bus_queue_trigger(arg_name="msg", queue_name="q", connection="C")
    def needs_more(msg: ServiceBusReceivedMessage, context: func.Context) -> None: ...

    with pytest.raises(
        HostConfigurationError, match="needs_more has parameters the local host cannot supply: context"
    ):
        LocalFunctionsHost(other, {"C": "x"})
