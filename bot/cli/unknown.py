"""The line for a reminder id or a person given on the command line that the schedules do not hold,
with a did-you-mean (``是不是 “study-day”？``) found as ``validate`` finds its own (bot/config/hints.py)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from bot.config.hints import TIES_SHOWN, Hints, did_you_mean


def unknown_reminder(reminders: Mapping[str, Any], value: str) -> str:
    """No reminder has the id ``value``: the id meant (a typo of it, or the id of the reminder with
    that title: an admin often writes what the messages show), then the ids there are."""
    titled = next((r.id for r in reminders.values() if getattr(r, "title", None) == value), None)
    if titled is not None:
        return f"没有标识为 “{value}” 的提醒：这是提醒 “{titled}” 的标题，请写提醒标识 “{titled}”"
    meant = did_you_mean(Hints(reminders).meant(value)) or "。"
    return f"没有标识为 “{value}” 的提醒{meant}可用的有：{'、'.join(reminders)}"


def unknown_person(people: Mapping[str, Any], value: str) -> str:
    """No person has ``value`` as id or name: the ids or names probably meant (at most
    :data:`TIES_SHOWN`, else how many there are), or how to write one."""
    meant, count = closest_people(people, value)
    if meant:
        return f"找不到人员 “{value}”" + did_you_mean(meant)
    if count:
        what = f"姓{value}的" if not value.isascii() and len(value) == 1 else f"“{value}”开头的"
        return f"找不到人员 “{value}”：{what}有 {count} 人，请写全姓名或人员标识"
    return f"找不到人员 “{value}”：请写日程配置中的人员标识或姓名"


def closest_people(people: Mapping[str, Any], value: str) -> tuple[list[str], int]:
    """The ids (for an ASCII ``value``) or names probably meant, and how many there are: the list is
    empty when more than :data:`TIES_SHOWN` are equally likely. In this order: those beginning with
    ``value`` (``zhao`` for zhao_ming, 赵 for 赵明: a surname alone), a name of two characters one
    character from ``value`` (王方 for 王芳; the same surname first), else the closest (Hints, ties
    named together). Names are read as a column from the snapshot's rows (no person model built)."""
    if not value:
        return [], 0
    if value.isascii():
        found = _starting(people, value) or Hints(people).meant(value)  # a mapping: its ids, no copy
        if found:
            return _bounded(found)
    column = getattr(people, "column", None)
    names = set(column("name") if column is not None else (p.name for p in people.values()))
    found = _starting(names, value) or _one_apart(names, value)
    if not found and len(value) >= NAME_HINT_CHARS:
        found = Hints(names).meant(value)
    return _bounded(found)


NAME_HINT_CHARS = 3  # from this length a name is compared as ids are (difflib); shorter ones by the rules above


def _starting(words: Iterable[str], value: str) -> list[str]:
    """The words longer than ``value`` that begin with it, sorted."""
    return sorted(w for w in words if len(w) > len(value) and w.startswith(value))


def _one_apart(names: Iterable[str], value: str) -> list[str]:
    """Two-character names one character from a two-character ``value``: those with its surname
    (the first character) if any, else those with its given name."""
    if len(value) != 2:
        return []
    pairs = [n for n in names if len(n) == 2 and n != value and (n[0] == value[0] or n[1] == value[1])]
    same_surname = sorted(n for n in pairs if n[0] == value[0])
    return same_surname or sorted(pairs)


def _bounded(found: list[str]) -> tuple[list[str], int]:
    """``found`` if few enough to name, else none named; with how many there are."""
    return (found if len(found) <= TIES_SHOWN else []), len(found)


def unknown_unit(units: Mapping[str, Any], value: str) -> str:
    """No unit has the id ``value``: the id probably meant (a typo of it)."""
    return f"未知的单位标识 “{value}”" + did_you_mean(Hints(units).meant(value))
