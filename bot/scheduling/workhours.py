"""Working windows: when follow-ups and escalations may be sent.

``Settings.work_hours`` lists the windows of a working day in local time, e.g.
``"09:00-12:00,14:00-18:00"``. A moment is inside when its local date is a working day by the
calendar (statutory holidays off, adjusted working Saturdays and Sundays on) and its local time
falls in a window (start included, end excluded). Pure functions: ``now`` is always passed in.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from typing import Protocol
from zoneinfo import ZoneInfo

from bot.config.zone import DEFAULT_TZ

DEFAULT_ZONE = ZoneInfo(DEFAULT_TZ)
_WINDOW = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")
SEARCH_LIMIT_DAYS = 3660  # the calendar itself refuses ten years without a working day


class Calendar(Protocol):
    def is_workday(self, day: date) -> bool: ...


def _clock(hours: str, minutes: str, text: str) -> time:
    h, m = int(hours), int(minutes)
    if h == 24 and m == 0:
        return time.max  # "18:00-24:00": until midnight
    if h > 23 or m > 59:
        raise ValueError(f"工作时间 “{text}” 中的时刻无效，应为 HH:MM，例如 09:00")
    return time(h, m)


@dataclass(frozen=True)
class WorkHours:
    """Ordered, non-overlapping windows of a working day, as (start, end) local times."""

    windows: tuple[tuple[time, time], ...]

    @classmethod
    def parse(cls, text: str) -> WorkHours:
        """Parse ``"09:00-12:00,14:00-18:00"``; a bad value raises ValueError in Chinese."""
        windows: list[tuple[time, time]] = []
        for part in text.split(","):
            m = _WINDOW.match(part)
            if not m:
                raise ValueError(f"无法识别工作时间 “{part.strip()}”：应写成 09:00-12:00,14:00-18:00")
            start, end = _clock(m[1], m[2], part.strip()), _clock(m[3], m[4], part.strip())
            if start == time.max or end <= start:
                raise ValueError(f"工作时间 “{part.strip()}” 的结束时刻应晚于开始时刻")
            windows.append((start, end))
        windows.sort()
        for (_, end), (start, _) in pairwise(windows):
            if start < end:
                raise ValueError(f"工作时间 “{text}” 中的时段相互重叠")
        return cls(tuple(windows))

    def in_window(self, moment: datetime, calendar: Calendar, zone: ZoneInfo = DEFAULT_ZONE) -> bool:
        local = _aware(moment).astimezone(zone)
        if not calendar.is_workday(local.date()):
            return False
        clock = local.time().replace(tzinfo=None)
        return any(start <= clock < end for start, end in self.windows)

    def next_window(self, moment: datetime, calendar: Calendar,
                    zone: ZoneInfo = DEFAULT_ZONE) -> datetime:
        """``moment`` itself when inside a window, else the start of the next window.

        The result has ``moment``'s kind: aware in moment's zone, or naive UTC for naive UTC.
        """
        if self.in_window(moment, calendar, zone):
            return moment
        local = _aware(moment).astimezone(zone)
        day = local.date()
        clock = local.time().replace(tzinfo=None)
        for _ in range(SEARCH_LIMIT_DAYS):
            if calendar.is_workday(day):
                for start, _end in self.windows:
                    if day > local.date() or start >= clock:
                        return _like(datetime.combine(day, start, tzinfo=zone), moment)
            day += timedelta(days=1)
        raise ValueError(f"{local.date()} 之后十年内没有工作时间，请检查日历设置")


def _aware(moment: datetime) -> datetime:
    """Naive datetimes are UTC throughout the project (that is how the database stores them)."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _like(result: datetime, moment: datetime) -> datetime:
    if moment.tzinfo is None:
        return result.astimezone(UTC).replace(tzinfo=None)
    return result.astimezone(moment.tzinfo)
