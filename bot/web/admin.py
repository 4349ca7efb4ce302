"""The admin area under ``/admin``: upcoming reminders, occurrences, boards, per-unit figures.

Per-unit figures come from :mod:`bot.reporting.reports`, like ``remindbot report``: the same periods
(``?period=2026-11``, ``2026-Q4``, ``2026``), the same counting, columns, words and ranking.

Behind HTTP Basic auth for the admins of :mod:`bot.admins` (``REMINDBOT_ADMINS``, or
``REMINDBOT_ADMIN_USER``/``_PASSWORD``); closed (403, with a page saying how to open it) while none
is configured. The pages here only read; the actions that change something are POSTs in
:mod:`bot.web.actions`, each with a CSRF token and a same-site check, because a browser sends
Basic credentials with cross-site requests too. No page shows a webhook, key or secret.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from math import ceil
from typing import TYPE_CHECKING, Any

from aiohttp import web
from sqlalchemy import func
from sqlmodel import col, select

from bot.admins import Accounts, AdminConfigError, accounts_from
from bot.confirming.actions import recorded_only
from bot.confirming.confirmations import Board, BoardRow, board, boards_for
from bot.platforms.markup import redact
from bot.reporting.csvfile import csv_bytes
from bot.reporting.reports import (
    DEFAULT_ZONE,
    HEADERS,
    BoardChart,
    BoardCounts,
    Period,
    UnitRow,
    board_chart,
    board_conditions,
    board_counts,
    board_page_rows,
    board_total,
    cell_row,
    cells,
    percent,
    period_bounds,
    unit_figures,
    unit_table,
)
from bot.reporting.unitmatch import UnitMatch, named_units, resolve
from bot.scheduling.datewords import ahead_line, unsent_text
from bot.scheduling.firelog import (
    SETTLED_LABELS,
    StageLine,
    lateness_text,
    lines_for,
    settled,
    span_text,
    stage_of_occurrence,
)
from bot.scheduling.stagelines import sent_ahead
from bot.scheduling.stages import stage_words
from bot.web.actions import add_action_routes, board_extras, outbox_extras
from bot.web.common import (
    ADMIN_NAME,
    Handler,
    moved_because,
    page_number,
    paged,
    path_id,
    period_param,
    person_name,
    runtime_of,
    to_local,
    total_rate,
    zh_datetime,
    zone_for,
)
from bot.web.common import render as render_page
from bot.web.login import LoginThrottle
from storage import reads
from storage.models import DeliveryAttempt, DueStage, Occurrence, Outbox

if TYPE_CHECKING:
    from bot.runtime import Runtime

UPCOMING_DAYS = 60
OUTCOME_DAYS = 30  # the landing page lists stages missed or sent late this many days back
OCCURRENCES_LIMIT = 200
REALM = 'Basic realm="remindbot admin", charset="UTF-8"'
# What the period menu offers besides the period shown: this many recent months, quarters, years.
RECENT = {"m": 12, "q": 4, "y": 3}

LOGIN_THROTTLE = web.AppKey("login_throttle", LoginThrottle)

NO_WEBHOOK = "未配置 webhook（只记录）"
OUTBOX_STATUS = {"pending": "待发送", "sent": "已发送", "dead": "发送失败", "dry_run": "演练（未发送）"}


def make_admin_app() -> web.Application:
    admin = web.Application(middlewares=[basic_auth])
    admin[LOGIN_THROTTLE] = LoginThrottle()
    admin[ACCOUNTS] = {}
    admin.router.add_get("/", upcoming_page)
    admin.router.add_get("/upcoming", upcoming_page, name="upcoming")
    admin.router.add_get("/occurrences", occurrences_page)
    # At most 18 digits: a longer id cannot be a database row (it would overflow a 64-bit integer).
    admin.router.add_get(r"/occurrences/{id:[0-9]{1,18}}", board_page)
    admin.router.add_get(r"/occurrences/{id:[0-9]{1,18}}/board.csv", board_csv)
    admin.router.add_get("/units", units_page)
    admin.router.add_get("/units.csv", units_csv)
    admin.router.add_get("/outbox", outbox_page)
    admin.router.add_get("/leaders", leaders_page)
    add_action_routes(admin)  # the POSTs: bot/web/actions.py
    admin.router.add_get(r"/templates/{section:people|units}.csv", sheet_template_csv)
    admin.router.add_get(r"/templates/{section:people|units}.xlsx", sheet_template_xlsx)
    return admin


def render(request: web.Request, template: str, status: int = 200, **context: Any) -> web.Response:
    """An admin page, with the banner of a refused schedules reload when there is one, and the service's
    warnings (``Runtime.warnings``, and those of the day it is shown on: ``Runtime.dated_warnings``)."""
    runtime = runtime_of(request)
    return render_page(request, template, status, schedules_state=runtime.reload,
                       service_warnings=[*runtime.warnings, *runtime.dated_warnings()], **context)


# ---------------------------------------------------------------- access


def _basic_credentials(header: str) -> tuple[str, str] | None:
    """(user, password) from a ``Basic`` Authorization header, or None when it is not one."""
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic" or not encoded:
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError):  # binascii.Error, or non-ASCII text in the header
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


ACCOUNTS = web.AppKey("admin_accounts", dict)


def accounts_of(request: web.Request) -> Accounts:
    """The configured admins, built once per settings value (raises AdminConfigError)."""
    settings = runtime_of(request).settings
    key = (settings.admins.get_secret_value(), settings.admin_user, settings.admin_password.get_secret_value())
    cache = request.config_dict[ACCOUNTS]
    if key not in cache:
        cache.clear()
        cache[key] = accounts_from(*key)
    return cache[key]


@web.middleware
async def basic_auth(request: web.Request, handler: Handler) -> web.StreamResponse:
    settings = runtime_of(request).settings
    if not settings.admin_enabled:
        return render(request, "admin_closed.html", status=403, title="管理后台未开启",
                      message="管理后台默认关闭，尚未设置登录用户名和密码。", tone="info")
    throttle = request.config_dict[LOGIN_THROTTLE]
    address = request.remote or "未知地址"
    if (wait := throttle.wait(address)) > 0:
        response = render(request, "message.html", status=429, title="登录失败次数过多",
                          message=f"该地址连续登录失败次数过多，请 {ceil(wait)} 秒后再试。", tone="error")
        response.headers["Retry-After"] = str(ceil(wait))
        return response
    try:
        accounts = accounts_of(request)
    except AdminConfigError as exc:
        return render(request, "admin_closed.html", status=403, title="管理后台未开启", message=str(exc),
                      tone="error")
    header = request.headers.get("Authorization", "")
    given = _basic_credentials(header)
    if given is None or not accounts.check(*given):
        # A browser's first request carries no credentials: not a failed attempt, and nothing was wrong yet.
        words = "请输入管理后台的用户名和密码。"
        if header:
            throttle.failed(address, given[0] if given else "（无法解析）")
            words = "用户名或密码不对，请重新输入管理后台的用户名和密码。"
        response = render(request, "message.html", status=401, title="需要登录", message=words, tone="error")
        response.headers["WWW-Authenticate"] = REALM
        return response
    throttle.succeeded(address)
    request[ADMIN_NAME] = given[0]
    return await handler(request)


# ---------------------------------------------------------------- pages


def _now(request: web.Request) -> datetime:
    return runtime_of(request).clock().astimezone(UTC)


async def upcoming_page(request: web.Request) -> web.Response:
    runtime = runtime_of(request)
    now = _now(request)
    rows = upcoming(runtime, now, now + timedelta(days=UPCOMING_DAYS))
    await mark_fired_early(runtime.db, rows)
    outcomes = lines_for(runtime, await settled(runtime.db, now - timedelta(days=OUTCOME_DAYS), now))
    from bot.web.ical import feed_search

    feeds = feed_search(runtime, request.query.get("feed", "")[:100])
    return render(request, "admin_upcoming.html", title="近期提醒", nav="upcoming", feeds=feeds,
                  rows=rows, days=UPCOMING_DAYS, now=now, outcomes=outcomes, outcome_days=OUTCOME_DAYS,
                  labels=SETTLED_LABELS, lateness=lateness_text, span=span_text, stage=stage_label)


LEADER_UNITS_NAMED = 5  # a leader's directly led units named in their row; the rest as 等 N 个单位


def matching_leaders(schedules: Any, name: str = "", unit: str = "") -> list[str]:
    """Ids of the leaders (people who lead a unit), YAML order, kept by the filters: ``name`` a part of
    the leader's name or id; ``unit`` a unit's id or name (a part of a name when none is named
    exactly), kept when the leader is in charge of it, directly or through a unit above it.

    Costs the leaders and the units named, from the snapshot's indexes (never people × units)."""
    ids = schedules.leader_ids()
    if name:
        people = schedules.people
        ids = [pid for pid in ids if name in pid or name in people[pid].name]
    if unit:
        over = schedules.leaders_over({uid for uid, _ in named_units(schedules, unit)[0]})
        ids = [pid for pid in ids if pid in over]
    return ids


