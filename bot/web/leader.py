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

from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web
from sqlmodel import col, func, select

from bot.confirming.confirmations import to_db_time
from bot.reporting.reports import Period, UnitRow, percent, period_bounds, shifted_spec, spec_of, totals, unit_figures
from bot.web.common import DEFAULT_ZONE, render, runtime_of, to_local, zh_datetime
from bot.web.views import Refused, not_found, read_view
from storage.models import Confirmation, Expectation, Occurrence

TREND_PERIODS = 6
PERIOD_REACH = 12  # ?period= goes at most this many periods back from now (and forward)
KIND_WORDS = {"m": "月", "q": "季度", "y": "年"}
OVERDUE_LOOKBACK_DAYS = 366  # overdue confirmations older than a year are history, not news


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


async def latest_due_in(runtime: Any, unit_ids: set[str]) -> datetime | None:
    """The due time (UTC) of the latest real occurrence that expects anyone of these units."""
    query = (select(func.max(Occurrence.due_at)).join(Expectation, col(Expectation.occurrence_id) == col(Occurrence.id))
             .where(col(Expectation.unit_id).in_(sorted(unit_ids)), col(Occurrence.dry_run).is_(False)))
    async with runtime.db.session() as session:
        latest = (await session.exec(query)).one()
    return latest.replace(tzinfo=UTC) if latest is not None and latest.tzinfo is None else latest


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


async def overdue(runtime: Any, unit_ids: set[str], now: datetime) -> list[dict[str, Any]]:
    """Unconfirmed expectations in these units whose deadline has passed, longest overdue first."""
    since = now - timedelta(days=OVERDUE_LOOKBACK_DAYS)
    query = (select(Expectation, Occurrence).join(Occurrence, col(Occurrence.id) == col(Expectation.occurrence_id))
             .where(col(Expectation.unit_id).in_(sorted(unit_ids)), col(Occurrence.dry_run).is_(False),
                    col(Occurrence.deadline_at).is_not(None), col(Occurrence.deadline_at) < to_db_time(now),
                    col(Occurrence.deadline_at) >= to_db_time(since)))
    async with runtime.db.session() as session:
        pairs = (await session.exec(query)).all()
        ids = [occ.id for _, occ in pairs]
        confirmed = {(c.occurrence_id, c.person_id) for c in (await session.exec(
            select(Confirmation).where(col(Confirmation.occurrence_id).in_(ids)))).all()}
    rows = []
    for exp, occ in pairs:
        if (exp.occurrence_id, exp.person_id) in confirmed:
            continue
        deadline = to_local(occ.deadline_at)
        assert deadline is not None
        rows.append({"person": exp.person_name, "unit": exp.unit_name or exp.unit_id or "", "title": occ.title,
                     "since": zh_datetime(occ.deadline_at), "days": (now - deadline).days, "at": deadline})
    return sorted(rows, key=lambda r: r["at"])


async def leader_page(request: web.Request) -> web.StreamResponse:
    runtime = runtime_of(request)
    try:
        _, payload = read_view(request, ("leader",), runtime.settings.view_ttl_days)
        leader = runtime.schedules.people.get(str(payload[0]))
        units = runtime.schedules.units_overseen_by(leader.id) if leader is not None else []
        if leader is None or not units:
            raise not_found("这个链接对应的领导已不在名单中，或当前没有分管单位。请联系机关工委管理员。")
    except Refused as refused:
        return refused.response
    now = runtime.clock().astimezone(UTC)
    unit_ids = {u.id for u in units}
    home, latest = home_period(payload, now), await latest_due_in(runtime, unit_ids)
    shown, error = chosen_period(request.query.get("period"), home, now, latest)
    periods = periods_back(spec_of(shown), now, TREND_PERIODS)
    points = []
    for period in periods:
        rows = [r for r in await unit_figures(runtime, period.start, period.end, unit_ids=unit_ids, now=now)
                if r.unit_id in unit_ids]
        points.append((period, rows))
    current_period, current = points[-1]
    total = totals(current)
    return render(request, "leader.html", status=400 if error else 200,
                  title=f"{leader.name}同志分管单位党建工作情况", leader=leader, error=error, home=home,
                  token=request.match_info["token"], **step_links(current_period, home, now, latest),
                  units=units, period=current_period, rows=current, total=total, total_rate=percent(total),
                  percent=percent, late=await overdue(runtime, unit_ids, now),
                  trend=trend_bars([(p, totals(rows)) for p, rows in points]), now=now,
                  trend_unit={"m": "个月", "q": "个季度", "y": "年"}[_kind(current_period)])


def _kind(period: Period) -> str:
    spec = spec_of(period)
    return "q" if "-Q" in spec else ("m" if "-" in spec else "y")
