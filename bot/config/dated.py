"""Warnings that depend on today's date: a one-off reminder that will not fire.

Three reasons, all worked out from when it really fires, after its holiday rule, by the scheduler's
own code (:func:`bot.scheduling.timing.once_due`): that day is already past ("不会再发出"; a one-off
written for a Saturday that moves to Monday is not past on Sunday), it is today but its time has
passed ("今天不会再发出（除非已发出）": a check reads no database, so it cannot know whether it was
sent), or the rule ``holiday: skip`` drops it (its date is a statutory holiday or a rest day: it
would never fire, silently).

The check (``bot.config.loader.check_schedules``) records where each enabled one-off date is written
(:class:`OnceDate`, kept on the schedules: ``Schedules.dated``), and the warnings are worked out from
those places whenever issues are shown (:func:`as_of`: ``validate``, ``serve``'s start, a reload, the
admin pages). A snapshot of an unchanged folder (bot/config/snapshot.py) therefore warns of a date
that passed after the folder was checked, without the folder being parsed again. Only ``issues.py``
is imported here at first: reading a snapshot imports no PyYAML, and the calendar (whose years not
yet announced load the ``holidays`` package) only when a warning depends on it (:func:`_needs_calendar`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from functools import cache
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from bot.config.issues import ConfigIssue, group_repeats

if TYPE_CHECKING:
    from bot.config.models import CalendarOverrides, Reminder, Schedules
    from bot.scheduling.timing import Due
    from bot.scheduling.workdays import WorkCalendar

CalendarSource = Callable[[], "WorkCalendar"]  # the schedules' calendar, made when first needed


@dataclass(frozen=True)
class OnceDate:
    """An enabled one-off reminder's date and where it is written (``place``: its file, line, column
    and field, as every issue names them; no message), and the reminder."""

    place: ConfigIssue
    once: date
    zone: ZoneInfo
    # Its time and holiday rule give the day it really fires. None in a last good entry kept by an
    # older version (a restart on it after an upgrade): the written date is compared, as then.
    reminder: Reminder | None = None


def calendar_of(overrides: CalendarOverrides) -> CalendarSource:
    """The calendar of schedules with ``overrides`` (their ``calendar:`` section), made on first call."""

    @cache
    def made() -> WorkCalendar:
        from bot.scheduling.workdays import WorkCalendar

        return WorkCalendar(overrides)

    return made


def past_message(once: date, today: date, fires: date | None = None) -> str:
    """``fires``: the day the holiday rule moved ``once`` to, when it did."""
    moved = f"（按节假日规则调整到 {fires.isoformat()}）" if fires is not None and fires != once else " "
    return (f"日期 {once.isoformat()}{moved}已过（今天是 {today.isoformat()}），这个提醒不会再发出；"
            "如果是写错了年份或日期，请改正；留作记录的可以不改")


def passed_today_message(once: date, fires_at: datetime, now: datetime) -> str:
    """A one-off due today (``fires_at``, local, after the holiday rule) whose time is before ``now``:
    the service plans what falls due from its start on, so one written after its time is not sent."""
    moved = f"（{once.isoformat()} 按节假日规则调整到今天）" if fires_at.date() != once else " "
    return (f"发送时间 {fires_at:%Y-%m-%d %H:%M}{moved}已过（现在是 {now:%H:%M}），"
            "今天不会再发出（除非已发出）；如果是写错了日期或时间，请改正；留作记录的可以不改")


def skip_message(once: date, due: Due, *, listed: bool = False) -> str:
    """Why a one-off that ``holiday: skip`` drops never fires, and the ways to make it fire (``listed``:
    the day is off because the schedules' ``calendar.holidays`` lists it)."""
    from bot.scheduling.datewords import weekday_text
    from bot.scheduling.workdays import OVERRIDE_HOLIDAY_NAME

    if listed:
        named = "" if due.holiday_name in (None, OVERRIDE_HOLIDAY_NAME) else f"{due.holiday_name}，"
        why = f"节假日（{named}日程的 calendar.holidays 中列出）"
    elif due.holiday_name is None:
        why = f"休息日（{weekday_text(once)}）"
    else:
        why = f"法定节假日（{due.holiday_name}）"
    guessed = f"（{once.year} 年的放假安排尚未公布，按规则推算）" if due.provisional else ""
    return (f"日期 {once.isoformat()} 是{why}{guessed}，而这个提醒写了 “holiday: skip”（遇节假日、休息日跳过），"
            "所以不会发出；要顺延到下一个工作日，请改为 “holiday: next_workday”；要照常在这天发出，"
            "请改为 “holiday: keep”；或者改正日期")


def unsent_once(dated: Sequence[OnceDate], now: datetime, calendar: CalendarSource) -> list[ConfigIssue]:
    """The warnings for the one-offs of ``dated`` that will not fire, as of ``now`` (today: in each
    reminder's zone): the day they fire on (after the holiday rule) is before today, or the rule skips them.

    Warnings, not errors: a past one-off may be kept on purpose (its records, its page); often it
    is a year typo (2025-12-08), which never fires."""
    out = []
    for d in dated:
        local = now.astimezone(d.zone)
        today = local.date()
        if d.reminder is None:
            message = past_message(d.once, today) if d.once < today else None
        else:
            message = _unsent_message(d.reminder, local, calendar)
        if message is not None:
            out.append(replace(d.place, message=message, warning=True, dated=True))
    return out


def _unsent_message(reminder: Reminder, now: datetime, calendar: CalendarSource) -> str | None:
    """Why ``reminder`` (a one-off) will not fire, seen at ``now`` (in the reminder's zone); None when it will."""
    once = reminder.when.once
    assert once is not None
    today = now.date()
    if _needs_calendar(reminder, today):
        from bot.scheduling.timing import once_due

        cal = calendar()
        due = once_due(reminder, cal)
        assert due is not None
        if due.skipped:
            listed = cal.listed_holiday(once)
            return past_message(once, today) if once < today else skip_message(once, due, listed=listed)
        fires_at = due.due_at.astimezone(reminder.zone)
    else:
        from bot.scheduling.timing import once_written  # the rule cannot change the answer: as written

        written = once_written(reminder)
        assert written is not None
        fires_at = written
    if fires_at.date() == today:
        return passed_today_message(once, fires_at, now) if fires_at <= now else None
    return past_message(once, today, fires_at.date()) if fires_at.date() < today else None


def _needs_calendar(reminder: Reminder, today: date) -> bool:
    """Whether the holiday rule could change the answer for the written date: a skip of a date to come,
    or a move across or off today (``next_workday`` only later, ``previous_workday`` only earlier,
    ``keep`` never). Otherwise the written date (and, today, its time) answers as :func:`once_due`
    would, without the calendar."""
    once = reminder.when.once
    assert once is not None
    rule = reminder.holiday.value
    return (rule == "skip" and once >= today) or (rule == "next_workday" and once <= today) or (
        rule == "previous_workday" and once >= today)


def as_of(issues: Sequence[ConfigIssue], schedules: Schedules | None,
          now: datetime | None = None) -> list[ConfigIssue]:
    """The issues of a check that passed (``schedules``; no errors) with the one-off warnings as of
    ``now`` (default: the real time) in place of those of the check's own time, each where the check
    puts it (warnings by file, line and column). A failed check (None) is returned as it
    is: it never comes from a snapshot, so its warnings are of the time it ran."""
    if schedules is None:
        return list(issues)
    out = [i for i in issues if not i.dated]
    found = unsent_once(schedules.dated, now or datetime.now(UTC), calendar_of(schedules.calendar))
    for issue in group_repeats(found):
        out.insert(_place_of(out, issue), issue)
    return out


def _place_of(issues: Sequence[ConfigIssue], issue: ConfigIssue) -> int:
    """Where ``issue`` goes: before the first warning further on (by file, line and column), else last."""
    key = (issue.file, issue.line, issue.column)
    return next((n for n, i in enumerate(issues) if i.warning and (i.file, i.line, i.column) > key), len(issues))
