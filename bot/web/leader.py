"""A leader's own page, ``/l/<token>``: the units they oversee, read-only, no login.

The token (purpose "leader", ``Settings.view_ttl_days``) carries only the leader's person id
and, from a brief, the brief's period; everything shown is computed from it: this month's figures
(or, when the link came with a quarterly or yearly brief, that brief's period, with a trend over
periods of that kind) for the units the leader oversees
(with sub-units), who is overdue there and since when, and the on-time rate over the last six
periods as an inline SVG. Nothing of another unit is ever loaded: changing the link breaks the
signature (403), and a person who oversees nothing gets a 404.

Previous/next links move the page by one period of its kind with ``?period=<spec>`` on the same
token (the period is not a credential: it only picks which figures of the leader's own units are
shown). It is accepted within :data:`PERIOD_REACH` periods before now and, forward, up to the
period of the latest real occurrence expected of the leader's units (at most ``PERIOD_REACH``
ahead), like the admin units page reaches a reminder fired ahead of its due time. Anything else
(unreadable, another kind, out of range) shows the link's own period with a Chinese note (400).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web
from sqlalchemy import and_, exists, false, true
from sqlmodel import col, func, select

from bot.confirming.confirmations import to_db_time
from bot.reporting.reports import (
    UNITS_BOUND,
    Period,
    UnitRow,
    percent,
    period_bounds,
    shifted_spec,
    spec_of,
    totals,
    unit_figures,
)
from bot.reporting.unitmatch import UnitMatch, named_units
from bot.web.common import DEFAULT_ZONE, paged, render, runtime_of, to_local, zh_datetime
from bot.web.views import Refused, not_found, read_view
from storage.models import Confirmation, Expectation, Occurrence

TREND_PERIODS = 6
PERIOD_REACH = 12  # ?period= goes at most this many periods back from now (and forward)
KIND_WORDS = {"m": "月", "q": "季度", "y": "年"}
OVERDUE_LOOKBACK_DAYS = 366  # overdue confirmations older than a year are history, not news
UNIT_ROWS = 10  # units a page of the leader's table (one card of six lines each on a phone)
LATE_ROWS = 20  # overdue confirmations a page
UNITS_NAMED = 10  # units named at the top of the page; past that the page names the leader's own and counts
IN_LIST = UNITS_BOUND  # unit ids bound in one statement at most


def add_leader_routes(app: web.Application) -> None:
    app.router.add_get(r"/l/{token:[A-Za-z0-9._-]{1,400}}", leader_page)


def periods_back(spec: str, now: datetime, count: int) -> list[Period]:
    """The period ``spec`` and the ``count - 1`` of its kind before it, oldest first (the years a
    report may cover only)."""
    out = []
    for steps in range(-count + 1, 1):
        try:
            out.append(period_bounds(shifted_spec(spec, steps), now, DEFAULT_ZONE))
        except ValueError:
            continue
    return out


def home_period(payload: list[Any], now: datetime) -> Period:
    """The period the link itself shows: the brief's own when it carries one, else this month."""
    spec = payload[1] if len(payload) > 1 and isinstance(payload[1], str) else None
    if spec is not None:
        try:
            return period_bounds(spec, now, DEFAULT_ZONE)
        except ValueError:
            pass
    return period_bounds("current_month", now, DEFAULT_ZONE)


def _ordinal(spec: str) -> int:
    """A period's place among periods of its kind (months, quarters or years), to count steps."""
    if "-Q" in spec:
        return int(spec[:4]) * 4 + int(spec[-1]) - 1
    if "-" in spec:
        return int(spec[:4]) * 12 + int(spec[5:7]) - 1
    return int(spec)


def reach(home: Period, now: datetime, latest: datetime | None) -> tuple[int, int]:
    """The first and last period (as :func:`_ordinal`) of ``home``'s kind that ``?period=`` may show:
    :data:`PERIOD_REACH` before now's, and forward to the period of ``latest`` (the latest real
    occurrence of the leader's units; UTC), at most ``PERIOD_REACH`` after now's."""
    kind = _kind(home)
    named = {"m": "current_month", "q": "current_quarter", "y": "current_year"}[kind]
    current = _ordinal(spec_of(period_bounds(named, now, DEFAULT_ZONE)))
    top = _ordinal(spec_of(period_bounds(named, latest, DEFAULT_ZONE))) if latest is not None else current
    return current - PERIOD_REACH, max(current, min(top, current + PERIOD_REACH))


