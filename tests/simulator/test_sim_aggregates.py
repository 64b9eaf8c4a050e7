"""`$apply` aggregates (sum, min, max, average, countdistinct, $count; grouped, filtered), their types
and errors, the 50,000-row limit, and the ordered `$top` sample of an invoice's usage, read through
the real Dataverse client."""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from sim_support import tenant_dict

from diagnostics.adapters.dataverse import DataverseClient, Query, sql_guid_key
from diagnostics.errors import ServiceError
from simulator import Simulator
from tests.loading.support import open_clients

USAGE = "work365_usagesummaries"
NOTES = "annotations"
INVOICE = "22222222-2222-4222-8222-222222222201"  # the shared tenant's invoice in Error
OTHER_INVOICE = "22222222-2222-4222-8222-222222222202"
CUSTOMERS = [f"5{i:07d}-0000-4000-8000-{i:012d}" for i in range(1, 4)]
COST, CUSTOMER, OF_INVOICE = (
    "work365_usagesummary_cost",
    "_work365_usagesummary_customer_value",
    "_work365_usagesummary_providerinvoice_value",
)


def _usage(invoice: str, customer: str | None, cost: float | None, **more: Any) -> dict[str, Any]:
    row = {"work365_usagesummary_providerinvoice": invoice, "work365_usagesummary_cost": cost, **more}
    if customer is not None:
        row["work365_usagesummary_customer"] = customer
    return row


def _small_tenant() -> dict[str, Any]:
    raw = tenant_dict()
    rows = raw["dataverse"]["rows"]
    rows["account"] += [{"accountid": c, "name": f"Customer {i}"} for i, c in enumerate(CUSTOMERS)]
    first, second, third = CUSTOMERS
    # A thousand cents: a float sum drifts off 10.00; the exact one does not.
    usage = [_usage(INVOICE, first, 0.01) for _ in range(1_000)]
    usage += [
        _usage(INVOICE, second, 10, work365_usagesummary_chargestartdate="2026-10-03"),
        _usage(INVOICE, second, None, work365_usagesummary_chargestartdate="2026-10-01"),
        _usage(INVOICE, second, 20, work365_usagesummary_chargestartdate="2026-10-02"),
        _usage(INVOICE, third, None),
        _usage(INVOICE, None, 2.5),
        _usage(OTHER_INVOICE, first, 1000),
    ]
    # Amounts whose float sum (even math.fsum's) is 2479305.4899999998: only a decimal sum is exact.
    usage += [_usage(OTHER_INVOICE, first, c) for c in (835765.1, 432767.07, 762280.08, 2106.05, 445387.19)]
    rows["work365_usagesummary"] = usage
    # Whole numbers: file sizes 1, 2 and 2 (average 5/3, truncated to 1 as SQL Server's AVG of ints).
    note = rows["annotation"][0]
    rows["annotation"] += [
        {**note, "annotationid": str(uuid.UUID(int=i)), "filesize": size}
        for i, size in ((1, 1), (2, 2), (3, 2))
    ]
    return raw


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    with Simulator(_small_tenant()) as running:
        yield running


@pytest.fixture
async def dv(sim: Simulator) -> AsyncIterator[DataverseClient]:
    async with open_clients(sim) as (client, _, _):
        yield client


async def _apply(dv: DataverseClient, apply: str, entity_set: str = USAGE) -> list[dict[str, Any]]:
    return await dv.query(Query(entity_set, (), apply=apply))