def leader_row(runtime: Any, person_id: str) -> dict[str, Any]:
    """One leader's row: name, id, the units named for them (at most :data:`LEADER_UNITS_NAMED`, then
    等 N 个单位), how many units they oversee with sub-units, and their page link."""
    from bot.scheduling.occurrences import leader_url

    s = runtime.schedules
    led = s.units_led_by(person_id)
    named = "、".join(s.units[uid].name for uid in led[:LEADER_UNITS_NAMED])
    if len(led) > LEADER_UNITS_NAMED:
        named += f" 等 {len(led):,} 个单位"
    overseen = s.overseen_count(person_id)
    return {"name": s.people[person_id].name, "id": person_id, "units": named,
            "below": overseen if overseen > len(led) else 0, "url": leader_url(runtime, person_id)}


async def leaders_page(request: web.Request) -> web.Response:
    """Every leader's own page link (``/l/<token>``), to hand to them when their brief carries none;
    a page of :data:`PAGE_ROWS` at a time, filtered by name and by unit. Each page signs its own
    rows' links only."""
    runtime = runtime_of(request)
    name = request.query.get("name", "").strip()[:100]
    unit = request.query.get("unit", "").strip()[:100]
    ids = matching_leaders(runtime.schedules, name, unit)
    start, pager = page_of(request, len(ids))
    rows = [leader_row(runtime, pid) for pid in ids[start:start + PAGE_ROWS]]
    return render(request, "admin_leaders.html", title="领导页面", nav="leaders", leaders=rows, pager=pager,
                  name=name, unit=unit, filtered=bool(name or unit),
                  any_leaders=bool(ids) or bool(runtime.schedules.leader_ids()), days=runtime.settings.view_ttl_days)


