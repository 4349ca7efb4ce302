"""What every page of the web app shares: the app keys, Chinese date formatting, the page
templates, the error pages and the middleware that makes every refusal one of them, form reading.

The page modules (confirm, admin, callbacks, …) import these from here; ``bot.web.app`` imports the
page modules to mount them, so nothing imports the app back.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, date, datetime
from math import ceil
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_to_bytes
from zoneinfo import ZoneInfo

import aiohttp
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError

from bot.logs import minute
from bot.metrics import WEB_ERRORS
from bot.platforms.markup import mask_links
from bot.reporting.figures import PERIOD_CHARS
from bot.reporting.reports import Period, period_bounds
from bot.runtime import Runtime
from bot.sentences import sentence
from storage.ids import row_id

if TYPE_CHECKING:
    import jinja2

    from bot.reporting.reports import UnitRow

log = logging.getLogger(__name__)



class Templates:
    """The pages' Jinja2 environment (:func:`make_templates`), made on the first page rendered: Jinja2
    is not imported before the service is ready (``/healthz`` renders no page)."""

    __slots__ = ("_env",)

    def __init__(self) -> None:
        self._env: jinja2.Environment | None = None

    def get_template(self, name: str) -> jinja2.Template:
        if self._env is None:
            self._env = make_templates()
        return self._env.get_template(name)


RUNTIME = web.AppKey("runtime", Runtime)
TEMPLATES = web.AppKey("templates", Templates)

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
# An image opened on its own is shown in a page the browser builds, styled by the browser: the
# pages' ``style-src 'self'`` blocked Chromium's viewer styles (trial 10: the chart at the top left
# on black, console errors). The image gets a policy that allows those and nothing else.
IMAGE_CSP = "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'"
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


def total_rate(row: UnitRow) -> str:
    """A total's 按时完成率 with how many are not yet due beside it: the rate counts only the due ones, so
    ``100.0%`` over one confirmation while four are still ahead would read as "all done"."""
    from bot.reporting.reports import percent as rate

    if not row.pending:
        return rate(row)
    if not row.due:
        return f"—（{row.pending} 项均未到截止）"
    return f"{rate(row)}（另有 {row.pending} 项未到截止）"


def make_templates() -> jinja2.Environment:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        auto_reload=False,  # the pages ship with the code: no stat() of the files on every request
        trim_blocks=True,
        lstrip_blocks=True,
    )
    # log_minute: the times an admin matches with the terminal's log lines (the banners), written as they are
    # sentence: a refusal or notice ends with one 。 as the CLI prints it, whichever place worded it
    env.filters.update(zh_datetime=zh_datetime, zh_date=zh_date, zh_short=zh_short, percent=percent, log_minute=minute,
                       sentence=sentence)
    return env


def render(
    request: web.Request, template: str, status: int = 200, **context: Any
) -> web.Response:
    env = request.config_dict[TEMPLATES]
    runtime = request.config_dict.get(RUNTIME)
    context.setdefault("person_name", lambda person_id: person_name(runtime, person_id))
    body = env.get_template(template).render(**context)
    return web.Response(text=body, status=status, content_type="text/html", charset="utf-8")


def person_name(runtime: Runtime | None, person_id: str | None) -> str:
    """A person's name as configured now; their id only when they are no longer configured."""
    if not person_id:
        return ""
    person = runtime.schedules.people.get(person_id) if runtime is not None else None
    return person.name if person is not None else person_id


def runtime_of(request: web.Request) -> Runtime:
    return request.config_dict[RUNTIME]


# ---------------------------------------------------------------- paging


def page_number(request: web.Request, param: str = "page") -> int:
    """``?page=`` (or ``?<param>=``, from 1); anything unreadable (``²``, 5,000 digits) is the first page."""
    number = row_id(request.query.get(param, "1"))
    return number if 0 < number < 10**6 else 1


def path_id(request: web.Request) -> int:
    """The ``{id}`` of the path as a row id; 0 (no row: the page's own "not found") when it is too
    large for the id columns (see :func:`storage.ids.row_id`)."""
    return row_id(request.match_info["id"])


def paged(request: web.Request, total: int, size: int, param: str = "page",
          anchor: str = "") -> tuple[int, dict[str, Any]]:
    """Where the page asked for (``?<param>=``) starts among ``total`` items, ``size`` a page, and the
    pager: page, pages, total, first/last item shown, previous/next links. Links keep the other query
    parameters (filters, period, another list's page) and end in ``#<anchor>`` when one is given.
    A page past the end shows the last."""
    pages = max(1, ceil(total / size))
    page = min(page_number(request, param), pages)
    start = (page - 1) * size

    def link(number: int) -> str:
        query = {k: v for k, v in request.query.items() if k != param and v} | {param: str(number)}
        return str(request.rel_url.with_query(query)) + (f"#{anchor}" if anchor else "")

    pager = {"page": page, "pages": pages, "total": total, "first": start + 1, "last": min(start + size, total),
             "previous": link(page - 1) if page > 1 else None, "next": link(page + 1) if page < pages else None}
    return start, pager