async def test_several_aggregates_in_one_list_exact_money_and_nulls_left_out(dv: DataverseClient) -> None:
    [row] = await _apply(
        dv,
        f"filter({OF_INVOICE} eq {INVOICE})/aggregate({COST} with sum as cost, $count as rows, "
        f"{COST} with min as low, {COST} with max as high, {CUSTOMER} with countdistinct as customers)",
    )
    # 1,000 x 0.01 + 10 + 20 + 2.5, exactly; the rows of null cost counted by $count only.
    assert row == {"cost": 42.5, "rows": 1_005, "low": 0.01, "high": 20, "customers": 3}
    [cents] = await _apply(
        dv,
        f"filter({CUSTOMER} eq {CUSTOMERS[0]} and {OF_INVOICE} eq {INVOICE})/aggregate({COST} with sum as c)",
    )
    assert cents == {"c": 10.0}  # a float sum of a thousand 0.01 gives 9.999999999999831
    [amounts] = await _apply(dv, f"filter({OF_INVOICE} eq {OTHER_INVOICE})/aggregate({COST} with sum as c)")
    assert amounts == {"c": 2479305.49}


async def test_grouped_aggregates_sum_of_nulls_is_zero_and_average_of_none_is_null(
    dv: DataverseClient,
) -> None:
    rows = await _apply(
        dv,
        f"filter({OF_INVOICE} eq {INVOICE})/groupby(({CUSTOMER}),aggregate($count as rows, "
        f"{COST} with sum as cost, {COST} with average as mean, {COST} with min as low))",
    )
    by_customer = {r[CUSTOMER]: r for r in rows}
    assert by_customer == {
        CUSTOMERS[0]: {CUSTOMER: CUSTOMERS[0], "rows": 1_000, "cost": 10.0, "mean": 0.01, "low": 0.01},
        # the null cost is left out of the average: (10 + 20) / 2, not / 3
        CUSTOMERS[1]: {CUSTOMER: CUSTOMERS[1], "rows": 3, "cost": 30, "mean": 15, "low": 10},
        CUSTOMERS[2]: {CUSTOMER: CUSTOMERS[2], "rows": 1, "cost": 0, "mean": None, "low": None},
        None: {CUSTOMER: None, "rows": 1, "cost": 2.5, "mean": 2.5, "low": 2.5},
    }


async def test_min_and_max_of_dates_whole_number_average_truncates_no_rows_still_answers(
    dv: DataverseClient,
) -> None:
    [dates] = await _apply(
        dv,
        "aggregate(work365_usagesummary_chargestartdate with min as first, "
        "work365_usagesummary_chargestartdate with max as last, createdon with max as synced)",
    )
    assert (dates["first"], dates["last"]) == ("2026-10-01", "2026-10-03")
    [latest] = await dv.query(Query(USAGE, ("createdon",), orderby="createdon desc", top=1))
    assert dates["synced"] == latest["createdon"]  # as served, not reformatted
    [sizes] = await _apply(
        dv,
        "filter(filesize le 2)/aggregate(filesize with sum as total, filesize with average as mean, "
        "filesize with countdistinct as sizes)",
        NOTES,
    )
    assert sizes == {"total": 5, "mean": 1, "sizes": 2}
    [nothing] = await _apply(
        dv,
        f"filter({COST} gt 1000000)/aggregate($count as rows, {COST} with sum as cost, {COST} with max as top)",
    )
    assert nothing == {"rows": 0, "cost": 0, "top": None}


@pytest.mark.parametrize(
    ("apply", "says"),
    [
        ("aggregate(work365_name with sum as s)", "cannot be applied to 'work365_name' of type String"),
        ("aggregate(statuscode with average as s)", "cannot be applied to 'statuscode' of type Status"),
        (f"aggregate({CUSTOMER} with max as s)", "cannot be applied"),
        (f"aggregate({COST} with median as s)", "The aggregate method 'median' is not supported"),
        (f"aggregate({COST} with sum as s, $count as s)", "The alias 's' is used more than once"),
        ("aggregate(nosuchcolumn with sum as s)", "Could not find a property named 'nosuchcolumn'"),
        (f"aggregate({COST} with sum)", "is not supported by the simulator"),
    ],
)
async def test_what_dataverse_refuses_is_a_400_with_one_line(
    dv: DataverseClient, apply: str, says: str
) -> None:
    with pytest.raises(ServiceError) as refused:
        await _apply(dv, apply)
    assert refused.value.status == 400
    assert says in str(refused.value)
    assert "\n" not in str(refused.value)


