"""The aiohttp application: health check, confirm pages, admin area, static files.

Pages are server-rendered Jinja2 templates (autoescaped), in Chinese, with no script at all and
no external asset, so the Content-Security-Policy can forbid both.

Every refusal is the service's own Chinese page (JSON on JSON routes) with its 4xx status: the
``security_headers`` middleware turns aiohttp's English errors (404, 405, 413 …) into pages, and
any exception a handler lets escape into a logged 500 page with no traceback. Requests aiohttp
rejects before any middleware (a request line or header over 8190 bytes, a bad method, broken
chunking) are answered by :class:`SafeAppRunner`'s request handler, also in Chinese, and logged as
one line without the request's bytes (aiohttp would log the first 100 of them, i.e. a token).
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.http_exceptions import HttpProcessingError, LineTooLong
from aiohttp.web_protocol import RequestHandler, RequestPayloadError

from bot.metrics import WEB_ERRORS
from bot.platforms.markup import mask_links
from bot.runtime import Runtime
from bot.web.admin import make_admin_app
from bot.web.callbacks import add_callback_routes
from bot.web.charts import add_admin_chart_routes, add_chart_routes
from bot.web.common import (
    HERE,
    OWN_ANSWER,
    RUNTIME,
    TEMPLATES,
    Templates,
    error_response,
    replace_error,
    security_headers,
)
from bot.web.confirm import add_confirm_routes
from bot.web.health import healthz, metrics
from bot.web.ical import add_ical_routes
from bot.web.leader import add_leader_routes

log = logging.getLogger(__name__)

def make_app(runtime: Runtime) -> web.Application:
    app = web.Application(middlewares=[security_headers], client_max_size=64 * 1024)
    app[RUNTIME] = runtime
    app[TEMPLATES] = Templates()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    add_confirm_routes(app)
    add_callback_routes(app)
    add_leader_routes(app)
    add_ical_routes(app)
    add_chart_routes(app)
    app.router.add_get("/static/{name}", static_file)
    app.router.add_get("/", _to_admin)  # the first page a new admin opens (trial 9: it was a 404)
    app.router.add_get("/admin", _to_admin)
    admin = make_admin_app()
    add_admin_chart_routes(admin)
    app.add_subapp("/admin", admin)
    return app


STATIC_TYPES = {".css": "text/css", ".png": "image/png", ".svg": "image/svg+xml"}


async def static_file(request: web.Request) -> web.Response:
    """A file of ``static/`` by its plain name (no subfolders, no ranges: the files are a few KB)."""
    name = request.match_info["name"]
    path = HERE / "static" / name
    kind = STATIC_TYPES.get(path.suffix)
    if kind is None or "/" in name or name.startswith(".") or not path.is_file():
        raise web.HTTPNotFound()
    return web.Response(body=path.read_bytes(), content_type=kind,
                        headers={"Cache-Control": "public, max-age=3600"})


async def _to_admin(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound("/admin/")


# ---------------------------------------------------------------- access log without tokens


class RedactingAccessLogger(AbstractAccessLogger):
    """Access log lines with confirm tokens cut out: a token in a log is a usable credential.

    Pass it as ``web.AppRunner(app, access_log_class=RedactingAccessLogger)``.
    """

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.info(
            '%s "%s %s" %s %.3fs', request.remote, request.method, mask_links(request.path), response.status, time
        )

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)


# ---------------------------------------------------------------- requests aiohttp refuses itself


class _ChineseErrors(RequestHandler):
    """aiohttp's per-connection protocol, answering unparsable requests in Chinese.

    aiohttp's own ``handle_error`` echoes the parser's message (the first bytes of the offending
    line) in an English body, and logs it with a traceback; for a confirmation link that is the
    token. Here the body is our page and the log line names only the kind of error.
    """

    __slots__ = ()

    def handle_error(self, request: web.BaseRequest, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        if status >= 500:
            log.error("处理请求时出错（%s）", type(exc).__name__ if exc else status, exc_info=exc)
        else:
            log.warning("拒绝了来自 %s 的无法解析的请求（%s，HTTP %d）", request.remote,
                        type(exc).__name__ if exc else "—", status)
        WEB_ERRORS.labels(str(status)).inc()
        if request.writer.output_size > 0:  # part of a response is out: only closing is left
            raise ConnectionError("response already started")
        text = None
        if isinstance(exc, LineTooLong):
            text = "请求的链接或请求头超过了允许的长度（8190 字节）。请从提醒消息中重新打开原始链接。"
        elif isinstance(exc, HttpProcessingError) and status == 400:
            # No browser sends broken HTTP, and the path is unknown here: a platform's callback may be the
            # caller, so say what is wrong with the request, not "check the link" (meant for people).
            text = "请求无法解析：HTTP 请求的格式不正确（请求头、Content-Length 或分块编码有误）。"
        response = error_response(status, message=text)
        response.force_close()
        return response

    def log_exception(self, *args: Any, **kw: Any) -> None:
        """A broken body the client sent (read after the answer, to keep the connection) is its fault."""
        exc = kw.get("exc_info")
        if isinstance(exc, RequestPayloadError | HttpProcessingError):
            log.warning("丢弃了一个无法解析的请求正文（%s）", type(exc).__name__)
            return
        super().log_exception(*args, **kw)

    async def finish_response(self, request: web.BaseRequest, resp: web.StreamResponse,
                              start_time: float | None) -> tuple[web.StreamResponse, bool]:
        """Errors raised outside any middleware (an unknown ``Expect`` header) get our page too."""
        if resp.status >= 400 and resp.content_type == "text/plain" and not resp.prepared and not resp.get(OWN_ANSWER):
            resp = replace_error(request, resp)
        return await super().finish_response(request, resp, start_time)


class _SafeServer(web.Server):
    __slots__ = ()

    def __call__(self) -> RequestHandler:
        return _ChineseErrors(self, loop=self._loop, **self._kwargs)


class SafeAppRunner(web.AppRunner):
    """``web.AppRunner`` whose connections answer unparsable requests with the Chinese page.

    aiohttp offers no public hook for this (its parser errors never reach a middleware), so the
    server's protocol class is swapped for :class:`_ChineseErrors`; ``tests/test_web_hostile.py``
    fails if an aiohttp upgrade breaks it.
    """

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        server.__class__ = _SafeServer
        return server
