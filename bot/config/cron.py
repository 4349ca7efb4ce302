"""Cron expressions: checked here for the YAML models, computed with cronsim for the timing code.

cronsim (the library healthchecks uses) implements cron as Debian's cron runs it:

* five fields, minute hour day-of-month month day-of-week; weekday numbers 0 or 7 = Sunday,
  names (``mon-fri``, ``jan``) mean the same, in any case;
* ``MON#1`` is the first Monday of the month, ``5L`` the last Friday, ``L`` in the day field the
  last day of the month, ``LW`` its last weekday;
* in a zone with daylight saving time, a job at a fixed hour and minute runs once a day: a time
  repeated when the clocks go back runs at its first occurrence, a time skipped when they go
  forward runs at the first minute that exists (so a midnight job in a zone whose clocks jump
  at midnight runs at 01:00 that day, not never).

Forms that are not cron's, or that surely do not say what the admin meant, are refused with a
Chinese sentence that suggests the readable form; the library's own words follow in brackets.
This module needs nothing from the timing code, so the YAML models can import it freely.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from itertools import pairwise

from cronsim import CronSim, CronSimError

FIELDS_ZH = ("分", "时", "日", "月", "周")
_SUGGEST = (
    "也可改用易读写法，例如每月第一个周一：monthly: {weekday: mon, nth: 1}；"
    "每月最后一天：monthly: {day: -1}；每周五：weekly: {weekday: fri}"
)
_MACRO = re.compile(r"^@\w+$")


def check(expr: str) -> None:
    """Raise ``ValueError`` (Chinese, for the admin) unless ``expr`` is a cron expression we run."""
    text = " ".join(expr.split())
    if _MACRO.match(text):
        raise ValueError(f"cron 表达式“{text}”请写成 5 段（分 时 日 月 周），例如 \"0 9 * * fri\"；{_SUGGEST}")
    fields = text.split(" ") if text else []
    if len(fields) != 5:
        raise ValueError(
            f"cron 表达式“{text}”应有 5 段（分 时 日 月 周），现在有 {len(fields)} 段；"
            "不支持秒和年，例如每周五 9 点写 \"0 9 * * fri\""
        )
    for name, field in zip(FIELDS_ZH, fields, strict=True):
        if "?" in field:
            raise ValueError(f"cron 表达式“{text}”的“{name}”段含 Quartz 写法“?”，标准 cron 用 “*”；{_SUGGEST}")
        if re.search(r"\dW", field, re.IGNORECASE):
            raise ValueError(f"cron 表达式“{text}”的“{name}”段含“W”（最近工作日），不受支持；{_SUGGEST}")
    if fields[2] != "*" and fields[4] != "*" and not fields[2].startswith("*") and not fields[4].startswith("*"):
        # Standard cron fires when EITHER field matches ("0 9 1-7 * mon" = days 1-7 and every
        # Monday); admins who write both almost always mean "the first Monday". Refuse it.
        raise ValueError(
            f"cron 表达式“{text}”同时限定了“日”和“周”：标准 cron 在两者任一符合时都会发送"
            "（例如 “1-7 * mon” 是每月 1–7 日加上每个周一），多半不是本意；"
            f"请拆成两个提醒，或改用 monthly / weekly 写法。{_SUGGEST}"
        )
    try:
        CronSim(text, datetime(2026, 1, 1))
    except CronSimError as exc:
        raise ValueError(_explain(text, fields, str(exc))) from None
    except (ValueError, IndexError):  # malformed pieces the library does not word itself
        raise ValueError(f"cron 表达式“{text}”无法识别：应为 5 段（分 时 日 月 周），每段写数字、*、"
                         "用 , 列举、用 - 表示范围、用 / 表示间隔，例如 \"30 8 * * mon-fri\"") from None


# What each field takes, in the words of the error; the readable forms are suggested only for the
# day fields, where they are what the admin most likely wanted.
_ALLOWED = {
    "minute": ("分", "0–59 的整数"),
    "hour": ("时", "0–23 的整数（24 小时制）"),
    "day-of-month": ("日", "1–31 的整数，或 L（月末）、LW（月末最后一个工作日）"),
    "month": ("月", "1–12 的整数，或 jan–dec"),
    "day-of-week": ("周", "0–7 的整数（0 和 7 都是周日），或 sun–sat；mon#1 表示第一个周一，5L 表示最后一个周五"),
}


def _explain(text: str, fields: list[str], message: str) -> str:
    """One Chinese sentence for a cronsim error (``Bad minute``…): the field, what it holds, what it takes."""
    lib = next((name for name in _ALLOWED if message.endswith(name)), None)
    if lib is None:
        return f"cron 表达式“{text}”无效：应为 5 段（分 时 日 月 周），例如 \"0 9 * * fri\""
    zh, allowed = _ALLOWED[lib]
    written = fields[FIELDS_ZH.index(zh)]
    if lib == "day-of-month" and _within_days(written):
        return (f"cron 表达式“{text}”的“日”段“{written}”在所选的月份里不存在（例如 2 月没有 30、31 日），"
                f"永远不会发送；每月最后一天请写 L。{_SUGGEST}")
    sentence = f"cron 表达式“{text}”的“{zh}”段“{written}”无效：{zh}应为 {allowed}；可用 , 列举、- 表示范围、/ 表示间隔"
    if lib in ("day-of-month", "day-of-week"):
        sentence += f"。{_SUGGEST}"
    return sentence


def _within_days(field: str) -> bool:
    """The day field is made of plain day numbers 1–31 (so the fault is the months chosen)."""
    terms = re.split(r"[,\-]", field)
    return all(t.isdigit() and 1 <= int(t) <= 31 for t in terms)


def shortest_gap_days(expr: str, *, start: datetime | None = None, samples: int = 400,
                      span_days: int = 4 * 366) -> float | None:
    """The smallest gap between consecutive fire times (days, fractional), over a sample.

    The sample is at most ``samples`` fire times within ``span_days`` of ``start`` (default
    2026-01-01 UTC); None when fewer than two fire in it (a valid expression always fires again).
    """
    begin = start or datetime(2026, 1, 1, tzinfo=UTC)
    end = begin + timedelta(days=span_days)
    times: list[datetime] = []
    for t in CronSim(normalized(expr), begin):
        if t > end or len(times) >= samples:
            break
        times.append(t)
    gaps = [(b - a).total_seconds() / 86400 for a, b in pairwise(times)]
    return min(gaps) if gaps else None


def normalized(expr: str) -> str:
    """The expression with runs of whitespace collapsed (what :class:`CronSim` is given)."""
    return " ".join(expr.split())


def iterate(expr: str, after: datetime) -> CronSim:
    """Cron times strictly after ``after`` (aware, in the reminder's zone), ascending, aware.

    A time skipped by a DST change comes out as the first minute that exists after it (the
    time the message is really sent); the iterator stops after 50 years without a match.
    """
    return CronSim(normalized(expr), after)
