"""A period's figures per unit, read without SQLAlchemy: what ``remindbot report`` runs on a SQLite file.

The rules of every figure are :func:`tally`'s; the database counts them with the same rules
(``storage.reads.UNIT_COUNTS``, one ``GROUP BY`` over the snapshot units), through either executor of
:mod:`storage.reads`: ``sqlite3`` for the command on a SQLite file, SQLAlchemy ``text()`` for the pages
and PostgreSQL (:mod:`bot.reporting.reports` wraps these for a runtime), so outputs cannot drift.
Periods, ranking, places and the table, CSV and markdown output live here too: the command imports
this module, not :mod:`bot.reporting.reports` (SQLAlchemy's expressions for the pages' boards).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from operator import attrgetter
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from bot.config.limits import MAX_YEAR, MIN_YEAR
from bot.config.models import DEFAULT_TZ, REPORT_ROWS, Reminder, Schedules
from bot.reporting.csvfile import csv_text
from bot.reporting.textable import table
from storage import reads

DEFAULT_ZONE = ZoneInfo(DEFAULT_TZ)
NO_UNIT = "未分配单位"
QUARTER_ZH = ("一", "二", "三", "四")
FORMATS = ("table", "csv", "markdown")
COUNTS = ("expected", "on_time", "late", "missing", "nudges", "pending", "excused")
UNITS_BOUND = 2_000  # unit ids bound into one statement at most (SQLite and asyncpg cap one near 32,766)
UNIT_SUMS = ("on_time", "late", "missing", "pending", "excused")  # a unit's counts as SQL sums them
HEADERS = ("排名", "单位", "应确认", "按时确认", "逾期确认", "未确认", "其中未到截止", "催办次数", "按时完成率",
           "请假等免于确认")
# Briefs to leaders about a monthly reminder cover the month before; any other, the quarter before.
MONTHLY_PERIODS = ("weekly", "monthly", "cron")


@dataclass(frozen=True)
class UnitRow:
    unit_id: str | None
    unit: str
    expected: int = 0
    on_time: int = 0
    late: int = 0
    missing: int = 0
    nudges: int = 0
    pending: int = 0  # of ``missing``: deadline not passed yet (or none), so not overdue
    excused: int = 0  # excused by an admin (请假、出差…) and not confirmed: apart from ``expected``

    @property
    def due(self) -> int:
        """Confirmations whose deadline has passed or that came in: what the rate is judged on."""
        return self.expected - self.pending

    @property
    def rate(self) -> float:
        """On-time confirmations over those already due (0.0 when none is due yet).

        A confirmation whose deadline is still ahead does not count against the unit.
        """
        return self.on_time / self.due if self.due else 0.0

    def as_dict(self) -> dict[str, Any]:
        """The row as the templates' ``figures.rows`` items."""
        return asdict(self) | {"rate": self.rate}


class Period(NamedTuple):
    start: datetime  # aware, local midnight; included
    end: datetime  # excluded
    label: str  # Chinese, e.g. "2026年11月"


def spec_of(period: Period) -> str:
    """The period as ``--period`` writes it: ``2026-11`` (a month), ``2026-Q4`` (a quarter), ``2026`` (a year)."""
    start, end = period.start.date(), period.end.date()
    months = (end.year - start.year) * 12 + end.month - start.month
    if months == 1:
        return f"{start.year}-{start.month:02d}"
    return f"{start.year}-Q{(start.month - 1) // 3 + 1}" if months == 3 else str(start.year)


def shifted_spec(spec: str, steps: int) -> str:
    """The ``spec`` of the period of the same kind ``steps`` later (negative: earlier)."""
    if "-Q" in spec:
        index = int(spec[:4]) * 4 + int(spec[-1]) - 1 + steps
        return f"{index // 4}-Q{index % 4 + 1}"
    if "-" in spec:
        index = int(spec[:4]) * 12 + int(spec[5:7]) - 1 + steps
        return f"{index // 12}-{index % 12 + 1:02d}"
    return str(int(spec) + steps)


def utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


# ---------------------------------------------------------------- periods


