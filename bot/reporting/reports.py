"""Per-unit figures over a period: who confirmed on time, late, not at all, and how often nudged.

Units are ranked by on-time rate (highest first), then by fewest missing, so a lagging unit sees
the gap ("使工作滞后单位看到差距"). A person counts for the unit recorded when the occurrence
fired (the ``Expectation`` snapshot), so moving someone later does not rewrite past figures.

Someone an admin excused (请假、出差…, ``bot.confirming.actions.excuse``) and who did not confirm anyway is
counted in ``excused`` only: not expected, not missing, never late.

``missing`` counts expectations without a confirmation when the figures are taken, whether or
not their deadline has passed (``pending`` says how many of them still have time); ``nudges``
(催办次数) counts the follow-up rounds that reached the person (see :func:`nudge_counts`).

Every figure follows :func:`tally`'s rules, so the numbers and their words agree everywhere. At a
province's size they are counted by the database with the same rules (:func:`_unit_counts`, one
``GROUP BY`` over the snapshot units; :func:`unit_table` and the ``board_*`` functions rank, filter
and page there too), so ``/admin/units`` and a board read one page of rows, not the province;
tests check the SQL against :func:`tally` on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Float,
    and_,
    bindparam,
    case,
    cast,
    false,
    func,
    literal,
    null,
    or_,
    text,
    true,
    union_all,
)
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.config.models import REPORT_ROWS, Person, Reminder, ReportSpec
from bot.confirming.confirmations import Board, BoardRow, board_row
from bot.confirming.confirmations import to_db_time as db_time
from bot.reporting import figures
from bot.reporting.figures import (  # noqa: F401  (re-exported: the pages and tests import them from here)
    COUNTS,
    DEFAULT_ZONE,
    FORMATS,
    HEADERS,
    MONTHLY_PERIODS,
    NO_UNIT,
    UNIT_SUMS,
    UNITS_BOUND,
    Owed,
    Period,
    UnitRow,
    brief_period,
    cell_row,
    cells,
    format_rows,
    percent,
    period_bounds,
    rank,
    shifted_spec,
    shown_figures,
    shown_indices,
    shown_rows,
    spec_of,
    tally,
    totals,
    utc,
)
from bot.reporting.unitmatch import (
    UnitMatch,
    in_ids,
    natural_order,
    natural_parts,
    resolve,
    unit_condition,
)
from bot.runtime import Runtime
from storage import reads
from storage.models import Confirmation, Expectation, Nudge, Occurrence

places = figures.places  # re-exported (a parameter of the page functions below has its name)


async def _reader(session: AsyncSession) -> reads.Reader:
    """A :mod:`storage.reads` reader on the session's connection (its transaction, its schema)."""
    return reads.connection_reader(await session.connection())


async def nudge_counts(session: AsyncSession, occurrence_ids: list[int]) -> dict[tuple[int, str], int]:
    """催办次数 per (occurrence, person): the follow-up rounds that reached the person.

    A round counts once per person however many messages or channels carried it (a group message
    and a personal-link message are one round), and only when a message of that round mentioning
    the person went, or is still waiting to go, to a real channel: a message only recorded (a
    channel without a webhook, a rehearsal) or one that failed for good reached nobody.
    Escalations (告知领导) are not 催办 and are not counted.
    """
    rounds = select(Nudge.occurrence_id, Nudge.person_id, Nudge.number).where(
        col(Nudge.occurrence_id).in_(occurrence_ids), Nudge.kind == "followup")
    reached = await reads.reached(await _reader(session), reads.listed(occurrence_ids))
    counts: dict[tuple[int, str], int] = {}
    for occ_id, person_id, number in (await session.exec(rounds)).all():
        if (occ_id, f"followup:{number}", person_id) in reached:
            counts[(occ_id, person_id)] = counts.get((occ_id, person_id), 0) + 1
    return counts


async def nudges_by_unit(session: AsyncSession, occurrence_ids: list[int],
                         unit_ids: Iterable[str | None] | None = None) -> dict[str | None, int]:
    """催办次数 summed per unit of these occurrences (:func:`bot.reporting.figures.nudges_by_unit`).

    ``unit_ids``: only these units (a page's or a chart's), else all. One query over the follow-up
    rounds joined with their expectations' units; nothing per person is kept.
    """
    if not occurrence_ids:
        return {}
    return await figures.nudges_by_unit(await _reader(session), reads.listed(occurrence_ids), unit_ids)


