"""How the simulator serves a large tenant: filters answered from indexes give exactly the rows a
full read gives, rows kept as served JSON change with a write, and page costs of requests served at
once overlap while a `$batch`'s parts add theirs up."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sim_support import API, client_for, tenant_dict

from simulator import Simulator, load_fixture
from simulator.generate import generate
from simulator.index import index_of
from simulator.odata import sql_guid_key

USAGE = API + "work365_usagesummaries"
SUB, PI, BILLED = (
    "_work365_usagesummary_subscription_value",
    "_work365_usagesummary_providerinvoice_value",
    "_work365_usagesummary_invoice_value",
)
Row = dict[str, Any]


@pytest.fixture(scope="module")
def usage_sim() -> Iterator[tuple[Simulator, httpx.Client, list[Row]]]:
    generated = generate(12, seed=5, subscriptions=4, usage=3)
    with Simulator(load_fixture(generated.fixture)) as sim, client_for(sim) as client:
        yield sim, client, sim.rows("work365_usagesummary")


def _all_pages(client: httpx.Client, params: dict[str, str]) -> list[str]:
    """Every row's id, paged 7 rows at a time (so an indexed result is cut into pages too)."""
    headers = {"Prefer": "odata.maxpagesize=7"}
    page = client.get(USAGE, params=params, headers=headers)
    ids: list[str] = []
    while True:
        assert page.status_code == 200, page.text
        body = page.json()
        ids += [r["work365_usagesummaryid"] for r in body["value"]]
        if "@odata.nextLink" not in body:
            return ids
        page = client.get(body["@odata.nextLink"], headers=headers)


