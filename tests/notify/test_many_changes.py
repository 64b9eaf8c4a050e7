"""A run with more changes than one Teams message holds (found by the month-long soak): every new,
escalated and resolved finding is announced, whatever else the run has to say and whatever order
the units that see the same subjects are handled in. Against the simulator's Teams sink, through
the real webhook client; the state in memory."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path

from diagnostics.adapters.http import RetryPolicy
from diagnostics.app.container import Container
from diagnostics.catalog import finding
from diagnostics.lifecycle import Change
from diagnostics.messages import InvoiceUnit, TenantPeriodUnit, Unit
from diagnostics.model import Finding, Subject
from diagnostics.render_card import MAX_BYTES, CardItem, announced, build_cards, payload_bytes
from diagnostics.settings import load_settings
from simulator import Simulator, load_fixture
from simulator.connect import connection
from tests.fakes import FakeBus, FakeClock, InMemoryStateStore
from tests.notify.test_notifier import report

SAMPLE = Path(__file__).resolve().parents[2] / "simulator" / "samples" / "sample-tenant.json"
TENANT = TenantPeriodUnit(period="2026-10")
INVOICE = InvoiceUnit(invoice_id="3a496486-0f7b-56ee-afa0-d8b3fea8006c")
OPEN = 40  # findings both units see: their reminders alone are more than one message holds
REPEAT_DAYS = 7


async def _no_sleep(_: float) -> None:
    return None


def subscription(n: int) -> Subject:
    sid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"soak-subscription-{n}"))
    return Subject(type="subscription", id=sid, name=f"Contoso Ltd - Azure plan {n} (usage based)")


def no_contract(n: int) -> Finding:
    sub = subscription(n)
    return finding(
        "SUB_NOT_ON_ACTIVE_CONTRACT",
        sub,
        "2026-10",
        f"Usage subscription {sub.name} is not on an active billing contract: no billing contract",
        {"subscription_id": sub.id, "billing_contract_id": None, "reason": "no billing contract"},
        [
            "Open the subscription and set its Billing Contract to the customer's active (usage) billing "
            "contract.",
            "Then generate the invoices of the cycles it missed.",
        ],
    )


SHARED = [no_contract(n) for n in range(OPEN)]  # seen by both units
ALONE = no_contract(OPEN)  # seen by the tenant unit only; fixed before the reminders fall due


async def _announced(order: Sequence[Unit]) -> tuple[Counter[tuple[str, str]], list[bytes]]:
    """What Teams was told (the changes, reminders aside) when the units run in `order`."""
    with Simulator(load_fixture(SAMPLE)) as sim:
        container = Container.from_connection(
            connection(sim, retry=RetryPolicy(max_attempts=3, sleep=_no_sleep, jitter=lambda d: d)),
            settings=load_settings(
                {"DIAG_TEAMS_WEBHOOK_URL": sim.teams_webhook_url, "DIAG_TEAMS_REPEAT_DAYS": str(REPEAT_DAYS)}
            ),
            bus=FakeBus(),
            state=InMemoryStateStore(),
            clock=FakeClock(sim.now),
        )
        try:
            await _month(container, order, sim.now)
        finally:
            await container.aclose()
        changes = Counter({k: n for k, n in told(sim).items() if k[0] != "reminded"})
        return changes, [p.body for p in sim.teams_received]


def told(sim: Simulator) -> Counter[tuple[str, str]]:
    """Each (change, dedup key) the posts showed, counted."""
    out: Counter[tuple[str, str]] = Counter()
    for post in sim.teams_received:
        for change, keys in announced(json.loads(post.body)).items():
            out.update((change, key) for key in keys)
    return out


async def _month(container: Container, order: Sequence[Unit], start: datetime) -> None:
    """Day 0: both units see the shared findings, the tenant unit also the lone one. Day 7: the lone
    one is fixed; the shared ones' reminders are due. The units are handled in `order` each day."""
    seen: dict[str, list[Finding]] = {"tenant_period": [*SHARED, ALONE], "provider_invoice": list(SHARED)}
    for unit in order:
        await container.notifier.notify(unit, report(start, seen[unit.kind]), at=start)
    later = start + timedelta(days=REPEAT_DAYS)
    seen["tenant_period"] = list(SHARED)
    for unit in order:
        await container.notifier.notify(unit, report(later, seen[unit.kind]), at=later)


async def test_every_change_is_announced_once_whatever_order_the_units_run_in() -> None:
    # With the tenant unit first, its run on the 7th holds the resolution and every reminder, more
    # than one message holds; with the invoice unit first, the reminders went out with its run.
    tenant_first, bodies = await _announced((TENANT, INVOICE))
    invoice_first, more = await _announced((INVOICE, TENANT))
    assert tenant_first == invoice_first
    expected = {("new", f.dedup_key): 1 for f in [*SHARED, ALONE]} | {("resolved", ALONE.dedup_key): 1}
    assert tenant_first == Counter(expected)
    assert all(len(body) <= MAX_BYTES for body in [*bodies, *more])


def item(n: int, change: Change) -> CardItem:
    f = no_contract(n)
    url = f"https://contoso.crm.dynamics.com/main.aspx?etn=work365_subscription&id={f.subject.id}"
    return CardItem(
        change, f.dedup_key, f.code, f.severity, f.title, f.subject.name, "Set the contract.", url
    )


def test_the_changes_of_a_large_run_go_in_as_many_messages_as_they_need_and_reminders_are_cut() -> None:
    items = [item(n, "new") for n in range(60)] + [item(n, "reminded") for n in range(60, 160)]
    items += [item(n, "resolved") for n in range(160, 190)]
    cards = build_cards(items)
    assert len(cards) > 1
    assert all(payload_bytes(c.payload) <= MAX_BYTES for c in cards)
    shown = [announced(c.payload) for c in cards]
    assert sorted(k for s in shown for k in s["new"]) == sorted(i.dedup_key for i in items[:60])
    assert sorted(k for s in shown for k in s["resolved"]) == sorted(i.dedup_key for i in items[160:])
    # Every change is announced by exactly one message: shown, or counted in the last one's "N more".
    assert sorted(i.dedup_key for c in cards for i in c.items) == sorted(i.dedup_key for i in items)
    last = json.dumps(cards[-1].payload, ensure_ascii=False)
    hidden = 100 - len([k for s in shown for k in s["reminded"]])
    assert hidden > 0
    assert f"… and {hidden} more" in last
    assert all("more (see the notes" not in json.dumps(c.payload) for c in cards[:-1])
    titles = [c.payload["attachments"][0]["content"]["body"][0]["text"] for c in cards]
    assert titles == [f"Usage-invoice diagnosis ({n} of {len(cards)})" for n in range(1, len(cards) + 1)]


def test_a_run_that_fits_is_one_message_as_before() -> None:
    items = [item(n, "new") for n in range(3)] + [item(3, "resolved")]
    [card] = build_cards(items)
    assert card.payload["attachments"][0]["content"]["body"][0]["text"] == "Usage-invoice diagnosis"
    assert sorted(i.dedup_key for i in card.items) == sorted(i.dedup_key for i in items)
    assert "more (see the notes" not in json.dumps(card.payload)
