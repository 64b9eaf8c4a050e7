"""Date rules. Every date is UTC; a period is a calendar month written `YYYY-MM`.

Microsoft invoices period M early in month M+1, so on any day of month N the period under review
is N-1 (contracts/findings.md, "Vocabulary").
"""

from __future__ import annotations

import calendar
import re
from datetime import UTC, date, datetime, timedelta

from diagnostics.errors import InputError

_PERIOD = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


def parse_period(text: str) -> tuple[int, int]:
    match = _PERIOD.match(text)
    if not match:
        raise InputError(f"bad period {text!r}: write it as YYYY-MM, e.g. 2026-10")
    return int(match.group(1)), int(match.group(2))


def period_of(day: date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


def add_months(period: str, months: int) -> str:
    year, month = parse_period(period)
    index = year * 12 + (month - 1) + months
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def period_start(period: str) -> date:
    year, month = parse_period(period)
    return date(year, month, 1)


def period_end(period: str) -> date:
    """The last day of the period (inclusive)."""
    year, month = parse_period(period)
    return date(year, month, calendar.monthrange(year, month)[1])


def day_in_following_month(period: str, day: int) -> date:
    """Day `day` of month M+1, clamped to that month's last day (invoice day 31 in February)."""
    year, month = parse_period(add_months(period, 1))
    return date(year, month, min(max(day, 1), calendar.monthrange(year, month)[1]))


def period_under_review(as_of: datetime) -> str:
    return add_months(period_of(as_of.astimezone(UTC).date()), -1)


# How far from today a clock may be moved: further is a typo (20226-11-12, 1026-11-12), not a review.
AS_OF_RANGE = timedelta(days=2 * 365)


def excerpt(text: object, limit: int = 40) -> str:
    """A short, quoted excerpt of user input for an error message (never the whole input)."""
    value = str(text)
    shown = value if len(value) <= limit else value[: limit - 1] + "…"
    return repr(shown)


def parse_as_of(text: str, *, today: datetime | None = None) -> datetime:
    """An ISO 8601 date or datetime; a date means midnight UTC, a naive time is taken as UTC.
    It must lie within two years of `today` (now, or the simulated clock)."""
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except (ValueError, TypeError):
        raise InputError(
            f"bad date {excerpt(text)}: use ISO 8601, e.g. 2026-11-12 or 2026-11-12T09:00:00Z"
        ) from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    reference = (today or datetime.now(UTC)).astimezone(UTC)
    try:
        value = value.astimezone(UTC)
        in_range = abs(value - reference) <= AS_OF_RANGE
    except OverflowError:
        in_range = False
    if not in_range:
        first, last = (reference - AS_OF_RANGE).date(), (reference + AS_OF_RANGE).date()
        raise InputError(
            f"date {excerpt(text)} is not within two years of today: give one from {first} to {last}"
        )
    return value


def days_between(earlier: datetime, later: datetime) -> float:
    return (later - earlier) / timedelta(days=1)


def start_of_day(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)
