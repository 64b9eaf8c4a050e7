"""The generated tenant: reproducible from its seed, and a scan of it finds what was planted - each
planted fault on exactly its subscriptions, and nothing else on a healthy subscription."""

from __future__ import annotations

import asyncio
import json
from collections import Counter

import pytest

from diagnostics.model import Report
from diagnostics.service import scan
from simulator import Simulator, load_fixture
from simulator.__main__ import main as simulator_main
from simulator.connect import connection
from simulator.generate import ARCHIVED, MARKUP_MISSING, NO_CONTRACT, TOO_EARLY, Generated, Shares, generate

CUSTOMERS = 200


@pytest.fixture(scope="module")
def generated() -> Generated:
    return generate(CUSTOMERS, seed=7, subscriptions=3, usage=4, shares=Shares(0.03, 0.03, 0.03, 0.05))


@pytest.fixture(scope="module")
def report(generated: Generated) -> Report:
    with Simulator(load_fixture(generated.fixture)) as sim:
        return asyncio.run(scan(connection(sim), sim.now))


def test_the_same_seed_gives_the_same_tenant_and_another_seed_another() -> None:
    one, again, other = generate(20, seed=5), generate(20, seed=5), generate(20, seed=6)
    assert one.fixture == again.fixture
    assert one.planted == again.planted
    assert one.fixture != other.fixture


def test_the_tenant_is_shaped_like_a_partner(generated: Generated) -> None:
    rows = generated.fixture["dataverse"]["rows"]
    kinds = Counter(p["work365_provider_type"] for p in rows["work365_provider"])
    assert kinds == {"Microsoft Partner Center": 1, "Manual": 2}
    assert len(rows["account"]) == CUSTOMERS
    assert len(rows["work365_subscription"]) == CUSTOMERS * 3
    # Each provider has one invoice per period, and its usage total is the sum of its usage.
    per_invoice: Counter[str] = Counter()
    for u in rows["work365_usagesummary"]:
        per_invoice[u["work365_usagesummary_providerinvoice"]] += round(u["work365_usagesummary_cost"] * 100)
    for pi in rows["work365_providerinvoice"]:
        assert (
            round(pi["work365_providerinvoice_usagetotal"] * 100)
            == per_invoice[pi["work365_providerinvoiceid"]]
        )
    assert len(rows["work365_providerinvoice"]) == 2 * 3
    invoice_days = {c["work365_billingcontract_nextinvoicedate"] for c in rows["work365_billingcontract"]}
    assert len(invoice_days) > 10
    assert all(generated.planted[code] for code in (MARKUP_MISSING, NO_CONTRACT, ARCHIVED, TOO_EARLY))


def test_the_scan_finds_exactly_what_was_planted(generated: Generated, report: Report) -> None:
    planted = {(code, sub) for code, subs in generated.planted.items() for sub in subs}
    found = {(f.code, f.subject.id) for f in report.findings if f.code in generated.planted}
    assert found == planted
    # Nothing else is reported on a subscription the generator left healthy.
    faulty = {sub for _, sub in planted}
    healthy = {
        r["work365_subscriptionid"] for r in generated.fixture["dataverse"]["rows"]["work365_subscription"]
    }
    healthy -= faulty
    assert [f.code for f in report.findings if f.subject.id in healthy] == []


def test_the_command_prints_the_fixture(capsys: pytest.CaptureFixture[str]) -> None:
    assert simulator_main(["generate", "--customers", "3", "--seed", "9"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads(json.dumps(generate(3, seed=9).fixture))
    load_fixture(printed)  # a fixture the simulator serves