async def unit_figures(runtime: Runtime, start: datetime, end: datetime, *,
                       reminder_ids: Iterable[str] | None = None, unit_ids: Iterable[str] | None = None,
                       by_parent: bool = False, now: datetime | None = None) -> list[UnitRow]:
    """:func:`bot.reporting.figures.unit_figures` on the runtime's database (``now`` default: its clock)."""
    async with reads.engine_reader(runtime.db.engine) as reader:
        return await figures.unit_figures(reader, runtime.schedules, start, end, now=now or runtime.clock(),
                                          reminder_ids=reminder_ids, unit_ids=unit_ids, by_parent=by_parent)


def _unit_counts(occurrence_ids: list[int], now: datetime, units: list[str] | None = None,
                 within: Any = None) -> Any:
    """``unit_id, unit_name, on_time, late, missing, pending, excused, unit_order`` per snapshot unit: :func:`tally`'s
    rules in SQL (``storage.reads.OWED``, as ``storage.reads.UNIT_COUNTS`` sums them for the command).
    ``within``: a condition on the expectation's ``unit_id`` column keeping only some units."""
    joined, sums, e = _owed_sums(now)
    kept = [e.c.unit_id.in_(units)] if units is not None else []
    if within is not None:
        kept.append(within(e.c.unit_id))
    return (select(e.c.unit_id, func.max(e.c.unit_name).label("unit_name"), *sums,
                   func.min(e.c.unit_order).label("unit_order"))
            .select_from(joined).where(e.c.occurrence_id.in_(occurrence_ids), *kept)
            .group_by(e.c.unit_id))


def _owed_sums(now: datetime) -> tuple[Any, list[Any], Any]:
    """The expectations joined with their occurrence and confirmation (aliased ``e``, ``o``, ``c``, as
    ``storage.reads.OWED_FROM``), :data:`UNIT_SUMS` over them as :func:`tally` counts (labelled by name;
    the conditions are ``storage.reads.OWED``'s text, the one definition) and the expectations' alias:
    summed per unit or over a whole set of units."""
    e, o, c = (m.__table__.alias(name) for m, name in (  # type: ignore[attr-defined]
        (Expectation, "e"), (Occurrence, "o"), (Confirmation, "c")))
    now_param = bindparam("now", db_time(now), type_=o.c.deadline_at.type)
    sums = [func.sum(case((and_(text(reads.OWED[name]).bindparams(now_param) if name == "pending"
                                else text(reads.OWED[name])), 1), else_=0)).label(name) for name in UNIT_SUMS]
    joined = e.join(o, o.c.id == e.c.occurrence_id).outerjoin(
        c, and_(c.c.occurrence_id == e.c.occurrence_id, c.c.person_id == e.c.person_id))
    return joined, sums, e


async def units_totals(runtime: Runtime, spans: Sequence[tuple[datetime, datetime]], *, now: datetime,
                       unit_ids: Collection[str]) -> list[UnitRow]:
    """``合计`` of these units for occurrences due in each [start, end) of ``spans`` (rehearsals never
    count). The spans' occurrences first (a span without any costs nothing more), then one aggregate
    per occurrence over their expectations, the unit ids bound as one array or JSON list however many
    (:func:`~bot.reporting.unitmatch.in_ids`). Without 催办次数 (``nudges`` 0): for a leader's page and
    its trend, which do not show them."""
    ot = Occurrence.__table__  # type: ignore[attr-defined]
    sums = [dict.fromkeys(UNIT_SUMS, 0) for _ in spans]
    if spans:
        async with runtime.db.session() as session:
            found = (await session.exec(select(ot.c.id, ot.c.due_at).where(  # type: ignore[call-overload]
                ot.c.due_at >= db_time(min(s for s, _ in spans)), ot.c.due_at < db_time(max(e for _, e in spans)),
                ot.c.dry_run.is_(False)))).all()
            within = {occ: [i for i, (start, end) in enumerate(spans) if start <= utc(due) < end] for occ, due in found}
            counted = [occ for occ, kept in within.items() if kept]
            if counted:
                joined, columns, e = _owed_sums(utc(now))
                kept = in_ids(e.c.unit_id, sorted(unit_ids), (await session.connection()).dialect.name)
                stmt = (select(e.c.occurrence_id, *columns).select_from(joined)
                        .where(e.c.occurrence_id.in_(counted), kept).group_by(e.c.occurrence_id))
                for occ, *values in (await session.exec(stmt)).all():  # type: ignore[call-overload]
                    for i in within[occ]:
                        for name, value in zip(UNIT_SUMS, values, strict=True):
                            sums[i][name] += int(value or 0)
    return [UnitRow(None, "合计", t["on_time"] + t["late"] + t["missing"], t["on_time"], t["late"], t["missing"], 0,
                    t["pending"], t["excused"]) for t in sums]