def chosen_period(query: str | None, home: Period, now: datetime,
                  latest: datetime | None) -> tuple[Period, str | None]:
    """The period ``?period=`` asks for, or ``home`` with the reason (Chinese) it cannot be shown."""
    if query is None:
        return home, None
    kind = _kind(home)
    try:
        period = period_bounds(query, now, DEFAULT_ZONE)
    except ValueError:
        return home, f"无法识别统计周期“{query[:20]}”"
    if _kind(period) != kind:
        return home, f"本页按{KIND_WORDS[kind]}查看，不能显示“{period.label}”"
    low, high = reach(home, now, latest)
    if not low <= _ordinal(spec_of(period)) <= high:
        first, last = (period_bounds(shifted_spec(spec_of(home), n - _ordinal(spec_of(home))), now, DEFAULT_ZONE)
                       for n in (low, high))
        return home, f"只能查看{first.label}至{last.label}的情况"
    return period, None


def step_links(shown: Period, home: Period, now: datetime,
               latest: datetime | None) -> dict[str, dict[str, str] | None]:
    """``previous``/``next``: the neighbouring periods the page may show, as ``spec`` and ``label``
    (None past the reach)."""
    low, high = reach(home, now, latest)
    links: dict[str, dict[str, str] | None] = {"previous": None, "next": None}
    for name, steps in (("previous", -1), ("next", 1)):
        spec = shifted_spec(spec_of(shown), steps)
        if low <= _ordinal(spec) <= high:
            try:
                links[name] = {"spec": spec, "label": period_bounds(spec, now, DEFAULT_ZONE).label}
            except ValueError:  # past the years a report may cover
                continue
    return links


async def latest_due_in(runtime: Any, unit_ids: set[str], after: datetime | None = None) -> datetime | None:
    """The due time (UTC) of the latest real occurrence that expects anyone of these units; with
    ``after``, only an occurrence due later than that counts (None when there is none).

    More units than :data:`IN_LIST`: the real occurrences newest first, each asked which units it
    expects (by its own index) until one expects any of them, instead of binding every unit id."""
    real = [col(Occurrence.dry_run).is_(False)]
    if after is not None:
        real.append(col(Occurrence.due_at) > to_db_time(after))
    async with runtime.db.session() as session:
        if len(unit_ids) <= IN_LIST:
            joined = select(func.max(Occurrence.due_at)).join(
                Expectation, col(Expectation.occurrence_id) == col(Occurrence.id))
            latest = (await session.exec(joined.where(col(Expectation.unit_id).in_(sorted(unit_ids)), *real))).one()
            return _utc(latest) if latest is not None else None
        occurrences = (await session.exec(select(Occurrence.id, Occurrence.due_at).where(*real)
                                          .order_by(col(Occurrence.due_at).desc()))).all()
        for occurrence_id, due_at in occurrences:
            units = (await session.exec(select(Expectation.unit_id).distinct()
                                        .where(col(Expectation.occurrence_id) == occurrence_id))).all()
            if not unit_ids.isdisjoint(units):
                return _utc(due_at)
    return None


def short_label(period: Period) -> str:
    """``11月``, ``Q4``, ``2026``: a bar's label under the trend chart."""
    spec = spec_of(period)
    if "-Q" in spec:
        return f"{spec[2:4]}Q{spec[-1]}"
    return period.label[5:] if "-" in spec else spec


def trend_bars(points: list[tuple[Period, UnitRow]]) -> list[dict[str, Any]]:
    """One bar per period: height = on-time rate (percent of 100), or none when nothing was due."""
    out = []
    for i, (period, row) in enumerate(points):
        height = round(100 * row.rate, 1) if row.due else 0.0
        out.append({"x": 8 + i * 32, "height": height, "y": 110 - height, "label": short_label(period),
                    "rate": percent(row), "due": row.due})
    return out


