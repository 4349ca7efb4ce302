"""Checks for settings that are valid YAML and valid types but surely not what the admin meant.

Each finding is a :class:`ConfigIssue` at the line of the value: an error when the result would
be wrong (a notice that announces the next occurrence before the current one, a webhook of
another platform), a warning when the result is defined but maybe surprising (30 February means
the last day of February).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from itertools import pairwise
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from bot.config import cron
from bot.config.dated import OnceDate
from bot.config.models import DayRule, Reminder, When
from bot.config.spans import Span
from bot.config.yamlsource import ConfigIssue, dotted, locate_path_in
from bot.platforms.registry import EDITIONS, platform_word, same_folder

if TYPE_CHECKING:
    from bot.config.loader import Parsed

# The hosts each platform's robots live on; a webhook on another platform's host is a copy-paste
# mistake. Hosts not listed here (private deployments, government editions) are accepted.
# Each platform declares its hosts in its spec.py (bot/platforms/registry.py collects them).
KNOWN_HOSTS: dict[str, tuple[str, ...]] = {e.name: e.robot_hosts for e in EDITIONS.values() if e.robot_hosts}

# The shortest time between two occurrences of each period, in days.
_SHORTEST_GAP = {"monthly": 28, "quarterly": 89, "half_yearly": 181, "yearly": 365}
_PERIOD_WORDS = {"cron": "cron 表达式", "weekly": "每周", "monthly": "每月", "quarterly": "每季度",
                 "half_yearly": "每半年", "yearly": "每年"}
_MONTH_DAYS = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)  # February: non-leap years


def check_sense(parsed: Sequence[Parsed], issues: list[ConfigIssue]) -> None:
    """Append the errors and warnings for every valid reminder and channel of each file (a one-off
    date already past depends on the day: :func:`once_dates`, bot/config/dated.py)."""
    for p in parsed:
        for i, reminder in p.items("reminders"):
            _notices(p, ("reminders", i), reminder, issues)
            _confirm_timing(p, ("reminders", i, "confirm"), reminder, issues)
            _day_beyond_month(p, ("reminders", i, "when"), reminder.when, issues)
        for i, channel in p.items("channels"):
            _webhook(p, ("channels", i), channel, issues)


def _issue(p: Parsed, path: tuple[Any, ...], message: str, *, warning: bool = False) -> ConfigIssue:
    line, col = locate_path_in(path, p.doc.tree)
    return ConfigIssue(p.doc.label, line, col, dotted(path), message, warning=warning)


def shortest_gap_days(when: When) -> float | None:
    """The fewest days between two occurrences (cron: over a sample of its fire times), or None (once)."""
    if when.cron is not None:
        return cron.shortest_gap_days(when.cron)
    if when.weekly is not None:
        days = when.weekly.weekday if isinstance(when.weekly.weekday, list) else [when.weekly.weekday]
        picked = sorted({d.index for d in days})
        gaps = [b - a for a, b in pairwise(picked)] + [picked[0] + 7 - picked[-1]]
        return min(gaps)
    return _SHORTEST_GAP.get(when.period)


def _lead_days(span: Span) -> float:
    """A notice's lead in days, at least (a working day is at least a calendar day)."""
    return span.workdays or span.delta.total_seconds() / 86400


def once_dates(parsed: Sequence[Parsed]) -> list[OnceDate]:
    """Every enabled one-off reminder and where its date is written: the warnings of a one-off that will
    not fire (its day past, or skipped) are worked out from these whenever shown
    (:func:`bot.config.dated.as_of`), not once at the check."""
    out = []
    for p in parsed:
        for i, reminder in p.items("reminders"):
            if reminder.when.once is not None and reminder.enabled:
                place = _issue(p, ("reminders", i, "when", "once"), "", warning=True)
                out.append(OnceDate(place, reminder.when.once, reminder.zone, reminder))
    return out


def _notices(p: Parsed, at: tuple[Any, ...], r: Reminder, issues: list[ConfigIssue]) -> None:
    gap = shortest_gap_days(r.when)
    if gap is None:
        return
    for k, lead in enumerate(r.notices):
        if _lead_days(lead) >= gap:
            issues.append(_issue(p, (*at, "notices", k),
                                 f"提前通知 {lead}（{lead.describe()}）不短于提醒本身的周期"
                                 f"（{_PERIOD_WORDS[r.when.period]}，两次之间最短 {_gap_words(gap)}）：会在上一次提醒"
                                 f"之前就通知下一次；{_shorter(gap)}"))