def upcoming(runtime: Any, start: datetime, end: datetime) -> list[dict[str, Any]]:
    """Every enabled reminder's due times in [start, end), after holiday moves, soonest first."""
    from bot.scheduling.timing import due_times  # imported here: the web app must start without it in tests

    rows: list[dict[str, Any]] = []
    for reminder in runtime.schedules.reminders.values():
        if not reminder.enabled:
            continue
        for due in due_times(reminder, runtime.calendar, start, end, include_skipped=True):
            local = to_local(due.due_at, reminder.zone)
            rows.append({
                "reminder": reminder,
                "due": due,
                "when": zh_datetime(due.due_at, reminder.zone),
                "moved": due.original_date is not None,
                # A skipped one stays on its own date; a moved one names where it came from.
                "original": due.original_date or (local.date() if local else None),
                "confirm": reminder.confirm is not None,
                "fired_early": None,  # set from the database by mark_fired_early
                "fired_early_by": None,  # who fired it (``remindbot fire``), when recorded
                "fired_early_text": None,  # both in words, and what is no longer sent (``datewords.ahead_line``)
            })
    rows.sort(key=lambda r: (r["due"].due_at.astimezone(UTC), r["reminder"].id))
    return rows


async def mark_fired_early(db: Any, rows: list[dict[str, Any]]) -> None:
    """Set ``fired_early`` (when) and ``fired_early_by`` (who, when recorded) on the rows whose day
    message an admin already sent ahead (``fire --date``): listed as to come, they would read as still
    to be sent (and announced)."""
    if not rows:
        return
    first, last = rows[0]["due"].due_at, rows[-1]["due"].due_at
    async with reads.engine_reader(db.engine) as reader:  # the one text ``remindbot upcoming`` reads too
        fired = await reads.fired_ahead(reader, first, last + timedelta(microseconds=1),
                                         reads.FIRED_AHEAD_LIMIT)
    for row in rows:
        ahead = fired.get((row["reminder"].id, row["due"].due_at.astimezone(UTC)))
        row["fired_early"] = zh_datetime(ahead.at, row["reminder"].zone) if ahead is not None else None
        row["fired_early_by"] = ahead.by if ahead is not None else None
        row["fired_early_text"] = ahead_line(row["fired_early"], ahead.by) if ahead is not None else None


