"""Every Teams card the tests build, rendered by the official Adaptive Cards renderer (npm
`adaptivecards`) in Chromium: it parses with no warning or error at version 1.5, every element and
action it uses exists in 1.5, it renders, and a cut card says how many were left out. The
screenshot is kept in docs/screenshots/teams-card.png."""

from __future__ import annotations

import re
from typing import Any

import pytest

from diagnostics.lifecycle import CHANGES, Change
from diagnostics.render_card import MAX_BYTES, CardItem, build_card, payload_bytes, record_url
from tests.browser.conftest import ADAPTIVECARDS, SCREENSHOTS, Watched

DATAVERSE = "https://contoso.crm.dynamics.com"
TABLES = {
    "provider_invoice": "work365_providerinvoice",
    "billing_contract": "work365_billingcontract",
    "subscription": "work365_subscription",
}

# Parse at 1.5 (what Teams' Workflows accept from us), list every event, the registered schema
# version of every element and action type the card uses, then render it.
RENDER = """(payload) => {
    const AC = window.AdaptiveCards;
    const json = payload.attachments[0].content;
    const context = new AC.SerializationContext(AC.Versions.v1_5);
    const card = new AC.AdaptiveCard();
    // Close to Teams' light theme, so the screenshot looks like what people see.
    card.hostConfig = new AC.HostConfig({
        fontFamily: "'Segoe UI', system-ui, sans-serif",
        spacing: {small: 4, default: 8, medium: 16, large: 20, extraLarge: 24, padding: 16},
        separator: {lineThickness: 1, lineColor: "#E1DFDD"},
        fontSizes: {small: 12, default: 14, medium: 16, large: 18, extraLarge: 24},
        containerStyles: {default: {backgroundColor: "#FFFFFF", foregroundColors: {
            default: {default: "#242424", subtle: "#616161"},
            attention: {default: "#C4314B", subtle: "#C4314B"},
            warning: {default: "#835C00", subtle: "#835C00"},
            good: {default: "#237B4B", subtle: "#237B4B"},
            accent: {default: "#5B5FC7", subtle: "#5B5FC7"}}}},
        actions: {actionsOrientation: "horizontal", actionAlignment: "left", buttonSpacing: 8, maxActions: 6},
    });
    card.parse(json, context);
    const events = [];
    for (let i = 0; i < context.eventCount; i++) {
        const e = context.getEventAt(i);
        events.push({phase: e.phase, event: e.event, message: e.message});
    }
    const validation = card.validateProperties().validationEvents.map(e => e.message);
    const types = new Set();
    const walk = (node) => {
        if (Array.isArray(node)) { node.forEach(walk); return; }
        if (node && typeof node === 'object') {
            if (typeof node.type === 'string') types.add(node.type);
            Object.values(node).forEach(walk);
        }
    };
    walk(json.body); walk(json.actions || []);
    const versions = {};
    for (const type of types) {
        const known = context.elementRegistry.findByName(type) || context.actionRegistry.findByName(type);
        versions[type] = known ? known.schemaVersion.toString() : null;
    }
    const holder = document.getElementById('card');
    holder.innerHTML = '';
    const rendered = card.render();
    if (rendered) holder.appendChild(rendered);
    return {
        cardVersion: card.version ? card.version.toString() : null,
        events, validation, versions,
        rendered: !!rendered,
        text: rendered ? rendered.innerText : '',
        height: holder.getBoundingClientRect().height,
    };
}"""

HOST = """<!doctype html><html><head><meta charset="utf-8"><style>
body{margin:0;padding:24px;background:#f5f5f5;font-family:"Segoe UI",system-ui,sans-serif}
.ac-pushButton{font:600 13px "Segoe UI",system-ui,sans-serif;color:#242424;background:#fff;border:1px solid #d1d1d1;border-radius:4px;padding:5px 12px;cursor:pointer}
#card{width:560px;background:#fff;border-radius:6px;box-shadow:0 1px 4px rgba(0,0,0,.15);overflow:hidden}
</style></head><body><div id="card"></div></body></html>"""


def _items_of(report: dict[str, Any], change: Change) -> list[CardItem]:
    items = []
    for f in report["findings"]:
        if f["muted"] or f.get("silenced") or f["severity"] == "info":
            continue  # never posted (monitor.md)
        subject = f["subject"]
        table = TABLES.get(subject["type"])
        items.append(
            CardItem(
                change,
                f["dedup_key"],
                f["code"],
                f["severity"],
                f["title"],
                subject["name"],
                f["remediation"][0] if f["remediation"] else "",
                record_url(DATAVERSE, table, subject["id"]) if table else None,
            )
        )
    return items