def _month(year: int, month: int) -> tuple[date, date]:
    nxt = date(year + 1, 1, 1) if month == 12 else date(year, month + 1, 1)
    return date(year, month, 1), nxt


def _quarter(year: int, q: int) -> tuple[date, date]:
    start, _ = _month(year, 3 * q - 2)
    _, end = _month(year, 3 * q)
    return start, end


# The longest period worth reading: "previous_quarter" is 16 characters. A longer value (a page's
# ``?period=``, ``report --period``) is refused unread, and never echoed whole (a URL may carry 8 KB of it).
PERIOD_CHARS = 20


def period_bounds(spec: str, now: datetime, zone: ZoneInfo = DEFAULT_ZONE) -> Period:
    """``"2026-11"``, ``"2026-Q4"``, ``"2026"`` or a ``ReportSpec.period`` name, relative to ``now``."""
    today = now.astimezone(zone).date() if now.tzinfo else now.date()
    y, m = today.year, today.month
    q = (m - 1) // 3 + 1
    named: dict[str, tuple[int, str, int]] = {
        "current_month": (y, "m", m),
        "previous_month": (y - 1, "m", 12) if m == 1 else (y, "m", m - 1),
        "current_quarter": (y, "q", q),
        "previous_quarter": (y - 1, "q", 4) if q == 1 else (y, "q", q - 1),
        "current_year": (y, "y", 0),
        "previous_year": (y - 1, "y", 0),
    }
    text = spec.strip()
    if text in named:
        year, kind, n = named[text]
    elif mm := re.fullmatch(r"(\d{4})-(\d{1,2})", text):
        year, kind, n = int(mm[1]), "m", int(mm[2])
    elif mq := re.fullmatch(r"(\d{4})-?[Qq]([1-4])", text):
        year, kind, n = int(mq[1]), "q", int(mq[2])
    elif re.fullmatch(r"\d{4}", text):
        year, kind, n = int(text), "y", 0
    else:
        raise ValueError(f"无法识别统计周期 “{spec}”：应写成 2026-11（月）、2026-Q4（季度）、2026（年）"
                         "或 previous_month、current_month、previous_quarter、current_quarter、previous_year")
    if not MIN_YEAR <= year <= MAX_YEAR:
        raise ValueError(f"统计周期 “{spec}” 的年份应在 {MIN_YEAR}–{MAX_YEAR} 之间")
    if kind == "m" and not 1 <= n <= 12:
        raise ValueError(f"统计周期 “{spec}” 的月份应在 1–12 之间")
    if kind == "m":
        (first, after), label = _month(year, n), f"{year}年{n}月"
    elif kind == "q":
        (first, after), label = _quarter(year, n), f"{year}年第{QUARTER_ZH[n - 1]}季度"
    else:
        (first, after), label = (date(year, 1, 1), date(year + 1, 1, 1)), f"{year}年"
    start = datetime.combine(first, datetime.min.time(), tzinfo=zone)
    return Period(start, datetime.combine(after, datetime.min.time(), tzinfo=zone), label)


# ---------------------------------------------------------------- figures


def _top_unit(s: Schedules, unit_id: str | None) -> str | None:
    """The unit's highest ancestor below the root: a branch rolls up to its organ."""
    chain = s.unit_chain(unit_id)
    return chain[-2].id if len(chain) >= 2 else unit_id


class Owed(NamedTuple):
    """One confirmation a person owes, as :func:`tally` counts it."""

    unit_id: str | None
    unit: str
    confirmed_at: datetime | None  # UTC; naive means UTC
    deadline: datetime | None  # UTC; naive means UTC
    nudges: int = 0
    excused: bool = False  # excused by an admin; a confirmation that came anyway still counts
    order: int | None = None  # the unit's place in the admins' order (``expectation.unit_order``)