async def occurrences_page(request: web.Request) -> web.Response:
    runtime = runtime_of(request)
    now = _now(request)
    async with runtime.db.session() as session:
        occs = (
            await session.exec(
                select(Occurrence).order_by(col(Occurrence.due_at).desc()).limit(OCCURRENCES_LIMIT)
            )
        ).all()
    boards = await boards_for(runtime.db, [o.id for o in occs if o.id is not None], now)
    items = []
    for b in boards:
        zone = zone_for(runtime, b.occurrence.reminder_id)
        items.append({"board": b, "zone": zone, "ahead": sent_ahead(b.occurrence, zone)})
    return render(request, "admin_occurrences.html", title="提醒记录", nav="occurrences",
                  items=items, limit=OCCURRENCES_LIMIT, now=now)


def _no_such_record(request: web.Request) -> web.HTTPNotFound:
    response = render(request, "message.html", status=404, title="没有这条记录", tone="error",
                      message=f"没有这条记录：找不到记录号为 {request.match_info['id']} 的提醒记录。")
    return web.HTTPNotFound(text=response.text, content_type="text/html")


async def _board_or_404(request: web.Request) -> Board:
    try:
        return await board(runtime_of(request).db, path_id(request), _now(request))
    except LookupError:
        raise _no_such_record(request) from None


# ---------------------------------------------------------------- paging and filters

PAGE_ROWS = 100  # rows per page of the board and the units table: a page stays small on a phone
BARS_SHOWN = 30  # units in a board's chart at most (the ones furthest behind); the CSV has all
BOARD_STATUS = {"": "全部", "pending": "未确认", "overdue": "逾期未确认", "confirmed": "已确认",
                "late": "逾期确认", "excused": "免于确认"}  # the words of `remindbot status --status`
UNIT_STATUS = {"": "全部", "behind": "有逾期未确认", "pending": "有待确认", "done": "已全部确认"}


def page_of(request: web.Request, total: int) -> tuple[int, dict[str, Any]]:
    """Where the page asked for starts among ``total`` items, and the pager (:func:`bot.web.common.paged`,
    :data:`PAGE_ROWS` a page)."""
    return paged(request, total, PAGE_ROWS)


def match_words(match: UnitMatch) -> dict[str, Any] | None:
    """What the filtered page says about its unit filter: which units it keeps, and after a partial
    match the units to choose from (each a ``unit=<id>`` choice); None without a unit filter."""
    if not match.query:
        return None
    named = "、".join(name for _, name in match.matched[:3]) + (f" 等 {len(match.matched)} 个单位"
                                                                if len(match.matched) > 3 else "")
    below = len(match.ids) - len(match.matched)
    return {"partial": match.partial, "named": named, "below": below, "choices": match.choices,
            "more": max(0, len(match.matched) - len(match.choices)), "recorded_only": not match.matched,
            "meant": match.meant}


def _filters(request: web.Request, statuses: dict[str, str]) -> tuple[str, str]:
    unit = request.query.get("unit", "").strip()[:100]
    status = request.query.get("status", "")
    return unit, status if status in statuses else ""


@dataclass(frozen=True)
class BoardView:
    """What the board page shows: the occurrence, its figures counted in SQL, one page of rows."""

    occurrence: Occurrence
    counts: BoardCounts
    rows: list[BoardRow]  # this page's, filtered

    @property
    def expected(self) -> int:
        return self.counts.expected

    @property
    def confirmed(self) -> int:
        return self.counts.confirmed


