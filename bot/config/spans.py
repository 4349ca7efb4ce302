"""Small value types used in the YAML: durations ("3d", "2h30m", "3wd") and times of day."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import time, timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

from bot.config.ime import ime_hint, shown_value

_SPAN_RE = re.compile(r"^(?:(?P<wd>\d+)wd|(?:(?P<d>\d+)d)?(?:(?P<h>\d+)h)?(?:(?P<m>\d+)m)?)$")


@dataclass(frozen=True)
class Span:
    """A length of time: calendar days/hours/minutes, or a number of working days."""

    days: int = 0
    hours: int = 0
    minutes: int = 0
    workdays: int = 0

    @property
    def delta(self) -> timedelta:
        return timedelta(days=self.days, hours=self.hours, minutes=self.minutes)

    def __str__(self) -> str:
        if self.workdays:
            return f"{self.workdays}wd"
        parts = [f"{v}{u}" for v, u in ((self.days, "d"), (self.hours, "h"), (self.minutes, "m")) if v]
        return "".join(parts) or "0m"

    def describe(self) -> str:
        """Chinese wording for messages: "3天", "2小时", "3个工作日"."""
        if self.workdays:
            return f"{self.workdays}个工作日"
        parts = [f"{v}{u}" for v, u in ((self.days, "天"), (self.hours, "小时"), (self.minutes, "分钟")) if v]
        return "".join(parts) or "0分钟"


def parse_span(value: Any) -> Span:
    if isinstance(value, Span):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        # A bare number has no unit: days and working days are both meant in practice.
        raise ValueError(f"时长 {value} 缺少单位：写成 {value}d（天）或 {value}wd（工作日）")
    if not isinstance(value, str):
        raise ValueError("应为时长，例如 3d（3天）、2h（2小时）、30m（30分钟）或 3wd（3个工作日）")
    m = _SPAN_RE.match(value.strip())
    if not m or not any(m.groupdict().values()):
        if any(comma in value for comma in "，、"):  # [3d，1d]: YAML saw one item
            items = ", ".join(part.strip() for part in re.split("[，、]", value))
            raise ValueError(f"无法识别的时长 “{value}”：列表的各项之间用了中文逗号 “，”，YAML 把它们读成了一项；"
                             f"请改成英文逗号 “,”（写成 [{items}]）")
        weeks = re.fullmatch(r"\s*(\d+)\s*(w|周|星期)\s*", value)
        hint = f"；{weeks[1]} 周请写 {int(weeks[1]) * 7}d（或 {int(weeks[1]) * 5}wd，按工作日）" if weeks else ""
        raise ValueError(f"无法识别的时长 {shown_value(value)}{ime_hint(value)}："
                         f"应写成 3d、1d12h、2h、30m 或 3wd（3个工作日）{hint}")
    g = {k: int(v) for k, v in m.groupdict().items() if v}
    return Span(days=g.get("d", 0), hours=g.get("h", 0), minutes=g.get("m", 0), workdays=g.get("wd", 0))


def parse_time_of_day(value: Any) -> time:
    if isinstance(value, time):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        # YAML 1.1 reads 09:00 unquoted as the sexagesimal number 540.
        hours, minutes = divmod(value, 60)
        if 0 <= hours < 24:
            return time(hours, minutes)
    if isinstance(value, str):
        m = re.fullmatch(r"(\d{1,2}):(\d{2})", value.strip())
        if m and int(m[1]) < 24 and int(m[2]) < 60:
            return time(int(m[1]), int(m[2]))
    shown = f"{shown_value(value)}{ime_hint(value)}" if isinstance(value, str) else str(value)  # a number: as is
    raise ValueError(f"应为一天中的时刻，写成 HH:MM，例如 \"09:00\"，而不是 {shown}")


SpanField = Annotated[
    Span,
    BeforeValidator(parse_span),
    PlainSerializer(str, return_type=str),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": r"^(\d+wd|(\d+d)?(\d+h)?(\d+m)?)$",
            "description": "时长：3d=3天，2h=2小时，30m=30分钟，1d12h，3wd=3个工作日",
        }
    ),
]

TimeOfDay = Annotated[
    time,
    BeforeValidator(parse_time_of_day),
    PlainSerializer(lambda t: t.strftime("%H:%M"), return_type=str),
    WithJsonSchema(
        {"type": "string", "pattern": r"^\d{1,2}:\d{2}$", "description": "时刻 HH:MM，例如 \"09:00\""}
    ),
]