def tally(owed: Iterable[Owed], now: datetime) -> list[UnitRow]:
    """Add owed confirmations up per unit, ranked: the one definition of every unit figure.

    On time means confirmed at or before the deadline, or with no deadline at all. ``now`` only
    splits ``missing`` into overdue and ``pending``.
    """
    now = utc(now)
    sums: dict[str | None, dict[str, int]] = {}
    names: dict[str | None, str] = {}
    orders: dict[str | None, int] = {}
    for item in owed:
        names[item.unit_id] = item.unit
        if item.order is not None and item.order < orders.get(item.unit_id, reads.NO_PLACE):
            orders[item.unit_id] = item.order
        t = sums.setdefault(item.unit_id, dict.fromkeys(COUNTS, 0))
        t["nudges"] += item.nudges
        if item.excused and item.confirmed_at is None:  # owes nothing: neither expected nor late
            t["excused"] += 1
            continue
        t["expected"] += 1
        deadline = utc(item.deadline) if item.deadline is not None else None
        if item.confirmed_at is None:
            t["missing"] += 1
            t["pending"] += deadline is None or now < deadline
        elif deadline is None or utc(item.confirmed_at) <= deadline:
            t["on_time"] += 1
        else:
            t["late"] += 1
    return rank((UnitRow(unit_id=k, unit=names[k], **t) for k, t in sums.items()), orders)


def natural_key(name: str) -> tuple[str, int, str, str]:
    """A name's place in natural order: a trailing number compares by value (局2 before 局10).

    (text before the trailing ASCII digits, length of the number without leading zeros, that
    number, the name): the SQL twin is :func:`bot.reporting.unitmatch.natural_order`, so pages and
    the CLI agree.
    """
    prefix = name.rstrip("0123456789")
    number = name[len(prefix):].lstrip("0")
    return prefix, len(number), number, name


async def nudges_by_unit(reader: reads.Reader, occurrences: reads.Occurrences,
                         unit_ids: Iterable[str | None] | None = None) -> dict[str | None, int]:
    """催办次数 summed per unit (the expectation's snapshot unit): the follow-up rounds that reached the
    person, a round counted once per person however many messages or channels carried it, and only
    when a message of that round mentioning the person went, or is still waiting to go, to a real
    channel (``storage.reads.reached``). ``unit_ids``: only these units (a page's or a chart's), else all."""
    reached = await reads.reached(reader, occurrences)
    if not reached:  # no follow-up went to a real channel: no round counts, whatever was recorded
        return {}
    rows = await reads.nudge_rounds(reader, occurrences, list(unit_ids) if unit_ids is not None else None)
    sums: dict[str | None, int] = {}
    for occ_id, person_id, number, unit_id in rows:
        if (occ_id, f"followup:{number}", person_id) in reached:
            sums[unit_id] = sums.get(unit_id, 0) + 1
    return sums