async def board_page(request: web.Request) -> web.Response:
    """One occurrence's board: its figures, and its rows a page at a time, filtered by unit and status.

    Counted and paged in the database: a page reads its 100 rows and a few aggregates, never the
    whole occurrence (a province's board has 20,000 people).
    """
    runtime = runtime_of(request)
    now = _now(request)
    unit, status = _filters(request, BOARD_STATUS)
    match = resolve(runtime.schedules, unit)
    async with runtime.db.session() as session:
        occ = await session.get(Occurrence, path_id(request))
        if occ is None:
            raise _no_such_record(request)
        # a rehearsal never counts, so has no chart; a real board's figures come with its chart (the
        # units furthest behind, with their 催办次数) in one pass over the occurrence's rows
        if occ.dry_run:
            chart = BoardChart(await board_counts(session, occ, now), 0, [])
        else:
            chart = await board_chart(session, occ, now, last=BARS_SHOWN)
        dialect = (await session.connection()).dialect.name
        conditions = board_conditions(dialect, occ, now, match, status)
        # a status alone is counted already; a unit filter needs its own count
        total = await board_total(session, occ, conditions) if unit else chart.counts.matching(status)
        start, pager = page_of(request, total)
        rows = await board_page_rows(session, occ, now, conditions, start, PAGE_ROWS)
    counts, units, figures = chart.counts, chart.units, chart.rows
    b = BoardView(occ, counts, rows)
    title = f"{'演练：' if occ.dry_run else ''}确认情况：{occ.title}"
    sent = await stage_of_occurrence(runtime.db, occ.id or 0)
    return render(request, "admin_board.html", title=title,
                  nav="occurrences", board=b, rows=rows, pager=pager, unit=unit, wanted=status,
                  match=match_words(match),
                  statuses=BOARD_STATUS, bars=bars(figures), bars_total=units,
                  zone=zone_for(runtime, occ.reminder_id), now=now,
                  moved_because=moved_because(runtime, occ.original_date),
                  sent=sent_line(runtime, sent, occ), ahead=sent_ahead(occ, zone_for(runtime, occ.reminder_id)),
                  unsent=unsent_text(),
                  **await board_extras(request, b))


def sent_line(runtime: Runtime, sent: DueStage | None, occ: Occurrence) -> StageLine | None:
    """How the occurrence's day message went (its ``due`` stage), naming who fired it ahead and when
    (the occurrence's ``fired_by``, ``fired_at``) when that stage was skipped for it; None when none is
    recorded."""
    if sent is None:
        return None
    return replace(lines_for(runtime, [sent])[0], fired_by=occ.fired_by, fired_at=occ.fired_at)


def _period(request: web.Request) -> tuple[Period, str | None]:
    """The period in ``?period=`` (as ``remindbot report --period`` reads it), else this month.

    A period that cannot be read falls back to this month, with the reason for the page.
    """
    now = _now(request)
    try:
        # An empty form field (?period=) means this month, as no field does.
        return period_param(request.query.get("period") or "current_month", now), None
    except ValueError as exc:
        return period_bounds("current_month", now, DEFAULT_ZONE), str(exc)


def _kind(period: Period) -> str:
    """``m``, ``q`` or ``y``: how many months the period spans."""
    start, end = period.start.date(), period.end.date()
    months = (end.year - start.year) * 12 + end.month - start.month
    return {1: "m", 3: "q"}.get(months, "y")


def _spec_of(kind: str, day: date) -> str:
    if kind == "m":
        return f"{day.year}-{day.month:02d}"
    return f"{day.year}-Q{(day.month - 1) // 3 + 1}" if kind == "q" else str(day.year)


def period_spec(period: Period) -> str:
    """The period as ``--period`` and ``?period=`` write it: ``2026-11``, ``2026-Q4``, ``2026``."""
    return _spec_of(_kind(period), period.start.date())


