"""When reminders fire, checked against tables of known 2026 dates (and a far year's fallback)."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bot.config.models import CalendarOverrides, Reminder
from bot.scheduling.timing import due_times, fires, next_fire, standard_weekdays
from bot.scheduling.triggers import ReminderTrigger, cron_trigger
from bot.scheduling.workdays import WorkCalendar

SH = ZoneInfo("Asia/Shanghai")
CAL = WorkCalendar()
# A year no chinesecalendar release will cover for a long time, so the rule-based fallback
# answers for it whatever version is installed (dates checked with holidays.China(years=2035)).
FAR = 2035


def reminder(when: dict[str, Any], **extra: Any) -> Reminder:
    data = {"id": "r", "title": "提醒", "when": when, "recipients": {"channels": ["party"]}}
    return Reminder.model_validate(data | extra)


def at(y: int, m: int, d: int, hh: int = 0, mm: int = 0, zone: ZoneInfo = SH) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=zone)


def due_dates(r: Reminder, start: date, end: date, cal: WorkCalendar = CAL) -> list[date]:
    """Local due dates with due_at in [start, end] (both whole days)."""
    dues = due_times(r, cal, at(start.year, start.month, start.day, zone=r.zone),
                     at(end.year, end.month, end.day, zone=r.zone) + timedelta(days=1))
    return [d.due_at.date() for d in dues]


def year_2026(r: Reminder) -> list[date]:
    return due_dates(r, date(2026, 1, 1), date(2026, 12, 31))


# ---------------------------------------------------------------- forms of `when`


def test_first_friday_of_each_month_moves_off_holidays() -> None:
    assert year_2026(reminder({"monthly": {"weekday": "fri"}})) == [
        date(2026, 1, 4),  # Jan 2 is New Year; Sunday Jan 4 is a working day
        date(2026, 2, 6), date(2026, 3, 6), date(2026, 4, 3),
        date(2026, 5, 6),  # May 1 is Labour Day (May 1–5)
        date(2026, 6, 5), date(2026, 7, 3), date(2026, 8, 7), date(2026, 9, 4),
        date(2026, 10, 8),  # Oct 2 is National Day (Oct 1–7)
        date(2026, 11, 6), date(2026, 12, 4),
    ]


def test_study_day_is_due_at_nine_by_default_in_shanghai() -> None:
    (due,) = due_times(reminder({"monthly": {"weekday": "fri"}}), CAL, at(2026, 3, 1),
                       at(2026, 4, 1))
    assert due.due_at == at(2026, 3, 6, 9)
    assert (due.original_date, due.skipped, due.provisional, due.holiday_name) == (
        None, False, False, None)


def test_last_working_day_counts_an_adjusted_saturday() -> None:
    dates = year_2026(reminder({"monthly": {"workday": -1}, "at": "16:00"}))
    assert dates[:3] == [date(2026, 1, 30), date(2026, 2, 28), date(2026, 3, 31)]
    assert dates[8:10] == [date(2026, 9, 30), date(2026, 10, 30)]


def test_nth_working_day_follows_the_holidays() -> None:
    assert year_2026(reminder({"monthly": {"workday": 1}}))[0] == date(2026, 1, 4)  # Sunday
    third = year_2026(reminder({"monthly": {"workday": 3}}))
    assert third[9] == date(2026, 10, 10)  # Oct 8, 9, then the working Saturday


def test_day_15_moves_past_spring_festival_and_weekends() -> None:
    dates = year_2026(reminder({"monthly": {"day": 15}}))
    assert dates[:4] == [date(2026, 1, 15), date(2026, 2, 24), date(2026, 3, 16), date(2026, 4, 15)]


def test_day_31_means_the_last_day_of_shorter_months() -> None:
    dates = year_2026(reminder({"monthly": {"day": 31}}, holiday="keep"))
    assert dates[:4] == [date(2026, 1, 31), date(2026, 2, 28), date(2026, 3, 31), date(2026, 4, 30)]


def test_day_31_in_february_2026_is_a_working_saturday_so_it_stays() -> None:
    dates = year_2026(reminder({"monthly": {"day": 31}}))
    assert date(2026, 2, 28) in dates


def test_fifth_friday_exists_only_in_some_months() -> None:
    dates = year_2026(reminder({"monthly": {"weekday": "fri", "nth": 5}}, holiday="keep"))
    assert dates == [date(2026, 1, 30), date(2026, 5, 29), date(2026, 7, 31), date(2026, 10, 30)]


def test_last_friday_of_the_month() -> None:
    dates = year_2026(reminder({"monthly": {"weekday": "fri", "nth": -1}}))
    assert dates[:2] == [date(2026, 1, 30), date(2026, 2, 27)]


def test_quarterly_tenth_day_of_each_quarters_first_month() -> None:
    dates = year_2026(reminder({"quarterly": {"month": 1, "day": 10}}))
    # Jan 10 is a Saturday; Oct 10 is a working Saturday and stays.
    assert dates == [date(2026, 1, 12), date(2026, 4, 10), date(2026, 7, 10), date(2026, 10, 10)]


def test_half_yearly_last_day_of_the_sixth_month() -> None:
    assert year_2026(reminder({"half_yearly": {"month": 6, "day": -1}})) == [
        date(2026, 6, 30), date(2026, 12, 31)]


def test_yearly_assessment_in_mid_january() -> None:
    r = reminder({"yearly": {"month": 1, "day": 15}})
    assert due_dates(r, date(2025, 1, 1), date(2026, 12, 31)) == [date(2025, 1, 15),
                                                                 date(2026, 1, 15)]


def test_weekly_fridays_around_mid_autumn_and_national_day() -> None:
    r = reminder({"weekly": {"weekday": "fri"}})
    assert due_dates(r, date(2026, 9, 15), date(2026, 10, 20)) == [
        date(2026, 9, 18), date(2026, 9, 28), date(2026, 10, 8), date(2026, 10, 9),
        date(2026, 10, 16)]


def test_weekly_weekend_days_moved_to_monday_fire_once() -> None:
    r = reminder({"weekly": {"weekday": ["sat", "sun"]}})
    assert due_dates(r, date(2026, 3, 7), date(2026, 3, 23)) == [date(2026, 3, 9),
                                                                date(2026, 3, 16),
                                                                date(2026, 3, 23)]


def test_a_moved_saturday_does_not_duplicate_a_working_sunday() -> None:
    r = reminder({"weekly": {"weekday": ["sat", "sun"]}})
    assert due_dates(r, date(2026, 9, 19), date(2026, 9, 20)) == [date(2026, 9, 20)]


def test_once_on_a_holiday_moves_and_then_never_fires_again() -> None:
    r = reminder({"once": "2026-10-01", "at": "10:30"})
    (due,) = due_times(r, CAL, at(2026, 9, 1), at(2026, 12, 1))
    assert due.due_at == at(2026, 10, 8, 10, 30)
    assert due.original_date == date(2026, 10, 1)
    assert next_fire(r, CAL, due.due_at) is None


def test_cron_weekday_mornings_skip_the_holiday_week_without_duplicates() -> None:
    r = reminder({"cron": "30 8 * * 1-5"})
    dues = due_times(r, CAL, at(2026, 9, 29), at(2026, 10, 13))
    assert [d.due_at for d in dues] == [at(2026, 9, 29, 8, 30), at(2026, 9, 30, 8, 30),
                                        at(2026, 10, 8, 8, 30), at(2026, 10, 9, 8, 30),
                                        at(2026, 10, 12, 8, 30)]


@pytest.mark.parametrize(
    ("field", "weekdays"),
    [("1-5", ["Mon", "Tue", "Wed", "Thu", "Fri"]), ("0", ["Sun"]), ("mon,wed", ["Mon", "Wed"]),
     ("*/2", ["Tue", "Thu", "Sat", "Sun"])],
)
def test_cron_weekday_numbers_read_as_standard_crontab(field: str, weekdays: list[str]) -> None:
    r = reminder({"cron": f"0 9 * * {field}"}, holiday="keep")
    dues = due_times(r, CAL, at(2026, 3, 2), at(2026, 3, 9))  # Monday to Sunday
    assert sorted(d.due_at.strftime("%a") for d in dues) == sorted(weekdays)


def test_cron_seven_is_sunday_too() -> None:
    # The YAML check in bot.config.models still rejects 7 (it calls from_crontab directly).
    fire = cron_trigger("0 9 * * 5-7", SH).get_next_fire_time(None, at(2026, 3, 2))
    assert fire == at(2026, 3, 6, 9)
    assert standard_weekdays("5-7") == "fri,sat,sun"


def test_cron_with_keep_fires_on_holidays_too() -> None:
    r = reminder({"cron": "0 9 * * fri"}, holiday="keep")
    dues = due_times(r, CAL, at(2026, 10, 1), at(2026, 10, 10))
    assert [(d.due_at, d.holiday_name) for d in dues] == [(at(2026, 10, 2, 9), "国庆节"),
                                                          (at(2026, 10, 9, 9), None)]


# ---------------------------------------------------------------- holiday policies


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        ("next_workday", date(2026, 10, 8)),
        ("previous_workday", date(2026, 9, 30)),
        ("keep", date(2026, 10, 2)),
        ("skip", None),
    ],
)
def test_first_friday_on_national_day_follows_the_policy(policy: str,
                                                         expected: date | None) -> None:
    r = reminder({"monthly": {"weekday": "fri"}}, holiday=policy)
    dues = due_times(r, CAL, at(2026, 9, 20), at(2026, 10, 20))
    assert [d.due_at.date() for d in dues] == ([expected] if expected else [])
    if policy.endswith("workday"):
        assert dues[0].original_date == date(2026, 10, 2)
        assert dues[0].due_at.time() == time(9, 0)
    if dues:
        assert dues[0].holiday_name == "国庆节"


def test_a_skipped_due_is_reported_only_when_asked() -> None:
    r = reminder({"monthly": {"weekday": "fri"}}, holiday="skip")
    (due,) = due_times(r, CAL, at(2026, 9, 20), at(2026, 10, 20), include_skipped=True)
    assert (due.skipped, due.due_at, due.holiday_name) == (True, at(2026, 10, 2, 9), "国庆节")


def test_an_adjusted_working_saturday_is_not_moved() -> None:
    r = reminder({"monthly": {"day": 10}})
    (due,) = due_times(r, CAL, at(2026, 10, 1), at(2026, 11, 1))
    assert due.due_at == at(2026, 10, 10, 9)
    assert due.original_date is None


def test_an_admin_holiday_moves_the_study_day() -> None:
    cal = WorkCalendar(CalendarOverrides.model_validate(
        {"holidays": [{"date": "2026-11-06", "name": "单位活动日"}]}))
    (due,) = due_times(reminder({"monthly": {"weekday": "fri"}}), cal, at(2026, 11, 1),
                       at(2026, 12, 1))
    assert (due.due_at.date(), due.holiday_name) == (date(2026, 11, 9), "单位活动日")


def test_an_admin_working_day_keeps_a_date_in_place() -> None:
    cal = WorkCalendar(CalendarOverrides.model_validate({"workdays": ["2026-10-02"]}))
    (due,) = due_times(reminder({"monthly": {"weekday": "fri"}}), cal, at(2026, 10, 1),
                       at(2026, 10, 31))
    assert due.due_at == at(2026, 10, 2, 9)


def test_dates_in_an_unannounced_year_use_the_fallback_and_are_provisional() -> None:
    r = reminder({"monthly": {"day": 1}})
    announced = due_times(r, CAL, at(2026, 12, 1), at(2027, 1, 1))
    assert [(d.due_at.date(), d.provisional) for d in announced] == [(date(2026, 12, 1), False)]
    dues = due_times(r, CAL, at(FAR, 1, 1), at(FAR, 3, 1))
    assert [(d.due_at.date(), d.original_date, d.provisional) for d in dues] == [
        (date(FAR, 1, 2), date(FAR, 1, 1), True),  # Jan 1 (a Monday) is New Year's Day by rule
        (date(FAR, 2, 1), None, True),
    ]
    assert dues[0].holiday_name == "元旦"


def test_a_due_on_a_rule_based_spring_festival_moves_past_it() -> None:
    r = reminder({"monthly": {"day": 8}}, holiday="next_workday")
    (due,) = due_times(r, CAL, at(FAR, 2, 1), at(FAR, 3, 1))
    assert (due.original_date, due.holiday_name, due.provisional) == (date(FAR, 2, 8), "春节", True)
    # Feb 8-10 are the Spring Festival by rule (the holidays package may add an observed day).
    assert due.due_at.date() > date(FAR, 2, 10)
    assert due.due_at.date() == CAL.next_workday(date(FAR, 2, 8))


def test_working_day_rules_in_an_unannounced_year_are_provisional() -> None:
    (due,) = due_times(reminder({"monthly": {"workday": 2}}), CAL, at(FAR, 3, 1), at(FAR, 4, 1))
    assert due.due_at.date() == date(FAR, 3, 2)
    assert due.provisional


# ---------------------------------------------------------------- notices


def stages(found: list[Any]) -> list[tuple[str, datetime]]:
    return [(f.stage, f.fire_at) for f in found]


def test_notices_three_days_and_one_day_before_the_study_day() -> None:
    r = reminder({"monthly": {"weekday": "fri"}}, notices=["3d", "1d"])
    assert stages(fires(r, CAL, at(2026, 11, 1), at(2026, 11, 7))) == [
        ("notice:3d", at(2026, 11, 3, 9)), ("notice:1d", at(2026, 11, 5, 9)),
        ("due", at(2026, 11, 6, 9))]


def test_a_notice_landing_on_a_weekend_moves_to_the_friday_before() -> None:
    r = reminder({"monthly": {"day": 16}}, notices=["1d"])
    assert stages(fires(r, CAL, at(2026, 3, 1), at(2026, 3, 17))) == [
        ("notice:1d", at(2026, 3, 13, 9)), ("due", at(2026, 3, 16, 9))]


def test_notices_inside_a_holiday_move_before_it_and_fire_once() -> None:
    r = reminder({"monthly": {"weekday": "fri"}}, notices=["3d", "1d"])
    found = fires(r, CAL, at(2026, 9, 25), at(2026, 10, 9))
    assert stages(found) == [("notice:3d", at(2026, 9, 30, 9)), ("due", at(2026, 10, 8, 9))]
    assert found[0].due.due_at == at(2026, 10, 8, 9)
    assert found[0].lead is not None and found[0].lead.days == 3


def test_working_day_and_hour_notices() -> None:
    r = reminder({"monthly": {"day": 13}}, notices=["2wd", "2h"])
    assert stages(fires(r, CAL, at(2026, 10, 1), at(2026, 10, 17))) == [
        ("notice:2wd", at(2026, 10, 10, 9)),  # Monday Oct 12, then the working Saturday
        ("notice:2h", at(2026, 10, 13, 7)),
        ("due", at(2026, 10, 13, 9))]


def test_a_working_day_notice_counts_back_across_national_day() -> None:
    r = reminder({"monthly": {"weekday": "fri", "nth": 2}}, notices=["2wd"])
    assert stages(fires(r, CAL, at(2026, 9, 25), at(2026, 10, 10))) == [
        ("notice:2wd", at(2026, 9, 30, 9)), ("due", at(2026, 10, 9, 9))]


def test_skipped_dues_have_no_notices_and_late_notices_are_dropped() -> None:
    skipped = reminder({"monthly": {"weekday": "fri"}}, holiday="skip", notices=["3d"])
    assert fires(skipped, CAL, at(2026, 9, 25), at(2026, 10, 20)) == []
    same_time = reminder({"monthly": {"weekday": "fri"}}, notices=["0d"])
    assert stages(fires(same_time, CAL, at(2026, 11, 1), at(2026, 11, 30))) == [
        ("due", at(2026, 11, 6, 9))]


def test_fires_do_not_depend_on_how_the_year_is_cut_into_windows() -> None:
    r = reminder({"weekly": {"weekday": ["fri", "sat"]}}, notices=["3d", "1d", "1wd", "1h"])
    whole = fires(r, CAL, at(2026, 1, 1), at(2027, 1, 1))
    pieces = []
    for month in range(1, 13):
        end = at(2026, month + 1, 1) if month < 12 else at(2027, 1, 1)
        pieces += fires(r, CAL, at(2026, month, 1), end)
    assert pieces == whole


# ---------------------------------------------------------------- next fire and the trigger


def test_next_fire_is_strictly_after_the_given_time() -> None:
    r = reminder({"monthly": {"weekday": "fri"}}, notices=["1d"])
    fire = next_fire(r, CAL, at(2026, 11, 5, 9))
    assert fire is not None and (fire.stage, fire.fire_at) == ("due", at(2026, 11, 6, 9))


def test_the_trigger_fires_exactly_when_fires_says() -> None:
    r = reminder({"monthly": {"weekday": "fri"}}, notices=["3d", "1d"])
    trigger = ReminderTrigger(r, CAL)
    expected = fires(r, CAL, at(2026, 8, 1), at(2027, 1, 1))
    seen = []
    fire_time = trigger.get_next_fire_time(None, at(2026, 8, 1))
    while fire_time is not None and fire_time < at(2027, 1, 1):
        fire = trigger.fire_at(fire_time)
        assert fire is not None and trigger.last_fire == fire
        seen.append(fire)
        fire_time = trigger.get_next_fire_time(fire_time, fire_time)
    assert seen == expected


def test_the_trigger_reports_a_due_and_a_notice_sharing_an_instant() -> None:
    r = reminder({"weekly": {"weekday": "wed"}}, notices=["7d"])
    trigger = ReminderTrigger(r, CAL)
    found = trigger.fires_at(at(2026, 3, 11, 9))
    assert [(f.stage, f.due.due_at) for f in found] == [("due", at(2026, 3, 11, 9)),
                                                       ("notice:7d", at(2026, 3, 18, 9))]


def test_a_reminder_in_another_zone_uses_its_own_wall_clock() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    r = reminder({"monthly": {"weekday": "fri"}, "at": "09:00"}, timezone="Europe/Berlin",
                 notices=["1d"])
    dues = due_times(r, CAL, datetime(2026, 9, 1, tzinfo=SH), datetime(2026, 11, 1, tzinfo=SH))
    assert [d.due_at for d in dues] == [at(2026, 9, 4, 9, zone=berlin),
                                        at(2026, 10, 8, 9, zone=berlin)]
    assert dues[1].due_at.utcoffset() == timedelta(hours=2)
    # Across the end of summer time the wall clock stays at 09:00.
    found = fires(r, CAL, at(2026, 11, 1, zone=berlin), at(2026, 11, 7, zone=berlin))
    assert stages(found) == [("notice:1d", at(2026, 11, 5, 9, zone=berlin)),
                             ("due", at(2026, 11, 6, 9, zone=berlin))]
    assert found[1].fire_at.utcoffset() == timedelta(hours=1)


def test_a_cron_reminder_in_new_york_reads_the_expression_in_that_zone() -> None:
    new_york = ZoneInfo("America/New_York")
    r = reminder({"cron": "0 9 * * mon"}, timezone="America/New_York")
    fire = next_fire(r, CAL, at(2026, 3, 1, zone=new_york))
    assert fire is not None and fire.fire_at == at(2026, 3, 2, 9, zone=new_york)