@dataclass(frozen=True)
class UnitTable:
    """One page of a period's ranked units (:func:`unit_table`)."""

    units: int  # every unit with figures in the period
    matched: int  # of those, the ones the filters keep
    total: UnitRow  # the kept units added up ("合计")
    rows: list[tuple[int, UnitRow]]  # (place among all units, 0 for none; row) for the page asked for


async def unit_table(runtime: Runtime, start: datetime, end: datetime, *, now: datetime, unit: str | UnitMatch = "",
                     status: str = "", page_of: Callable[[int], tuple[int, int]],
                     guess: tuple[int, int] | None = None, within: Collection[str] | None = None,
                     nudges: bool = True, places: bool = True) -> UnitTable:
    """The units page: the period's units ranked as :func:`rank` ranks them, filtered and paged in SQL.

    Only the page's rows (and a few sums) come back, however many units the province has; ranks
    are the full ranking's (units with equal figures share a place; a unit with nothing due yet has
    none, 0). ``unit`` keeps a unit and its sub-units (:mod:`bot.reporting.unitmatch`; words are
    resolved against the schedules); ``status``:
    ``behind`` (missing past the deadline), ``pending`` (anything missing), ``done`` (nothing).
    ``page_of(matched)`` gives (offset, limit) once the number of matching units is known.
    ``guess``: the (offset, limit) expected before that number is known (the page asked for): when
    ``page_of`` agrees, one statement (one pass over the period's rows, :func:`_ranking`) reads the
    page, the places and the sums; otherwise (no guess, a page past the end) it is read again where
    ``page_of`` says.
    ``within``: only these units are ranked at all (a leader's own; ``units`` counts them), bound as one
    array or JSON list however many. ``nudges=False`` leaves 催办次数 at 0 (a page not showing them
    skips reading the follow-up messages); ``places=False`` leaves every place at 0.
    Rehearsals never count. Names compare by code point on both databases, like Python's sort.
    """
    now = utc(now)
    match = unit if isinstance(unit, UnitMatch) else resolve(runtime.schedules, unit)
    occ_q = _in_period(start, end, None).where(col(Occurrence.dry_run).is_(False))
    async with runtime.db.session() as session:
        ids = [i for i in (await session.exec(occ_q.with_only_columns(col(Occurrence.id)))).all() if i is not None]
        if not ids:
            return UnitTable(0, 0, UnitRow(None, "合计"), [])
        dialect = (await session.connection()).dialect.name
        kept_units = sorted(within) if within is not None else None
        u = _ranked_units(ids, now,
                          (lambda c: in_ids(c, kept_units, dialect)) if kept_units is not None else None,
                          lambda n: and_(unit_condition(match, n.unit_id, n.name, dialect), _status_filter(n, status)))
        nudged_by = await nudges_by_unit(session, ids) if nudges else {}
        # a filtered total's 催办次数 are the kept units' own: their ids come back with the page
        kept_ids = bool(nudged_by) and bool(match.query or status or within is not None)
        connection = await session.connection()
        options = {"kept_ids": kept_ids, "places": places, "filtered": bool(match.query or status)}
        found = await _ranking(connection, u, dialect, *(guess or (0, 0)), **options)
        wanted = page_of(found.matched)
        if wanted != guess:
            found = await _ranking(connection, u, dialect, *wanted, **options)
    nudged = sum(n for uid, n in nudged_by.items() if uid in found.kept) if kept_ids else sum(nudged_by.values())
    on_time, late, missing, pending, excused = (found.sums[name] for name in UNIT_SUMS)
    total = UnitRow(None, "合计", on_time + late + missing, on_time, late, missing, nudged, pending, excused)
    place_of = found.places() if places else {}
    rows = [(place_of.get((row.rate, row.missing), 0) if row.ranked else 0,
             UnitRow(row.unit_id, row.name, row.on_time + row.late + row.missing, row.on_time, row.late, row.missing,
                     nudged_by.get(row.unit_id, 0), row.pending, row.excused))
            for row in found.page]
    return UnitTable(found.units, found.matched, total, rows)


