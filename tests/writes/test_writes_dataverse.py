"""Dataverse writes of the auto-fixes (update with If-Match: *, @odata.bind, delete), by the real
client against the simulator on loopback, signed in with the real azure-identity credential."""

from __future__ import annotations

import pytest
from writes_support import (
    ACCOUNT,
    INVOICE,
    NOTE,
    OTHER_INVOICE,
    OTHER_NOTE,
    PROVIDER_ACCOUNT,
    Sleeps,
    client,
    tenant,
)

from diagnostics.adapters.http import RetryPolicy
from diagnostics.errors import AuthError, InputError, NotFoundError, ServiceError
from simulator import Simulator, load_fixture

API = "/api/data/v9.2/"
PA_SET = "work365_provideraccounts"
LOOKUP = "_work365_provideraccount_account_value"


def _provider_account(sim: Simulator) -> dict[str, object]:
    (row,) = sim.rows("work365_provideraccount")
    return row


async def test_update_binds_the_account_through_the_navigation_property_read_from_metadata(
    sim: Simulator, retry: RetryPolicy
) -> None:
    async with client(sim, retry) as dv:
        navigation = await dv.navigation_property(
            "work365_provideraccount", "work365_provideraccount_account"
        )
        await dv.update(PA_SET, PROVIDER_ACCOUNT, {f"{navigation}@odata.bind": f"/accounts({ACCOUNT})"})

    assert navigation == "work365_Provideraccount_Account"  # the schema name, not the logical name
    assert _provider_account(sim)[LOOKUP] == ACCOUNT
    assert sim.writes[-1] == {
        "method": "PATCH",
        "table": "work365_provideraccount",
        "id": PROVIDER_ACCOUNT,
        "body": {"work365_Provideraccount_Account@odata.bind": f"/accounts({ACCOUNT})"},
    }
    assert sim.requests[("PATCH", f"{API}{PA_SET}({PROVIDER_ACCOUNT})")] == 1


async def test_the_column_name_is_no_navigation_property_and_the_answer_is_read_once(
    sim: Simulator, retry: RetryPolicy
) -> None:
    async with client(sim, retry) as dv:
        with pytest.raises(ServiceError) as rejected:
            await dv.update(
                PA_SET,
                PROVIDER_ACCOUNT,
                {"work365_provideraccount_account@odata.bind": f"/accounts({ACCOUNT})"},
            )
        first = await dv.navigation_property("work365_provideraccount", "work365_provideraccount_account")
        again = await dv.navigation_property("work365_provideraccount", "work365_provideraccount_account")
        regarding = await dv.navigation_property("annotation", "objectid", "work365_providerinvoice")
        with pytest.raises(InputError, match=r"relationship\(s\) of annotation.objectid:"):
            await dv.navigation_property("annotation", "objectid")  # polymorphic: which target?
        with pytest.raises(InputError, match="no relationship"):
            await dv.navigation_property("work365_provideraccount", "work365_provideraccount_nosuch")
        with pytest.raises(InputError, match="not a Dataverse logical name"):
            await dv.navigation_property("account') or (1 eq 1", "x")

    assert rejected.value.status == 400
    assert "undeclared property 'work365_provideraccount_account'" in str(rejected.value)
    assert _provider_account(sim)[LOOKUP] is None
    assert first == again == "work365_Provideraccount_Account"
    assert regarding == "objectid_work365_providerinvoice"
    relationships = API + "EntityDefinitions(LogicalName='work365_provideraccount')/ManyToOneRelationships"
    assert sim.requests[("GET", relationships)] == 2  # the two lookups asked for, each once


async def test_update_never_creates_a_row(sim: Simulator, retry: RetryPolicy, sleeps: Sleeps) -> None:
    absent = "44444444-4444-4444-8444-444444444499"
    async with client(sim, retry) as dv:
        with pytest.raises(NotFoundError, match=f"{PA_SET}\\({absent}\\) answered 404"):
            await dv.update(PA_SET, absent, {"work365_provideraccount_name": "x"})
        with pytest.raises(InputError, match="is not a GUID"):
            await dv.update(PA_SET, "pa-1) or (1", {"work365_provideraccount_name": "x"})

    assert len(sim.rows("work365_provideraccount")) == 1
    assert sim.writes == []
    assert sleeps.delays == []  # a 404 is an answer, not retried


