"""Brazilian business days and the 3-business-day breach deadline (ANPD Resolution 15/2024)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from upgestao_privacy.domain.business_days import (
    add_business_days,
    deadline_status,
    easter,
    is_business_day,
    national_holidays,
    notice_deadline,
)


@pytest.mark.parametrize(("year", "sunday"), [
    (2024, date(2024, 3, 31)), (2025, date(2025, 4, 20)), (2026, date(2026, 4, 5)), (2027, date(2027, 3, 28)),
    (2019, date(2019, 4, 21)), (2038, date(2038, 4, 25)), (2000, date(2000, 4, 23)),
])
def test_easter_sunday(year, sunday):
    assert easter(year) == sunday


def test_the_movable_days_of_2026_follow_easter():
    days = national_holidays(2026)
    assert days[date(2026, 2, 16)] == "Carnaval (segunda-feira)"
    assert days[date(2026, 2, 17)] == "Carnaval (terça-feira)"
    assert days[date(2026, 4, 3)] == "Sexta-feira Santa"
    assert days[date(2026, 6, 4)] == "Corpus Christi"
    assert date(2026, 2, 18) not in days  # Ash Wednesday is a business day (from noon)


def test_fixed_holidays_and_black_consciousness_from_2024():
    assert {date(2026, m, d) for m, d in ((1, 1), (4, 21), (5, 1), (9, 7), (10, 12), (11, 2), (11, 15), (11, 20),
                                          (12, 25))} <= set(national_holidays(2026))
    assert date(2023, 11, 20) not in national_holidays(2023)
    assert date(2024, 11, 20) in national_holidays(2024)


def test_weekends_and_holidays_are_not_business_days():
    assert not is_business_day(date(2026, 12, 5))  # Saturday
    assert not is_business_day(date(2026, 12, 6))  # Sunday
    assert not is_business_day(date(2026, 12, 25))  # Friday, Christmas
    assert is_business_day(date(2026, 12, 2))  # a Wednesday


def test_three_business_days_skip_carnival():
    # detected on Friday 13 Feb 2026: Mon 16 and Tue 17 are Carnival -> Wed 18, Thu 19, Fri 20
    assert add_business_days(date(2026, 2, 13), 3) == date(2026, 2, 20)


def test_three_business_days_skip_the_easter_weekend_and_tiradentes():
    # Thursday 2 April 2026: Good Friday 3, weekend, Mon 6, Tue 7, Wed 8
    assert add_business_days(date(2026, 4, 2), 3) == date(2026, 4, 8)
    # Friday 17 April 2026: Mon 20, Tue 21 is Tiradentes, Wed 22, Thu 23
    assert add_business_days(date(2026, 4, 17), 3) == date(2026, 4, 23)


def test_corpus_christi_and_year_end():
    # Wednesday 3 June 2026: Thu 4 Corpus Christi, Fri 5, Mon 8, Tue 9
    assert add_business_days(date(2026, 6, 3), 3) == date(2026, 6, 9)
    # Wednesday 23 Dec 2026: Thu 24, Fri 25 Christmas, Mon 28, Tue 29
    assert add_business_days(date(2026, 12, 23), 3) == date(2026, 12, 29)
    # Tuesday 29 Dec 2026: Wed 30, Thu 31, (Fri 1 Jan, weekend), Mon 4 Jan 2027
    assert add_business_days(date(2026, 12, 29), 3) == date(2027, 1, 4)


def test_the_deadline_is_the_close_of_the_third_business_day_in_brasilia():
    # 23:30 in Brasília on Friday 13 Feb 2026 is already Saturday in UTC: the day counts as Friday's
    detected = datetime(2026, 2, 14, 2, 30, tzinfo=UTC)
    assert notice_deadline(detected) == datetime(2026, 2, 21, 3, 0, tzinfo=UTC)  # Fri 20, 24:00 BRT
    # a Monday morning (UTC): Tue, Wed, Thu
    assert notice_deadline(datetime(2026, 11, 30, 12, 0, tzinfo=UTC)) == datetime(2026, 12, 4, 3, 0, tzinfo=UTC)


def test_deadline_status_flags():
    due = datetime(2026, 12, 4, 3, 0, tzinfo=UTC)
    assert deadline_status(due, due - timedelta(days=2), None)["status"] == "on_time"
    at_risk = deadline_status(due, due - timedelta(hours=5), None)
    assert at_risk["status"] == "at_risk" and at_risk["at_risk"] and at_risk["seconds_left"] == 5 * 3600
    late = deadline_status(due, due + timedelta(minutes=1), None)
    assert late["status"] == "late" and late["late"] and late["seconds_left"] == -60
    assert late["business_days_left"] == 0
    assert deadline_status(due, due + timedelta(days=9), due - timedelta(hours=1))["status"] == "met"
    missed = deadline_status(due, due + timedelta(days=9), due + timedelta(hours=1))
    assert missed["status"] == "missed" and missed["late"]


def test_business_days_left_counts_today_and_the_last_day():
    due = notice_deadline(datetime(2026, 11, 30, 12, 0, tzinfo=UTC))  # close of Thursday 3 Dec
    assert deadline_status(due, datetime(2026, 12, 1, 12, 0, tzinfo=UTC), None)["business_days_left"] == 3
    assert deadline_status(due, datetime(2026, 12, 3, 12, 0, tzinfo=UTC), None)["business_days_left"] == 1