def _ranked_units(occurrence_ids: list[int], now: datetime, within: Any = None,
                  kept: Callable[[Any], Any] | None = None) -> Any:
    """Per-unit figures (:func:`_unit_counts`; ``within`` keeps only some units) with what ranking
    them needs, as one CTE read by every part of :func:`_ranking`: the display ``name``, the ``rate``,
    ``ranked`` (1: something is due, so the unit has a place), ``place`` (the unit's place in the admins'
    order, ``storage.reads.NO_PLACE`` when none was recorded) and ``kept`` (1: ``kept`` over these
    columns holds; the filters). Each is computed once per unit."""
    c = _unit_counts(occurrence_ids, now, within=within).subquery("per_unit").c
    due = _due(c)
    named = select(c.unit_id, func.coalesce(c.unit_name, c.unit_id, literal(NO_UNIT)).label("name"), c.on_time,
                   c.late, c.missing, c.pending, c.excused,
                   case((due > 0, cast(c.on_time, Float) / due), else_=literal(0.0, Float)).label("rate"),
                   case((due > 0, 1), else_=0).label("ranked"),
                   func.coalesce(c.unit_order, literal(reads.NO_PLACE)).label("place")).subquery("named")
    n = named.c
    flag = case((kept(n), 1), else_=0) if kept is not None else literal(1)
    return select(*n, flag.label("kept")).cte("ranked_units")


@dataclass(frozen=True)
class _Ranking:
    """What one :func:`_ranking` statement read: the page, and the units' counts and sums."""

    page: list[Any]  # the page's rows, in the order asked for
    classes: list[Any]  # per (``class_ranked``, ``class_rate``, ``class_missing``), or one row: how many
    # units, how many kept (``matched``), the kept ones' sums (``kept_on_time``…)
    kept: set[str | None]  # the kept units' ids, when asked for

    @property
    def units(self) -> int:
        return sum(int(c.units or 0) for c in self.classes)

    @property
    def matched(self) -> int:
        return sum(int(c.matched or 0) for c in self.classes)

    @property
    def sums(self) -> dict[str, int]:
        """:data:`UNIT_SUMS` over the kept units."""
        return {name: sum(int(getattr(c, f"kept_{name}") or 0) for c in self.classes) for name in UNIT_SUMS}

    def places(self) -> dict[tuple[float, int], int]:
        """The place of each (rate, missing) that ranks: one more than the units with better figures,
        so equal figures share it (1, 2, 2, 4), as :func:`places` gives them."""
        out: dict[tuple[float, int], int] = {}
        ahead = 0
        for c in sorted((c for c in self.classes if c.class_ranked), key=lambda c: (-c.class_rate, c.class_missing)):
            out[(c.class_rate, c.class_missing)] = ahead + 1
            ahead += int(c.units)
        return out


