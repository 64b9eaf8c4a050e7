"""The candidates of each customer reference: read in the handler's one `$batch`, ranked by the
matcher, in the finding's evidence and the note, on the sample tenant through the real clients."""

from __future__ import annotations

import copy
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from diagnostics.app.container import Container, counting_requests
from diagnostics.app.resolve_references import read_reference_records, reference_report
from diagnostics.messages import Reference, ReferenceRequest
from diagnostics.metadata import ResolvedSchema
from diagnostics.note import evidence_lines
from diagnostics.references.candidates import (
    PartnerCenterView,
    account_query,
    partner_customers,
    partner_subscription_words,
    search_tokens,
)
from diagnostics.schema import SchemaMap
from diagnostics.settings import load_settings
from simulator import Simulator, load_fixture
from simulator.connect import connection
from tests.app.conftest import BLOCKED, DAY, NO_WAIT, SAMPLE
from tests.fakes import FakeBus, FakeClock, InMemoryStateStore, RecordingNotifier

TAILSPIN_REF = "7d3c0e2a-91b4-4c6d-8e1f-2a3b4c5d6e7f"
ALPINE_REF = "2b4d6f80-a1c3-4e5f-9701-b3d5f7091a2c"
TAILSPIN_ACCOUNT = "13f9ec9c-7f60-54ca-9f7d-5ce21d26d6e5"


def test_search_tokens_are_the_distinctive_words_longest_first() -> None:
    assert search_tokens("The Tailspin Toys Ltd.") == ["tailspin", "toys"]
    assert search_tokens("AB") == []
    assert search_tokens(None) == []


def test_the_account_query_prefilters_on_words_and_domain_never_reads_every_account() -> None:
    schema = ResolvedSchema(SchemaMap(), {}, {})
    query = account_query(schema, "O'Brien Holdings GmbH", "https://www.obrien.ie/")
    assert query is not None
    # "O'Brien" is the words "o" and "brien"; "holdings" is too common to narrow it; the domain's
    # name finds obrien.ie and obrien.com alike; a mail domain is no search at all.
    assert query.filter == "contains(name,'brien') or contains(websiteurl,'obrien')"
    by_mail = account_query(schema, "O'Brien", "gmail.com")
    assert by_mail is not None
    assert by_mail.filter == "contains(name,'brien')"
    assert query.top is not None
    assert query.top <= 50
    assert account_query(schema, None, None) is None


def test_partner_center_customers_by_tenant_id() -> None:
    customers = partner_customers(
        [
            {
                "id": "ABC",
                "companyProfile": {"companyName": "Alpine Ski House", "domain": "alpineskihouse.com"},
            },
            {"companyProfile": {}},
            "junk",
        ]
    )
    view = PartnerCenterView(customers, "read")
    assert view.knows("abc") == "Partner Center knows it as Alpine Ski House (alpineskihouse.com)"
    assert view.knows("def") == "Partner Center does not know this customer id"
    assert PartnerCenterView({}, "not configured").knows("abc").startswith("not asked")


def _request() -> ReferenceRequest:
    return ReferenceRequest(
        invoice_id=BLOCKED,
        period="2026-10",
        day=DAY,
        references=(
            Reference(type="customer", id=TAILSPIN_REF, name="Tailspin Toys"),
            Reference(type="customer", id=ALPINE_REF, name="Alpine Ski House"),
        ),
    )


def _fixture(extra_accounts: list[dict[str, Any]]) -> dict[str, Any]:
    raw: dict[str, Any] = json.loads(SAMPLE.read_text(encoding="utf-8"))
    raw = copy.deepcopy(raw)
    raw["dataverse"]["rows"]["account"] += extra_accounts
    raw.pop("timeline", None)
    return raw


@pytest.fixture
def sim_with(request: pytest.FixtureRequest) -> Iterator[Simulator]:
    with Simulator(load_fixture(_fixture(request.param))) as running:
        yield running


@pytest.fixture
async def built(sim_with: Simulator) -> AsyncIterator[Container]:
    container = Container.from_connection(
        connection(sim_with, retry=NO_WAIT),
        settings=load_settings({}),
        bus=FakeBus(),
        state=InMemoryStateStore(),
        notifier=RecordingNotifier(),
        clock=FakeClock(sim_with.now),
    )
    yield container
    await container.aclose()


