"""A large tenant in bounded memory: usage summaries reduced page by page into per-invoice,
per-subscription aggregates, whatever the order the pages arrive in; the usage query split into
partitions by subscription GUID ranges that hold every row exactly once, in SQL Server's order of
GUIDs (Dataverse's, and the simulator's); the partitions read at once, within the concurrency cap,
to the same findings as one query. Request counts and structure are asserted, never timing."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest

from diagnostics.adapters.dataverse import DataverseClient, guid_ranges, sql_guid_key
from diagnostics.adapters.http import RequestCounter
from diagnostics.checks.context import Context
from diagnostics.engine import run_checks
from diagnostics.loading import load_period
from diagnostics.metadata import ResolvedSchema, fetch_metadata, resolve
from diagnostics.model import Snapshot, UsageGroup, UsageIndex, UsageSummary
from diagnostics.periods import period_under_review
from diagnostics.schema import SchemaMap
from diagnostics.settings import Thresholds
from simulator import Simulator, load_fixture
from simulator.__main__ import main as simulator_main
from simulator.connect import sim_credential
from simulator.generate import generate
from simulator.odata import parse_filter
from simulator.odata import sql_guid_key as served_order
from tests.simulator.sim_support import API, tenant_dict

COLUMN = "_work365_usagesummary_subscription_value"


# --- GUID ranges ----------------------------------------------------------------------------------


def _sequential(count: int) -> list[str]:
    """Ids as one SQL Server hands out sequentially: the same most significant bytes (the last
    group of the text), only the least significant ones counting up."""
    node = uuid.UUID("6f1c1a52-4f0e-4d51-9a53-2d2a4c5e7a10").bytes_le
    out = []
    for n in range(count):
        raw = bytearray(node)
        raw[0:4] = (0x1000 + n).to_bytes(4, "little")  # data1: compared last
        out.append(str(uuid.UUID(bytes_le=bytes(raw))))
    return out


def _matches(clause: str, value: str | None) -> bool:
    return parse_filter(clause, {COLUMN: "Edm.Guid"}, "Microsoft.Dynamics.CRM.work365_usagesummary")(
        {COLUMN: value}
    )


@pytest.mark.parametrize("kind", ["random", "sequential"])
def test_guid_ranges_hold_every_row_once_and_split_the_known_ids_evenly(kind: str) -> None:
    rng = random.Random(4)
    known = (
        [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(400)]
        if kind == "random"
        else _sequential(400)
    )
    clauses = guid_ranges(COLUMN, known, 8)
    assert len(clauses) == 9  # eight ranges and the rows without a subscription
    others = [str(uuid.UUID(int=rng.getrandbits(128))) for _ in range(200)]
    for value in [*known, *others, None, known[0].upper()]:
        hits = [c for c in clauses if _matches(c, value)]
        assert len(hits) == 1, (value, hits)
    # Cut where the known ids are evenly spread, whatever their shape (sequential ids share their
    # most significant bytes: fixed cuts of the GUID space would put them all in one range).
    per_range = [sum(_matches(c, g) for g in known) for c in clauses[1:]]
    assert per_range == [50] * 8


def test_guid_ranges_need_at_least_two_ids_and_two_parts() -> None:
    one = [str(uuid.uuid4())]
    assert guid_ranges(COLUMN, one, 8) == []
    assert guid_ranges(COLUMN, [*one, str(uuid.uuid4())], 1) == []
    assert guid_ranges(COLUMN, ["not a guid", *one], 8) == []


def test_guids_are_ordered_as_sql_server_orders_uniqueidentifier() -> None:
    # One byte set per GUID; SQL Server compares the last group first, the first group last.
    by_position = [
        "00000000-0000-0000-0000-000000000001",  # byte 15 ...
        "00000000-0000-0000-0000-010000000000",  # ... 10: the most significant group
        "00000000-0000-0000-0001-000000000000",
        "00000000-0000-0000-0100-000000000000",
        "00000000-0000-0001-0000-000000000000",  # data3, little-endian: its low byte first
        "00000000-0000-0100-0000-000000000000",
        "00000000-0100-0000-0000-000000000000",
        "01000000-0000-0000-0000-000000000000",  # data1's high byte: least significant of all
    ]
    ascending = [
        by_position[7],
        by_position[6],
        by_position[5],
        by_position[4],
        by_position[2],
        by_position[3],
        by_position[0],
        by_position[1],
    ]
    assert sorted(by_position, key=sql_guid_key) == ascending
    assert sorted(by_position, key=served_order) == ascending  # the simulator's


# --- the reduction --------------------------------------------------------------------------------


def _row(n: int, rng: random.Random) -> UsageSummary:
    invoiced, archived = rng.random() < 0.3, rng.random() < 0.1
    start = date(2026, 10, 1) + timedelta(days=rng.randrange(0, 30))
    return UsageSummary(
        id=str(uuid.UUID(int=n)),
        provider_invoice_id=rng.choice(["pi-1", "pi-2", None]),
        subscription_id=rng.choice(["sub-1", "sub-2", "sub-3", None]),
        customer_id=None,
        invoice_id="inv-1" if invoiced else None,
        charge_start=start,
        charge_end=rng.choice([start, None]),
        cost=rng.choice([Decimal(rng.randrange(0, 10_000)) / 100, None]),
        markup=rng.choice([Decimal("17.647"), Decimal("10"), None]),
        archived=archived,
        created_on=datetime(2026, 11, 9, tzinfo=UTC) + timedelta(minutes=rng.randrange(0, 600)),
    )


def _figures(index: UsageIndex) -> dict[str, list[UsageGroup]]:
    return {pi: index.of_invoice(pi) for pi in sorted(index.invoice_ids())}


def test_the_reduction_does_not_depend_on_the_order_the_rows_arrive_in() -> None:
    rng = random.Random(11)
    rows = [_row(n, rng) for n in range(600)]
    once = UsageIndex.of(rows)
    shuffled = rows[:]
    rng.shuffle(shuffled)
    # Pages merged in another order give the same figures as rows added one by one.
    merged = UsageIndex()
    for start in range(0, len(shuffled), 97):
        page = UsageIndex()
        for row in shuffled[start : start + 97]:
            page.add(row)
        merged.merge(page)
    assert _figures(merged.finish()) == _figures(once)

    group = next(g for g in once.of_invoice("pi-1") if g.subscription_id == "sub-1")
    mine = [r for r in rows if r.provider_invoice_id == "pi-1" and r.subscription_id == "sub-1"]
    assert group.all.rows == len(mine)
    assert group.all.cost == sum((r.cost or Decimal(0) for r in mine), Decimal(0))
    assert group.all.first_synced == min(r.created_on for r in mine)
    assert group.invoiced == sum(1 for r in mine if r.invoice_id)
    assert group.archived_ids == sorted(r.id for r in mine if r.archived and r.invoice_id is None)
    assert group.pending.rows == sum(1 for r in mine if not r.archived and r.invoice_id is None)
    assert set(group.markups) == {r.markup for r in mine if r.markup is not None}
    # Rows on no provider invoice are not any check's.
    assert once.rows() == sum(1 for r in rows if r.provider_invoice_id)


def test_a_snapshot_built_from_rows_reduces_them() -> None:
    rng = random.Random(2)
    rows = tuple(_row(n, rng) for n in range(50))
    snap = Snapshot.model_validate(
        {"as_of": datetime(2026, 11, 12, tzinfo=UTC), "period": "2026-10", "usage_summaries": rows}
    )
    assert _figures(snap.usage) == _figures(UsageIndex.of(rows))


# --- partitions against the simulator -------------------------------------------------------------


@asynccontextmanager
async def _client(
    sim: Simulator, cap: int, counter: RequestCounter
) -> AsyncIterator[tuple[DataverseClient, ResolvedSchema]]:
    credential = sim_credential(sim, connection_verify=str(sim.ca_file))
    # Pages of 500 rows: each partition takes several, so the partitions are read at once.
    dv = DataverseClient(
        sim.dataverse_url,
        credential,
        verify=sim.ssl_context(),
        on_request=counter,
        max_concurrency=cap,
        page_size=500,
    )
    try:
        yield dv, resolve(await fetch_metadata(dv, SchemaMap()), SchemaMap())
    finally:
        await dv.aclose()


async def _load(sim: Simulator, cap: int) -> tuple[Snapshot, int, int]:
    """The period's snapshot, the Dataverse requests it took, and the most served at once."""
    counter = RequestCounter()
    async with _client(sim, cap, counter) as (dv, schema):
        before, sim.max_in_flight = counter.count, 0
        snapshot = await load_period(
            dv, None, schema, Thresholds(), as_of=sim.now, period=period_under_review(sim.now)
        )
        return snapshot, counter.count - before, sim.max_in_flight


