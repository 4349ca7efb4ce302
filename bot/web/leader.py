"""A leader's own page, ``/l/<token>``: the units they oversee, read-only, no login.

The token (purpose "leader", ``Settings.view_ttl_days``) carries only the leader's person id
and, from a brief, the brief's period; everything shown is computed from it: this month's figures
(or, when the link came with a quarterly or yearly brief, that brief's period, with a trend over
periods of that kind) for the units the leader oversees
(with sub-units), who is overdue there and since when, and the on-time rate over the last six
periods as an inline SVG. Nothing of another unit is ever loaded: changing the link breaks the
signature (403), and a person who oversees nothing gets a 404.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web
from sqlmodel import col, select

from bot.confirming.confirmations import to_db_time
from bot.reporting.reports import Period, UnitRow, percent, period_bounds, shifted_spec, spec_of, totals, unit_figures
from bot.web.common import DEFAULT_ZONE, render, runtime_of, to_local, zh_datetime
from bot.web.views import Refused, not_found, read_view
from storage.models import Confirmation, Expectation, Occurrence

TREND_PERIODS = 6
OVERDUE_LOOKBACK_DAYS = 366  # overdue confirmations older than a year are history, not news


def add_leader_routes(app: web.Application) -> None:
    app.router.add_get(r"/l/{token:[A-Za-z0-9._-]{1,400}}", leader_page)


def months_back(now: datetime, count: int) -> list[Period]:
    """This month and the ``count - 1`` before it, oldest first."""
    return periods_back(spec_of(period_bounds("current_month", now, DEFAULT_ZONE)), now, count)


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


def shown_periods(payload: list[Any], now: datetime) -> list[Period]:
    """The brief's own period when the link carries one (its trend of that kind), else this month's."""
    spec = payload[1] if len(payload) > 1 and isinstance(payload[1], str) else None
    if spec is not None:
        try:
            return periods_back(spec_of(period_bounds(spec, now, DEFAULT_ZONE)), now, TREND_PERIODS)
        except ValueError:
            pass
    return months_back(now, TREND_PERIODS)


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
    periods = shown_periods(payload, now)
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
                  trend=trend_bars([(p, totals(rows)) for p, rows in points]), now=now,
                  trend_unit={"m": "个月", "q": "个季度", "y": "年"}[_kind(current_period)])


def _kind(period: Period) -> str:
    spec = spec_of(period)
    return "q" if "-Q" in spec else ("m" if "-" in spec else "y")