def moved_because(runtime: Runtime, original: date | None) -> str:
    """Why an occurrence was moved off ``original`` (its local date before the holiday policy): the
    holiday's Chinese name (元旦), as ``remindbot upcoming`` says it, else ``非工作日`` (a weekend);
    empty when it was not moved. Read from the runtime's calendar (bot/scheduling/workdays.py)."""
    if original is None:
        return ""
    return runtime.calendar.info(original).holiday_name or "非工作日"


def zone_for(runtime: Runtime, reminder_id: str | None) -> ZoneInfo:
    reminder = runtime.schedules.reminders.get(reminder_id or "")
    return reminder.zone if reminder is not None else DEFAULT_ZONE


# ---------------------------------------------------------------- middleware and routes


JSON_PATHS = frozenset({"/healthz"})
# On a plain-text error a handler wrote for a machine caller (a platform's callback refused: 时间戳已过期…,
# 签名不正确…): kept as written, not replaced by the generic page (403 would say only 无权访问).
OWN_ANSWER = web.ResponseKey("own_answer", bool)

# status -> (title, what to do); anything else 4xx says the request could not be handled.
ERRORS: dict[int, tuple[str, str]] = {
    400: ("请求无法处理", "请求的格式不正确。请检查链接是否完整，或从提醒消息中重新打开。"),
    403: ("无权访问", "您没有访问这个页面的权限。"),
    404: ("页面不存在", "请检查链接是否完整，或联系管理员。"),
    405: ("不支持的请求方式", "这个地址不接受这种请求方式。请直接在浏览器中打开链接。"),
    410: ("链接已过期", "这个链接已超过有效期。请打开最近一次提醒消息中的新链接。"),
    413: ("提交的内容过长", "提交的内容超过了允许的长度，请缩短后再试。"),
    414: ("链接过长", "链接超过了允许的长度。请从提醒消息中重新打开原始链接。"),
    429: ("请求过于频繁", "请稍后再试。"),
    431: ("请求头过长", "浏览器发送的请求头过长，请清除本站的 Cookie 后重试。"),
    500: ("服务器内部错误", "服务暂时出现问题，已记录在日志中。请稍后再试，或联系管理员。"),
    503: ("暂时无法提供", "服务暂时无法提供这项内容，请稍后再试，或联系管理员。"),
}
OTHER_ERROR = ("请求无法处理", "请检查链接是否完整，或联系管理员。")
_ERROR_TEMPLATES: jinja2.Environment | None = None


def wants_json(request: web.BaseRequest) -> bool:
    """JSON routes (``/healthz``) and clients that ask for JSON rather than a page get JSON errors."""
    accept = request.headers.get("Accept", "")
    return request.path in JSON_PATHS or ("application/json" in accept and "text/html" not in accept)


def error_response(status: int, *, as_json: bool = False, message: str | None = None) -> web.Response:
    """The service's own Chinese error page (or JSON body) for ``status``; usable without a request."""
    global _ERROR_TEMPLATES
    title, default = ERRORS.get(status, OTHER_ERROR if status < 500 else ERRORS[500])
    message = message or default
    if as_json:
        return web.json_response({"status": "error", "error": title, "message": message}, status=status,
                                 dumps=lambda data: json.dumps(data, ensure_ascii=False))
    if _ERROR_TEMPLATES is None:
        _ERROR_TEMPLATES = make_templates()
    body = _ERROR_TEMPLATES.get_template("message.html").render(title=title, message=message, tone="error")
    response = web.Response(text=body, status=status, content_type="text/html", charset="utf-8")
    for name, value in SECURITY_HEADERS.items():
        response.headers[name] = value
    response.headers["Cache-Control"] = "no-store"
    return response


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400 or (exc.content_type == "text/html" and not wants_json(request)):
            _secure(request, exc)
            raise  # a redirect, or a page of our own
        response = replace_error(request, exc)
    except (ClientGone, ConnectionResetError):  # nobody left to answer; nothing went wrong here
        log.info("客户端在请求中途断开了连接：%s %s", request.method, mask_links(request.path))
        response = error_response(400, as_json=wants_json(request))
    except Exception:  # a bug, never the client's fault: logged with its traceback, shown as a page
        log.exception("处理请求 %s %s 时出错", request.method, mask_links(request.path))
        response = error_response(500, as_json=wants_json(request))
    return _secure(request, response)


