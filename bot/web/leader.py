"""A leader's own page, ``/l/<token>``: the units they oversee, read-only, no login.

The token (purpose "leader", ``Settings.view_ttl_days``) carries only the leader's person id;
everything shown is computed from it: this month's figures for the units the leader oversees
(with sub-units), who is overdue there and since when, and the on-time rate over the last six
months as an inline SVG. Nothing of another unit is ever loaded: changing the link breaks the
signature (403), and a person who oversees nothing gets a 404.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web
from sqlmodel import col, select

from bot.confirmations import to_db_time
from bot.reports import Period, UnitRow, percent, period_bounds, totals, unit_figures
from bot.web.common import DEFAULT_ZONE, render, runtime_of, to_local, zh_datetime
from bot.web.views import Refused, not_found, read_view
from storage.models import Confirmation, Expectation, Occurrence

TREND_PERIODS = 6
OVERDUE_LOOKBACK_DAYS = 366  # overdue confirmations older than a year are history, not news


def add_leader_routes(app: web.Application) -> None:
    app.router.add_get(r"/l/{token:[A-Za-z0-9._-]{1,400}}", leader_page)


def months_back(now: datetime, count: int) -> list[Period]:
    """This month and the ``count - 1`` before it, oldest first."""
    local = now.astimezone(DEFAULT_ZONE)
    index = local.year * 12 + local.month - 1
    return [period_bounds(f"{i // 12}-{i % 12 + 1:02d}", now, DEFAULT_ZONE)
            for i in range(index - count + 1, index + 1)]


def trend_bars(points: list[tuple[Period, UnitRow]]) -> list[dict[str, Any]]:
    """One bar per period: height = on-time rate (percent of 100), or none when nothing was due."""
    out = []
    for i, (period, row) in enumerate(points):
        height = round(100 * row.rate, 1) if row.due else 0.0
        out.append({"x": 8 + i * 32, "height": height, "y": 110 - height, "label": period.label[5:],
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
    periods = months_back(now, TREND_PERIODS)
    points = []
    for period in periods:
        rows = [r for r in await unit_figures(runtime, period.start, period.end, unit_ids=unit_ids, now=now)
                if r.unit_id in unit_ids]
        points.append((period, rows))
    current_period, current = points[-1]
    total = totals(current)
    return render(request, "leader.html", title=f"{leader.name}同志分管单位党建工作情况", leader=leader,
                  units=units, period=current_period, rows=current, total=total, total_rate=percent(total),
                  percent=percent, late=await overdue(runtime, unit_ids, now),
                  trend=trend_bars([(p, totals(rows)) for p, rows in points]), now=now)
