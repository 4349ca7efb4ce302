"""The aiohttp application: health check, confirm pages, admin area, static files.

Pages are server-rendered Jinja2 templates (autoescaped), in Chinese, with no script at all and
no external asset, so the Content-Security-Policy can forbid both.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jinja2
from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from sqlalchemy import text

from bot.runtime import Runtime

log = logging.getLogger(__name__)

RUNTIME = web.AppKey("runtime", Runtime)
TEMPLATES = web.AppKey("templates", jinja2.Environment)

HERE = Path(__file__).resolve().parent
DEFAULT_ZONE = ZoneInfo("Asia/Shanghai")
WEEKDAYS = "一二三四五六日"

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    # Confirm URLs hold the token: never send them anywhere as a referrer.
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
}
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


# ---------------------------------------------------------------- formatting for templates


def to_local(moment: datetime | None, zone: ZoneInfo = DEFAULT_ZONE) -> datetime | None:
    if moment is None:
        return None
    if moment.tzinfo is None:  # the database stores naive UTC
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(zone)


def zh_datetime(moment: datetime | None, zone: ZoneInfo = DEFAULT_ZONE) -> str:
    """``2025年3月7日（星期五）09:00`` in the given zone; empty for None."""
    local = to_local(moment, zone)
    if local is None:
        return ""
    return f"{zh_date(local.date())}{local:%H:%M}"


def zh_date(day: date | None) -> str:
    if day is None:
        return ""
    return f"{day.year}年{day.month}月{day.day}日（星期{WEEKDAYS[day.weekday()]}）"


def zh_short(moment: datetime | None, zone: ZoneInfo = DEFAULT_ZONE) -> str:
    """``3月7日 09:00``: for tables, where the year is in the page title."""
    local = to_local(moment, zone)
    return f"{local.month}月{local.day}日 {local:%H:%M}" if local else ""


def percent(value: float) -> str:
    return f"{value * 100:.0f}%"


def make_templates() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(zh_datetime=zh_datetime, zh_date=zh_date, zh_short=zh_short, percent=percent)
    return env


def render(
    request: web.Request, template: str, status: int = 200, **context: Any
) -> web.Response:
    env = request.config_dict[TEMPLATES]
    body = env.get_template(template).render(**context)
    return web.Response(text=body, status=status, content_type="text/html", charset="utf-8")


def runtime_of(request: web.Request) -> Runtime:
    return request.config_dict[RUNTIME]


def zone_for(runtime: Runtime, reminder_id: str | None) -> ZoneInfo:
    reminder = runtime.schedules.reminders.get(reminder_id or "")
    return reminder.zone if reminder is not None else DEFAULT_ZONE


# ---------------------------------------------------------------- middleware and routes


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        response = exc
        if exc.status >= 400 and exc.content_type != "text/html":
            response = _error_page(request, exc.status)
            for name in ("Allow", "WWW-Authenticate"):  # keep what the status needs
                if name in exc.headers:
                    response.headers[name] = exc.headers[name]
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if not request.path.startswith("/static/"):
        response.headers.setdefault("Cache-Control", "no-store")
    return response


def _error_page(request: web.Request, status: int) -> web.Response:
    titles = {404: "页面不存在", 405: "不支持的请求方式", 413: "提交的内容过长"}
    title = titles.get(status, "请求无法处理")
    return render(request, "message.html", status=status, title=title,
                  message="请检查链接是否完整，或联系管理员。", tone="error")


async def healthz(request: web.Request) -> web.Response:
    runtime = runtime_of(request)
    try:
        async with runtime.db.session() as session:
            await session.exec(text("SELECT 1"))  # type: ignore[call-overload]
    except Exception as exc:  # any failure means "not healthy"; the reason is logged, not shown
        log.warning("health check: database unreachable (%s)", type(exc).__name__)
        return web.json_response({"status": "error", "database": "unreachable"}, status=503)
    return web.json_response({
        "status": "ok",
        "database": "ok",
        "reminders": len(runtime.schedules.reminders),
        "time": runtime.clock().astimezone(UTC).isoformat(timespec="seconds"),
    })


def make_app(runtime: Runtime) -> web.Application:
    from bot.web.admin import make_admin_app
    from bot.web.callbacks import add_callback_routes
    from bot.web.confirm import add_confirm_routes

    app = web.Application(middlewares=[security_headers], client_max_size=64 * 1024)
    app[RUNTIME] = runtime
    app[TEMPLATES] = make_templates()
    app.router.add_get("/healthz", healthz)
    add_confirm_routes(app)
    add_callback_routes(app)
    app.router.add_static("/static/", HERE / "static", append_version=False)
    app.router.add_get("/admin", _to_admin)
    app.add_subapp("/admin", make_admin_app())
    return app


async def _to_admin(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound("/admin/")


# ---------------------------------------------------------------- access log without tokens

_TOKEN_PATH = re.compile(r"^/c/[^/?#]+")


class RedactingAccessLogger(AbstractAccessLogger):
    """Access log lines with confirm tokens cut out: a token in a log is a usable credential.

    Pass it as ``web.AppRunner(app, access_log_class=RedactingAccessLogger)``.
    """

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        path = _TOKEN_PATH.sub("/c/…", request.path)
        self.logger.info(
            '%s "%s %s" %s %.3fs', request.remote, request.method, path, response.status, time
        )

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)