def _findings(snapshot: Snapshot) -> list[dict[str, Any]]:
    findings, _ = run_checks(Context(snapshot, Thresholds()))
    return [f.model_dump(mode="json") for f in findings]


def test_a_partitioned_read_gives_the_same_findings_as_one_query_within_the_cap() -> None:
    # 4,000 usage subscriptions: four partitions under a cap of 8, one query under a cap of 1.
    generated = generate(100, seed=3, subscriptions=40, usage=1)
    with Simulator(load_fixture(generated.fixture)) as sim:
        single, single_requests, _ = asyncio.run(_load(sim, 1))
        # The continuation pages take a while to serve (not the $batch), so that pages asked for at
        # once are seen in flight at once.
        sim.inject(latency=0.2, path_prefix="/api/data/v9.2/work365_usagesummaries")
        split, split_requests, in_flight = asyncio.run(_load(sim, 8))
    assert _findings(split) == _findings(single)
    assert _figures(split.usage) == _figures(single.usage)
    assert split.usage.rows() == 4_000  # October's, each read once
    assert {f["code"] for f in _findings(split)} >= {"USAGE_ARCHIVED", "SUB_MARKUP_MISSING"}
    # The partitions' pages were read at once, never more than the cap; each partition's last page
    # is a partial one (at most one more request each), its first page in the round's $batch.
    assert 2 <= in_flight <= 8
    assert split_requests <= single_requests + 4


def test_the_simulator_serves_a_page_no_sooner_than_its_cost_per_thousand_rows() -> None:
    raw = tenant_dict()
    raw["dataverse"]["rows"]["account"] = [{"name": f"account {i:02d}"} for i in range(40)]
    with Simulator(raw, tls=False) as sim:
        with pytest.raises(ValueError, match="negative"):
            sim.set_page_cost(-1)
        sim.set_page_cost(1000)  # 1 ms a row: 40 ms for the page
        headers = {"Authorization": f"Bearer {sim.issue_token()}", "Prefer": "odata.maxpagesize=40"}
        with httpx.Client(base_url=sim.base_url, headers=headers) as client:
            started = time.perf_counter()
            page = client.get(API + "accounts", params={"$select": "name"})
            elapsed = time.perf_counter() - started
    assert len(page.json()["value"]) == 40
    assert elapsed >= 0.040


def test_the_page_cost_flag_refuses_what_is_not_a_duration(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        simulator_main(["serve", "tenant.json", "--page-cost-ms-per-1000", "-5"])
    assert stopped.value.code == 2
    assert "bad --page-cost-ms-per-1000 '-5'" in capsys.readouterr().err