def _overdue_conditions(now: datetime) -> list[Any]:
    """An expectation overdue at ``now``: a real occurrence's, deadline passed within
    :data:`OVERDUE_LOOKBACK_DAYS`, no confirmation, not excused (an excused person owes nothing:
    the board and the figures count them apart)."""
    et, ot, ct = (m.__table__ for m in (Expectation, Occurrence, Confirmation))  # type: ignore[attr-defined]
    since = now - timedelta(days=OVERDUE_LOOKBACK_DAYS)
    confirmed = exists().where(ct.c.occurrence_id == et.c.occurrence_id, ct.c.person_id == et.c.person_id)
    return [ot.c.dry_run.is_(False), ot.c.deadline_at.is_not(None), ot.c.deadline_at < to_db_time(now),
            ot.c.deadline_at >= to_db_time(since), et.c.excused_at.is_(None), ~confirmed]


def _unit_clauses(wanted: set[str], counted: dict[str | None, int]) -> list[Any]:
    """How to keep the rows of the ``wanted`` units among those ``counted`` (unit id -> overdue rows):
    one clause per statement to run, each with at most :data:`IN_LIST` unit ids bound (databases
    cap the parameters of a statement). ``[True]``: every counted unit is wanted."""
    unit = Expectation.__table__.c.unit_id  # type: ignore[attr-defined]
    present = sorted(u for u in counted if u in wanted)
    others = sorted(u for u in counted if u is not None and u not in wanted)
    if len(present) == len(counted):
        return [true()]
    if len(present) <= IN_LIST or len(others) > IN_LIST:
        return [unit.in_(present[i:i + IN_LIST]) for i in range(0, len(present), IN_LIST)] or [false()]
    return [and_(unit.is_not(None), unit.not_in(others)) if others else unit.is_not(None)]


async def overdue(runtime: Any, unit_ids: set[str], now: datetime,
                  page_of: Callable[[int], tuple[int, int]] | None = None) -> list[dict[str, Any]]:
    """Unconfirmed expectations in these units whose deadline has passed, longest overdue first:
    every one, or the page ``page_of(total)`` gives as (offset, limit) once their number is known.

    Counted per unit in SQL, then only the rows shown are read: a leader over a province's 20,000
    units reads a page of rows, not their 13,000 (and never binds 20,000 unit ids into one statement)."""
    et, ot = Expectation.__table__, Occurrence.__table__  # type: ignore[attr-defined]
    joined = et.join(ot, ot.c.id == et.c.occurrence_id)
    conditions = _overdue_conditions(now)
    if len(unit_ids) <= IN_LIST:  # a bureau's units: counted by the database alone
        conditions.append(et.c.unit_id.in_(sorted(unit_ids)))
    async with runtime.db.session() as session:
        counted = {u: int(n) for u, n in (await session.exec(  # type: ignore[call-overload]
            select(et.c.unit_id, func.count()).select_from(joined).where(*conditions).group_by(et.c.unit_id))).all()}
        total = sum(n for u, n in counted.items() if u in unit_ids)
        start, limit = page_of(total) if page_of is not None else (0, total)
        if not total or limit <= 0:
            return []
        found = []
        for clause in _unit_clauses(unit_ids, counted):
            query = (select(et.c.person_name, et.c.unit_name, et.c.unit_id, ot.c.title, ot.c.deadline_at,
                            et.c.occurrence_id, et.c.id)
                     .select_from(joined).where(*conditions, clause)
                     .order_by(ot.c.deadline_at, et.c.occurrence_id, et.c.id).limit(start + limit))
            found.extend((await session.exec(query)).all())  # type: ignore[call-overload]
    found.sort(key=lambda r: (_utc(r.deadline_at), r.occurrence_id, r.id))
    rows = []
    for r in found[start:start + limit]:
        deadline = to_local(r.deadline_at)
        assert deadline is not None
        rows.append({"person": r.person_name, "unit": r.unit_name or r.unit_id or "", "title": r.title,
                     "since": zh_datetime(r.deadline_at), "days": (now - deadline).days, "at": deadline})
    return rows


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def unit_summary(schedules: Any, leader_id: str, overseen: set[str]) -> dict[str, Any]:
    """What the page says of the units a leader oversees: every name when they are few (at most
    :data:`UNITS_NAMED`), else the units named for the leader (the first :data:`UNITS_NAMED`, then
    ``等 N 个单位``) and how many units that makes with their sub-units. Builds only the units named."""
    units = schedules.units
    if len(overseen) <= UNITS_NAMED:
        return {"names": [u.name for u in schedules.units_overseen_by(leader_id)], "led": 0, "overseen": 0}
    led = schedules.units_led_by(leader_id)
    return {"names": [units[uid].name for uid in led[:UNITS_NAMED]],
            "led": len(led) if len(led) > UNITS_NAMED else 0, "overseen": len(overseen)}