def _shifted(period: Period, steps: int) -> Period | None:
    """The period of the same kind ``steps`` before (negative) or after (positive) this one.

    None past the years a report may cover (see ``reports.MIN_YEAR``/``MAX_YEAR``).
    """
    kind, day = _kind(period), period.start.date()
    months = {"m": 1, "q": 3, "y": 12}[kind] * steps
    index = day.year * 12 + day.month - 1 + months
    try:
        return period_bounds(_spec_of(kind, date(index // 12, index % 12 + 1, 1)), period.start, DEFAULT_ZONE)
    except ValueError:
        return None


def period_menu(shown: Period, now: datetime, latest: datetime | None = None) -> list[tuple[str, list[dict[str, Any]]]]:
    """Recent months, quarters and years for the period menu, newest first, ``shown`` selected.

    ``latest``: the due time of the latest real occurrence; when it lies in a later period than
    ``now`` (a reminder fired ahead of its due time), the menu reaches that period too.
    """
    upto = max(now, latest) if latest is not None else now
    groups = []
    for kind, label, named in (("m", "月", "current_month"), ("q", "季度", "current_quarter"),
                               ("y", "年", "current_year")):
        current, top = period_bounds(named, now, DEFAULT_ZONE), period_bounds(named, upto, DEFAULT_ZONE)
        ahead = [p for i in range(1, _steps(current, top) + 1) if (p := _shifted(current, i)) is not None]
        periods = [*reversed(ahead), *(p for i in range(RECENT[kind]) if (p := _shifted(current, -i)) is not None)]
        if _kind(shown) == kind and shown not in periods:
            periods = sorted([*periods, shown], key=lambda p: p.start, reverse=True)
        groups.append((label, [{"spec": period_spec(p), "label": p.label, "selected": p == shown}
                               for p in periods]))
    return groups


def _steps(first: Period, last: Period) -> int:
    """How many periods of ``first``'s kind ``last`` lies after ``first`` (0 when not after)."""
    kind = _kind(first)
    months = (last.start.year - first.start.year) * 12 + last.start.month - first.start.month
    return max(0, months // {"m": 1, "q": 3, "y": 12}[kind])


async def latest_due(runtime: Any) -> datetime | None:
    """The due time (UTC) of the latest real occurrence, or None when there is none."""
    async with runtime.db.session() as session:
        latest = (await session.exec(select(func.max(Occurrence.due_at))
                                     .where(col(Occurrence.dry_run).is_(False)))).one()
    return latest.replace(tzinfo=UTC) if latest is not None and latest.tzinfo is None else latest


async def _unit_rows(request: web.Request) -> tuple[Period, list[UnitRow], str | None]:
    period, error = _period(request)
    rows = await unit_figures(runtime_of(request), period.start, period.end, now=_now(request))
    return period, rows, error


def _link(period: Period | None) -> dict[str, str] | None:
    return {"spec": period_spec(period), "label": period.label} if period is not None else None


async def units_page(request: web.Request) -> web.Response:
    """The ranked units of a period, a page at a time, filtered by unit and status (ranks stay the full ones)."""
    period, error = _period(request)
    now = _now(request)
    later = _shifted(period, 1)
    latest = await latest_due(runtime_of(request))
    upto = max(now, latest) if latest is not None else now
    unit, status = _filters(request, UNIT_STATUS)
    match = resolve(runtime_of(request).schedules, unit)
    pager: dict[str, Any] = {}

    def page(matched: int) -> tuple[int, int]:
        start, found = page_of(request, matched)
        pager.update(found)
        return start, PAGE_ROWS

    # ranked, filtered and paged in SQL (ranks stay the full ones): only the page's rows are read
    table = await unit_table(runtime_of(request), period.start, period.end, now=now, unit=match, status=status,
                             page_of=page, guess=((page_number(request) - 1) * PAGE_ROWS, PAGE_ROWS))
    shown = [(r, cell_row(place, r)) for place, r in table.rows]
    total = table.total
    return render(request, "admin_units.html", status=400 if error else 200,
                  title=f"各单位完成情况（{period.label}）", nav="units", error=error,
                  period=_link(period), menu=period_menu(period, now, latest),
                  previous=_link(_shifted(period, -1)),
                  next=_link(later) if later is not None and later.start <= upto else None,
                  headers=HEADERS, cells=[c for _, c in shown], bars=bars([r for r, _ in shown]),
                  total=total, total_rate=total_rate(total), pager=pager, unit=unit, wanted=status,
                  match=match_words(match), statuses=UNIT_STATUS, filtered=bool(unit or status),
                  any_rows=bool(table.units))


async def outbox_page(request: web.Request) -> web.Response:
    runtime = runtime_of(request)
    async with runtime.db.session() as session:
        by_status = (await session.exec(
            select(Outbox.status, Outbox.channel_id, Occurrence.dry_run, func.count())
            .outerjoin(Occurrence, col(Occurrence.id) == col(Outbox.occurrence_id))
            .group_by(Outbox.status, Outbox.channel_id, Occurrence.dry_run))).all()
        rows = (
            await session.exec(
                select(Outbox, Occurrence.dry_run, Occurrence.due_at, Occurrence.reminder_id)
                .outerjoin(Occurrence, col(Occurrence.id) == col(Outbox.occurrence_id))
                .where(col(Outbox.status) != "sent")
                .order_by(col(Outbox.created_at).desc())
                .limit(100)
            )
        ).all()
        repeated = (
            await session.exec(
                select(DeliveryAttempt, Outbox)
                .join(Outbox, col(Outbox.id) == col(DeliveryAttempt.outbox_id))
                .where(col(DeliveryAttempt.possible_duplicate))
                .order_by(col(DeliveryAttempt.at).desc())
                .limit(100)
            )
        ).all()
    doubles = [{
        "at": a.at,
        "channel": _channel_name(runtime, r.channel_id),
        "summary": r.summary,
        "stage": stage_label(r.stage),
        "ok": a.ok,
    } for a, r in repeated]
    counts: dict[str, int] = {}
    for status, channel_id, rehearsal, n in by_status:
        label = NO_WEBHOOK if recorded_only(runtime, Outbox(status=status, channel_id=channel_id), rehearsal) \
            else OUTBOX_STATUS.get(status, status)
        counts[label] = counts.get(label, 0) + n
    groups: dict[str, list[dict[str, Any]]] = {"unsent": [], "rehearsal": [], "no_webhook": []}
    for r, rehearsal, due_at, reminder_id in rows:
        group = _outbox_group(runtime, r, rehearsal)
        groups[group].append({
            "row": r,
            # which occurrence: rows of one reminder's occurrences read alike but for this
            "due": zh_datetime(due_at, zone_for(runtime, reminder_id)) if due_at is not None else "",
            "channel": _channel_name(runtime, r.channel_id),
            "status": NO_WEBHOOK if group == "no_webhook" else OUTBOX_STATUS.get(r.status, r.status),
            "stage": stage_label(r.stage),
            "error": redact(r.last_error),
            **_resend_offer(runtime, r, group),
        })
    return render(request, "admin_outbox.html", title="消息投递", nav="outbox",
                  counts=counts, items=groups["unsent"], still_unset=_still_unset(runtime, groups["no_webhook"]),
                  rehearsed=groups["rehearsal"], unconfigured=groups["no_webhook"], doubles=doubles,
                  **await outbox_extras(request))


def _resend_offer(runtime: Any, row: Outbox, group: str) -> dict[str, Any]:
    """Whether the row's 重新发送 is offered, else why not (``no_resend``): a failed or only-recorded
    row's channel must have a webhook now, or a resend would only record it again (trial 12)."""
    if row.status != "dead" and group != "no_webhook":
        return {"resendable": False, "no_resend": ""}
    channel = runtime.channel(row.channel_id)
    if channel is None:
        return {"resendable": False, "no_resend": "该频道已不在日程配置中，无法重新发送"}
    if channel.dry_run:  # a failed row's channel lost its webhook since: "only recorded" would be untrue
        why = "该频道现在未配置 Webhook" if row.status == "dead" else "该频道未配置 Webhook，仅记录"
        return {"resendable": False, "no_resend": f"{why}；填写 webhook 后可重新发送"}
    return {"resendable": True, "no_resend": ""}


def _still_unset(runtime: Any, items: list[dict[str, Any]]) -> list[str]:
    """The names of the channels of ``items`` (messages only recorded) that still have no webhook now:
    the page's note about them depends on the channels as they are, not as they were (trial 10 #5)."""
    names: dict[str, None] = {}
    for item in items:
        channel = runtime.channel(item["row"].channel_id)
        if channel is None or channel.dry_run:
            names[item["channel"]] = None
    return list(names)


def _outbox_group(runtime: Any, row: Outbox, rehearsal: bool | None) -> str:
    """``unsent`` (waiting or failed), ``rehearsal`` (a 演练's message) or ``no_webhook`` (only recorded).

    ``rehearsal``: the occurrence's dry-run flag (None: no occurrence). Which recorded rows are
    rehearsals is :func:`bot.confirming.actions.recorded_only`'s rule (``resend`` may queue the others again).
    """
    if row.status != "dry_run":
        return "unsent"
    return "no_webhook" if recorded_only(runtime, row, rehearsal) else "rehearsal"


def _channel_name(runtime: Any, channel_id: str) -> str:
    channel = runtime.channel(channel_id)
    return f"{channel.name}（{channel_id}）" if channel is not None else channel_id


def stage_label(stage: str) -> str:
    return stage_words(stage)


# ---------------------------------------------------------------- chart


def bars(rows: list[UnitRow]) -> list[dict[str, Any]]:
    """Segment widths (percent of the bar) per unit: on time, late, missing past the deadline.

    Missing confirmations whose deadline is still ahead (``pending``) are left as bare track.
    """
    out = []
    for r in rows:
        share = 100 / (r.expected or 1)
        on_time, late, overdue = (round(share * n, 2) for n in (r.on_time, r.late, r.missing - r.pending))
        out.append({"row": r, "rate": percent(r), "on_time": on_time, "late": late, "overdue": overdue,
                    "late_x": on_time, "overdue_x": round(on_time + late, 2)})
    return out


# ---------------------------------------------------------------- CSV


def csv_response(filename: str, header: Sequence[str], rows: Iterable[Sequence[object]]) -> web.Response:
    body = csv_bytes(header, rows)  # the same bytes as `remindbot report --format csv`
    return web.Response(
        body=body,
        content_type="text/csv",
        charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


async def sheet_template_csv(request: web.Request) -> web.Response:
    """A people.csv or units.csv to fill in and drop into the schedules folder (bot/config/sheets.py reads it)."""
    from bot.config.sheets import template_csv

    section = request.match_info["section"]
    return web.Response(body=template_csv(section), content_type="text/csv", charset="utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{section}.csv"'})


async def sheet_template_xlsx(request: web.Request) -> web.Response:
    """The same template as an Excel workbook, every cell formatted as text (leading zeros kept)."""
    from bot.config.sheets import template_xlsx

    section = request.match_info["section"]
    body = await asyncio.to_thread(template_xlsx, section)
    return web.Response(body=body, content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                        headers={"Content-Disposition": f'attachment; filename="{section}.xlsx"'})


def board_status(row: BoardRow) -> str:
    if row.excused:
        return "请假等免于确认"
    if row.confirmed:
        return "逾期确认" if row.late else "已确认"
    return "逾期未确认" if row.overdue_since else "未确认"


async def board_csv(request: web.Request) -> web.Response:
    b = await _board_or_404(request)
    zone = zone_for(runtime_of(request), b.occurrence.reminder_id)
    header = ["提醒", "时间", "姓名", "人员标识", "单位", "状态", "确认时间", "确认方式", "备注",
              "代录人", "逾期起始"]
    occ = b.occurrence
    title = f"【演练】{occ.title}" if occ.dry_run else occ.title
    rows: list[list[object]] = [
        [title, zh_datetime(occ.due_at, zone), r.name, r.person_id, r.unit_name or "",
         "演练" if occ.dry_run else board_status(r), zh_datetime(r.confirmed_at, zone), r.via_label, r.note,
         person_name(runtime_of(request), r.recorded_by), zh_datetime(r.overdue_since, zone)]
        for r in b.rows
    ]
    return csv_response(f"board-{occ.id}.csv", header, rows)


async def units_csv(request: web.Request) -> web.Response:
    """The ranked table as ``remindbot report --format csv`` writes it, ready for Excel."""
    period, rows, error = await _unit_rows(request)
    if error:
        return render(request, "message.html", status=400, title="无法识别统计周期",
                      message=error, tone="error")
    return csv_response(f"units-{period_spec(period)}.csv", HEADERS, cells(rows))
