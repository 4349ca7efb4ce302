"""Chart images: ``/chart/<token>.png`` (a report's chart, linked from DingTalk/Feishu/Slack
messages) and ``/admin/units.png`` (the admin units page's figures, behind the admin login).

The PNG is drawn again on each request from the signed reminder, due time and person, so what a
link shows is what the report said (figures of real occurrences, for the report's own period).
Without a CJK font the answer is a Chinese 503 page saying which font package is missing.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from bot.reporting.chart import figures_png, render_png_async
from bot.reporting.reports import figures_for, unit_table
from bot.web.common import error_response, paged, period_param, render, runtime_of
from bot.web.views import Refused, not_found, read_view

CHART_UNITS = 100  # units in one picture of the admin units page: its table's page (bot.web.admin.PAGE_ROWS)
NO_FONT = "服务器未安装中文字体，无法生成图表（需安装 fonts-noto-cjk）。请查看文字版通报。"


def add_chart_routes(app: web.Application) -> None:
    app.router.add_get(r"/chart/{token:[A-Za-z0-9._-]{1,400}}.png", report_png)


def add_admin_chart_routes(admin: web.Application) -> None:
    admin.router.add_get("/units.png", units_png)


def _png(picture: object | None) -> web.Response:
    if picture is None:
        return error_response(503, message=NO_FONT)
    return web.Response(body=picture.png, content_type="image/png",  # type: ignore[attr-defined]
                        headers={"Cache-Control": "private, max-age=300"})


async def report_png(request: web.Request) -> web.Response:
    runtime = runtime_of(request)
    try:
        _, payload = read_view(request, ("chart",), runtime.settings.view_ttl_days)
        reminder_id, due_unix, person_id = [*payload, "", 0, ""][:3]
        reminder = runtime.schedules.reminders.get(str(reminder_id))
        if reminder is None or type(due_unix) is not int:
            raise not_found("这份通报对应的提醒已不存在。")
    except Refused as refused:
        return refused.response
    person = runtime.schedules.people.get(str(person_id)) if person_id else None
    due_at = datetime.fromtimestamp(due_unix, UTC)
    figures = await figures_for(runtime, reminder, person, due_at)
    if not figures or not figures["rows"]:
        return error_response(404, message="这份通报没有需要画图的数据。")
    return _png(await figures_png(reminder, figures, fonts=runtime.settings.chart_fonts))


async def units_png(request: web.Request) -> web.Response:
    """The figures of ``/admin/units?period=…`` as a PNG (this month when no period is given): the
    ranking's page ``?page=`` (the first by default) of :data:`CHART_UNITS` units, as the units page
    pages its table. A province's 20,000 units in one picture would take minutes and gigabytes to
    draw, and no phone could show it."""
    runtime = runtime_of(request)
    try:
        period = period_param(request.query.get("period") or "current_month", runtime.clock())
    except ValueError as exc:
        return error_response(400, message=f"{exc}。")
    where: dict[str, Any] = {}

    def page(matched: int) -> tuple[int, int]:
        where["start"], where["pager"] = paged(request, matched, CHART_UNITS)
        return where["start"], CHART_UNITS

    table = await unit_table(runtime, period.start, period.end, now=runtime.clock(), page_of=page)
    rows = [row for _, row in table.rows]
    if not rows:  # a period the menu offers never answers 404: it says there is nothing to draw
        return render(request, "message.html", title=f"暂无数据（{period.label}）", tone="info",
                      message=f"{period.label}没有需要确认的提醒，暂无数据，没有可画的图。")
    title = f"各单位完成情况（{period.label}）"
    if table.units > len(rows):
        pager = where["pager"]
        title += f"：第 {pager['first']:,}–{pager['last']:,} 名，共 {table.units:,} 个单位"
    return _png(await render_png_async(rows, title, fonts=runtime.settings.chart_fonts))
