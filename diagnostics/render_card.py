"""The Teams message of one run: one Adaptive Card 1.5 in the envelope a Workflows webhook accepts
(monitor.md, "Teams alerts"; platform-apis.md §3.3–3.4). Pure: `build_card` returns the payload.

Each finding is a Container whose `id` is `<change>:<dedup_key>`, so a reader of the card (the
replay, a test) can tell what was announced without parsing prose. The card stays under Teams' 28 KB
(the UTF-8 JSON as posted): findings that do not fit are left out and counted ("and N more").
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
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


def _card(shown: Sequence[CardItem], total: Sequence[CardItem], title: str) -> dict[str, Any]:
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
    hidden = len(total) - len(shown)
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
    """The Workflows message for these changes, worst first within each kind, under `max_bytes`."""
    ordered = sorted(items, key=_order)
    low, high = 0, len(ordered)
    if payload_bytes(_card(ordered, ordered, title)) <= max_bytes:
        return _card(ordered, ordered, title)
    # The most items that fit (the size grows with the items): a binary search, O(n log n).
    while low < high:
        middle = (low + high + 1) // 2
        if payload_bytes(_card(ordered[:middle], ordered, title)) <= max_bytes:
            low = middle
        else:
            high = middle - 1
    return _card(ordered[:low], ordered, title)


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
