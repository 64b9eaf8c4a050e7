"""The Teams message of one run: one Adaptive Card 1.5 in the envelope a Workflows webhook accepts
(monitor.md, "Teams alerts"; platform-apis.md §3.3–3.4). Pure: `build_card` returns the payload.

Each finding is a Container whose `id` is `<change>:<dedup_key>`, so a reader of the card (the
replay, a test) can tell what was announced without parsing prose. The card stays under Teams' 28 KB
(the UTF-8 JSON as posted). `build_cards` never leaves out a new, escalated or resolved finding:
when they do not fit in one message the run posts as many as they need; reminders fill the room
left and those that do not fit are counted ("… and N more").
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any
from urllib.parse import urlencode

from diagnostics.lifecycle import CHANGES, Change
from diagnostics.model import SEVERITY_RANK

MAX_BYTES = 28 * 1000  # Teams refuses ~28 KB; a little under it, measured as posted
CARD_CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"
_HEADINGS: dict[Change, str] = {
    "new": "New",
    "escalated": "Got worse",
    "reminded": "Still open",
    "resolved": "Resolved",
}
_COLOURS = {"critical": "Attention", "error": "Attention", "warning": "Warning", "info": "Default"}


@dataclass(frozen=True)
class CardItem:
    change: Change
    dedup_key: str
    code: str
    severity: str
    title: str
    subject_name: str
    next_step: str
    record_url: str | None  # the record in Dynamics 365; None for the tool's own findings


def record_url(dataverse_url: str, table: str, record_id: str) -> str:
    """The record's page in Dynamics 365 (model-driven app, default app of the environment)."""
    query = urlencode({"etn": table, "id": record_id, "pagetype": "entityrecord"})
    return f"{dataverse_url.rstrip('/')}/main.aspx?{query}"


def payload_bytes(payload: dict[str, Any]) -> int:
    return len(encode(payload))