# Follow-ups more often than this are nagging, not reminding (they run in working hours, every interval).
SHORTEST_FOLLOWUP = timedelta(hours=1)


def _confirm_timing(p: Parsed, at: tuple[Any, ...], r: Reminder, issues: list[ConfigIssue]) -> None:
    """Warnings for a deadline of nothing (everyone overdue the moment the reminder goes out, leaders
    told at once) and for follow-ups less than an hour apart."""
    confirm = r.confirm
    if confirm is None:
        return
    every = confirm.remind_every
    if not confirm.deadline.workdays and not confirm.deadline.delta:
        nudged = f"，并且每 {every.describe()} 催办一次" if every is not None else ""
        issues.append(_issue(p, (*at, "deadline"),
                             f"截止时长为 0：提醒一发出，所有人就已逾期，立即告知领导{nudged}；"
                             "请写留给大家的时间，例如 3d（3天）或 3wd（3个工作日）", warning=True))
    if every is not None and not every.workdays and every.delta < SHORTEST_FOLLOWUP:
        issues.append(_issue(p, (*at, "remind_every"),
                             f"每 {every.describe()} 催办一次：未确认的人在工作时间内每 {every.describe()} 就收到一条"
                             "催办，过于频繁；通常写 1d（每天一次）", warning=True))


def _gap_words(days: float) -> str:
    """``28 天``, ``1 天``, or for gaps under a day ``2 小时`` / ``15 分钟``."""
    if days >= 1:
        return f"{days:g} 天" if days == int(days) else f"{days:.1f} 天"
    minutes = round(days * 1440)
    return f"{minutes // 60:g} 小时" if minutes % 60 == 0 else f"{minutes} 分钟"


def _shorter(gap: float) -> str:
    """The fix: a shorter lead, or, for a reminder at least daily, no notices at all."""
    if gap <= 1:
        return f"请改得短于 {_gap_words(gap)}，或删掉 notices（提醒至少每天一次，多半不需要提前通知）"
    return f"请改短，例如 {max(1, min(3, int(gap) - 1))}d"


def _day_beyond_month(p: Parsed, at: tuple[Any, ...], when: When, issues: list[ConfigIssue]) -> None:
    steps = {"yearly": 12, "half_yearly": 6, "quarterly": 3}
    for key, step in steps.items():
        rule: DayRule | None = getattr(when, key)
        if rule is None or rule.month is None or rule.day is None or rule.day < 29:
            continue
        months = range(rule.month, 13, step)
        short = [m for m in months if _MONTH_DAYS[m - 1] < rule.day]
        if not short:
            continue
        names = "、".join(f"{m} 月" for m in short)
        note = "（闰年 2 月有 29 天）" if rule.day == 29 else ""
        issues.append(_issue(p, (*at, key, "day"),
                             f"{names}没有 {rule.day} 日{note}：将在该月的最后一天提醒；"
                             "如果要的就是月末，请写 day: -1", warning=True))


def _spaced(word: str) -> str:
    """A Latin word set off by spaces inside Chinese text (``换成 Slack 群``); Chinese words as they are."""
    return f" {word} " if word.isascii() else word


def _webhook(p: Parsed, at: tuple[Any, ...], channel: Any, issues: list[ConfigIssue]) -> None:
    """The webhook's host and shape against its platform; the URL itself is a secret, never shown."""
    if channel.dry_run:
        return
    host = (urlsplit(channel.webhook_url()).hostname or "").lower()
    platform = channel.platform
    owner = next((name for name, hosts in KNOWN_HOSTS.items() if host in hosts), None)
    if owner is not None and owner != platform and not same_folder(owner, platform):
        issues.append(_issue(p, (*at, "webhook"),
                             f"webhook 是{_spaced(platform_word(owner))}的机器人地址（{host}），"
                             f"但此频道的 platform 是 {platform}：请改 platform: {owner}，"
                             f"或换成{_spaced(platform_word(platform))}群机器人的地址"))
        return
    problem = channel.webhook_problem()  # each platform's own (its config.py)
    if problem:
        issues.append(_issue(p, (*at, "webhook"), problem))