async def _evidence(container: Container) -> tuple[dict[str, dict[str, Any]], list[str], int]:
    schema = (await container.schema.get()).schema
    request = _request()
    with counting_requests() as tally:
        records = await read_reference_records(container.dataverse, schema, container.thresholds, request)
    assert records.invoice is not None
    report = reference_report(request, records.invoice, records, now=container.clock())
    [customers] = [f for f in report.findings if f.code == "US_BLOCKED_UNRESOLVED_CUSTOMER"]
    refs = {r["reference"]: r for r in customers.evidence["references"]}
    return refs, evidence_lines(customers.evidence), tally.count


@pytest.mark.parametrize(
    "sim_with", [[{"accountid": "5d0c3b6e-1f2a-4b3c-8d4e-5f6a7b8c9d0e", "name": "Toys R Fun"}]], indirect=True
)
async def test_a_confident_match_is_ranked_first_with_its_reason_in_one_batch(built: Container) -> None:
    refs, lines, requests = await _evidence(built)
    tailspin = refs[TAILSPIN_REF]
    assert tailspin["match"] == "confident"
    assert tailspin["candidates"][0]["account_id"] == TAILSPIN_ACCOUNT
    assert tailspin["candidates"][0]["confidence"] >= 0.9
    assert tailspin["candidates"][0]["reasons"]
    # The prefilter found "Toys R Fun" too; the matcher leaves it out or ranks it below.
    assert all(c["account"] != "Toys R Fun" for c in tailspin["candidates"][:1])
    assert refs[ALPINE_REF]["match"] == "no candidate"
    assert requests == 1  # the candidates ride in the handler's one $batch
    [line] = [x for x in lines if x.startswith("Tailspin Toys")]
    assert "best match: Tailspin Toys (95%" in line
    assert any("no CRM account looks like this customer" in x for x in lines)


@pytest.mark.parametrize(
    "sim_with",
    [[{"accountid": "5d0c3b6e-1f2a-4b3c-8d4e-5f6a7b8c9d0e", "name": "Tailspin Toys Limited"}]],
    indirect=True,
)
async def test_two_equally_good_accounts_are_ambiguous(built: Container) -> None:
    refs, lines, _ = await _evidence(built)
    tailspin = refs[TAILSPIN_REF]
    assert tailspin["match"] == "ambiguous"
    assert {c["account"] for c in tailspin["candidates"]} == {"Tailspin Toys", "Tailspin Toys Limited"}
    assert any("ambiguous, choose one: " in x for x in lines)


def test_a_currency_reference_says_whether_to_add_or_activate_it() -> None:
    inactive = {"reference": "CHF", "currency_exists": True, "resolved": False, "currencies": []}
    missing = {"reference": "NOK", "currency_exists": False, "resolved": False, "currencies": []}
    lines = evidence_lines({"references": [inactive, missing]})
    assert lines == [
        "CHF — the currency exists but is inactive: activate it",
        "NOK — no currency with this ISO code: add it",
    ]


LINKED_ACCOUNT = "6a1b2c3d-4e5f-4a6b-8c7d-8e9f0a1b2c3d"
_LINKED = [
    {"accountid": LINKED_ACCOUNT, "name": "TST Trading"},
]


def _with_a_linked_provider_account(raw: dict[str, Any]) -> dict[str, Any]:
    """Tailspin Toys' tenant also buys through an indirect reseller: that provider account, named
    alike, is mapped to the CRM account "TST Trading"."""
    raw["dataverse"]["rows"]["work365_provideraccount"].append(
        {
            "work365_provideraccountid": "7b2c3d4e-5f6a-4b7c-8d9e-0f1a2b3c4d5e",
            "work365_provideraccount_name": "Tailspin Toys",
            "work365_provideraccount_providerspecificaccountid": "reseller-tailspin-1",
            "work365_provideraccount_provider": "ad6ce976-763b-53b7-ac41-fc81f9a6f63f",
            "work365_provideraccount_account": LINKED_ACCOUNT,
            "statecode": "Active",
        }
    )
    return raw