async def _ranking(connection: Any, units: Any, dialect: str, offset: int, limit: int | None, *,
                   reverse: bool = False, kept_ids: bool = False, places: bool = True,
                   filtered: bool = True) -> _Ranking:
    """One statement over :func:`_ranked_units` ``units`` (counted once): the kept units from ``offset``
    (``limit`` of them, or all) in rank order (``reverse``: its exact reverse); the units' count and
    the kept units' count and sums, per (ranked, rate, missing) when the ``places`` follow from them
    (no window numbers every unit), else in one row; and with ``kept_ids`` the kept units' ids.
    ``filtered=False``: every unit is kept (no condition on ``kept`` for SQLite to build an index for).

    Only the units whose figures the page can reach are sorted by name (:func:`_reach`): the name's
    natural parts cost more than the sort itself, and a page's 100 rows need them for a few
    thousand units, not a province's 20,000."""
    u = units.c
    kept = u.kept == 1 if filtered else true()
    # integers on PostgreSQL too (its sum of bigints is numeric, and the union would make every page row's so)
    sums = (cast(func.sum(case((kept, u[name]), else_=0)), BigInteger) for name in UNIT_SUMS)
    prefix, number = natural_parts(u.name)
    page = (select(u.unit_id, u.name, u.on_time, u.late, u.missing, u.pending, u.excused, u.rate, u.ranked,
                   u.place, prefix.label("prefix"), number.label("number"))
            .where(kept, _reach(u, kept, offset, limit, reverse=reverse))
            .order_by(*_rank_order(u, prefix, number, dialect, reverse=reverse))
            .offset(offset).limit(limit).subquery("page"))
    keys = (u.ranked, u.rate, u.missing) if places else (null(), null(), null())
    classes = select(literal(1), *(null() for _ in page.c), *keys, *sums, func.count(), func.sum(u.kept))
    parts = [select(literal(0).label("part"), *page.c,
                    *(null().label(c) for c in ("class_ranked", "class_rate", "class_missing")),
                    *(null().label(f"kept_{n}") for n in UNIT_SUMS), null().label("units"), null().label("matched")),
             classes.group_by(*keys) if places else classes]
    if kept_ids:
        parts.append(select(literal(2), u.unit_id, *(null() for _ in range(len(page.c) + len(UNIT_SUMS) + 4)))
                     .where(kept))
    every = union_all(*parts).subquery("parts")
    e = every.c
    rows = (await connection.execute(select(every).order_by(e.part, *_rank_order(e, e.prefix, e.number, dialect,
                                                                                  reverse=reverse)))).all()
    return _Ranking([r for r in rows if r.part == 0], [r for r in rows if r.part == 1],
                    {r.unit_id for r in rows if r.part == 2})


def _reach(u: Any, kept: Any, offset: int, limit: int | None, *, reverse: bool) -> Any:
    """A condition keeping the units (columns ``u``) whose figures (rate, missing) come no later, in rank
    order (``reverse``: its reverse), than those of the ``offset + limit``-th ``kept`` unit: every row
    of the page, and every row before it, so ``offset`` still counts from the first. That unit is
    found by a bounded sort on the two numbers; with no ``limit``, or a page past the last unit, every
    unit is kept."""
    if not limit:  # all of them, or none
        return true()
    order = (u.rate.asc(), u.missing.desc()) if reverse else (u.rate.desc(), u.missing.asc())
    cut = select(u.rate, u.missing).where(kept).order_by(*order).offset(offset + limit - 1).limit(1).cte("cut")
    rate, missing = (select(column).scalar_subquery() for column in (cut.c.rate, cut.c.missing))
    if reverse:
        beyond = or_(u.rate < rate, and_(u.rate == rate, u.missing >= missing))
    else:
        beyond = or_(u.rate > rate, and_(u.rate == rate, u.missing <= missing))
    return or_(~select(cut.c.rate).exists(), beyond)


def _rank_order(u: Any, prefix: Any, number: Any, dialect: str, *, reverse: bool = False) -> tuple[Any, ...]:
    """:func:`rank`'s order over per-unit columns ``u`` (rate, then fewest missing, then the unit's ``place``
    in the admins' order, then (units without one: fired before it was kept) name in natural order by its
    :func:`natural_parts` ``prefix`` and ``number``, then id), or its exact reverse.

    The reverse reverses every key, NULL ids included (PostgreSQL and SQLite each put NULLs at
    opposite ends for ASC and DESC), and ``unit_id`` is unique per row, so the last N rows in rank
    order are the first N in reverse order: a bounded sort instead of numbering every unit.
    """
    by_name = natural_order(prefix, number, u.name, dialect)  # 局2 before 局10, code point order otherwise
    if reverse:
        return (u.rate.asc(), u.missing.desc(), u.place.desc(), *(k.desc() for k in by_name), u.unit_id.desc())
    return (u.rate.desc(), u.missing.asc(), u.place.asc(), *(k.asc() for k in by_name), u.unit_id.asc())


