"""Working windows by the Chinese calendar: nights, weekends, holidays and adjusted working days."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from bot.scheduling.workdays import WorkCalendar
from bot.scheduling.workhours import WorkHours

BJ = ZoneInfo("Asia/Shanghai")
HOURS = WorkHours.parse("09:00-12:00,14:00-18:00")
CAL = WorkCalendar()


def bj(y: int, m: int, d: int, h: int = 0, mi: int = 0) -> datetime:
    return datetime(y, m, d, h, mi, tzinfo=BJ)


def test_chinese_calendar_2026_national_day_is_october_1_to_7_with_saturday_10_a_working_day() -> None:
    # The arrangement the tests below rely on, as the installed chinesecalendar has it.
    assert CAL.is_workday(bj(2026, 9, 30).date())
    assert not any(CAL.is_workday(bj(2026, 10, d).date()) for d in range(1, 8))
    assert CAL.is_workday(bj(2026, 10, 8).date())
    assert CAL.is_workday(bj(2026, 10, 10).date())  # Saturday, adjusted working day


def test_parse_reads_windows_in_order() -> None:
    hours = WorkHours.parse(" 14:00-18:00 , 09:00-12:00")
    assert [(s.hour, e.hour) for s, e in hours.windows] == [(9, 12), (14, 18)]


@pytest.mark.parametrize("text", ["9-12", "09:00-08:00", "09:00-12:00,11:00-13:00", "25:00-26:00", ""])
def test_parse_refuses_bad_values_with_a_chinese_message(text: str) -> None:
    with pytest.raises(ValueError, match="工作时间"):
        WorkHours.parse(text)


@pytest.mark.parametrize(
    ("moment", "inside"),
    [
        (bj(2026, 11, 4, 9, 0), True),  # Wednesday, opening minute
        (bj(2026, 11, 4, 11, 59), True),
        (bj(2026, 11, 4, 12, 0), False),  # lunch
        (bj(2026, 11, 4, 18, 0), False),  # the end is excluded
        (bj(2026, 11, 4, 8, 59), False),
        (bj(2026, 11, 7, 10, 0), False),  # Saturday
        (bj(2026, 10, 2, 10, 0), False),  # National Day, a Friday
        (bj(2026, 10, 10, 10, 0), True),  # adjusted working Saturday
    ],
)
def test_in_window_follows_the_clock_and_the_calendar(moment: datetime, inside: bool) -> None:
    assert HOURS.in_window(moment, CAL, BJ) is inside


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (bj(2026, 11, 4, 10, 30), bj(2026, 11, 4, 10, 30)),  # inside: itself
        (bj(2026, 11, 4, 12, 30), bj(2026, 11, 4, 14, 0)),  # lunch -> afternoon
        (bj(2026, 11, 4, 19, 0), bj(2026, 11, 5, 9, 0)),  # evening -> next morning
        (bj(2026, 11, 4, 3, 0), bj(2026, 11, 4, 9, 0)),  # small hours -> same morning
        (bj(2026, 11, 6, 18, 0), bj(2026, 11, 9, 9, 0)),  # Friday evening -> Monday
        (bj(2026, 9, 30, 18, 0), bj(2026, 10, 8, 9, 0)),  # eve of National Day -> after it
        (bj(2026, 10, 9, 18, 30), bj(2026, 10, 10, 9, 0)),  # -> the adjusted working Saturday
    ],
)
def test_next_window_skips_nights_weekends_and_holidays(moment: datetime, expected: datetime) -> None:
    assert HOURS.next_window(moment, CAL, BJ) == expected


def test_next_window_keeps_naive_utc_as_naive_utc() -> None:
    friday_evening_utc = datetime(2026, 11, 6, 10, 30)  # 18:30 in Beijing
    assert HOURS.next_window(friday_evening_utc, CAL, BJ) == datetime(2026, 11, 9, 1, 0)


def test_next_window_answers_in_the_zone_of_the_moment_it_was_given() -> None:
    moment = bj(2026, 11, 6, 18, 30).astimezone(UTC)
    found = HOURS.next_window(moment, CAL, BJ)
    assert found.tzinfo is UTC and found == bj(2026, 11, 9, 9, 0)
    assert found - moment == timedelta(days=2, hours=14, minutes=30)


def test_an_evening_window_until_midnight_is_allowed() -> None:
    hours = WorkHours.parse("19:00-24:00")
    assert hours.in_window(bj(2026, 11, 4, 23, 59), CAL, BJ)
    assert hours.next_window(bj(2026, 11, 4, 10, 0), CAL, BJ) == bj(2026, 11, 4, 19, 0)
