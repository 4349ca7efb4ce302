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

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web
from sqlalchemy import exists
from sqlmodel import func, select

from bot.confirming.confirmations import to_db_time
from bot.reporting.reports import (
    Period,
    UnitRow,
    UnitTable,
    percent,
    period_bounds,
    shifted_spec,
    spec_of,
    unit_table,
    units_totals,
)
from bot.reporting.unitmatch import UnitMatch, in_ids, named_units
from bot.web.common import (
    DEFAULT_ZONE,
    page_number,
    paged,
    render,
    runtime_of,
    to_local,
    total_rate,
    zh_datetime,
)
from bot.web.views import Refused, not_found, read_view
from storage.models import Confirmation, Expectation, Occurrence

TREND_PERIODS = 6
PERIOD_REACH = 12  # ?period= goes at most this many periods back from now (and forward)
KIND_WORDS = {"m": "月", "q": "季度", "y": "年"}
OVERDUE_LOOKBACK_DAYS = 366  # overdue confirmations older than a year are history, not news
UNIT_ROWS = 10  # units a page of the leader's table (one card of six lines each on a phone)
LATE_ROWS = 20  # overdue confirmations a page
UNITS_NAMED = 10  # units named at the top of the page; past that the page names the leader's own and counts


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

    The occurrences first (usually none is due after now, and then no expectation is read), then one
    statement however many units: their ids go as one array or JSON list (:func:`in_ids`), and each
    occurrence is asked by its own index whether it expects any of them."""
    et, ot = Expectation.__table__, Occurrence.__table__  # type: ignore[attr-defined]
    real = [ot.c.dry_run.is_(False)]
    if after is not None:
        real.append(ot.c.due_at > to_db_time(after))
    async with runtime.db.session() as session:
        candidates = list((await session.exec(select(ot.c.id).where(*real))).all())  # type: ignore[call-overload]
        if not candidates:
            return None
        dialect = (await session.connection()).dialect.name
        expects = exists().where(et.c.occurrence_id == ot.c.id, in_ids(et.c.unit_id, sorted(unit_ids), dialect))
        latest = (await session.exec(select(func.max(ot.c.due_at)).where(  # type: ignore[call-overload]
            ot.c.id.in_(candidates), expects))).one()
    return _utc(latest) if latest is not None else None


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


async def overdue(runtime: Any, unit_ids: set[str], now: datetime,
                  page_of: Callable[[int], tuple[int, int]] | None = None,
                  guess: tuple[int, int] | None = None) -> list[dict[str, Any]]:
    """Unconfirmed expectations in these units whose deadline has passed, longest overdue first:
    every one, or the page ``page_of(total)`` gives as (offset, limit) once their number is known.

    Paged in SQL (``LIMIT``/``OFFSET``): a leader over a province's 20,000 units reads a page of rows,
    not their 13,000, and their ids are one parameter (:func:`in_ids`), not 20,000. ``guess``: the
    (offset, limit) expected (the page asked for): read with the count as a window, one pass over the
    rows when ``page_of`` agrees; otherwise (a page past the end, none overdue) counted first."""
    et, ot = Expectation.__table__, Occurrence.__table__  # type: ignore[attr-defined]
    joined = et.join(ot, ot.c.id == et.c.occurrence_id)
    async with runtime.db.session() as session:
        dialect = (await session.connection()).dialect.name
        conditions = [*_overdue_conditions(now), in_ids(et.c.unit_id, sorted(unit_ids), dialect)]

        async def read(offset: int, limit: int) -> list[Any]:
            query = (select(et.c.person_name, et.c.unit_name, et.c.unit_id, ot.c.title, ot.c.deadline_at,
                            func.count().over().label("found"))
                     .select_from(joined).where(*conditions)
                     .order_by(ot.c.deadline_at, et.c.occurrence_id, et.c.id).offset(offset).limit(limit))
            return list((await session.exec(query)).all())  # type: ignore[call-overload]

        found = await read(*guess) if guess is not None and guess[1] > 0 else []
        if found:
            total = int(found[0].found)
        else:
            total = int((await session.exec(select(func.count()).select_from(joined).where(*conditions))).one())
        wanted = page_of(total) if page_of is not None else (0, total)
        if wanted != guess:
            found = await read(*wanted) if total and wanted[1] > 0 else []
    rows = []
    for r in found:
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


def unit_match(schedules: Any, overseen: set[str], text: str) -> UnitMatch | None:
    """What ``?unit=`` matched among the leader's units (None without ``?unit=``): the leader's own
    unit with that id or exact name, else their units whose name contains it (a partial match, said
    as the admin pages say it), each with its sub-units (``ids``: the table keeps these). Units the
    leader does not oversee are never matched: the page says the words name none of the leader's units."""
    if not text:
        return None
    found, partial = named_units(schedules, text, among=overseen)
    kept = schedules.subtree({uid for uid, _ in found}) if found else set()
    return UnitMatch(text, frozenset(kept), tuple(found), partial and bool(found))