def _due(c: Any) -> Any:
    """SQL for :attr:`UnitRow.due` over per-unit counts ``c``."""
    return c.on_time + c.late + c.missing - c.pending


def _status_filter(r: Any, status: str) -> Any:
    if status == "behind":
        return r.missing - r.pending > 0
    if status == "pending":
        return r.missing > 0
    if status == "done":
        return r.missing == 0
    return true()


def _in_period(start: datetime, end: datetime, reminder_ids: Iterable[str] | None) -> Any:
    query = select(Occurrence).where(col(Occurrence.due_at) >= db_time(start), col(Occurrence.due_at) < db_time(end))
    if reminder_ids is not None:
        query = query.where(col(Occurrence.reminder_id).in_(list(reminder_ids)))
    return query


async def rehearsals(runtime: Runtime, start: datetime, end: datetime, *,
                     reminder_ids: Iterable[str] | None = None) -> int:
    """Dry-run occurrences due in [start, end): left out of every figure, but said so."""
    async with reads.engine_reader(runtime.db.engine) as reader:
        return await reads.count(reader, reads.rehearsals(start, end,
                                                            list(reminder_ids) if reminder_ids is not None else None))


def board_figures(board: Board, nudges: Mapping[tuple[int, str], int], now: datetime) -> list[UnitRow]:
    """One occurrence's figures per unit, counted exactly like a period's (``nudges`` as loaded
    by :func:`nudge_counts`)."""
    occ = board.occurrence
    return tally((Owed(r.unit_id, r.unit_name or r.unit_id or NO_UNIT, r.confirmed_at, occ.deadline_at,
                       nudges.get((occ.id or 0, r.person_id), 0), r.excused_at is not None, r.unit_order)
                  for r in board.rows), now)


# ---------------------------------------------------------------- one occurrence's board, counted in SQL

BOARD_STATUSES = ("pending", "overdue", "confirmed", "late")


@dataclass(frozen=True)
class BoardCounts:
    """An occurrence's board figures, counted in the database (the same rules as :class:`Board`)."""

    expected: int  # everyone owing, excused included
    confirmed: int
    excused: int  # excused and not confirmed
    overdue: int  # neither confirmed nor excused, and the deadline has passed
    on_time: int  # of ``confirmed``: at or before the deadline, or no deadline
    late: int  # of ``confirmed``: after the deadline

    @property
    def owing(self) -> int:
        """Neither confirmed nor excused."""
        return self.expected - self.confirmed - self.excused

    def matching(self, status: str) -> int:
        """How many board rows a ``status`` filter alone keeps (:func:`board_conditions`' rules):
        what :func:`board_total` would count, without another pass over the rows."""
        return {"": self.expected, "pending": self.expected - self.confirmed - self.excused, "overdue": self.overdue,
                "confirmed": self.on_time, "late": self.late, "excused": self.excused}[status]

    @classmethod
    def of(cls, occ: Occurrence, now: datetime, on_time: int, late: int, missing: int, excused: int) -> BoardCounts:
        """The figures from the four disjoint counts (:func:`_unit_counts`' rules)."""
        overdue = missing if _passed(occ, now) is not None else 0
        return cls(on_time + late + missing + excused, on_time + late, excused, overdue, on_time, late)


def _board_tables() -> tuple[Any, Any]:
    return Expectation.__table__, Confirmation.__table__  # type: ignore[attr-defined]


def _board_from(occurrence_id: int) -> Any:
    et, ct = _board_tables()
    return et.outerjoin(ct, and_(ct.c.occurrence_id == et.c.occurrence_id, ct.c.person_id == et.c.person_id))


def _passed(occ: Occurrence, now: datetime) -> datetime | None:
    """The occurrence's deadline (aware UTC) when it has passed at ``now``, else None."""
    deadline = utc(occ.deadline_at) if occ.deadline_at is not None else None
    return deadline if deadline is not None and utc(now) >= deadline else None


