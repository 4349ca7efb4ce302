"""Warnings that depend on today's date: a one-off reminder whose date is already past.

The check (``bot.config.loader.check_schedules``) records where each enabled one-off date is written
(:class:`OnceDate`, kept on the schedules: ``Schedules.dated``), and the warning is worked out from
those places whenever issues are shown (:func:`as_of`: ``validate``, ``serve``'s start, a reload, the
admin pages). A snapshot of an unchanged folder (bot/config/snapshot.py) therefore warns of a date
that passed after the folder was checked, without the folder being parsed again. Only ``issues.py``
is imported here: reading a snapshot imports no PyYAML.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from bot.config.issues import ConfigIssue, group_repeats

if TYPE_CHECKING:
    from bot.config.models import Schedules


@dataclass(frozen=True)
class OnceDate:
    """An enabled one-off reminder's date and where it is written (``place``: its file, line, column
    and field, as every issue names them; no message)."""

    place: ConfigIssue
    once: date
    zone: ZoneInfo


def past_message(once: date, today: date) -> str:
    return (f"日期 {once.isoformat()} 已过（今天是 {today.isoformat()}），这个提醒不会再发出；"
            "如果是写错了年份或日期，请改正；留作记录的可以不改")


def past_once(dated: Sequence[OnceDate], now: datetime) -> list[ConfigIssue]:
    """The warnings for the dates of ``dated`` before today (in each reminder's zone) at ``now``.

    A warning, not an error: a past one-off may be kept on purpose (its records, its page); often it
    is a year typo (2025-12-08), which never fires."""
    out = []
    for d in dated:
        today = now.astimezone(d.zone).date()
        if d.once < today:
            out.append(replace(d.place, message=past_message(d.once, today), warning=True, dated=True))
    return out


def as_of(issues: Sequence[ConfigIssue], schedules: Schedules | None,
          now: datetime | None = None) -> list[ConfigIssue]:
    """The issues of a check that passed (``schedules``; no errors) with the past-date warnings as of
    ``now`` (default: the real time) in place of those of the check's own time, each where the check
    puts it (warnings by file, line and column). A failed check (None) is returned as it
    is: it never comes from a snapshot, so its warnings are of the time it ran."""
    if schedules is None:
        return list(issues)
    out = [i for i in issues if not i.dated]
    for issue in group_repeats(past_once(schedules.dated, now or datetime.now(UTC))):
        out.insert(_place_of(out, issue), issue)
    return out


def _place_of(issues: Sequence[ConfigIssue], issue: ConfigIssue) -> int:
    """Where ``issue`` goes: before the first warning further on (by file, line and column), else last."""
    key = (issue.file, issue.line, issue.column)
    return next((n for n, i in enumerate(issues) if i.warning and (i.file, i.line, i.column) > key), len(issues))