def cards(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The card sets: the sample tenant's findings as new; every kind of change; resolved only; and
    one too large for Teams, cut."""
    new = _items_of(report, "new")
    mixed = [
        CardItem(
            CHANGES[i % len(CHANGES)],
            *(getattr(item, f) for f in CardItem.__dataclass_fields__ if f != "change"),
        )
        for i, item in enumerate(new)
    ]
    resolved = [
        CardItem("resolved", *(getattr(i, f) for f in CardItem.__dataclass_fields__ if f != "change"))
        for i in new[:3]
    ]
    many = [
        CardItem(
            "new",
            f"{item.dedup_key}:{n}",
            item.code,
            item.severity,
            item.title * 3,
            item.subject_name,
            item.next_step,
            item.record_url,
        )
        for n in range(40)
        for item in new
    ]
    return {
        "sample-new": build_card(new),
        "mixed": build_card(mixed),
        "resolved-only": build_card(resolved),
        "cut": build_card(many),
    }


@pytest.fixture(scope="module")
def all_cards(sample_report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return cards(sample_report)


@pytest.fixture
def renderer(page: Watched) -> Watched:
    if not ADAPTIVECARDS.is_file():
        pytest.skip(
            f"{ADAPTIVECARDS.relative_to(ADAPTIVECARDS.parents[3])} is missing: run make (npm ci in tools/)"
        )
    page.page.set_content(HOST)
    page.page.add_script_tag(path=str(ADAPTIVECARDS))
    return page


def render(renderer: Watched, payload: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = renderer.page.evaluate(RENDER, payload)
    return result


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


@pytest.mark.parametrize("name", ["sample-new", "mixed", "resolved-only", "cut"])
def test_the_card_parses_clean_at_1_5_and_renders(
    renderer: Watched, all_cards: dict[str, dict[str, Any]], name: str
) -> None:
    assert_renders_clean(renderer, all_cards[name])


def assert_renders_clean(renderer: Watched, payload: dict[str, Any]) -> None:
    """Under Teams' size limit, parsed at 1.5 without a warning, only 1.5 elements, rendered."""
    assert payload_bytes(payload) <= MAX_BYTES
    result = render(renderer, payload)
    assert result["cardVersion"] == "1.5"
    assert result["events"] == []
    assert result["validation"] == []
    assert result["versions"], "no element types found"
    for kind, version in result["versions"].items():
        assert version is not None, f"{kind} is unknown to the renderer"
        assert _version(version) <= (1, 5), f"{kind} needs Adaptive Cards {version}"
    assert result["rendered"]
    assert result["height"] > 100
    assert renderer.errors == []
    assert renderer.requests == []


def test_the_cut_card_says_how_many_more(renderer: Watched, all_cards: dict[str, dict[str, Any]]) -> None:
    result = render(renderer, all_cards["cut"])
    shown = result["text"].count("Next step:")
    assert shown > 0
    assert "more (see the notes on the records, or run a scan)" in result["text"]
    hidden = int(re.search(r"… and (\d+) more", result["text"]).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) new", result["text"]).group(1))  # type: ignore[union-attr]
    assert hidden > 0
    assert shown + hidden == total


def test_a_version_the_card_does_not_declare_is_caught(
    renderer: Watched, all_cards: dict[str, dict[str, Any]]
) -> None:
    """The check can fail: a 1.6 element (Table arrived in 1.5; `Action.Execute` in 1.4 — so use an
    unknown type) is reported by the renderer's parse."""
    payload = all_cards["resolved-only"]
    content = dict(payload["attachments"][0]["content"])
    content["body"] = [*content["body"], {"type": "Carousel.NotAThing", "pages": []}]
    broken = {**payload, "attachments": [{**payload["attachments"][0], "content": content}]}
    result = render(renderer, broken)
    assert result["events"], "an unknown element type went unnoticed"
    assert result["versions"]["Carousel.NotAThing"] is None


def test_the_mixed_card_is_kept_as_a_screenshot(
    renderer: Watched, all_cards: dict[str, dict[str, Any]]
) -> None:
    render(renderer, all_cards["mixed"])
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    renderer.page.locator("#card").screenshot(path=str(SCREENSHOTS / "teams-card.png"))
    assert (SCREENSHOTS / "teams-card.png").stat().st_size > 10_000
