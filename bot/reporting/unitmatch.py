"""What an admin's unit filter (``?unit=`` on a board and on the units page, ``status --unit``) keeps.

A unit includes its sub-units, as a reminder's selectors do (:meth:`Schedules.subtree`). The words
typed are read against the schedules' units, in this order:

1. a unit's id, exactly;
2. else the units whose name is exactly the words (``局1`` keeps 局1 and its branches, not 局10);
3. else the units whose name contains the words (``发展改革`` keeps 市发展改革委): a partial match,
   which the page says, offering the units found to choose from.

Figures are counted by the unit recorded when the occurrence fired (the expectation's snapshot),
so rows are also kept when their recorded id or name is exactly the words (a unit since removed
from the schedules); when the schedules have no unit matching at all, a recorded name containing
the words is kept too.

The filter is one SQL condition over the rows (:func:`unit_condition`); a unit with thousands of
sub-units is passed as one array (PostgreSQL) or one JSON list (SQLite), not a parameter per unit.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from bot.config.models import Schedules
from bot.config.models import _columns as columns
from bot.reporting.figures import natural_key  # noqa: F401  (its SQL twins are below)

CHOICES = 20  # units offered to choose from after a partial match, at most
INLINE_IDS = 200  # up to this many ids are bound one by one (IN (...)); more go as one array


@dataclass(frozen=True)
class UnitMatch:
    """The words of a unit filter, resolved against the schedules."""

    query: str
    ids: frozenset[str] = frozenset()  # the units matched and all their sub-units
    matched: tuple[tuple[str, str], ...] = ()  # (id, name) of the units matched themselves, schedules order
    partial: bool = False  # matched by part of their names only
    snapshot_partial: bool = field(default=False)  # no unit in the schedules: recorded names containing the words
    meant: tuple[str, ...] = ()  # no unit in the schedules: the ids (or, for Chinese words, names) probably meant

    @property
    def choices(self) -> tuple[tuple[str, str], ...]:
        """The units to offer after a partial match (at most :data:`CHOICES`)."""
        return self.matched[:CHOICES] if self.partial else ()

    def keeps(self, unit_id: str | None, unit_name: str | None) -> bool:
        """Whether a row of this recorded unit is kept (the Python twin of :func:`unit_condition`)."""
        if not self.query:
            return True
        if unit_id in self.ids or unit_id == self.query or unit_name == self.query:
            return True
        return self.snapshot_partial and self.query in (unit_name or "")


def named_units(schedules: Schedules, query: str,
                among: Collection[str] | None = None) -> tuple[list[tuple[str, str]], bool]:
    """The units ``query`` names, as (id, name) in schedules order, and whether by part of a name
    (the rules of the module's docstring); ``among``: only these units can be named (a leader's own).
    Reads the id and name columns only: no unit's model is built (a province has 20,000 units)."""
    ids, names = columns(schedules.units, ("id", "name"))
    units = [(i, n) for i, n in zip(ids, names, strict=True) if among is None or i in among]
    found = [(i, n) for i, n in units if i == query] or [(i, n) for i, n in units if n == query]
    if found:
        return found, False
    return [(i, n) for i, n in units if query in n], True


def resolve(schedules: Schedules | None, query: str) -> UnitMatch:
    """The units ``query`` names (see the module docstring); an empty query keeps everything."""
    query = query.strip()
    if not query:
        return UnitMatch("")
    if schedules is None:
        return UnitMatch(query, snapshot_partial=True)
    found, partial = named_units(schedules, query)
    if not found:
        return UnitMatch(query, snapshot_partial=True, meant=units_meant(schedules, query))
    return UnitMatch(query, frozenset(schedules.subtree({i for i, _ in found})), tuple(found), partial)


def units_meant(schedules: Schedules, query: str) -> tuple[str, ...]:
    """The unit ids (an ASCII ``query``) or names probably meant by words naming no unit, as ``report
    --unit`` and ``validate`` find them (bot/config/hints.py: equally close ones together)."""
    from bot.config.hints import Hints  # difflib: only when the words name no unit

    if query.isascii():
        return tuple(Hints(schedules.units).meant(query))
    return tuple(Hints(set(columns(schedules.units, ("name",))[0])).meant(query))


def match_note(match: UnitMatch) -> str:
    """In plain text, what the filter keeps when it is not simply the unit named (the pages' words,
    ``_filters.html``): a partial match with the units found, or no unit of that name or id at all.
    Empty for no filter and for an exact match."""
    if not match.query:
        return ""
    if match.snapshot_partial:
        from bot.config.hints import did_you_mean

        return (f"名单中没有名称或编号为“{match.query}”的单位{did_you_mean(list(match.meant)) or '，'}"
                f"按提醒发出时记录的单位名称（含“{match.query}”）筛选。")
    if match.partial:
        more = f" 等（另有 {len(match.matched) - len(match.choices)} 个，请输入更完整的名称）" \
            if len(match.matched) > len(match.choices) else ""
        found = "、".join(name for _, name in match.choices)
        return (f"没有名称正好是“{match.query}”的单位，按名称含“{match.query}”的 {len(match.matched)} 个单位"
                f"筛选：{found}{more}")
    return ""


def unit_condition(match: UnitMatch, unit_id: Any, unit_name: Any, dialect: str) -> Any:
    """SQL keeping the rows whose recorded unit (columns ``unit_id``, ``unit_name``) ``match`` keeps."""
    from sqlalchemy import func, or_, true  # here: ``status`` on a SQLite file resolves units without SQLAlchemy

    parts = [unit_id == match.query, unit_name == match.query]
    if match.ids:
        parts.append(in_ids(unit_id, sorted(match.ids), dialect))
    if match.snapshot_partial:
        found = func.strpos(unit_name, match.query) if dialect == "postgresql" else func.instr(unit_name, match.query)
        parts.append(found > 0)
    return or_(*parts) if match.query else true()


def in_ids(column: Any, ids: list[str], dialect: str) -> Any:
    """``column IN ids``: bound one by one when few, else as one array or JSON list (bounded parameters:
    a leader's 20,000 units are one parameter, not 20,000)."""
    if len(ids) <= INLINE_IDS:
        return column.in_(ids)
    from sqlalchemy import String, func, literal, select

    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import ARRAY  # only on PostgreSQL: `status` on SQLite stays lean

        return column.in_(select(func.unnest(literal(ids, ARRAY(String)))))
    listed = func.json_each(literal(json.dumps(ids, ensure_ascii=False))).table_valued("value")
    return column.in_(select(listed.c.value))


_DIGITS = re.compile(r"\d+$")


def natural_parts(name: Any) -> tuple[Any, Any]:
    """:func:`natural_key`'s text before the trailing digits and its number without leading zeros, in
    SQL over the column ``name``: computed once per row where a statement sorts by them
    (:func:`natural_order`), as they cost more than the sort itself."""
    from sqlalchemy import func

    prefix = func.rtrim(name, "0123456789")
    return prefix, func.ltrim(func.substr(name, func.length(prefix) + 1), "0")


def natural_order(prefix: Any, number: Any, name: Any, dialect: str) -> tuple[Any, ...]:
    """:func:`natural_key` in SQL over :func:`natural_parts` ``prefix`` and ``number`` and the column
    ``name`` (code point order, as Python compares)."""

    from sqlalchemy import func

    def text(expr: Any) -> Any:
        return expr.collate("C") if dialect == "postgresql" else expr

    return text(prefix), func.length(number), text(number), text(name)