def _cases(rows: list[Row]) -> list[tuple[str, Callable[[Row], bool]]]:
    """Filters an index answers (or partly answers), each with what it means in plain Python."""
    subs = sorted({r[SUB] for r in rows}, key=sql_guid_key)
    invoices = sorted({r[PI] for r in rows if r[PI]})
    low, high = subs[len(subs) // 4], subs[3 * len(subs) // 4]
    pi, other = invoices[0], invoices[-1]

    def between(r: Row) -> bool:
        return sql_guid_key(low) <= sql_guid_key(r[SUB]) < sql_guid_key(high)

    return [
        (f"({SUB} ge {low} and {SUB} lt {high}) and ({PI} eq {pi})", lambda r: between(r) and r[PI] == pi),
        (f"{SUB} gt {high}", lambda r: sql_guid_key(r[SUB]) > sql_guid_key(high)),
        (f"{SUB} le {low} and {SUB} ge {low}", lambda r: r[SUB] == low),
        (f"{PI} eq {pi} or {PI} eq {other}", lambda r: r[PI] in (pi, other)),
        (
            f"Microsoft.Dynamics.CRM.In(PropertyName='{PI}',PropertyValues=['{pi.upper()}','{other}'])",
            lambda r: r[PI] in (pi, other),
        ),
        (f"{PI} eq {pi} and {BILLED} eq null", lambda r: r[PI] == pi and r[BILLED] is None),
        (f"{BILLED} ne null", lambda r: r[BILLED] is not None),
        (f"not ({PI} eq {pi})", lambda r: r[PI] != pi),
        (
            f"{PI} eq {pi} or work365_usagesummary_cost gt 5",
            lambda r: r[PI] == pi or r["work365_usagesummary_cost"] > 5,
        ),
        (f"{SUB} eq {subs[0]} and {SUB} eq {subs[1]}", lambda _r: False),
        # A range found by its index is not tested again; the other terms still are.
        (f"{SUB} ge {low} and not ({SUB} ge {high})", between),
        (
            f"{SUB} ge {low} and ({PI} eq {pi} or {BILLED} eq null) and {SUB} lt {high}",
            lambda r: between(r) and (r[PI] == pi or r[BILLED] is None),
        ),
    ]


def test_an_indexed_filter_serves_exactly_the_rows_and_order_of_a_full_read(
    usage_sim: tuple[Simulator, httpx.Client, list[Row]],
) -> None:
    _, client, rows = usage_sim
    assert len(rows) > 150
    for text, matches in _cases(rows):
        expected = [r["work365_usagesummaryid"] for r in rows if matches(r)]
        assert len(expected) < len(rows), text  # each filter tells rows apart
        served = _all_pages(client, {"$select": "work365_usagesummaryid", "$filter": text})
        assert served == expected, text
        ordered = _all_pages(
            client, {"$select": "work365_usagesummaryid", "$filter": text, "$orderby": f"{SUB} desc"}
        )
        by_sub = sorted((r for r in rows if matches(r)), key=lambda r: sql_guid_key(r[SUB]), reverse=True)
        assert ordered == [r["work365_usagesummaryid"] for r in by_sub], text


def test_top_serves_the_first_matches_and_count_counts_them_all(
    usage_sim: tuple[Simulator, httpx.Client, list[Row]],
) -> None:
    _, client, rows = usage_sim
    pi = rows[0][PI]
    matching = [r["work365_usagesummaryid"] for r in rows if r[PI] == pi]
    query = {"$select": "work365_usagesummaryid", "$filter": f"{PI} eq {pi}", "$top": "3"}
    first = client.get(USAGE, params=query).json()
    assert [r["work365_usagesummaryid"] for r in first["value"]] == matching[:3]
    counted = client.get(USAGE, params={**query, "$count": "true"}).json()
    assert counted["@odata.count"] == len(matching)
    assert [r["work365_usagesummaryid"] for r in counted["value"]] == matching[:3]


def test_an_index_of_values_written_in_more_than_one_form_keeps_the_table_order() -> None:
    names = ["Contoso", "Fabrikam", "CONTOSO", "Contoso", "Northwind", "contoso"]
    raw = tenant_dict()
    raw["dataverse"]["rows"]["account"] = [{"name": name} for name in names]
    with Simulator(raw, tls=False) as sim, client_for(sim) as client:
        found = client.get(API + "accounts", params={"$select": "name", "$filter": "name eq 'contoso'"})
        other = client.get(API + "accounts", params={"$select": "name", "$filter": "name eq 'Northwind'"})
    assert [r["name"] for r in found.json()["value"]] == ["Contoso", "CONTOSO", "Contoso", "contoso"]
    assert [r["name"] for r in other.json()["value"]] == ["Northwind"]


def test_lookups_are_indexed_when_the_fixture_loads_and_other_indexes_when_first_asked() -> None:
    with Simulator(load_fixture(generate(3, seed=5).fixture), tls=False) as sim, client_for(sim) as client:
        usage = sim.tenant.tables["work365_usagesummary"]
        lookups = {c.prop for c in usage.columns if c.type == "Lookup"}
        assert {PI, SUB, BILLED} <= lookups
        assert index_of(usage).built == lookups
        key = next(iter(usage.rows))
        patched = client.patch(f"{USAGE}({key})", json={"work365_usagesummary_cost": 1.5})
        assert patched.status_code == 204, patched.text
        assert index_of(usage).built == set()  # a write drops them
        query = {"$select": "work365_usagesummaryid", "$filter": "work365_usagesummary_cost eq 1.5"}
        served = client.get(USAGE, params=query).json()["value"]
        assert [r["work365_usagesummaryid"] for r in served] == [key]
        assert index_of(usage).built == {"work365_usagesummary_cost"}


def test_a_write_is_served_at_once_by_filters_and_by_rows_served_before(
    usage_sim: tuple[Simulator, httpx.Client, list[Row]],
) -> None:
    _, client, rows = usage_sim
    row = rows[5]
    key, pi = row["work365_usagesummaryid"], row[PI]
    query = {"$select": "work365_usagesummaryid,work365_usagesummary_cost", "$filter": f"{PI} eq {pi}"}
    before = {r["work365_usagesummaryid"]: r for r in client.get(USAGE, params=query).json()["value"]}
    assert key in before
    patched = client.patch(f"{USAGE}({key})", json={"work365_usagesummary_cost": 123.25})
    assert patched.status_code == 204, patched.text
    after = {r["work365_usagesummaryid"]: r for r in client.get(USAGE, params=query).json()["value"]}
    assert after[key]["work365_usagesummary_cost"] == 123.25
    assert after[key]["@odata.etag"] != before[key]["@odata.etag"]
    unbound = client.patch(f"{USAGE}({key})", json={"work365_Usagesummary_Providerinvoice@odata.bind": None})
    assert unbound.status_code == 204, unbound.text
    assert key not in {r["work365_usagesummaryid"] for r in client.get(USAGE, params=query).json()["value"]}


def test_a_lookups_formatted_name_follows_a_write_to_the_row_it_names() -> None:
    raw = tenant_dict()
    account = raw["dataverse"]["rows"]["account"][0]["accountid"]
    raw["dataverse"]["rows"]["work365_provideraccount"] = [
        {"work365_provideraccount_name": "Contoso (PC)", "work365_provideraccount_account": account}
    ]
    prefer = {"Prefer": 'odata.include-annotations="OData.Community.Display.V1.FormattedValue"'}
    column = "_work365_provideraccount_account_value"
    formatted = f"{column}@OData.Community.Display.V1.FormattedValue"
    with Simulator(raw, tls=False) as sim, client_for(sim) as client:

        def name_shown() -> str:
            page = client.get(API + "work365_provideraccounts", params={"$select": column}, headers=prefer)
            return str(page.json()["value"][0][formatted])

        assert name_shown() == "Contoso"
        assert client.patch(f"{API}accounts({account})", json={"name": "Contoso Ltd"}).status_code == 204
        assert name_shown() == "Contoso Ltd"


def _accounts_sim(rows: int) -> dict[str, Any]:
    raw = tenant_dict()
    raw["dataverse"]["rows"]["account"] = [{"name": f"account {i:02d}"} for i in range(rows)]
    return raw


def test_page_costs_of_requests_served_at_once_overlap_and_a_batchs_parts_add_up() -> None:
    # 40 rows a page at 12.5 ms a row: 0.5 s a page. What is asserted is what the simulator
    # recorded (costs owed, sleeps at once), not how long the machine took: wall times are only
    # bounded from below, which no load can break.
    with Simulator(_accounts_sim(40), tls=False) as sim:
        sim.set_page_cost(12500)
        headers = {"Authorization": f"Bearer {sim.issue_token()}"}
        clients = [httpx.Client(base_url=sim.base_url, headers=headers, timeout=30) for _ in range(4)]
        for client in clients:
            client.get(API + "WhoAmI")  # connected before the readers start
        start = threading.Barrier(len(clients))
        elapsed: list[float] = []

        def read(client: httpx.Client) -> None:
            start.wait()
            started = time.perf_counter()
            assert len(client.get(API + "accounts", params={"$select": "name"}).json()["value"]) == 40
            elapsed.append(time.perf_counter() - started)

        readers = [threading.Thread(target=read, args=(client,)) for client in clients]
        for reader in readers:
            reader.start()
        for reader in readers:
            reader.join()
        overlapped, owed_apart = _most_at_once(sim.page_cost_sleeps), sim.page_cost_seconds
        started = time.perf_counter()
        answer = clients[0].post(
            API + "$batch",
            content=_two_part_batch(),
            headers={"Content-Type": "multipart/mixed; boundary=batch_x"},
        )
        in_batch = time.perf_counter() - started
        owed_in_batch = sim.page_cost_seconds - owed_apart
        for client in clients:
            client.close()
    assert answer.status_code == 200, answer.text
    assert len(elapsed) == 4
    assert min(elapsed) >= 0.5
    assert owed_apart == pytest.approx(2.0)  # each request owes its own page
    # Served at once, their costs were slept at once (a lock held while sleeping would keep this 1).
    assert overlapped >= 2
    assert owed_in_batch == pytest.approx(1.0)  # the batch's two pages, one after the other
    assert in_batch >= 1.0


def _most_at_once(intervals: list[tuple[float, float]]) -> int:
    """The most intervals that share a moment."""
    edges = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    most = current = 0
    for _, step in edges:  # at a tie an end (-1) sorts before a start: touching is not sharing
        current += step
        most = max(most, current)
    return most


def _two_part_batch() -> bytes:
    part = (
        "--batch_x\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n"
        f"GET {API}accounts?$select=name HTTP/1.1\r\nAccept: application/json\r\n\r\n"
    )
    return (part * 2 + "--batch_x--\r\n").encode()


def test_dataverse_requests_in_flight_are_counted_apart_from_other_services() -> None:
    # The app's cap governs Dataverse's requests: Teams posts beside them are not counted against it.
    with Simulator(_accounts_sim(5), tls=False) as sim:
        sim.set_page_cost(100_000)  # 5 rows: 0.5 s a page, so requests served together overlap
        headers = {"Authorization": f"Bearer {sim.issue_token()}"}
        card = {"type": "message", "attachments": []}

        def post_card() -> None:
            with httpx.Client(timeout=30) as client:
                client.post(sim.teams_webhook_url, json=card)

        def read_accounts() -> None:
            with httpx.Client(base_url=sim.base_url, headers=headers, timeout=30) as client:
                assert client.get(API + "accounts", params={"$select": "name"}).status_code == 200

        sim.take_max_in_flight(dataverse=True)
        posts = [threading.Thread(target=post_card) for _ in range(3)]
        for thread in posts:
            thread.start()
        for thread in posts:
            thread.join()
        assert sim.take_max_in_flight(dataverse=True) == 0  # three posts, no Dataverse request
        readers = [threading.Thread(target=read_accounts) for _ in range(2)]
        for thread in readers:
            thread.start()
        for thread in readers:
            thread.join()
        assert 1 <= sim.take_max_in_flight(dataverse=True) <= 2
        assert sim.dataverse_in_flight == 0
        assert sim.in_flight == 0


@settings(max_examples=300, deadline=None)
@given(st.uuids(), st.sampled_from([str, lambda u: str(u).upper(), lambda u: f"{{{u}}}", lambda u: u.hex]))
def test_a_guids_sql_server_order_is_read_off_any_form_of_its_text(
    guid: uuid.UUID, written: Callable[[uuid.UUID], str]
) -> None:
    raw = guid.bytes_le
    sql_order = bytes(raw[i] for i in (10, 11, 12, 13, 14, 15, 8, 9, 6, 7, 4, 5, 0, 1, 2, 3))
    assert sql_guid_key(written(guid)) == (0, sql_order)


def test_a_malformed_guid_sorts_after_every_guid() -> None:
    assert sql_guid_key("not-a-guid") == (1, "not-a-guid")
    assert sql_guid_key(str(uuid.UUID(int=2**128 - 1))) < sql_guid_key("0")