def unit_rows(schedules: Any, rows: list[UnitRow], overseen: set[str],
              text: str) -> tuple[list[UnitRow], UnitMatch | None]:
    """The table's rows kept by ``?unit=``, and what the words matched (None without ``?unit=``):
    the leader's own unit with that id or exact name, else their units whose name contains it (a
    partial match, said as the admin pages say it), each with its sub-units. Units the leader does
    not oversee are never matched: the page says the words name none of the leader's units."""
    if not text:
        return rows, None
    found, partial = named_units(schedules, text, among=overseen)
    kept = schedules.subtree({uid for uid, _ in found}) if found else set()
    match = UnitMatch(text, frozenset(kept), tuple(found), partial and bool(found))
    return [r for r in rows if r.unit_id in kept], match


async def leader_page(request: web.Request) -> web.StreamResponse:
    runtime = runtime_of(request)
    s = runtime.schedules
    try:
        _, payload = read_view(request, ("leader",), runtime.settings.view_ttl_days)
        leader = s.people.get(str(payload[0]))
        unit_ids = s.unit_ids_overseen_by(leader.id) if leader is not None else set()
        if leader is None or not unit_ids:
            raise not_found("这个链接对应的领导已不在名单中，或当前没有分管单位。请联系机关工委管理员。")
    except Refused as refused:
        return refused.response
    now = runtime.clock().astimezone(UTC)
    # only an occurrence due after now moves the reach forward (see reach): no other is looked at
    home, latest = home_period(payload, now), await latest_due_in(runtime, unit_ids, after=now)
    shown, error = chosen_period(request.query.get("period"), home, now, latest)
    periods = periods_back(spec_of(shown), now, TREND_PERIODS)
    points = []
    for period in periods:
        rows = [r for r in await unit_figures(runtime, period.start, period.end, unit_ids=unit_ids, now=now)
                if r.unit_id in unit_ids]
        points.append((period, rows))
    current_period, current = points[-1]
    text = request.query.get("unit", "").strip()[:100]
    kept, match = unit_rows(s, current, unit_ids, text)
    # 合计: the units shown, over every page (the whole table without ?unit=, as the trend's last bar)
    trend = [(p, totals(rows)) for p, rows in points[:-1]]
    total = totals(kept)
    trend.append((current_period, total if kept is current else totals(current)))
    first, pager = paged(request, len(kept), UNIT_ROWS, anchor="units")
    late_pager: dict[str, Any] = {}

    def late_page(found: int) -> tuple[int, int]:
        start, late_pager["pager"] = paged(request, found, LATE_ROWS, "late", anchor="late")
        return start, LATE_ROWS

    late = await overdue(runtime, unit_ids, now, late_page)
    return render(request, "leader.html", status=400 if error else 200,
                  title=f"{leader.name}同志分管单位党建工作情况", leader=leader, error=error, home=home,
                  token=request.match_info["token"], **step_links(current_period, home, now, latest),
                  summary=unit_summary(s, leader.id, unit_ids), period=current_period,
                  rows=kept[first:first + UNIT_ROWS], pager=pager, unit=text, any_rows=bool(current),
                  unit_match=match,
                  shown_spec=spec_of(current_period) if "period" in request.query and not error else "",
                  total=total, total_rate=percent(total), percent=percent, late=late, late_pager=late_pager["pager"],
                  trend=trend_bars(trend), now=now,
                  trend_unit={"m": "个月", "q": "个季度", "y": "年"}[_kind(current_period)])


def _kind(period: Period) -> str:
    spec = spec_of(period)
    return "q" if "-Q" in spec else ("m" if "-" in spec else "y")