async def unit_page(request: web.Request, period: Period, now: datetime,
                    kept: set[str] | frozenset[str]) -> tuple[UnitTable, dict[str, Any]]:
    """The table's page of the ``kept`` units (ranked as every table ranks units, best first) and its
    pager: ranked, summed and paged in SQL (:func:`unit_table`), so a committee leader's 20,000 units
    come back as the page's :data:`UNIT_ROWS` rows and one ``合计``."""
    pager: dict[str, Any] = {}

    def page(matched: int) -> tuple[int, int]:
        start, pager["pager"] = paged(request, matched, UNIT_ROWS, anchor="units")
        return start, UNIT_ROWS

    table = UnitTable(0, 0, UnitRow(None, "合计"), [])
    if kept:
        table = await unit_table(runtime_of(request), period.start, period.end, now=now, page_of=page,
                                 guess=((page_number(request) - 1) * UNIT_ROWS, UNIT_ROWS), within=kept,
                                 nudges=False, places=False)  # the page shows neither 催办次数 nor places
    if "pager" not in pager:  # no unit kept, or nothing due in the period: an empty table
        page(0)
    return table, pager["pager"]


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
    current_period = periods[-1]
    text = request.query.get("unit", "").strip()[:100]
    match = unit_match(s, unit_ids, text)
    late_pager: dict[str, Any] = {}

    def late_page(found: int) -> tuple[int, int]:
        start, late_pager["pager"] = paged(request, found, LATE_ROWS, "late", anchor="late")
        return start, LATE_ROWS

    # 合计: the units shown, over every page; the trend's bars: every unit of the leader's (without
    # ?unit= the table's 合计 is that already), one aggregate per occurrence of their periods. The three
    # reads are independent, each on its own connection: at once, PostgreSQL's backends work side by
    # side (at 100k, ~50 ms less wall for the committee; on SQLite no worse, as measured)
    spans = [(p.start, p.end) for p in (periods if match is not None else periods[:-1])]
    (table, pager), whole, late = await asyncio.gather(
        unit_page(request, current_period, now, match.ids if match is not None else unit_ids),
        units_totals(runtime, spans, now=now, unit_ids=unit_ids),
        overdue(runtime, unit_ids, now, late_page, guess=((page_number(request, "late") - 1) * LATE_ROWS, LATE_ROWS)))
    if match is None:
        whole.append(table.total)
    current = whole[-1]
    total = table.total
    return render(request, "leader.html", status=400 if error else 200,
                  title=f"{leader.name}同志分管单位党建工作情况", leader=leader, error=error, home=home,
                  token=request.match_info["token"], **step_links(current_period, home, now, latest),
                  summary=unit_summary(s, leader.id, unit_ids), period=current_period,
                  rows=[r for _, r in table.rows], pager=pager, unit=text,
                  # every expectation is on time, late, missing or excused: any at all means a unit row
                  any_rows=bool(current.expected or current.excused), unit_match=match,
                  shown_spec=spec_of(current_period) if "period" in request.query and not error else "",
                  total=total, total_rate=total_rate(total), percent=percent, late=late, late_pager=late_pager["pager"],
                  trend=trend_bars(list(zip(periods, whole, strict=True))), now=now,
                  trend_unit={"m": "个月", "q": "个季度", "y": "年"}[_kind(current_period)])


def _kind(period: Period) -> str:
    spec = spec_of(period)
    return "q" if "-Q" in spec else ("m" if "-" in spec else "y")
