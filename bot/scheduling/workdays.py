"""Which days are working days in China: statutory holidays and adjusted working days (调休).

Three sources, strongest first:

1. the admin's overrides from ``schedules/`` (:class:`~bot.config.models.CalendarOverrides`):
   extra holidays and extra working days; a date listed as both counts as a working day, so a
   range of holidays can carve out one working day;
2. the ``chinesecalendar`` package, which holds the State Council's announced arrangements for
   the years it covers (found from its data, not hard-coded);
3. for any other year, unless the admin lists it in ``covered_years``: statutory holidays
   computed by rule with the ``holidays`` package, and weekends. Adjusted working days cannot
   be computed by rule, so none are known. Every day from this fallback is ``provisional``.

A year in ``covered_years`` beyond the package's data is taken as the admin's overrides plus
ordinary weekends, and is not provisional. Results are cached per year, and the rule-computed
holidays also on disk (:func:`keep_rule_holidays_in`, beside the schedules snapshot, keyed by the
``holidays`` package's version): loading that package's calendars costs a command 0.2-0.5 s.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import chinese_calendar

from bot.config.models import CalendarOverrides, DateEntry, DateRange, NamedDate

# The packages name holidays in English; users read Chinese.
HOLIDAY_ZH = {
    "New Year's Day": "元旦",
    "Spring Festival": "春节",
    "Chinese New Year (Spring Festival)": "春节",
    "Chinese New Year's Eve": "除夕",
    "Tomb-sweeping Day": "清明节",
    "Tomb-Sweeping Day": "清明节",
    "Labour Day": "劳动节",
    "Labor Day": "劳动节",
    "Dragon Boat Festival": "端午节",
    "Mid-autumn Festival": "中秋节",
    "Mid-Autumn Festival": "中秋节",
    "National Day": "国庆节",
    "Anti-Fascist 70th Day": "中国人民抗日战争暨世界反法西斯战争胜利70周年纪念日",
}
OVERRIDE_HOLIDAY_NAME = "节假日"  # an admin-entered holiday without a name
SEARCH_LIMIT_DAYS = 3660  # no real calendar has ten years without a working day


@dataclass(frozen=True)
class DayInfo:
    """One local date as the calendar sees it.

    ``holiday_name`` is set only for days off that are holidays (never for working days or
    ordinary weekends). ``adjusted_workday`` marks a Saturday or Sunday that is a working day.
    """

    day: date
    workday: bool
    holiday_name: str | None
    adjusted_workday: bool
    provisional: bool


def zh_holiday_name(name: str) -> str:
    """Chinese name for a holiday name from either package; unknown names pass through."""
    observed = name.endswith(" (observed)")
    base = name.removesuffix(" (observed)")
    zh = HOLIDAY_ZH.get(base, base)
    return f"{zh}（补假）" if observed else zh


@cache
def package_years() -> tuple[int, int]:
    """First and last year the chinesecalendar package has announced data for."""
    days = [*chinese_calendar.holidays, *chinese_calendar.workdays]
    years = {d.year for d in days}
    return min(years), max(years)


# where computed years are kept ("file"; None: memory only), named on first use from "folder"
_RULE_STORE: dict[str, Path | None] = {"file": None, "folder": None}


def keep_rule_holidays_in(folder: Path | None) -> None:
    """Keep the rule-computed holidays of each year in ``folder`` (a cache: unreadable means absent)."""
    _RULE_STORE.update(file=None, folder=folder)


def _rule_file() -> Path | None:
    """The file of computed years. Named by the ``holidays`` package's version, read only when a year
    needs the rules: reading that version (its metadata) cost every command 4 ms, most need no rule."""
    folder = _RULE_STORE["folder"]
    if _RULE_STORE["file"] is None and folder is not None:
        try:
            _RULE_STORE["file"] = folder / f"rule-holidays-{version('holidays')}.json"
        except PackageNotFoundError:
            _RULE_STORE["folder"] = None
    return _RULE_STORE["file"]


def _stored_years() -> dict[str, dict[str, str]]:
    where = _rule_file()
    if where is None:
        return {}
    try:
        data = json.loads(where.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _store_year(year: int, days: dict[date, str]) -> None:
    where = _rule_file()
    if where is None:
        return
    data = _stored_years() | {str(year): {d.isoformat(): name for d, name in days.items()}}
    try:
        where.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=where.parent, prefix=".tmp-", delete=False,
                                         encoding="utf-8") as handle:
            json.dump(data, handle, ensure_ascii=False)
        os.replace(handle.name, where)
    except OSError:
        pass  # only a cache


@cache
def _rule_holidays(year: int) -> dict[date, str]:
    """Statutory holidays of a year computed by rule (lunar dates included), Chinese names."""
    stored = _stored_years().get(str(year))
    if isinstance(stored, dict):
        try:
            return {date.fromisoformat(d): str(name) for d, name in stored.items()}
        except (TypeError, ValueError):
            pass
    try:
        import holidays as holidays_lib  # its calendars load in 0.2-0.5 s: only for a year not kept

        computed = holidays_lib.China(years=year, language="zh_CN")
    except Exception:  # an unsupported year must not take the service down; weekends remain
        return {}
    days = {day: zh_holiday_name(str(name)) for day, name in computed.items()}
    _store_year(year, days)
    return days


def _expand(entries: Iterable[DateEntry]) -> Iterator[tuple[date, str | None]]:
    for entry in entries:
        if isinstance(entry, DateRange):
            day = entry.start
            while day <= entry.end:
                yield day, entry.name
                day += timedelta(days=1)
        elif isinstance(entry, NamedDate):
            yield entry.date, entry.name
        else:
            yield entry, None


class WorkCalendar:
    """Working days in China, with admin overrides and a provisional fallback."""

    def __init__(self, overrides: CalendarOverrides | None = None) -> None:
        overrides = overrides or CalendarOverrides()
        self._extra_holidays = dict(_expand(overrides.holidays))
        self._extra_workdays = dict(_expand(overrides.workdays))
        self._covered_years = frozenset(overrides.covered_years)
        self._first, self._last = package_years()
        self._years: dict[int, list[DayInfo]] = {}
        self._days: dict[date, DayInfo] = {}  # every day of the years built so far
        self._month_workdays: dict[tuple[int, int], list[date]] = {}

    # ------------------------------------------------------------ coverage

    @property
    def package_range(self) -> tuple[int, int]:
        """First and last year of announced data in the installed chinesecalendar."""
        return self._first, self._last

    def uses_fallback(self, year: int) -> bool:
        return not (self._first <= year <= self._last) and year not in self._covered_years

    def uncovered_years(self, start: date, end: date) -> list[int]:
        """Years in [start, end] whose days come from the rule-based fallback."""
        return [y for y in range(start.year, end.year + 1) if self.uses_fallback(y)]

    def coverage_note(self, *years: int) -> str:
        """One Chinese sentence for admins saying that ``years`` are computed provisionally."""
        early = "、".join(str(y) for y in years if y < self._first)
        late = "、".join(str(y) for y in years if y >= self._first)
        notes = []
        if early:
            notes.append(
                f"{early} 年早于日历数据范围（{self._first}–{self._last} 年），"
                "暂按规则推算的节假日和周末处理，结果为临时安排；"
                "如需准确，请在 schedules 的 calendar 中补充。"
            )
        if late:
            notes.append(
                f"{late} 年的法定节假日安排尚未收录（国务院通常在上一年 11–12 月公布），暂按规则推算的"
                "节假日和周末处理，结果为临时安排；公布后请升级 chinesecalendar 或在 schedules 的 "
                "calendar 中补充。"
            )
        return "".join(notes)

    # ------------------------------------------------------------ single days

    def info(self, day: date) -> DayInfo:
        found = self._days.get(day)
        if found is None:
            self._table(day.year)
            found = self._days[day]
        return found

    def is_workday(self, day: date) -> bool:
        return self.info(day).workday

    def _build_year(self, year: int) -> list[DayInfo]:
        fallback = self.uses_fallback(year)
        in_package = self._first <= year <= self._last
        rule = _rule_holidays(year) if fallback else {}
        days: list[DayInfo] = []
        day = date(year, 1, 1)
        while day.year == year:
            days.append(self._day(day, in_package=in_package, fallback=fallback, rule=rule))
            day += timedelta(days=1)
        return days

    def _day(
        self, day: date, *, in_package: bool, fallback: bool, rule: dict[date, str]
    ) -> DayInfo:
        weekend = day.weekday() >= 5
        if day in self._extra_workdays:
            return DayInfo(day, True, None, weekend, provisional=False)
        if day in self._extra_holidays:
            name = self._extra_holidays[day] or OVERRIDE_HOLIDAY_NAME
            return DayInfo(day, False, name, False, provisional=False)
        if in_package:
            if day in chinese_calendar.workdays:
                return DayInfo(day, True, None, weekend, provisional=False)
            holiday = chinese_calendar.holidays.get(day)
            if holiday is not None:
                # The data holds plain strings in 1.11; older releases held Holiday members.
                english = str(getattr(holiday, "value", holiday))
                return DayInfo(day, False, zh_holiday_name(english), False, provisional=False)
            return DayInfo(day, not weekend, None, False, provisional=False)
        name = rule.get(day)
        return DayInfo(day, name is None and not weekend, name, False, provisional=fallback)

    def listed_holiday(self, day: date) -> bool:
        """Whether ``day`` is off because the admin's ``calendar.holidays`` lists it (not the State Council)."""
        return day in self._extra_holidays and day not in self._extra_workdays

    # ------------------------------------------------------------ arithmetic

    def next_workday(self, day: date, *, include_self: bool = False) -> date:
        return self._step_to_workday(day, 1, include_self)

    def previous_workday(self, day: date, *, include_self: bool = False) -> date:
        return self._step_to_workday(day, -1, include_self)

    def _step_to_workday(self, day: date, step: int, include_self: bool) -> date:
        if include_self and self.is_workday(day):
            return day
        one = timedelta(days=step)
        for _ in range(SEARCH_LIMIT_DAYS):
            day += one
            if self.is_workday(day):
                return day
        raise ValueError(f"{day} 前后十年内没有工作日，请检查 calendar 中的放假日期")

    def add_workdays(self, day: date, n: int) -> date:
        """The date ``n`` working days after ``day`` (before it when n < 0); n == 0 is ``day``."""
        step = 1 if n > 0 else -1
        for _ in range(abs(n)):
            day = self._step_to_workday(day, step, include_self=False)
        return day

    def workdays_in_month(self, year: int, month: int) -> list[date]:
        key = (year, month)
        found = self._month_workdays.get(key)
        if found is None:
            first = date(year, month, 1)
            table = self._table(year)
            start = first.timetuple().tm_yday - 1
            found = [i.day for i in table[start : start + 31] if i.day.month == month and i.workday]
            self._month_workdays[key] = found
        return list(found)

    def _table(self, year: int) -> list[DayInfo]:
        table = self._years.get(year)
        if table is None:
            table = self._years[year] = self._build_year(year)
            self._days.update((i.day, i) for i in table)
        return table

    def non_workday_run(self, day: date, step: int) -> int:
        """How many consecutive days off start at ``day`` going by ``step`` (+1 or -1)."""
        count = 0
        one = timedelta(days=step)
        while count < SEARCH_LIMIT_DAYS and not self.is_workday(day):
            count += 1
            day += one
        return count
