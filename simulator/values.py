"""Value formats Dataverse uses on the wire: GUIDs, date-only and UTC datetime strings."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime

GUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def is_guid(value: object) -> bool:
    return isinstance(value, str) and GUID_RE.match(value) is not None


def parse_datetime(text: str) -> datetime:
    """An ISO 8601 date or datetime as aware UTC; no offset means UTC (Dataverse stores UTC).

    Raises ValueError for anything else.
    """
    if not isinstance(text, str) or not text[:4].isdigit():
        raise ValueError(text)
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:  # the edge of the calendar, moved past it by its offset
        raise ValueError(f"{text} is out of range") from None


def parse_date(text: str) -> date:
    """A date-only value: 'YYYY-MM-DD', or the date part of a datetime as written."""
    if not isinstance(text, str):
        raise ValueError(text)
    if _DATE_RE.match(text):
        return date.fromisoformat(text)
    return datetime.fromisoformat(text).date()


def format_datetime(value: datetime) -> str:
    """Dataverse's datetime form: UTC, whole seconds, 'Z'."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def pluralise(logical_name: str) -> str:
    """The entity set name Dataverse gives a table by default (its collection name)."""
    if re.search(r"[^aeiou]y$", logical_name):
        return logical_name[:-1] + "ies"
    if re.search(r"(s|x|z|ch|sh)$", logical_name):
        return logical_name + "es"
    return logical_name + "s"
