"""Cron means what cron means: Quartz-style ``#``, DST tables in several zones, Chinese errors."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from bot.config.models import Reminder
from bot.delivery.compose import when_text
from bot.scheduling.timing import due_times
from bot.scheduling.triggers import ReminderTrigger
from bot.scheduling.workdays import WorkCalendar

CAL = WorkCalendar()


def reminder(cron: str, zone: str = "Asia/Shanghai", **extra: Any) -> Reminder:
    data = {"id": "r", "title": "提醒", "when": {"cron": cron}, "timezone": zone, "holiday": "keep",
            "recipients": {"channels": ["party"]}}
    return Reminder.model_validate(data | extra)


def local_dues(r: Reminder, start: tuple[int, int, int], end: tuple[int, int, int]) -> list[str]:
    zone = r.zone
    dues = due_times(r, CAL, datetime(*start, tzinfo=zone), datetime(*end, tzinfo=zone))
    return [d.due_at.isoformat(timespec="minutes") for d in dues]


# Every 2026 transition below was read from the installed tzdata (zoneinfo); "back" repeats an
# hour, "forward" skips one. Santiago, Beirut and Havana change their clocks at midnight.
DST_TABLE = [
    # zone, cron, window [start, end), expected local due times
    ("America/New_York", "30 1 * * *", (2026, 10, 31), (2026, 11, 3),  # back 02:00 -> 01:00
     ["2026-10-31T01:30-04:00", "2026-11-01T01:30-04:00", "2026-11-02T01:30-05:00"]),
    ("America/New_York", "30 2 * * *", (2026, 3, 7), (2026, 3, 10),  # forward 02:00 -> 03:00
     ["2026-03-07T02:30-05:00", "2026-03-08T03:00-04:00", "2026-03-09T02:30-04:00"]),
    ("Europe/Berlin", "30 2 * * *", (2026, 10, 24), (2026, 10, 27),  # back 03:00 -> 02:00
     ["2026-10-24T02:30+02:00", "2026-10-25T02:30+02:00", "2026-10-26T02:30+01:00"]),
    ("Europe/Berlin", "30 2 * * *", (2026, 3, 28), (2026, 3, 31),  # forward 02:00 -> 03:00
     ["2026-03-28T02:30+01:00", "2026-03-29T03:00+02:00", "2026-03-30T02:30+02:00"]),
    ("America/Santiago", "0 0 * * *", (2026, 9, 5), (2026, 9, 8),  # forward at midnight
     ["2026-09-05T00:00-04:00", "2026-09-06T01:00-03:00", "2026-09-07T00:00-03:00"]),
    ("America/Santiago", "0 23 * * *", (2026, 4, 3), (2026, 4, 6),  # back at midnight: 23:xx twice
     ["2026-04-03T23:00-03:00", "2026-04-04T23:00-03:00", "2026-04-05T23:00-04:00"]),
    ("America/Santiago", "0 0 * * *", (2026, 4, 4), (2026, 4, 7),
     ["2026-04-04T00:00-03:00", "2026-04-05T00:00-04:00", "2026-04-06T00:00-04:00"]),
    ("Asia/Beirut", "0 0 * * *", (2026, 3, 28), (2026, 3, 31),  # forward at midnight
     ["2026-03-28T00:00+02:00", "2026-03-29T01:00+03:00", "2026-03-30T00:00+03:00"]),
    ("Asia/Beirut", "30 23 * * *", (2026, 10, 23), (2026, 10, 26),  # back at midnight
     ["2026-10-23T23:30+03:00", "2026-10-24T23:30+03:00", "2026-10-25T23:30+02:00"]),
    ("America/Havana", "0 0 * * *", (2026, 3, 7), (2026, 3, 10),  # forward at midnight
     ["2026-03-07T00:00-05:00", "2026-03-08T01:00-04:00", "2026-03-09T00:00-04:00"]),
    ("America/Havana", "30 0 * * *", (2026, 10, 31), (2026, 11, 3),  # back 01:00 -> 00:00
     ["2026-10-31T00:30-04:00", "2026-11-01T00:30-04:00", "2026-11-02T00:30-05:00"]),
    ("Australia/Sydney", "30 2 * * *", (2026, 10, 3), (2026, 10, 6),  # forward 02:00 -> 03:00
     ["2026-10-03T02:30+10:00", "2026-10-04T03:00+11:00", "2026-10-05T02:30+11:00"]),
    ("Australia/Sydney", "30 2 * * *", (2026, 4, 4), (2026, 4, 7),  # back 03:00 -> 02:00
     ["2026-04-04T02:30+11:00", "2026-04-05T02:30+11:00", "2026-04-06T02:30+10:00"]),
]


@pytest.mark.parametrize(("zone", "cron", "start", "end", "expected"), DST_TABLE,
                         ids=[f"{row[0]}-{row[1]}-{row[2][1]}" for row in DST_TABLE])
def test_a_daily_cron_job_fires_once_a_day_across_dst_changes(
    zone: str, cron: str, start: tuple[int, int, int], end: tuple[int, int, int], expected: list[str]
) -> None:
    assert local_dues(reminder(cron, zone), start, end) == expected


def test_the_repeated_hour_is_sent_once_by_the_scheduler_trigger() -> None:
    new_york = ZoneInfo("America/New_York")
    trigger = ReminderTrigger(reminder("30 1 * * *", "America/New_York"), CAL)
    fire_times, previous = [], None
    now = datetime(2026, 10, 31, 12, tzinfo=new_york)
    for _ in range(3):
        previous = trigger.get_next_fire_time(previous, now)
        assert previous is not None
        fire_times.append(previous.astimezone(UTC).isoformat(timespec="minutes"))
    assert fire_times == ["2026-11-01T05:30+00:00", "2026-11-02T06:30+00:00", "2026-11-03T06:30+00:00"]


def test_a_time_skipped_by_dst_is_shown_as_the_time_it_is_really_sent() -> None:
    r = reminder("30 2 * * *", "America/New_York")
    (due,) = due_times(r, CAL, datetime(2026, 3, 8, tzinfo=r.zone), datetime(2026, 3, 9, tzinfo=r.zone))
    trigger = ReminderTrigger(r, CAL)
    sent_at = trigger.get_next_fire_time(None, datetime(2026, 3, 8, tzinfo=r.zone))
    assert sent_at == due.due_at
    assert when_text(due.due_at, r.zone).endswith("03:00")
    assert when_text(sent_at, r.zone) == when_text(due.due_at, r.zone)


def test_first_monday_in_quartz_style_means_the_first_monday() -> None:
    dues = local_dues(reminder("0 9 * * MON#1"), (2026, 3, 1), (2026, 6, 1))
    assert dues == ["2026-03-02T09:00+08:00", "2026-04-06T09:00+08:00", "2026-05-04T09:00+08:00"]


def test_last_friday_and_last_day_of_month_have_their_cron_meaning() -> None:
    assert local_dues(reminder("0 9 * * 5L"), (2026, 1, 1), (2026, 3, 1)) == [
        "2026-01-30T09:00+08:00", "2026-02-27T09:00+08:00"]
    assert local_dues(reminder("0 9 L * *"), (2026, 1, 1), (2026, 3, 1)) == [
        "2026-01-31T09:00+08:00", "2026-02-28T09:00+08:00"]


def validation_message(cron: str) -> str:
    with pytest.raises(ValidationError) as caught:
        reminder(cron)
    return str(caught.value)


@pytest.mark.parametrize(
    ("cron", "words"),
    [
        ("0 25 * * *", ["“时”段“25”无效", "0–23"]),
        ("61 9 * * *", ["“分”段“61”无效", "0–59"]),
        ("0 9 * 13 *", ["“月”段“13”无效", "1–12"]),
        ("0 9 * * MON#6", ["“周”段“MON#6”无效", "mon#1", "monthly: {weekday: mon, nth: 1}"]),
        ("0 9 ? * MON", ["Quartz", "?", "monthly: {weekday: mon, nth: 1}"]),
        ("0 9 15W * *", ["最近工作日", "monthly"]),
        ("0 0 9 * * MON", ["应有 5 段", "6 段"]),
        ("@daily", ["5 段", "monthly"]),
        ("0 9 1-7 * mon", ["同时限定", "monthly: {weekday: mon, nth: 1}"]),
        ("0 9 30 2 *", ["“日”段“30”在所选的月份里不存在", "L"]),
        ("0 9 32 * *", ["“日”段“32”无效", "1–31"]),
    ],
)
def test_cron_forms_that_are_not_run_are_refused_in_chinese_with_the_readable_form(
    cron: str, words: list[str]
) -> None:
    message = validation_message(cron)
    for word in words:
        assert word in message
    assert "Error validating" not in message
    assert "Bad " not in message  # the library's English is not shown


@pytest.mark.parametrize("cron", ["61 9 * * *", "0 25 * * *", "0 9 * 13 *"])
def test_a_wrong_minute_hour_or_month_is_not_answered_with_unrelated_readable_forms(cron: str) -> None:
    assert "易读写法" not in validation_message(cron)