async def unit_figures(reader: reads.Reader, s: Schedules, start: datetime, end: datetime, *, now: datetime,
                       reminder_ids: Iterable[str] | None = None, unit_ids: Iterable[str] | None = None,
                       by_parent: bool = False) -> list[UnitRow]:
    """Figures per unit for the real occurrences due in [start, end), best first.

    ``unit_ids`` keeps those units and their sub-units; ``by_parent`` adds branches up under
    the organ above them. ``now`` only sets ``pending``.

    Counted in the database (one ``GROUP BY`` over the snapshot units, with the same rules as
    :func:`tally`), so a province's period of 100,000 expectations comes back as one row per unit.
    """
    now = utc(now)
    occurrences = reads.in_period(start, end, list(reminder_ids) if reminder_ids is not None else None)
    # a few units asked for (a bureau's, not a province's 20,000): with their sub-units, walked
    # down once, and kept by the database already; many: each row not among them walks its chain up
    wanted = set(unit_ids) if unit_ids is not None else None
    closed = wanted is not None and len(wanted) <= UNITS_BOUND
    if closed:
        wanted = s.subtree(wanted)  # type: ignore[arg-type]
    only = sorted(wanted) if closed and len(wanted) <= UNITS_BOUND else None  # type: ignore[arg-type]
    per_unit = await reads.unit_counts(reader, occurrences, now, only)
    if not per_unit:
        return []
    nudges = await nudges_by_unit(reader, occurrences)
    # a list of UNIT_SUMS and the nudges per unit: a province's 20,000 rows go through this loop
    sums: dict[str | None, list[int]] = {}
    names: dict[str | None, str] = {}
    orders: dict[str | None, int] = {}
    places = s.unit_places() if by_parent else {}
    for unit_id, unit_name, on_time, late, missing, pending, excused, order in per_unit:
        if wanted is not None and unit_id not in wanted and (
                closed or not any(u.id in wanted for u in s.unit_chain(unit_id))):
            continue
        if by_parent:
            key = _top_unit(s, unit_id)
            unit = s.units.get(key or "")
            names[key] = unit.name if unit is not None else unit_name or key or NO_UNIT
            order = places.get(key or "", len(places))  # the organ's place in the schedules now
        else:  # the name as it was when the occurrence fired
            key = unit_id
            names[key] = unit_name or _unit_name(s, key) or key or NO_UNIT
        if order is not None and order < orders.get(key, reads.NO_PLACE):
            orders[key] = order
        t = sums.get(key)
        if t is None:
            t = sums[key] = [0, 0, 0, 0, 0, 0]
        t[0] += int(on_time or 0)
        t[1] += int(late or 0)
        t[2] += int(missing or 0)
        t[3] += int(pending or 0)
        t[4] += int(excused or 0)
        t[5] += nudges.get(unit_id, 0)
    return rank((UnitRow(k, names[k], t[0] + t[1] + t[2], t[0], t[1], t[2], t[5], t[3], t[4])
                 for k, t in sums.items()), orders)


def _unit_name(s: Schedules, unit_id: str | None) -> str | None:
    """The snapshot's name of a unit, for a row fired without one: reading a unit builds its model
    (``bot.config.rows``), which for each of a province's 20,000 rows cost ``report`` ~0.1 s."""
    unit = s.units.get(unit_id or "")
    return unit.name if unit is not None else None


def rank(rows: Iterable[UnitRow], orders: Mapping[str | None, int] | None = None) -> list[UnitRow]:
    """Best first: on-time rate, then fewest missing, then the admins' order (``orders``: each unit's place,
    ``expectation.unit_order``; the organisation's own 第一支部, 第二支部…), then (units without a place:
    fired before it was kept) the name in natural order (局2 before 局10). As the pages rank in SQL
    (``bot.reporting.reports._rank_order``)."""
    items = list(rows)
    orders = orders or {}
    no_place = reads.NO_PLACE
    # the rate inline, not through the properties: a province's 20,000 units are ranked at once
    keys = [(-(r.on_time / due) if (due := r.expected - r.pending) else 0.0, r.missing,
             orders.get(r.unit_id, no_place), natural_key(r.unit)) for r in items]
    return [items[i] for i in sorted(range(len(items)), key=keys.__getitem__)]


def places(rows: Iterable[UnitRow]) -> list[int]:
    """Each ranked row's place: equal figures (rate and missing) share one, the next skips (1, 2, 2, 4);
    a unit with nothing due yet (rate "—") has none: 0."""
    out: list[int] = []
    previous: tuple[float, int] | None = None
    ranked = last = 0  # rows with a place so far, and the last place given
    for r in rows:
        if not r.due:
            out.append(0)
            continue
        ranked += 1
        figures = (r.rate, r.missing)
        last = last if figures == previous else ranked
        out.append(last)
        previous = figures
    return out


def brief_period(reminder: Reminder) -> str:
    return "previous_month" if reminder.when.period in MONTHLY_PERIODS else "previous_quarter"


def shown_rows(rows: Sequence[UnitRow], bound: int = REPORT_ROWS) -> list[tuple[int, UnitRow]]:
    """The ranked rows a message names, each with its place in the whole ranking (:func:`places`:
    equal figures share one, 1, 2, 2, 4; 0 for a unit with nothing due yet, shown "—").

    All of them when there are at most ``bound``; else the first third of ``bound`` (the best
    ranked) and the rest from the end of the ranking among units with something due: the units
    behind, which the 通报 asks to close the gap, are always named (30 → the first 10 and the last
    20). A unit with nothing due yet is neither best nor behind: when the ranking is cut it is not
    named (it counts in ``more``).
    """
    marks = places(rows)
    return [(marks[i], rows[i]) for i in shown_indices(rows, bound, marks)]


