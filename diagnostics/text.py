"""Text helpers shared by the checks and the renderers: cut with an ellipsis, money with its
currency, tenant text made safe for a terminal."""

from __future__ import annotations

import re
from decimal import Decimal

# Terminal escape sequences (CSI, OSC, and two-character ESC forms) and the 8-bit CSI.
_ESCAPE = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-_]?|\x9b[0-?]*[ -/]*[@-~]"
)
# Line breaks and tabs become spaces; other C0/C1 controls, and bidi overrides and isolates
# (which reorder what a reader sees: "Trojan Source"), are dropped.
_BREAKS = re.compile("[\t\n\v\f\r\x85\u2028\u2029]+")
_HIDDEN = re.compile("[\x00-\x08\x0e-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def plain(text: object) -> str:
    """Tenant-provided text made safe for a terminal: one line, no escapes, no hidden reordering."""
    value = _ESCAPE.sub("", str(text))
    return _HIDDEN.sub("", _BREAKS.sub(" ", value))


def cut(text: str, limit: int) -> str:
    """`text` cut to `limit` characters; a cut text ends with "…" so nobody takes it as whole."""
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def money(amount: Decimal | str | float | int, currency: str | None) -> str:
    """An amount with its currency code, or saying that the currency is unknown."""
    return f"{amount} {currency}" if currency else f"{amount} (currency unknown)"