async def board_counts(session: AsyncSession, occ: Occurrence, now: datetime) -> BoardCounts:
    """Expected, confirmed (on time, late), excused and overdue people of one occurrence, in one
    aggregate query (a real occurrence's board gets them from :func:`board_chart` instead)."""
    et, ct = _board_tables()
    confirmed = ct.c.person_id.is_not(None)
    deadline = db_time(utc(occ.deadline_at)) if occ.deadline_at is not None else None
    late = false() if deadline is None else and_(confirmed, ct.c.confirmed_at > deadline)
    excused = and_(ct.c.person_id.is_(None), et.c.excused_at.is_not(None))
    sums = (func.sum(case((c, 1), else_=0)) for c in (excused, late))
    stmt = (select(func.count(), func.count(ct.c.person_id), *sums)
            .select_from(_board_from(occ.id or 0)).where(et.c.occurrence_id == occ.id))
    expected, confirmed_n, excused_n, late_n = (await session.exec(stmt)).one()  # type: ignore[call-overload]
    confirmed_n, excused_n, late_n = int(confirmed_n), int(excused_n or 0), int(late_n or 0)
    return BoardCounts.of(occ, now, confirmed_n - late_n, late_n, expected - confirmed_n - excused_n, excused_n)


def board_conditions(dialect: str, occ: Occurrence, now: datetime, unit: str | UnitMatch, status: str) -> list[Any]:
    """SQL conditions for a board's filters: ``unit`` (a unit and its sub-units, see
    :mod:`bot.reporting.unitmatch`; bare words match the recorded units only) and ``status``
    (``pending``: not confirmed nor excused; ``overdue``; ``confirmed``: on time; ``late``: after the
    deadline; ``excused``: excused and not confirmed: the filters split the board as its figures do)."""
    et, ct = _board_tables()
    conditions: list[Any] = [et.c.occurrence_id == occ.id]
    match = unit if isinstance(unit, UnitMatch) else resolve(None, unit)
    if match.query:
        conditions.append(unit_condition(match, et.c.unit_id, et.c.unit_name, dialect))
    confirmed = ct.c.person_id.is_not(None)
    deadline = db_time(utc(occ.deadline_at)) if occ.deadline_at is not None else None
    if status == "pending":
        conditions.append(and_(ct.c.person_id.is_(None), et.c.excused_at.is_(None)))
    elif status == "excused":
        conditions.append(and_(ct.c.person_id.is_(None), et.c.excused_at.is_not(None)))
    elif status == "overdue":
        overdue = and_(ct.c.person_id.is_(None), et.c.excused_at.is_(None))
        conditions.append(overdue if _passed(occ, now) is not None else false())
    elif status == "confirmed":
        conditions.append(confirmed if deadline is None else and_(confirmed, ct.c.confirmed_at <= deadline))
    elif status == "late":
        conditions.append(false() if deadline is None else and_(confirmed, ct.c.confirmed_at > deadline))
    return conditions


async def board_total(session: AsyncSession, occ: Occurrence, conditions: list[Any]) -> int:
    """How many of the occurrence's board rows match ``conditions`` (:func:`board_conditions`)."""
    stmt = select(func.count()).select_from(_board_from(occ.id or 0)).where(*conditions)
    return int((await session.exec(stmt)).one())  # type: ignore[call-overload]


async def board_page_rows(session: AsyncSession, occ: Occurrence, now: datetime, conditions: list[Any],
                          offset: int, limit: int) -> list[BoardRow]:
    """``limit`` board rows matching ``conditions`` from ``offset``, in the board's order (the unit's place in
    the admins' order, then as fired; ``storage.reads.BOARD_EXPECTATIONS``), read off ``ix_expectation_board``.
    The order is total (``id`` last), so pages neither repeat nor skip a row. Only the page's rows are read."""
    et, ct = _board_tables()
    stmt = (select(et.c.person_id, et.c.person_name, et.c.unit_id, et.c.unit_name, et.c.excused_at,
                   et.c.excused_by, et.c.excuse_reason, et.c.unit_order, ct.c.person_id.label("confirmed_by"),
                   ct.c.confirmed_at, ct.c.via, ct.c.note, ct.c.recorded_by)
            .select_from(_board_from(occ.id or 0)).where(*conditions)
            .order_by(et.c.unit_order, et.c.unit_id, et.c.id).offset(offset).limit(limit))
    deadline = utc(occ.deadline_at) if occ.deadline_at is not None else None
    return [board_row(r, r if r.confirmed_by is not None else None, deadline, utc(now))
            for r in (await session.exec(stmt)).all()]  # type: ignore[call-overload]