def encode(payload: dict[str, Any]) -> bytes:
    """The payload as posted (compact UTF-8 JSON): the size that Teams measures."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


def _order(item: CardItem) -> tuple[int, int, str]:
    return (CHANGES.index(item.change), SEVERITY_RANK.get(item.severity, 9), item.dedup_key)


def _item(item: CardItem) -> dict[str, Any]:
    resolved = item.change == "resolved"
    body: list[dict[str, Any]] = [
        {
            "type": "TextBlock",
            "text": f"{item.severity.upper()} · {item.code}",
            "size": "Small",
            "weight": "Bolder",
            "color": "Good" if resolved else _COLOURS.get(item.severity, "Default"),
            "wrap": True,
        },
        {"type": "TextBlock", "text": item.title, "wrap": True},
        {"type": "TextBlock", "text": item.subject_name, "isSubtle": True, "spacing": "None", "wrap": True},
    ]
    if not resolved and item.next_step:
        body.append({"type": "TextBlock", "text": f"Next step: {item.next_step}", "wrap": True})
    container: dict[str, Any] = {
        "type": "Container",
        "id": f"{item.change}:{item.dedup_key}",
        "separator": True,
        "items": body,
    }
    if item.record_url:
        container["selectAction"] = {
            "type": "Action.OpenUrl",
            "url": item.record_url,
            "title": "Open the record",
        }
        body.append(
            {
                "type": "ActionSet",
                "actions": [
                    {"type": "Action.OpenUrl", "title": "Open in Dynamics 365", "url": item.record_url}
                ],
            }
        )
    return container


def _summary(items: Sequence[CardItem]) -> str:
    counts = [f"{sum(1 for i in items if i.change == c)} {_HEADINGS[c].lower()}" for c in CHANGES]
    return " · ".join(c for c in counts if not c.startswith("0 "))


def _card(
    shown: Sequence[CardItem], total: Sequence[CardItem], title: str, hidden: int = 0
) -> dict[str, Any]:
    """A message showing `shown`, its summary line counting all the run's changes (`total`), and
    how many it leaves out (`hidden`)."""
    body: list[dict[str, Any]] = [
        {"type": "TextBlock", "text": title, "size": "Medium", "weight": "Bolder", "wrap": True},
        {"type": "TextBlock", "text": _summary(total), "isSubtle": True, "spacing": "None", "wrap": True},
    ]
    current: Change | None = None
    for item in shown:
        if item.change != current:
            current = item.change
            body.append(
                {"type": "TextBlock", "text": _HEADINGS[current], "weight": "Bolder", "separator": True}
            )
        body.append(_item(item))
    if hidden:
        body.append(
            {
                "type": "TextBlock",
                "text": f"… and {hidden} more (see the notes on the records, or run a scan)",
                "wrap": True,
                "isSubtle": True,
            }
        )
    return {
        "type": "message",
        "attachments": [
            {
                "contentType": CARD_CONTENT_TYPE,
                "contentUrl": None,
                "content": {
                    "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                    "type": "AdaptiveCard",
                    "version": "1.5",
                    "msteams": {"width": "Full"},
                    "body": body,
                },
            }
        ],
    }


def build_card(
    items: Sequence[CardItem],
    *,
    title: str = "Usage-invoice diagnosis",
    max_bytes: int = MAX_BYTES,
) -> dict[str, Any]:
    """One Workflows message for these changes, worst first within each kind, under `max_bytes`:
    what does not fit is left out and counted. (The notifier posts `build_cards`.)"""
    ordered = sorted(items, key=_order)
    shown = _most(ordered, lambda n: _card(ordered[:n], ordered, title, len(ordered) - n), max_bytes)
    return _card(ordered[:shown], ordered, title, len(ordered) - shown)


@dataclass(frozen=True)
class Card:
    """One message of a run and the changes it announces: those it shows, and the reminders its
    "… and N more" line counts (told in number: a reminder is "at most" every so many days)."""

    payload: dict[str, Any]
    items: tuple[CardItem, ...]


def build_cards(
    items: Sequence[CardItem],
    *,
    title: str = "Usage-invoice diagnosis",
    max_bytes: int = MAX_BYTES,
) -> list[Card]:
    """The run's changes as Workflows messages under `max_bytes` each: one when they fit (nearly
    always), else as many as its new, escalated and resolved findings need, so that none of them is
    ever left out - which of them a card could hold would otherwise depend on what else the run
    had to say, i.e. on the order the units were handled in. Reminders fill the room left in the
    last message; those that do not fit are counted ("… and N more")."""
    ordered = sorted(items, key=_order)
    if not ordered or payload_bytes(_card(ordered, ordered, title)) <= max_bytes:
        return [Card(_card(ordered, ordered, title), tuple(ordered))]
    # Packed under the longest title a part can have, so that numbering the parts keeps them under.
    widest = f"{title} ({len(ordered)} of {len(ordered)})"
    groups = _packed([i for i in ordered if i.change != "reminded"], ordered, widest, max_bytes)
    reminders = [i for i in ordered if i.change == "reminded"]
    shown = 0
    if reminders:
        if not groups or payload_bytes(_card(groups[-1], ordered, widest, len(reminders))) > max_bytes:
            groups.append([])  # not even their count fits beside the others: a message of their own
        last = groups[-1]

        def with_reminders(k: int) -> dict[str, Any]:
            return _card(sorted([*last, *reminders[:k]], key=_order), ordered, widest, len(reminders) - k)

        shown = _most(reminders, with_reminders, max_bytes)
        groups[-1] = sorted([*last, *reminders[:shown]], key=_order)
    cards = []
    for n, group in enumerate(groups, start=1):
        part = f"{title} ({n} of {len(groups)})" if len(groups) > 1 else title
        counted = reminders[shown:] if n == len(groups) else []
        cards.append(Card(_card(group, ordered, part, len(counted)), (*group, *counted)))
    return cards


def _packed(
    items: Sequence[CardItem], total: Sequence[CardItem], title: str, max_bytes: int
) -> list[list[CardItem]]:
    """`items` in order, as few messages' worth as hold them all."""
    groups: list[list[CardItem]] = []
    rest = list(items)
    while rest:
        # At least one a message, so that it ends (a finding's own text is far under the limit).
        n = max(1, _most(rest, partial(_first, rest, total, title), max_bytes))
        groups.append(rest[:n])
        rest = rest[n:]
    return groups


def _first(items: Sequence[CardItem], total: Sequence[CardItem], title: str, n: int) -> dict[str, Any]:
    return _card(items[:n], total, title)


def _most(items: Sequence[CardItem], card: Callable[[int], dict[str, Any]], max_bytes: int) -> int:
    """The most of `items` (a prefix) whose `card` fits. A message is larger than its findings
    alone, which bounds the count; within it the size grows with the count, so a binary search:
    a message's worth of renderings, however many items there are."""
    bound, used = 0, 0
    for item in items:
        used += payload_bytes(_item(item))
        if used > max_bytes:
            break
        bound += 1
    low, high = 0, bound
    while low < high:
        middle = (low + high + 1) // 2
        if payload_bytes(card(middle)) <= max_bytes:
            low = middle
        else:
            high = middle - 1
    return low


def announced(payload: Any) -> dict[Change, list[str]]:
    """What a posted card announces, by change: the dedup keys in its findings' container ids."""
    found: dict[Change, list[str]] = {c: [] for c in CHANGES}

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            ident = node.get("id")
            if node.get("type") == "Container" and isinstance(ident, str):
                change, _, key = ident.partition(":")
                if change in found and key:
                    found[change].append(key)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    if isinstance(payload, dict):
        for attachment in payload.get("attachments") or ():
            if isinstance(attachment, dict):
                walk(attachment.get("content"))
    return found