@pytest.fixture
def linked_sim() -> Iterator[Simulator]:
    with Simulator(load_fixture(_with_a_linked_provider_account(_fixture(_LINKED)))) as running:
        yield running


async def test_an_account_another_provider_account_of_the_customer_maps_to_is_a_candidate(
    linked_sim: Simulator,
) -> None:
    container = Container.from_connection(
        connection(linked_sim, retry=NO_WAIT),
        settings=load_settings({}),
        bus=FakeBus(),
        state=InMemoryStateStore(),
        notifier=RecordingNotifier(),
        clock=FakeClock(linked_sim.now),
    )
    try:
        refs, _, requests = await _evidence(container)
    finally:
        await container.aclose()
    assert requests == 1
    linked = [c for c in refs[TAILSPIN_REF]["candidates"] if c["account_id"] == LINKED_ACCOUNT]
    assert linked
    assert linked[0]["account"] == "TST Trading"
    assert any("another provider account of this customer" in r for r in linked[0]["reasons"])


WOODGROVE_TENANT = "e1f2a3b4-c5d6-4e7f-8091-a2b3c4d5e6f7"
WOODGROVE_PA = "aeffa858-eb33-511f-afca-47b518a379bd"
AZURE_SUB_REF = "d41c8e2f-3b6a-4f9d-8e17-5a2c9b0f7d63"


@pytest.fixture
def pc_sim() -> Iterator[Simulator]:
    raw = _fixture([])
    raw["partner_center"]["customers"] = [
        {
            "id": WOODGROVE_TENANT,
            "companyProfile": {"companyName": "Woodgrove Bank", "domain": "woodgrovebank.com"},
        }
    ]
    raw["partner_center"]["subscriptions"] = {
        WOODGROVE_TENANT: [
            {
                "id": "0f0e0d0c-0b0a-4909-8807-060504030201",
                "offerName": "Azure plan",
                "friendlyName": "Azure plan",
                "status": "active",
            }
        ]
    }
    with Simulator(load_fixture(raw)) as running:
        yield running


async def test_partner_center_says_a_subscription_id_is_likely_an_azure_subscription_id(
    pc_sim: Simulator,
) -> None:
    container = Container.from_connection(
        connection(pc_sim, retry=NO_WAIT),
        settings=load_settings({}),
        bus=FakeBus(),
        state=InMemoryStateStore(),
        notifier=RecordingNotifier(),
        clock=FakeClock(pc_sim.now),
    )
    request = ReferenceRequest(
        invoice_id=BLOCKED,
        period="2026-10",
        day=DAY,
        references=(
            Reference(
                type="subscription",
                id=AZURE_SUB_REF,
                name="Azure subscription 1",
                provider_account_id=WOODGROVE_PA,
            ),
        ),
    )
    try:
        schema = (await container.schema.get()).schema
        records = await read_reference_records(
            container.dataverse, schema, container.thresholds, request, container.partner_center
        )
    finally:
        await container.aclose()
    assert records.invoice is not None
    report = reference_report(request, records.invoice, records, now=pc_sim.now)
    [finding] = report.findings
    [ref] = finding.evidence["references"]
    assert ref["partner_center"].startswith(
        "not a Partner Center subscription id of the customer, who has Azure plan"
    )
    assert any(
        "likely its Azure subscription ID (migrated Azure)" in line
        for line in evidence_lines(finding.evidence)
    )


def test_partner_center_subscription_words() -> None:
    own = ({"id": "ABC", "friendlyName": "Microsoft 365 E3", "status": "active"},)
    assert partner_subscription_words(own, "abc") == (
        "Partner Center lists it as Microsoft 365 E3 (active)",
        False,
    )
    assert partner_subscription_words(own, "xyz") == (
        "not a subscription id Partner Center lists for the customer",
        False,
    )
    assert partner_subscription_words("could not be read (503)", "abc")[0] == (
        "Partner Center's subscriptions of the customer could not be read (503)"
    )
    assert partner_subscription_words(None, "abc") == (None, False)