async def board_unit_figures(session: AsyncSession, occ: Occurrence, now: datetime, *,
                             last: int | None = None) -> tuple[int, list[UnitRow]]:
    """One occurrence's figures per unit, counted and ranked in SQL exactly like a period's.

    Returns how many units there are and their rows in rank order: all of them, or (``last``) only
    the last ones, the furthest behind, as the board's chart shows them; with their 催办次数.
    """
    chart = await board_chart(session, occ, now, last=last)
    return chart.units, chart.rows


@dataclass(frozen=True)
class BoardChart:
    """A real occurrence's board figures and its chart, from one pass over its rows (:func:`board_chart`)."""

    counts: BoardCounts
    units: int  # units with people on the board
    rows: list[UnitRow]  # in rank order: all units, or the last ones asked for


async def board_chart(session: AsyncSession, occ: Occurrence, now: datetime, *,
                      last: int | None = None) -> BoardChart:
    """The board's figures (:class:`BoardCounts`) and its units' figures (see :func:`board_unit_figures`).

    One statement and one pass over the occurrence's rows (:func:`_ranking`): the per-unit counts,
    the number of units and the board's totals, and the last units read as the first of the
    reverse order (a bounded sort; no unit is numbered). At a province's size (20,000 people in
    20,000 units) this replaced three passes: the board's counts, the units counted, the units ranked.
    """
    connection = await session.connection()
    dialect = connection.dialect.name
    found = await _ranking(connection, _ranked_units([occ.id or 0], now), dialect, 0, last,
                           reverse=last is not None, places=False, filtered=False)
    page = found.page[::-1] if last is not None else found.page  # back to rank order
    sums = found.sums
    counts = BoardCounts.of(occ, now, *(sums[k] for k in ("on_time", "late", "missing", "excused")))
    if not page:
        return BoardChart(counts, 0, [])
    nudges = await nudges_by_unit(session, [occ.id or 0], [row.unit_id for row in page])
    rows = [UnitRow(row.unit_id, row.name, row.on_time + row.late + row.missing, row.on_time, row.late,
                    row.missing, nudges.get(row.unit_id, 0), row.pending, row.excused) for row in page]
    return BoardChart(counts, found.units, rows)


async def figures_for(runtime: Runtime, reminder: Reminder, person: Person | None,
                      now: datetime) -> dict[str, Any] | None:
    """The template's ``figures``: a report's period and scope, or a leader's units' status.

    ``kind: report`` reminders use their ``report`` spec (narrowed to the units a person
    oversees when sent per person); a per-person reminder to a leader ("one post, two duties")
    gets the units that leader oversees over the previous month or quarter. Otherwise none.

    ``rows`` is bounded (:func:`shown_figures`: the report's ``report.rows``, else
    :data:`REPORT_ROWS`), so a province's 20,000 units make a message a phone can read: the best
    ranked and the units behind, each with its ``place``; ``more``, ``total_units`` and ``totals``
    sum up the rest. A group's report over more units than it lists also gets ``ranking``, the
    admin units page of its period, where the whole ranking is (not for a report narrowed to some
    reminders or units: that page ranks them all).
    """
    s = runtime.schedules
    overseen = {u.id for u in s.units_overseen_by(person.id)} if person is not None else set()
    spec = reminder.report or ReportSpec()
    bound = spec.rows if reminder.kind == "report" else REPORT_ROWS
    if reminder.kind == "report":
        period = period_bounds(spec.period, now, reminder.zone)
        rows = await unit_figures(runtime, period.start, period.end, reminder_ids=spec.reminders or None,
                                  unit_ids=spec.units or None)
    elif overseen:
        period = period_bounds(brief_period(reminder), now, reminder.zone)
        rows = await unit_figures(runtime, period.start, period.end)
    else:
        return None
    if overseen:
        rows = [r for r in rows if r.unit_id in overseen]
    figures = {"period": period.label, "spec": spec_of(period)} | shown_figures(rows, bound)
    if figures["more"] and person is None and reminder.kind == "report" and not (spec.reminders or spec.units):
        # the same ranking, whole, on the admin units page (admins only; a narrowed report has none)
        figures["ranking"] = f"{runtime.settings.base_url.rstrip('/')}/admin/units?period={figures['spec']}"
    return figures

