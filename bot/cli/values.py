"""The values commands take that the admin reads somewhere: record and message numbers, days.

Each is refused while the command line is read (click's usage error: exit code 2, a Chinese line naming
the argument or option), so a number too large for the id columns or a day outside the years the
service works in never reaches the database driver or the calendar's arithmetic, which would end in a
traceback (``OverflowError``).
"""

from __future__ import annotations

from datetime import datetime

import click

from bot.config.limits import MAX_YEAR, MIN_YEAR
from storage.ids import ID_MAX, row_id


class Number(click.ParamType):
    """A row's number (1..:data:`storage.ids.ID_MAX`) the admin reads somewhere (``where``), with a
    Chinese error naming it otherwise."""

    name = "integer"

    def __init__(self, name: str, where: str) -> None:
        self.label, self.where = name, where

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int) and row_id(value):
            return value
        text = str(value).strip()
        if row_id(text):
            return int(text)
        digits = text.isascii() and text.isdigit()  # 0, or too large for the id columns
        what = f"“{text}” 超出范围" if digits else f"“{text}”不是{self.label}"
        self.fail(f"{what}：{self.label}是 1–{ID_MAX} 之间的整数，{self.where}。", param, ctx)


RECORD_NUMBER = Number("记录号", "可用 remindbot status 查看")  # as `remindbot status` prints it
MESSAGE_NUMBER = Number("消息编号", "见管理后台“消息投递”页")


class Day(click.DateTime):
    """A day written YYYY-MM-DD in the years :data:`MIN_YEAR`..:data:`MAX_YEAR` (as ``report --period``
    takes), a ``datetime`` at its midnight; another year is a usage error naming the option."""

    def __init__(self) -> None:
        super().__init__(["%Y-%m-%d"])

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> datetime:
        day: datetime = super().convert(value, param, ctx)
        if not MIN_YEAR <= day.year <= MAX_YEAR:
            self.fail(f"日期 “{value}” 的年份应在 {MIN_YEAR}–{MAX_YEAR} 之间。", param, ctx)
        return day


DAY = Day()