def shown_indices(rows: Sequence[UnitRow], bound: int = REPORT_ROWS, marks: Sequence[int] | None = None) -> list[int]:
    """The indices into ranked ``rows`` of those :func:`shown_rows` names (``marks``: their
    :func:`places`, computed when None)."""
    if len(rows) <= bound:
        return list(range(len(rows)))
    marks = places(rows) if marks is None else marks
    due = [i for i, place in enumerate(marks) if place]
    head = due[:bound // 3]
    return head + due[max(len(head), len(due) - (bound - len(head))):]


def shown_figures(rows: Sequence[UnitRow], bound: int = REPORT_ROWS) -> dict[str, Any]:
    """A template's bounded ``figures`` fields for ranked ``rows``.

    ``rows``: at most ``bound`` row dicts (:meth:`UnitRow.as_dict` plus ``place``, the row's place
    among all units, 0 when it has nothing due yet, and ``due``), see :func:`shown_rows`; ``more``:
    units not listed (0: all are); ``head``: how many listed rows are the best ranked (the others
    are the last ranked; all of them when every unit with something due is listed); ``waiting``: units
    with nothing due yet; ``total_units``: all units; ``totals``: the 合计 row over all of them
    (``unit`` is “合计”, ``rate`` and ``due`` over the whole); ``ranked``: whether a listed unit has something due
    (a place), so the list names units behind and the 通报 asks them to close the gap.
    """
    shown = shown_rows(rows, bound)
    more = len(rows) - len(shown)
    waiting = sum(1 for r in rows if not r.due)
    # all units with something due listed (the rest have nothing due yet): one block, no tail
    head = min(bound // 3, len(shown)) if more and len(rows) - waiting > bound else len(shown)
    whole = totals(rows)
    return {"rows": [r.as_dict() | {"place": place, "due": r.due} for place, r in shown], "more": more,
            "head": head, "waiting": waiting, "total_units": len(rows), "totals": whole.as_dict() | {"due": whole.due},
            "ranked": any(place for place, _ in shown)}


# ---------------------------------------------------------------- output


def percent(row: UnitRow) -> str:
    return f"{row.rate * 100:.1f}%" if row.due else "—"


def cells(rows: Iterable[UnitRow]) -> list[list[str]]:
    items = list(rows)
    return [cell_row(place, r) for place, r in zip(places(items), items, strict=True)]


def cell_row(place: int, r: UnitRow) -> list[str]:
    """One ranked row's cells under :data:`HEADERS` (``place``: its rank, from 1; 0: none, shown "—")."""
    due = r.expected - r.pending  # percent(r), inline: a cell of each of a province's 20,000 rows
    return [str(place) if place else "—", r.unit, str(r.expected), str(r.on_time), str(r.late), str(r.missing),
            str(r.pending), str(r.nudges), f"{r.on_time / due * 100:.1f}%" if due else "—", str(r.excused)]


def totals(rows: Iterable[UnitRow]) -> UnitRow:
    items = list(rows)
    return UnitRow(None, "合计", *(sum(map(attrgetter(f), items)) for f in COUNTS))


def format_rows(rows: list[UnitRow], fmt: str, *, title: str | None = None) -> str:
    """Render ranked rows as an aligned text table, CSV or a markdown table."""
    body = cells(rows)
    if fmt == "csv":  # the same writer as the admin CSV downloads: formulas defused
        return csv_text(HEADERS, body)
    if fmt == "markdown":
        lines = [f"### {title}", ""] if title else []
        lines += ["| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
        lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in body]
        return "\n".join(lines)
    if fmt == "table":
        text = table(HEADERS, body)
        return f"{title}\n\n{text}" if title else text
    raise ValueError(f"未知的输出格式 {fmt!r}，可选：{'、'.join(FORMATS)}")
