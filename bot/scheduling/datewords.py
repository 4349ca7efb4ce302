"""Dates and times in the words admins and users read (Chinese), with nothing heavy to import.

``bot.delivery.compose`` re-exports these; commands that only show dates (``remindbot upcoming``) import
this module instead, so they do not load the message-building and database code.
"""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

from bot.config.models import WEEKDAY_ZH, Weekday
from bot.scheduling.stages import stage_words


def date_text(day: date) -> str:
    """``2026年12月4日``."""
    return f"{day.year}年{day.month}月{day.day}日"


def weekday_text(day: date) -> str:
    """``星期五``."""
    return WEEKDAY_ZH[list(Weekday)[day.weekday()].value]


def when_text(moment: datetime, zone: ZoneInfo) -> str:
    """``2026年12月4日（星期五）09:00`` in ``zone``."""
    local = moment.astimezone(zone)
    return f"{date_text(local.date())}（{weekday_text(local.date())}）{local:%H:%M}"


def short_when(moment: datetime, zone: ZoneInfo) -> str:
    """``12月1日 09:00`` in ``zone`` (as a 补发 message names its original time)."""
    local = moment.astimezone(zone)
    return f"{local.month}月{local.day}日 {local:%H:%M}"


def ahead_text(when: str | None, by: str | None) -> str:
    """How an occurrence fired ahead of its day (``remindbot fire --date``) is said everywhere (status,
    boards, ``upcoming``, the admin pages, the logs): ``已于 <when> 由 zhangsan 在命令行提前发出``.

    ``when``: the time it went out, already in words (None: not known, ``已由 zhangsan 在命令行提前发出``);
    ``by``: who fired it (``occurrence.fired_by``, since 0009; None on older rows: no name, no way)."""
    at = f"已于 {when} " if when else "已"
    return f"{at}由 {by} 在命令行提前发出" if by else f"{at}提前发出"


def unsent_text(stage: str | None = None) -> str:
    """What the service no longer sends once an occurrence went out ahead of its day, in one wording
    everywhere: for the whole occurrence (``stage`` None; status, boards, ``upcoming``)
    ``届时不再发送预告和当天提醒``; for one stage (a preview, a log line about one fire) that stage named,
    ``届时不再发送提前1天通知``, ``届时不再发送当天提醒``."""
    return f"届时不再发送{stage_words(stage) if stage else '预告和当天提醒'}"


def ahead_line(when: str | None, by: str | None, stage: str | None = None) -> str:
    """:func:`ahead_text` then :func:`unsent_text`:
    ``已于 <when> 由 zhangsan 在命令行提前发出，届时不再发送预告和当天提醒``."""
    return f"{ahead_text(when, by)}，{unsent_text(stage)}"
