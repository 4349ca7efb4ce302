"""When reminders fire: pure functions over a reminder, a :class:`WorkCalendar` and times.

Semantics (the README copies this list):

* Times are computed in the reminder's ``timezone`` (default Asia/Shanghai); ``at`` defaults to
  09:00. ``cron`` takes its candidates from cronsim (see :mod:`bot.config.cron`): standard
  crontab (0 or 7 = Sunday, 1-5 = Monday to Friday; names such as ``mon-fri`` mean the same),
  ``MON#1`` = the first Monday, ``5L`` = the last Friday, ``L`` = the last day of the month.
  Across a DST change a fixed-time cron job runs once: a repeated time at its first occurrence,
  a skipped time at the first minute that exists (a midnight job where clocks jump at midnight
  runs at 01:00 that day). A readable form's time skipped by a DST change moves on by the
  length of the gap (02:30 becomes 03:30). Either way ``due_at`` is the instant really sent.
* ``monthly`` picks one day per month: ``day: N`` (-1 = the last day; a day beyond the month's
  length = the last day), ``weekday`` + ``nth`` (nth defaults to 1, -1 = the last; a month
  without, say, a 5th Friday has no occurrence), or ``workday: N`` (the Nth working day by the
  calendar, -1 = the last working day). ``quarterly``, ``half_yearly`` and ``yearly`` apply the
  same rule in their ``month`` of each quarter (Jan/Apr/Jul/Oct + month-1), half-year
  (Jan/Jul + month-1) or year. ``weekly`` takes a weekday or a list; ``once`` a date.
* The holiday policy applies when a candidate falls on a day off (a statutory holiday or an
  ordinary weekend; an adjusted working Saturday is a working day): ``next_workday`` and
  ``previous_workday`` move the date and keep the time of day (``Due.original_date`` holds the
  old date), ``skip`` drops it, ``keep`` leaves it. ``workday:`` rules already land on working
  days. A moved occurrence never duplicates another of the same reminder: when it lands on a
  date that already has an occurrence (or another moved one), it is dropped.
* Notices (``notices: [3d, 1d]``): a day span fires on the due date minus N days at the due's
  time of day, moved to the previous working day when that is a day off (a notice never comes
  later than asked); a working-day span (``2wd``) fires N working days before; a span with
  hours or minutes fires exactly that long before the due. Skipped dues have no notices; a
  notice that would fire at or after its due is dropped, and two notices of one due that land
  on the same instant fire once.
* ``Due.provisional`` is true when any day the result depends on comes from the calendar's
  rule-based fallback (a year not yet announced).

Nothing iterates minute by minute: candidates come period by period, and the search windows
are widened only by the runs of days off that a move could cross.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from bot.config import cron
from bot.config.models import DayRule, HolidayPolicy, Reminder, When
from bot.config.spans import Span
from bot.scheduling.workdays import WorkCalendar

DEFAULT_AT = time(9, 0)
DAY = timedelta(days=1)
TICK = timedelta(microseconds=1)
PERIOD_MONTHS = {"monthly": 1, "quarterly": 3, "half_yearly": 6, "yearly": 12}
# next_fire looks this far ahead, widening step by step; a rule that has not fired within
# 30 years (a never-matching cron, a past "once") has no next fire.
SEARCH_WINDOWS_DAYS = (8, 40, 400, 4000, 11000)


@dataclass(frozen=True)
class Due:
    reminder_id: str
    due_at: datetime  # aware, in the reminder's zone, after the holiday policy
    original_date: date | None  # local date before a move; None when not moved
    skipped: bool  # the "skip" policy dropped it (returned only with include_skipped=True)
    provisional: bool  # the calendar for the dates involved is the rule-based fallback
    holiday_name: str | None  # the holiday the original date falls on, if any


@dataclass(frozen=True)
class Fire:
    reminder_id: str
    stage: str  # "due" or "notice:<span>", e.g. "notice:3d"
    fire_at: datetime  # aware
    due: Due
    lead: Span | None


# ---------------------------------------------------------------- candidates


def _local(day: date, at: time, zone: ZoneInfo) -> datetime:
    """The instant of a local wall time; a time skipped by a DST change moves past the gap."""
    return datetime.combine(day, at, tzinfo=zone).astimezone(UTC).astimezone(zone)


def _day_rule(when: When) -> DayRule | None:
    period = when.period
    return getattr(when, period) if period in PERIOD_MONTHS else None


def _day_in_month(rule: DayRule, cal: WorkCalendar, year: int, month: int) -> date | None:
    first = date(year, month, 1)
    length = ((first + timedelta(days=32)).replace(day=1) - first).days
    if rule.day is not None:
        n = rule.day if rule.day > 0 else length + rule.day + 1
        return first.replace(day=min(max(n, 1), length))
    if rule.weekday is not None:
        nth = rule.nth or 1
        if nth > 0:
            n = 1 + (rule.weekday.index - first.weekday()) % 7 + 7 * (nth - 1)
        else:
            last = first.replace(day=length)
            n = length - (last.weekday() - rule.weekday.index) % 7 + 7 * (nth + 1)
        return first.replace(day=n) if 1 <= n <= length else None
    working = cal.workdays_in_month(year, month)
    nth = rule.workday or 1
    index = nth - 1 if nth > 0 else nth
    return working[index] if -len(working) <= index < len(working) else None


def _period_dates(rule: DayRule, step: int, cal: WorkCalendar, first: date, last: date
                  ) -> Iterator[date]:
    offset = (rule.month or 1) - 1
    index = first.year * 12 + first.month - 1
    index -= (index - offset) % step  # back to the period month at or before `first`
    while index <= last.year * 12 + last.month - 1:
        year, month0 = divmod(index, 12)
        found = _day_in_month(rule, cal, year, month0 + 1)
        if found is not None and first <= found <= last:
            yield found
        index += step


def _weekly_dates(when: When, first: date, last: date) -> list[date]:
    assert when.weekly is not None
    chosen = when.weekly.weekday
    weekdays = {w.index for w in (chosen if isinstance(chosen, list) else [chosen])}
    found: list[date] = []
    for wd in weekdays:
        day = first + timedelta(days=(wd - first.weekday()) % 7)
        while day <= last:
            found.append(day)
            day += timedelta(days=7)
    return sorted(found)


_CRON_DAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_CRON_DAY_TOKEN = re.compile(r"^(\*|\d+)(?:-(\d+))?(?:/(\d+))?$")


def _cron_day_token(token: str) -> str:
    """One comma-separated part of the weekday field, numbers read as standard cron."""
    m = _CRON_DAY_TOKEN.match(token)
    if m is None or token == "*":
        return token  # names ("mon-fri") mean the same in both readings
    low, high = (0, 6) if m[1] == "*" else (int(m[1]), int(m[2] or m[1]))
    if m[3] and m[1] != "*" and not m[2]:
        high = 6  # "2/3": from Tuesday on, every third day
    step = int(m[3] or 1)
    if high > 7 or low > high or step < 1:
        raise ValueError(f"cron 表达式的星期段无效：{token}")
    days = dict.fromkeys(_CRON_DAY_NAMES[d % 7] for d in range(low, high + 1, step))
    return ",".join(days)


def standard_weekdays(field: str) -> str:
    """A crontab weekday field in standard numbering (0 or 7 = Sunday) spelled with names.

    Names cannot be misread: APScheduler 3, for one, reads weekday numbers with 0 = Monday
    (its issue #286), so ``1-5`` would fire Tuesday to Saturday there.
    """
    return ",".join(_cron_day_token(part) for part in field.split(","))


def _cron_times(expr: str, zone: ZoneInfo, first: date, last: date) -> Iterator[datetime]:
    """Cron times with a local date in [first, last]; cronsim stops after 50 years unmatched."""
    start = datetime.combine(first - DAY, time(23, 59, 59), tzinfo=zone)
    for fire in cron.iterate(expr, start):
        local = fire.astimezone(zone)
        if local.date() > last:
            return
        if local.date() >= first:
            yield local


def _candidates(reminder: Reminder, cal: WorkCalendar, first: date, last: date
                ) -> Iterator[datetime]:
    """Every time the rule names with a local date in [first, last], before the policy (not ``once``:
    :func:`once_due`)."""
    when, zone = reminder.when, reminder.zone
    if when.cron is not None:
        yield from _cron_times(when.cron, zone, first, last)
        return
    at = when.at or DEFAULT_AT
    if when.weekly is not None:
        days: list[date] | Iterator[date] = _weekly_dates(when, first, last)
    else:
        rule = _day_rule(when)
        assert rule is not None
        days = _period_dates(rule, PERIOD_MONTHS[when.period], cal, first, last)
    for day in days:
        yield _local(day, at, zone)


# ---------------------------------------------------------------- holiday policy


def _provisional(cal: WorkCalendar, a: date, b: date) -> bool:
    """Whether any day between a and b (inclusive, either order) is provisional."""
    day, stop = min(a, b), max(a, b)
    while day <= stop:
        if cal.info(day).provisional:
            return True
        day += DAY
    return False


def _apply_policy(reminder: Reminder, cal: WorkCalendar, candidate: datetime) -> Due:
    day = candidate.date()
    info = cal.info(day)
    rule = _day_rule(reminder.when)
    if rule is not None and rule.workday is not None:
        # The Nth working day depends on every day of the month before it.
        prov = _provisional(cal, day.replace(day=1), day)
        return Due(reminder.id, candidate, None, False, prov, None)
    if info.workday or reminder.holiday is HolidayPolicy.keep:
        return Due(reminder.id, candidate, None, False, info.provisional, info.holiday_name)
    if reminder.holiday is HolidayPolicy.skip:
        return Due(reminder.id, candidate, None, True, info.provisional, info.holiday_name)
    if reminder.holiday is HolidayPolicy.next_workday:
        target = cal.next_workday(day)
    else:
        target = cal.previous_workday(day)
    moved = _local(target, candidate.replace(tzinfo=None).time(), reminder.zone)
    return Due(reminder.id, moved, day, False, _provisional(cal, day, target), info.holiday_name)


def once_due(reminder: Reminder, cal: WorkCalendar) -> Due | None:
    """A one-off reminder's only occurrence after the holiday policy (``due_at`` moved to a working
    day, or ``skipped``), None for a reminder of another rule.

    :func:`due_times` (so the service's timer) and the warnings of a one-off that will not fire
    (bot/config/dated.py: its date past, or skipped) both take it from here, so they cannot disagree."""
    written = once_written(reminder)
    return None if written is None else _apply_policy(reminder, cal, written)


def once_written(reminder: Reminder) -> datetime | None:
    """A one-off reminder's instant as written (its date at its time, default 09:00, in its zone),
    before the holiday policy; None for a reminder of another rule."""
    once = reminder.when.once
    return None if once is None else _local(once, reminder.when.at or DEFAULT_AT, reminder.zone)


def _without_duplicates(dues: list[Due]) -> list[Due]:
    """Drop moved dues landing on a date that already has an occurrence of the reminder."""
    taken = {d.due_at.date() for d in dues if d.original_date is None and not d.skipped}
    kept: list[Due] = []
    for due in dues:
        if due.original_date is not None:
            if due.due_at.date() in taken:
                continue
            taken.add(due.due_at.date())
        kept.append(due)
    return kept


def due_times(reminder: Reminder, cal: WorkCalendar, start: datetime, end: datetime, *,
              include_skipped: bool = False) -> list[Due]:
    """The reminder's occurrences with ``due_at`` in [start, end), sorted."""
    if end <= start:
        return []
    zone = reminder.zone
    first = start.astimezone(zone).date()
    last = (end - TICK).astimezone(zone).date()
    # Widen by the days off a move could cross, so the result does not depend on the window.
    if reminder.holiday is HolidayPolicy.next_workday:
        first -= DAY * cal.non_workday_run(first - DAY, -1)
    elif reminder.holiday is HolidayPolicy.previous_workday:
        last += DAY * cal.non_workday_run(last + DAY, 1)
    if reminder.when.once is not None:
        dues = [d for d in [once_due(reminder, cal)] if d is not None]
    else:
        dues = [_apply_policy(reminder, cal, c) for c in _candidates(reminder, cal, first, last)]
    dues = _without_duplicates(dues)
    return sorted(
        (d for d in dues if start <= d.due_at < end and (include_skipped or not d.skipped)),
        key=lambda d: d.due_at,
    )


# ---------------------------------------------------------------- notices and fires


def _notice_time(cal: WorkCalendar, due: Due, span: Span, zone: ZoneInfo) -> datetime:
    if span.hours or span.minutes:
        return (due.due_at.astimezone(UTC) - span.delta).astimezone(zone)
    due_day, at = due.due_at.date(), due.due_at.replace(tzinfo=None).time()
    if span.workdays:
        day = cal.add_workdays(due_day, -span.workdays)
    else:
        day = cal.previous_workday(due_day - timedelta(days=span.days), include_self=True)
    return _local(day, at, zone)


def _due_horizon(reminder: Reminder, cal: WorkCalendar, end: datetime) -> datetime:
    """The latest due time whose notices could still fire before ``end``."""
    horizon = end
    last = end.astimezone(reminder.zone).date()
    for span in reminder.notices:
        if span.hours or span.minutes:
            reach = end + span.delta
        elif span.workdays:
            reach = _local(cal.add_workdays(last, span.workdays + 1), time(0), reminder.zone)
        else:
            # A day notice moves earlier across days off, so its due can lie further out.
            extra = span.days + cal.non_workday_run(last + DAY, 1) + 1
            reach = end + timedelta(days=extra)
        horizon = max(horizon, reach)
    return horizon


def _fires_of(reminder: Reminder, cal: WorkCalendar, due: Due) -> Iterator[Fire]:
    yield Fire(reminder.id, "due", due.due_at, due, None)
    seen: set[datetime] = set()
    for span in reminder.notices:
        at = _notice_time(cal, due, span, reminder.zone)
        if at >= due.due_at or at in seen:
            continue
        seen.add(at)
        yield Fire(reminder.id, f"notice:{span}", at, due, span)


def fires(reminder: Reminder, cal: WorkCalendar, start: datetime, end: datetime) -> list[Fire]:
    """Everything the reminder sends with ``fire_at`` in [start, end), notices included, sorted."""
    if end <= start:
        return []
    found = [
        fire
        for due in due_times(reminder, cal, start, _due_horizon(reminder, cal, end))
        for fire in _fires_of(reminder, cal, due)
        if start <= fire.fire_at < end
    ]
    return sorted(found, key=lambda f: (f.fire_at, f.due.due_at, f.stage))


def next_fire(reminder: Reminder, cal: WorkCalendar, after: datetime) -> Fire | None:
    """The first fire strictly after ``after``, or None if there is none within 30 years."""
    start = after + TICK
    for days in SEARCH_WINDOWS_DAYS:
        found = fires(reminder, cal, start, start + timedelta(days=days))
        if found:
            return found[0]
    return None
