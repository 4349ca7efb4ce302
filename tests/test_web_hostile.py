"""Hostile and malformed requests against every route, over raw sockets on loopback.

Whatever a client sends, the answer is the service's own Chinese page (JSON on JSON routes) with a
status below 500, and nothing the client sent (a confirmation token) comes back in it. Requests
are written byte by byte with asyncio streams, because aiohttp's client refuses to send most of
them; the server is the one ``serve`` runs (:class:`SafeAppRunner`), so requests aiohttp rejects
before any middleware are covered too.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import re
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp import web
from test_web_confirm import World, build_world

from bot.metrics import REGISTRY
from bot.web import make_app
from bot.web.app import RedactingAccessLogger, SafeAppRunner
from storage.db import Database

USER, PASSWORD = "gongwei", "correct horse battery 工委"
AUTH = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
CHINESE = re.compile(r"[\u4e00-\u9fff]")
ENGLISH_ERRORS = ("Traceback", "Bad Request", "Not Found", "Got more than", "Internal Server Error",
                  "Method Not Allowed", "Request Entity Too Large", "Invalid")


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: str


@dataclass
class Site:
    port: int
    world: World
    app: web.Application

    async def send(self, raw: bytes) -> Answer:
        """Write ``raw`` as is and read the answer until the server closes or the body is complete."""
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        try:
            writer.write(raw)
            try:
                await writer.drain()
            except ConnectionError:  # the server answered (413, 400) before reading everything
                pass
            data = await asyncio.wait_for(_read_answer(reader), 10)
        finally:
            writer.close()
        return parse(data)


async def _read_answer(reader: asyncio.StreamReader) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = await reader.read(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    match = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", head)
    while match and len(body) < int(match[1]):
        try:
            chunk = await reader.read(65536)
        except ConnectionError:
            break
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


def parse(data: bytes) -> Answer:
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    assert lines[0].startswith("HTTP/1."), f"no HTTP answer: {data[:200]!r}"
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return Answer(int(lines[0].split()[1]), headers, body.decode("utf-8", errors="replace"))


def request(method: str, path: str, headers: dict[str, str] | None = None, body: bytes = b"") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    if body and not any(k.lower() in ("content-length", "transfer-encoding") for k in headers or {}):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


@pytest.fixture
async def world(db: Database, tmp_path: Path) -> World:
    built = await build_world(db, tmp_path, admin_user=USER, admin_password=PASSWORD)
    for loop in ("scheduler", "dispatcher"):  # no loops run here: stamp them as the service's would
        built.runtime.ticks[loop] = built.clock()
    return built


@pytest.fixture
async def site(world: World) -> AsyncIterator[Site]:
    app = make_app(world.runtime)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    runner = SafeAppRunner(app, access_log_class=RedactingAccessLogger)
    await runner.setup()
    try:
        await web.SockSite(runner, sock).start()
        yield Site(sock.getsockname()[1], world, app)
    finally:
        await runner.cleanup()


# ---------------------------------------------------------------- every route


def routes(app: web.Application) -> list[tuple[str, str]]:
    """(method, path template) of every route, sub-applications included (their paths carry the prefix)."""
    found: list[tuple[str, str]] = []
    for resource in app.router.resources():
        info = resource.get_info()
        if "app" in info:  # a sub-application under a prefix
            found += routes(info["app"])
        else:
            found += [(route.method, info.get("path") or info.get("formatter") or "") for route in resource]
    return sorted({(m, p) for m, p in found if m != "HEAD"})


def fill(template: str, site: Site, *, occurrence: str | None = None) -> str:
    path = template.replace("{token}", site.world.token("zhang")).replace("{name}", "style.css")
    return re.sub(r"\{id[^}]*\}", occurrence or str(site.world.occurrence_id), path)


Maker = Callable[[str, str, Site], bytes]  # (method, path template, site) -> the raw request
FORM = "application/x-www-form-urlencoded"


def _post(path: str, headers: dict[str, str], body: bytes) -> bytes:
    return request("POST", path, {"Authorization": AUTH, **headers}, body)


MALFORMED: dict[str, Maker] = {
    "unsupported method": lambda m, t, s: request("DELETE", fill(t, s), {"Authorization": AUTH}),
    "unknown method": lambda m, t, s: request("BREW", fill(t, s), {"Authorization": AUTH}),
    "multipart without boundary": lambda m, t, s: _post(
        fill(t, s), {"Content-Type": "multipart/form-data"}, b"token=x"),
    "multipart with a broken body": lambda m, t, s: _post(
        fill(t, s), {"Content-Type": "multipart/form-data; boundary=zz"}, b"--zz\r\nno headers end"),
    "unknown charset": lambda m, t, s: _post(fill(t, s), {"Content-Type": f"{FORM}; charset=x-no-such"}, b"token=x"),
    "bytes that are not UTF-8": lambda m, t, s: _post(
        fill(t, s), {"Content-Type": FORM}, b"token=\xff\xfe&note=%ff%fe"),
    "garbage gzip body": lambda m, t, s: _post(
        fill(t, s), {"Content-Type": FORM, "Content-Encoding": "gzip"}, b"this is not gzip at all"),
    "huge body": lambda m, t, s: _post(fill(t, s), {"Content-Type": FORM}, b"note=" + b"x" * 300_000),
    "over-long occurrence id": lambda m, t, s: request(
        m, fill(t, s, occurrence="99999999999999999999999"), {"Authorization": AUTH}),
    "non-numeric occurrence id": lambda m, t, s: request(m, fill(t, s, occurrence="abc"), {"Authorization": AUTH}),
    "negative occurrence id": lambda m, t, s: request(m, fill(t, s, occurrence="-1"), {"Authorization": AUTH}),
    "percent-encoded garbage in the path": lambda m, t, s: request(
        m, fill(t, s) + "%ZZ%ff%00", {"Authorization": AUTH}),
    "query garbage": lambda m, t, s: request(
        m, fill(t, s) + "?period=%ff%fe&period=9999-12&x=%ZZ", {"Authorization": AUTH}),
    "period at the edge of time": lambda m, t, s: request(m, fill(t, s) + "?period=0001-01", {"Authorization": AUTH}),
    "non-ASCII basic credentials": lambda m, t, s: request(m, fill(t, s), {"Authorization": "Basic 工委工委"}),
    "basic credentials without a colon": lambda m, t, s: request(
        m, fill(t, s), {"Authorization": "Basic " + base64.b64encode(b"no-colon").decode()}),
    "garbled Origin and Host": lambda m, t, s: _post(
        fill(t, s), {"Content-Type": FORM, "Origin": "http://[::1", "Host": "[::1:99999999"}, b"token=x"),
    "garbled Range": lambda m, t, s: request(m, fill(t, s), {"Authorization": AUTH, "Range": "bytes=zz-yy"}),
    "garbled If-Modified-Since": lambda m, t, s: request(
        m, fill(t, s), {"Authorization": AUTH, "If-Modified-Since": "yesterday-ish"}),
    "unknown Expect": lambda m, t, s: _post(fill(t, s), {"Content-Type": FORM, "Expect": "tea"}, b"token=x"),
    "accepts JSON only": lambda m, t, s: request(
        "PATCH", fill(t, s), {"Authorization": AUTH, "Accept": "application/json"}),
    # Refused by aiohttp's parser, before any middleware:
    "request line over 8 KB": lambda m, t, s: request(m, fill(t, s) + "?x=" + "a" * 9000),
    "header over 8 KB": lambda m, t, s: request(m, fill(t, s), {"Referer": "https://x/" + "b" * 9000}),
    "too many headers": lambda m, t, s: request(m, fill(t, s), {f"X-{i}": "y" for i in range(200)}),
    "bad method token": lambda m, t, s: request("G@T", fill(t, s)),
    "bad header name": lambda m, t, s: request(m, fill(t, s), {"Bad Header": "y"}),
    "NUL in a header": lambda m, t, s: request(m, fill(t, s), {"X-Nul": "a\x00b"}),
    "unknown HTTP version": lambda m, t, s: request(m, fill(t, s)).replace(b"HTTP/1.1", b"HTTP/9.9", 1),
    "raw bytes in the path": lambda m, t, s: request(m, fill(t, s)).replace(b" HTTP/1.1", b"\xff\xfe HTTP/1.1", 1),
    "broken chunked body": lambda m, t, s: _post(
        fill(t, s), {"Transfer-Encoding": "chunked"}, b"zz\r\nabc\r\n0\r\n\r\n"),
    "two Content-Lengths": lambda m, t, s: _post(fill(t, s), {"Content-Length": "3", "Content-length": "4"}, b"abcd"),
    "TLS on the plain port": lambda m, t, s: b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 40,
}


def errors(status: str) -> float:
    return REGISTRY.get_sample_value("remindbot_web_errors_total", {"status": status}) or 0.0


def assert_refused_in_chinese(answer: Answer, what: str, token: str) -> None:
    assert answer.status < 500, f"{what}: {answer.status}\n{answer.body[:500]}"
    if answer.status < 400:
        return
    assert CHINESE.search(answer.body), f"{what}: no Chinese in {answer.body[:300]!r}"
    for english in ENGLISH_ERRORS:
        assert english not in answer.body, f"{what}: {english!r} in {answer.body[:300]!r}"
    if answer.headers.get("content-type", "").startswith("application/json"):
        assert CHINESE.search(json.loads(answer.body)["error"]), what
    if "page" not in what:  # the confirm page itself legitimately carries its token in the form
        assert token not in answer.body or answer.status < 400, f"{what}: the token came back"


async def test_the_table_of_malformed_requests_never_gets_a_500_on_any_route(
    site: Site, caplog: pytest.LogCaptureFixture
) -> None:
    table = routes(site.app)
    assert ("GET", "/healthz") in table and ("POST", "/c/{token}") in table
    assert ("GET", "/admin/occurrences/{id}") in table and ("GET", "/static/{name}") in table, table
    token = site.world.token("zhang")
    caplog.set_level(logging.INFO)
    crashes_before, refusals_before = errors("500"), errors("400")
    for method, template in table:
        for kind, make in MALFORMED.items():
            raw = make(method, template, site)
            answer = await site.send(raw)
            assert_refused_in_chinese(answer, f"{kind} → {method} {template}", token)
    crashes = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert crashes == [], [r.getMessage() for r in crashes]
    assert errors("500") == crashes_before and errors("400") > refusals_before


# ---------------------------------------------------------------- the cases found


async def test_a_multipart_post_without_boundary_is_a_chinese_400(site: Site) -> None:
    token = site.world.token("zhang")
    answer = await site.send(_post(f"/c/{token}", {"Content-Type": "multipart/form-data"}, b"token=" + token.encode()))
    assert answer.status == 400
    assert "请求无法处理" in answer.body and "Traceback" not in answer.body
    assert await site.world.confirmations() == []


async def test_an_over_long_occurrence_id_is_a_chinese_404(site: Site) -> None:
    for path in ("/admin/occurrences/99999999999999999999999", "/admin/occurrences/99999999999999999999999/board.csv"):
        answer = await site.send(request("GET", path, {"Authorization": AUTH}))
        assert answer.status == 404, answer.body
        assert "页面不存在" in answer.body


async def test_a_request_line_over_8kb_is_refused_in_chinese_without_echoing_the_token(site: Site) -> None:
    token = site.world.token("zhang")
    answer = await site.send(request("GET", f"/c/{token}?utm=" + "a" * 9000))
    assert answer.status == 400
    assert "超过了允许的长度" in answer.body
    assert token not in answer.body and token[:20] not in answer.body


async def test_a_header_over_8kb_is_refused_in_chinese(site: Site) -> None:
    answer = await site.send(request("GET", "/healthz", {"Cookie": "c=" + "b" * 9000}))
    assert answer.status == 400 and "超过了允许的长度" in answer.body


async def test_errors_on_json_routes_are_json_in_chinese(site: Site) -> None:
    answer = await site.send(request("POST", "/healthz", {"Content-Type": FORM}, b"x=1"))
    assert answer.status == 405
    assert answer.headers["content-type"].startswith("application/json")
    assert json.loads(answer.body)["error"] == "不支持的请求方式"


async def test_a_405_page_keeps_its_allow_header(site: Site) -> None:
    answer = await site.send(request("PUT", "/healthz"))
    assert answer.status == 405 and "GET" in answer.headers["allow"]


async def test_a_body_over_the_size_cap_is_a_chinese_413(site: Site) -> None:
    token = site.world.token("zhang")
    answer = await site.send(_post(f"/c/{token}", {"Content-Type": FORM}, b"note=" + b"x" * 300_000))
    assert answer.status == 413 and "提交的内容过长" in answer.body


async def test_an_unknown_path_is_a_chinese_404(site: Site) -> None:
    answer = await site.send(request("GET", "/wp-login.php"))
    assert answer.status == 404 and "页面不存在" in answer.body


async def test_non_ascii_basic_credentials_are_a_login_prompt_not_a_crash(site: Site) -> None:
    answer = await site.send(request("GET", "/admin/units", {"Authorization": "Basic 工委工委"}))
    assert answer.status == 401 and "需要登录" in answer.body


@pytest.mark.parametrize("period", ["0001-01", "9999-12", "1970", "2999-Q4"])
async def test_periods_at_the_edge_of_time_are_explained_in_chinese(site: Site, period: str) -> None:
    answer = await site.send(request("GET", f"/admin/units?period={period}", {"Authorization": AUTH}))
    assert answer.status in (200, 400)
    if answer.status == 400:
        assert "年份应在" in answer.body and "out of range" not in answer.body


async def test_a_client_hanging_up_mid_body_is_one_line_without_a_traceback(
        site: Site, caplog: pytest.LogCaptureFixture) -> None:
    token = site.world.token("zhang")
    head = request("POST", f"/c/{token}", {"Content-Type": FORM, "Content-Length": "99999999"})
    caplog.set_level(logging.DEBUG)
    _, writer = await asyncio.open_connection("127.0.0.1", site.port)
    writer.write(head + b"not")
    await writer.drain()
    writer.close()
    await writer.wait_closed()
    for _ in range(100):  # until the server has noticed the hang-up
        if any("断开" in r.getMessage() for r in caplog.records):
            break
        await asyncio.sleep(0.05)
    noted = [r for r in caplog.records if "断开" in r.getMessage()]
    assert len(noted) == 1 and noted[0].levelno in (logging.INFO, logging.WARNING), caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
    assert "Traceback" not in caplog.text
    assert token not in caplog.text
