"""The working-day calendar against the State Council's announced 2026 arrangements, and the
rule-based fallback for years no installed chinesecalendar covers."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import chinese_calendar
import pytest

from bot.config.models import CalendarOverrides
from bot.scheduling.workdays import WorkCalendar

# A year no chinesecalendar release will cover for a long time, so the rule-based fallback
# answers for it whatever version is installed. Its dates were checked against
# holidays.China(years=2035): Spring Festival is Feb 8, National Day Oct 1-3.
FAR = 2035

def overrides(**data: Any) -> CalendarOverrides:
    return CalendarOverrides.model_validate(data)


@pytest.fixture(scope="module")
def cal() -> WorkCalendar:
    return WorkCalendar()


def test_national_day_2026_is_a_week_off_with_its_chinese_name(cal: WorkCalendar) -> None:
    for offset in range(7):
        info = cal.info(date(2026, 10, 1) + timedelta(days=offset))
        assert not info.workday
        assert info.holiday_name == "国庆节"
        assert not info.provisional
    assert cal.is_workday(date(2026, 10, 8))  # the Thursday after the break is a working day


def test_spring_festival_2026_runs_from_february_15_to_23(cal: WorkCalendar) -> None:
    days = [date(2026, 2, 15) + timedelta(days=i) for i in range(9)]
    assert all(cal.info(d).holiday_name == "春节" for d in days)
    assert cal.is_workday(date(2026, 2, 24))
    assert not cal.is_workday(date(2026, 2, 15))


def test_weekend_working_days_of_2026_match_the_package(cal: WorkCalendar) -> None:
    weekend_workdays = [
        d for d in (date(2026, 1, 1) + timedelta(days=i) for i in range(365))
        if d.weekday() >= 5 and cal.is_workday(d)
    ]
    expected = [date(2026, 1, 4), date(2026, 2, 14), date(2026, 2, 28), date(2026, 5, 9),
                date(2026, 9, 20), date(2026, 10, 10)]
    assert weekend_workdays == expected
    assert expected == sorted(d for d in chinese_calendar.workdays if d.year == 2026)
    assert all(cal.info(d).adjusted_workday for d in expected)


def test_an_ordinary_weekend_is_a_day_off_without_a_holiday_name(cal: WorkCalendar) -> None:
    info = cal.info(date(2026, 3, 14))
    assert (info.workday, info.holiday_name, info.adjusted_workday) == (False, None, False)


def test_next_and_previous_working_day_step_over_national_day(cal: WorkCalendar) -> None:
    assert cal.next_workday(date(2026, 10, 1)) == date(2026, 10, 8)
    assert cal.previous_workday(date(2026, 10, 7)) == date(2026, 9, 30)
    assert cal.next_workday(date(2026, 10, 9)) == date(2026, 10, 10)  # adjusted Saturday
    assert cal.next_workday(date(2026, 10, 9), include_self=True) == date(2026, 10, 9)
    assert cal.previous_workday(date(2026, 10, 3), include_self=True) == date(2026, 9, 30)


@pytest.mark.parametrize(
    ("start", "n", "expected"),
    [
        (date(2026, 9, 30), 1, date(2026, 10, 8)),
        (date(2026, 9, 30), 3, date(2026, 10, 10)),
        (date(2026, 10, 9), -2, date(2026, 9, 30)),
        (date(2026, 10, 12), -1, date(2026, 10, 10)),
        (date(2026, 10, 12), 0, date(2026, 10, 12)),
    ],
)
def test_adding_working_days_skips_days_off(
    cal: WorkCalendar, start: date, n: int, expected: date
) -> None:
    assert cal.add_workdays(start, n) == expected


def test_working_days_of_october_2026_start_after_the_holiday(cal: WorkCalendar) -> None:
    days = cal.workdays_in_month(2026, 10)
    assert days[:3] == [date(2026, 10, 8), date(2026, 10, 9), date(2026, 10, 10)]
    assert days[-1] == date(2026, 10, 30)
    assert len(days) == 18


def test_an_admin_holiday_makes_a_working_day_a_day_off() -> None:
    cal = WorkCalendar(overrides(holidays=[{"date": "2026-06-01", "name": "单位活动日"}]))
    info = cal.info(date(2026, 6, 1))
    assert (info.workday, info.holiday_name) == (False, "单位活动日")


def test_an_admin_holiday_range_without_a_name_is_called_a_holiday() -> None:
    cal = WorkCalendar(overrides(holidays=[{"from": "2026-07-06", "to": "2026-07-07"}]))
    assert [cal.info(date(2026, 7, d)).holiday_name for d in (6, 7, 8)] == ["节假日", "节假日", None]


def test_an_admin_working_day_wins_over_the_package_holiday() -> None:
    cal = WorkCalendar(overrides(workdays=["2026-10-05", "2026-06-06"]))
    assert cal.is_workday(date(2026, 10, 5))
    assert not cal.info(date(2026, 10, 5)).adjusted_workday  # a Monday
    assert cal.info(date(2026, 6, 6)).adjusted_workday  # a Saturday


def test_a_year_far_beyond_the_data_uses_the_rule_based_fallback(cal: WorkCalendar) -> None:
    spring = cal.info(date(FAR, 2, 8))
    assert (spring.workday, spring.holiday_name, spring.provisional) == (False, "春节", True)
    new_year = cal.info(date(FAR, 1, 1))  # a Monday
    assert (new_year.workday, new_year.holiday_name, new_year.provisional) == (False, "元旦", True)
    ordinary = cal.info(date(FAR, 3, 1))
    assert ordinary.workday and ordinary.provisional
    assert not cal.info(date(FAR, 3, 3)).workday  # an ordinary Saturday stays a day off


def test_next_working_day_steps_over_a_rule_based_national_day(cal: WorkCalendar) -> None:
    # The rule gives Oct 1-3 (Monday to Wednesday); no adjusted days are known.
    assert [cal.info(date(FAR, 10, d)).holiday_name for d in (1, 2, 3, 4)] == [
        "国庆节", "国庆节", "国庆节", None]
    assert cal.next_workday(date(FAR, 9, 30)) == date(FAR, 10, 4)
    assert cal.info(date(FAR, 10, 4)).provisional


def test_uncovered_years_list_every_year_from_the_fallback(cal: WorkCalendar) -> None:
    first_uncovered = cal.package_range[1] + 1
    assert cal.uncovered_years(date(first_uncovered - 1, 11, 1),
                               date(first_uncovered + 1, 1, 5)) == [first_uncovered,
                                                                    first_uncovered + 1]
    assert cal.uncovered_years(date(FAR - 1, 6, 1), date(FAR + 1, 6, 1)) == [FAR - 1, FAR,
                                                                             FAR + 1]
    assert cal.uncovered_years(date(2026, 1, 1), date(2026, 12, 31)) == []


def test_a_year_beyond_the_package_raises_there_but_not_here(cal: WorkCalendar) -> None:
    last = cal.package_range[1]
    assert last >= 2026
    with pytest.raises(NotImplementedError):
        chinese_calendar.is_workday(date(last + 1, 3, 1))
    assert cal.info(date(last + 1, 3, 1)).provisional


def test_the_coverage_note_names_the_year_in_chinese(cal: WorkCalendar) -> None:
    note = cal.coverage_note(FAR)
    assert f"{FAR} 年" in note and "临时" in note and "chinesecalendar" in note
    first_uncovered = cal.package_range[1] + 1
    assert f"{first_uncovered} 年" in cal.coverage_note(first_uncovered)


def test_a_year_before_the_data_is_provisional_without_crashing(cal: WorkCalendar) -> None:
    before = cal.package_range[0] - 1
    assert cal.info(date(before, 10, 1)).provisional
    assert str(before) in cal.coverage_note(before)


def test_covered_years_take_the_admin_entries_as_complete() -> None:
    cal = WorkCalendar(overrides(
        covered_years=[FAR],
        holidays=[{"from": f"{FAR}-10-01", "to": f"{FAR}-10-07", "name": "国庆节"}],
        workdays=[f"{FAR}-09-29"],
    ))
    assert cal.uncovered_years(date(FAR, 1, 1), date(FAR, 12, 31)) == []
    assert cal.info(date(FAR, 10, 6)).holiday_name == "国庆节"
    assert not cal.info(date(FAR, 10, 6)).provisional
    assert cal.is_workday(date(FAR, 9, 29))  # a Saturday worked in lieu
    assert cal.info(date(FAR, 9, 29)).adjusted_workday
    # The admin's entries are the whole story: no rule-based Spring Festival is added.
    assert cal.is_workday(date(FAR, 2, 8))
    assert not cal.info(date(FAR, 2, 8)).provisional


def test_an_admin_date_in_an_uncovered_year_is_not_provisional() -> None:
    cal = WorkCalendar(overrides(workdays=[f"{FAR}-02-10"]))  # a rule-based Spring Festival day
    assert cal.is_workday(date(FAR, 2, 10))
    assert not cal.info(date(FAR, 2, 10)).provisional
    assert cal.info(date(FAR, 2, 11)).provisional
