"""The line for a reminder id or a person given on the command line that the schedules do not hold,
with a did-you-mean (``是不是 “study-day”？``) found as ``validate`` finds its own (bot/config/hints.py)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bot.config.hints import Hints, did_you_mean


def unknown_reminder(reminders: Mapping[str, Any], value: str) -> str:
    """No reminder has the id ``value``: the id meant (a typo of it, or the id of the reminder with
    that title: an admin often writes what the messages show), then the ids there are."""
    titled = next((r.id for r in reminders.values() if getattr(r, "title", None) == value), None)
    if titled is not None:
        return f"没有标识为 “{value}” 的提醒：这是提醒 “{titled}” 的标题，请写提醒标识 “{titled}”"
    meant = did_you_mean(Hints(reminders).meant(value)) or "。"
    return f"没有标识为 “{value}” 的提醒{meant}可用的有：{'、'.join(reminders)}"


def unknown_person(people: Mapping[str, Any], value: str) -> str:
    """No person has ``value`` as id or name: the id or the name probably meant, or how to write one."""
    hint = closest_person(people, value)
    if hint:
        return f"找不到人员 “{value}”，是不是 “{hint}”？"
    return f"找不到人员 “{value}”：请写日程配置中的人员标识或姓名"


NAME_HINT_CHARS = 3  # 王五 is one character from 王芳, but as likely another person as a typo of her


def closest_person(people: Mapping[str, Any], value: str) -> str | None:
    """A person id close to an ASCII ``value`` (among thousands, only a typo: see Hints), else a name
    close to it. Names are read as a column from the snapshot's rows (no person model built)."""
    if value.isascii():
        found = Hints(people).closest(value)  # a mapping: its ids, looked up without a copy
        if found:
            return found
    if len(value) < NAME_HINT_CHARS:
        return None
    column = getattr(people, "column", None)
    names = set(column("name") if column is not None else (p.name for p in people.values()))
    return Hints(names).closest(value)


def unknown_unit(units: Mapping[str, Any], value: str) -> str:
    """No unit has the id ``value``: the id probably meant (a typo of it)."""
    return f"未知的单位标识 “{value}”" + did_you_mean(Hints(units).meant(value))
