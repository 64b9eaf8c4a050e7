from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from diagnostics.errors import InputError
from diagnostics.periods import (
    add_months,
    day_in_following_month,
    parse_as_of,
    period_end,
    period_under_review,
)


@pytest.mark.parametrize(
    ("as_of", "period"),
    [
        ("2026-11-12T09:00:00Z", "2026-10"),
        ("2026-01-01T00:00:00Z", "2025-12"),  # year boundary
        ("2026-03-31T23:59:59Z", "2026-02"),
        # 23:30 on 31 October in New York is already 1 November in UTC: all dates are UTC.
        ("2026-10-31T23:30:00-04:00", "2026-10"),
    ],
)
def test_period_under_review_is_the_month_before_in_utc(as_of: str, period: str) -> None:
    assert period_under_review(parse_as_of(as_of)) == period


@pytest.mark.parametrize(
    ("period", "months", "expected"),
    [
        ("2026-10", 1, "2026-11"),
        ("2026-12", 1, "2027-01"),
        ("2026-01", -1, "2025-12"),
        ("2026-05", -17, "2024-12"),
    ],
)
def test_add_months(period: str, months: int, expected: str) -> None:
    assert add_months(period, months) == expected


def test_month_ends_and_leap_years() -> None:
    assert period_end("2024-02") == date(2024, 2, 29)
    assert period_end("2026-02") == date(2026, 2, 28)
    assert period_end("2026-12") == date(2026, 12, 31)


def test_invoice_day_is_clamped_to_the_following_month() -> None:
    assert day_in_following_month("2026-10", 8) == date(2026, 11, 8)
    assert day_in_following_month("2026-01", 31) == date(2026, 2, 28)  # day 31 in February
    assert day_in_following_month("2026-12", 8) == date(2027, 1, 8)


def test_as_of_accepts_dates_offsets_and_naive_times() -> None:
    assert parse_as_of("2026-11-12") == datetime(2026, 11, 12, tzinfo=UTC)
    assert parse_as_of("2026-11-12T10:00:00+01:00") == datetime(2026, 11, 12, 9, tzinfo=UTC)
    assert parse_as_of("2026-11-12T09:00:00").tzinfo == UTC
    moment = parse_as_of("2026-11-12T09:00:00Z")
    assert moment.utcoffset() == timedelta(0)
    assert moment.tzinfo is not timezone(timedelta(hours=1))


@pytest.mark.parametrize("text", ["12/11/2026", "2026-13-01", "yesterday", ""])
def test_bad_dates_are_input_errors_that_name_the_value(text: str) -> None:
    with pytest.raises(InputError, match="bad date"):
        parse_as_of(text)


@pytest.mark.parametrize("text", ["2026-13", "26-10", "2026/10"])
def test_bad_periods_are_input_errors(text: str) -> None:
    with pytest.raises(InputError, match="bad period"):
        add_months(text, 1)