def _secure(request: web.BaseRequest, response: web.StreamResponse) -> web.StreamResponse:
    """Security headers on every response; error statuses counted (``remindbot_web_errors_total``)."""
    if response.status >= 400:
        WEB_ERRORS.labels(str(response.status)).inc()
    if response.content_type.startswith("image/"):
        response.headers.setdefault("Content-Security-Policy", IMAGE_CSP)
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if not request.path.startswith("/static/"):
        response.headers.setdefault("Cache-Control", "no-store")
    return response


def replace_error(request: web.BaseRequest, error: web.StreamResponse) -> web.Response:
    """Our Chinese page (or JSON) in place of aiohttp's English error, keeping the headers it needs."""
    response = error_response(error.status, as_json=wants_json(request))
    for name in ("Allow", "WWW-Authenticate", "Retry-After"):
        if name in error.headers:
            response.headers[name] = error.headers[name]
    return response


async def read_form(request: web.Request) -> Mapping[str, Any]:
    """The posted form; a body the client got wrong is a Chinese 400 (413 when over the size cap).

    Covers multipart without a boundary, unknown charsets, bytes that are not in the charset,
    broken compression and a connection that ends mid-body: the client's doing, never a 500.
    """
    try:
        form = await request.post()
        if request.content_type == "application/x-www-form-urlencoded" and request.charset in (None, "utf-8"):
            _check_utf8(await request.read())  # the body post() read, kept by aiohttp: no second read
        return form
    except web.HTTPException:
        raise
    except UnicodeDecodeError as exc:
        if exc.encoding.replace("-", "").lower() != "utf8":
            log.info("无法读取提交的表单（%s）", type(exc).__name__)
            raise web.HTTPBadRequest() from None
        # A multipart field (or a raw urlencoded byte) that is not UTF-8: the same words as a bad %-escape.
        raise _not_utf8() from None
    except (ValueError, LookupError, AssertionError, HttpProcessingError, RequestPayloadError,
            aiohttp.ClientPayloadError) as exc:
        log.info("无法读取提交的表单（%s）", type(exc).__name__)
        raise web.HTTPBadRequest() from None
    except ConnectionError:
        raise ClientGone() from None


NOT_UTF8 = ("提交的内容中有无法识别的字符（不是有效的 UTF-8 编码），本次提交未登记任何内容。"
            "请重新打开页面，重新输入后再提交。")


def _check_utf8(body: bytes) -> None:
    """Refuse a urlencoded body whose %-escapes are not UTF-8 (``note=%ff%fe``): aiohttp would store
    each bad byte as U+FFFD (“��”) without a word (trial 10 #9). Raw bytes that are not UTF-8 fail in
    aiohttp's decode, in a urlencoded body and a multipart field alike (:func:`read_form` says the same)."""
    for pair in body.split(b"&"):
        for part in pair.partition(b"=")[::2]:
            if b"%" not in part:
                continue
            try:
                unquote_to_bytes(part.replace(b"+", b" ")).decode("utf-8")
            except UnicodeDecodeError:
                raise _not_utf8() from None


def _not_utf8() -> web.HTTPBadRequest:
    log.info("提交的表单含有不是 UTF-8 的字符，已拒绝")
    page = error_response(400, message=NOT_UTF8)
    return web.HTTPBadRequest(text=page.text, content_type="text/html")


class ClientGone(Exception):
    """The client hung up before its request was read (not an error of ours: one INFO line)."""


ADMIN_NAME = web.RequestKey("admin_name", str)  # the logged-in admin's name, for audit rows


def admin_name(request: web.Request) -> str:
    """The name of the admin who made this request (set by the admin area's login middleware)."""
    return str(request[ADMIN_NAME])


def period_param(text: str, now: datetime) -> Period:
    """The period a page's ``?period=`` names (as ``remindbot report --period`` reads it, years
    1970–2999 in China's zone); ``now`` resolves ``current_month`` and the like.

    Raises ValueError with a Chinese reason that names the parameter, without a final 。 (the pages
    add what they show instead); a value over :data:`PERIOD_CHARS` characters is not quoted back.
    """
    if len(text) > PERIOD_CHARS:
        raise ValueError(f"链接参数 period（统计周期）过长：{len(text):,} 个字符，"
                         "应写成 2026-11（月）、2026-Q4（季度）或 2026（年）")
    try:
        return period_bounds(text, now, DEFAULT_ZONE)
    except ValueError as exc:
        raise ValueError(f"链接参数 period：{exc}") from None