async def test_update_clears_a_lookup(sim: Simulator, retry: RetryPolicy) -> None:
    async with client(sim, retry) as dv:
        navigation = await dv.navigation_property(
            "work365_provideraccount", "work365_provideraccount_account"
        )
        await dv.update(PA_SET, PROVIDER_ACCOUNT, {f"{navigation}@odata.bind": f"/accounts({ACCOUNT})"})
        await dv.update(PA_SET, PROVIDER_ACCOUNT.upper(), {f"{navigation}@odata.bind": None})
    assert _provider_account(sim)[LOOKUP] is None


async def test_delete_removes_the_row_and_its_notes(sim: Simulator, retry: RetryPolicy) -> None:
    async with client(sim, retry) as dv:
        await dv.delete("work365_providerinvoices", INVOICE)
        with pytest.raises(NotFoundError, match="answered 404"):
            await dv.delete("work365_providerinvoices", INVOICE)

    assert [r["work365_providerinvoiceid"] for r in sim.rows("work365_providerinvoice")] == [OTHER_INVOICE]
    # Dataverse deletes a record's notes with it; the other invoice's note stays.
    assert [r["annotationid"] for r in sim.rows("annotation")] == [OTHER_NOTE]
    assert NOTE not in {r["annotationid"] for r in sim.rows("annotation")}
    assert sim.writes == [
        {"method": "DELETE", "table": "work365_providerinvoice", "id": INVOICE, "body": None}
    ]


@pytest.mark.parametrize(
    ("denied", "write"),
    [
        ("prvWritework365_provideraccount", "map"),
        ("prvAppendwork365_provideraccount", "map"),
        ("prvAppendToAccount", "map"),
        ("prvDeletework365_providerinvoice", "delete"),
    ],
)
async def test_a_missing_privilege_is_named_and_nothing_is_written(
    denied: str, write: str, retry: RetryPolicy, sleeps: Sleeps
) -> None:
    with Simulator(load_fixture(tenant(denied_privileges=[denied]))) as sim:
        async with client(sim, retry) as dv:
            navigation = await dv.navigation_property(
                "work365_provideraccount", "work365_provideraccount_account"
            )
            body = {f"{navigation}@odata.bind": f"/accounts({ACCOUNT})"}
            with pytest.raises(AuthError) as refused:
                await (
                    dv.update(PA_SET, PROVIDER_ACCOUNT, body)
                    if write == "map"
                    else dv.delete("work365_providerinvoices", INVOICE)
                )
        assert refused.value.status == 403
        assert f"lacks the privilege {denied};" in str(refused.value)
        assert "\n" not in str(refused.value)
        assert sim.writes == []
        assert _provider_account(sim)[LOOKUP] is None
        assert len(sim.rows("work365_providerinvoice")) == 2
        assert sleeps.delays == []  # permanent: not retried


@pytest.mark.parametrize(("status", "retry_after", "pause"), [(429, 7.0, 7.0), (503, None, 0.5)])
async def test_throttled_or_failing_writes_are_retried(
    sim: Simulator, retry: RetryPolicy, sleeps: Sleeps, status: int, retry_after: float | None, pause: float
) -> None:
    sim.inject(status=status, retry_after=retry_after, times=1, path_prefix=f"{API}{PA_SET}(")
    sim.inject(status=status, retry_after=retry_after, times=1, path_prefix=f"{API}work365_providerinvoices(")
    async with client(sim, retry) as dv:
        await dv.update(PA_SET, PROVIDER_ACCOUNT, {"work365_provideraccount_name": "Tailspin"})
        await dv.delete("work365_providerinvoices", INVOICE)

    assert sleeps.delays == [pause, pause]
    assert _provider_account(sim)["work365_provideraccount_name"] == "Tailspin"
    assert len(sim.rows("work365_providerinvoice")) == 1
    assert [w["method"] for w in sim.writes] == ["PATCH", "DELETE"]