# --- at scale: the 50,000-row limit and the ordered sample -----------------------------------------

BIG_INVOICE_ROWS = 50_001  # one over Dataverse's AggregateQueryRecordLimit


@pytest.fixture(scope="module")
def big() -> Iterator[tuple[Simulator, list[dict[str, Any]]]]:
    draw = random.Random(9)
    raw = tenant_dict()
    raw["dataverse"]["rows"]["account"] += [
        {"accountid": c, "name": f"C{i}"} for i, c in enumerate(CUSTOMERS)
    ]
    # Costs from a few values (many ties: the order's second key decides them) and some nulls.
    usage = [
        {
            "work365_usagesummaryid": str(uuid.UUID(int=draw.getrandbits(128), version=4)),
            "work365_usagesummary_providerinvoice": INVOICE,
            "work365_usagesummary_customer": CUSTOMERS[i % len(CUSTOMERS)],
            "work365_usagesummary_cost": None if i % 97 == 0 else draw.choice((0.5, 1.25, 7.0, 12.75)),
        }
        for i in range(BIG_INVOICE_ROWS)
    ]
    raw["dataverse"]["rows"]["work365_usagesummary"] = usage
    with Simulator(raw) as running:
        yield running, usage


async def test_the_aggregate_limit_still_refuses_and_a_narrower_filter_answers(
    big: tuple[Simulator, list[dict[str, Any]]],
) -> None:
    sim, usage = big
    async with open_clients(sim) as (dv, _, _):
        with pytest.raises(ServiceError) as refused:
            await _apply(
                dv, f"filter({OF_INVOICE} eq {INVOICE})/aggregate($count as rows, {COST} with sum as cost)"
            )
        assert refused.value.status == 400
        assert refused.value.code == "0x8004E023"
        assert "AggregateQueryRecordLimit exceeded" in str(refused.value)
        [part] = await _apply(
            dv,
            f"filter({OF_INVOICE} eq {INVOICE} and {CUSTOMER} eq {CUSTOMERS[0]})/"
            f"aggregate($count as rows, {COST} with sum as cost)",
        )
        mine = [u for u in usage if u["work365_usagesummary_customer"] == CUSTOMERS[0]]
        assert part["rows"] == len(mine)
        assert part["cost"] == sum(u["work365_usagesummary_cost"] or 0 for u in mine)


@pytest.mark.parametrize("descending", [True, False])
async def test_the_ordered_sample_of_the_costliest_5000_rows(
    big: tuple[Simulator, list[dict[str, Any]]], descending: bool
) -> None:
    sim, usage = big
    key = "work365_usagesummaryid"

    # SQL Server's order: nulls first ascending, last descending; ties by id (in SQL order, the
    # other way round too, so that both directions of each key are exercised).
    def order(u: dict[str, Any]) -> tuple[Any, ...]:
        cost = u["work365_usagesummary_cost"]
        return (cost is not None, cost or 0, _Reversed(sql_guid_key(u[key])))

    expected = sorted(usage, key=order, reverse=descending)[:5_000]
    direction = ("desc", "asc") if descending else ("asc", "desc")
    query = Query(
        USAGE,
        (key, CUSTOMER),
        filter=f"{OF_INVOICE} eq {INVOICE}",
        orderby=f"{COST} {direction[0]},{key} {direction[1]}",
        top=5_000,
    )
    async with open_clients(sim) as (dv, _, _):
        sample = await dv.query(query)
        again = await dv.query(query)
    assert [r[key] for r in sample] == [u[key] for u in expected]
    assert [r[CUSTOMER] for r in sample] == [u["work365_usagesummary_customer"] for u in expected]
    assert again == sample


class _Reversed:
    """A key that sorts the other way round (for an order of two keys in opposite directions)."""

    def __init__(self, key: bytes) -> None:
        self.key = key

    def __lt__(self, other: _Reversed) -> bool:
        return self.key > other.key

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Reversed) and self.key == other.key

    __hash__ = None  # type: ignore[assignment]
