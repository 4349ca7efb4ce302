"""The 通报 as a picture: the chart PNG, its font fallback, WeCom image messages, signed chart URLs."""

from __future__ import annotations

import base64
import hashlib
import re
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr
from test_fire import base_env, run_cli
from test_followup import Clock, bj, fire_due, make_runtime, outbox, write_world

from bot.confirming.tokens import make_view_token
from bot.delivery.compose import build_bodies
from bot.reporting.chart import MAX_PNG_BYTES, find_cjk_font, render_png
from bot.reporting.reports import UnitRow
from bot.runtime import Runtime
from bot.scheduling.occurrences import plan_fire, report_figures
from bot.scheduling.timing import Due, Fire
from bot.web import make_app
from tests.fakes.platforms import FakePlatforms, platform_env

PNG = b"\x89PNG\r\n\x1a\n"
needs_font = pytest.mark.skipif(find_cjk_font() is None, reason="no CJK font installed (fonts-noto-cjk)")
ROWS = [UnitRow("fgw_b1", "发改委第一党支部", 2, 2), UnitRow("jyj_b1", "教育局第一党支部", 2, 0, 0, 2, 1)]


@needs_font
def test_chart_is_a_png_under_two_megabytes_with_matching_md5() -> None:
    picture = render_png(ROWS, "组织生活情况通报（2026年11月）")
    assert picture is not None
    assert picture.png.startswith(PNG) and len(picture.png) <= MAX_PNG_BYTES
    assert base64.b64decode(picture.base64) == picture.png
    assert hashlib.md5(picture.png).hexdigest() == picture.md5


def test_without_a_cjk_font_there_is_no_picture_and_a_log_line(caplog: pytest.LogCaptureFixture) -> None:
    assert find_cjk_font("No Such Font,Another Missing Font") is None
    assert render_png(ROWS, "通报", fonts="No Such Font") is None
    assert "未找到中文字体" in caplog.text and "fonts-noto-cjk" in caplog.text


def _fire_env(tmp_path: Path, gw: str, leaders: str) -> dict[str, str]:
    return base_env(tmp_path) | {"REMINDBOT_GW_WECOM_WEBHOOK": gw, "REMINDBOT_LEADERS_WECOM_WEBHOOK": leaders}


@needs_font
async def test_report_reminder_sends_the_table_then_the_chart_to_the_wecom_robot(tmp_path: Path) -> None:
    async with FakePlatforms(clock=time.time) as fakes:
        gw, leaders = fakes.wecom(), fakes.wecom()
        env = _fire_env(tmp_path, gw.url, leaders.url)
        code, _, err = await run_cli(env, "fire", "study-day", "--date", "2026-11-06", "--yes")  # November's figures
        assert code == 0, err
        before = len(gw.received)
        code, out, err = await run_cli(env, "fire", "monthly-bulletin", "--date", "2026-12-02")
        assert code == 0, err
        assert "失败 0 条" in out

        for robot, start in ((gw, before), (leaders, 0)):
            got = robot.received[start:]
            kinds = [r.json["msgtype"] for r in got]
            assert kinds[-1] == "image" and len(kinds) == 2, kinds  # the text table first, the picture beside it
            assert kinds[0] in ("text", "markdown")
            assert all(r.accepted for r in got)  # the fake checked base64, md5, format and size
            assert "党员参加组织生活情况通报" in got[0].text and "按时完成率" in got[0].text
            raw = base64.b64decode(got[1].json["image"]["base64"], validate=True)
            assert raw.startswith(PNG) and len(raw) <= 2 * 1024 * 1024
            assert hashlib.md5(raw).hexdigest() == got[1].json["image"]["md5"]


async def test_report_without_a_cjk_font_sends_the_text_table_alone_and_says_why(tmp_path: Path) -> None:
    async with FakePlatforms(clock=time.time) as fakes:
        gw, leaders = fakes.wecom(), fakes.wecom()
        env = _fire_env(tmp_path, gw.url, leaders.url) | {"REMINDBOT_CHART_FONTS": "No Such Font"}
        code, _, err = await run_cli(env, "fire", "study-day", "--date", "2026-11-06", "--yes")
        assert code == 0, err
        before = len(gw.received)
        code, _, err = await run_cli(env, "fire", "monthly-bulletin", "--date", "2026-12-02")
        assert code == 0, err
        assert [r.json["msgtype"] for r in gw.received[before:]] in (["markdown"], ["text"])
        assert "按时完成率" in gw.received[before].text


async def test_fired_report_without_a_font_logs_why_and_links_no_chart(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    runtime = await make_runtime(write_world(tmp_path), Clock(bj(2026, 12, 2, 16, 0)))
    runtime.settings.chart_fonts = "No Such Font"
    try:
        await fire_due(runtime, "study", bj(2026, 11, 3, 9, 0))
        await fire_due(runtime, "bulletin", bj(2026, 12, 2, 16, 0))
        [row] = [r for r in await outbox(runtime, "due") if "通报" in r.summary]
    finally:
        await runtime.db.stop()
    assert "按时完成率" in str(row.body) and "/chart/" not in str(row.body)
    assert "未找到中文字体（已查找：No Such Font）" in caplog.text


@pytest.fixture
async def bulletin(tmp_path: Path) -> AsyncIterator[Runtime]:
    """The test world's monthly bulletin fired on 2 December 2026 over November's study day."""
    runtime = await make_runtime(write_world(tmp_path), Clock(bj(2026, 12, 2, 16, 0)))
    try:
        await fire_due(runtime, "study", bj(2026, 11, 3, 9, 0))
        await fire_due(runtime, "bulletin", bj(2026, 12, 2, 16, 0))
        yield runtime
    finally:
        await runtime.db.stop()


def _chart_link(text: str) -> str:
    start = text.index("https://dj.example.gov.cn/chart/")
    return text[start:text.index(".png", start) + 4]


@needs_font
async def test_platforms_without_image_messages_get_a_signed_chart_link_the_web_app_serves(
    bulletin: Runtime,
) -> None:
    [row] = [r for r in await outbox(bulletin, "due") if "通报" in r.summary]
    link = _chart_link(str(row.body))
    assert "[查看通报图表](" in str(row.body)
    path = link.removeprefix("https://dj.example.gov.cn")
    async with TestClient(TestServer(make_app(bulletin), host="127.0.0.1")) as client:
        response = await client.get(path)
        assert response.status == 200 and response.content_type == "image/png"
        assert (await response.read()).startswith(PNG)

        token = path.removeprefix("/chart/").removesuffix(".png")
        forged = token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB")
        leader_token = make_view_token(bulletin.link_key, "leader", ["zhao"], now=bulletin.clock())
        for bad, status in ((forged, 403), (leader_token, 403), ("not-a-token", 400)):
            response = await client.get(f"/chart/{bad}.png")
            assert response.status == status
            page = await response.text()
            assert "链接" in page and response.content_type == "text/html"


@needs_font
async def test_admin_units_page_offers_the_same_chart_as_png(bulletin: Runtime) -> None:
    bulletin.settings.admin_user, bulletin.settings.admin_password = "gw", SecretStr("pw-for-the-test")
    auth = {"Authorization": "Basic " + base64.b64encode(b"gw:pw-for-the-test").decode()}
    async with TestClient(TestServer(make_app(bulletin), host="127.0.0.1")) as client:
        page = await (await client.get("/admin/units?period=2026-11", headers=auth)).text()
        assert 'href="/admin/units.png?period=2026-11"' in page
        response = await client.get("/admin/units.png?period=2026-11", headers=auth)
        assert response.status == 200 and (await response.read()).startswith(PNG)
        assert (await client.get("/admin/units.png?period=2026-11")).status == 401


@needs_font
@pytest.mark.parametrize("platform", ["wecom", "dingtalk", "feishu", "slack", "generic"])
async def test_every_platform_gets_the_table_and_the_chart_its_own_way(bulletin: Runtime, platform: str) -> None:
    due_at = bj(2026, 12, 2, 16, 0)
    reminder = bulletin.schedules.reminders["bulletin"]
    fire = Fire("bulletin", "due", due_at, Due("bulletin", due_at, None, False, False, None), None)
    [plan] = await plan_fire(bulletin, reminder, fire, 1, None, report_figures(bulletin))
    async with platform_env(now=time.time()) as env:
        robot = env.fakes.add(platform)
        plan = replace(plan, channel=robot.channel("bulletin-test", **({"format": "markdown"}
                                                                      if platform in ("wecom", "dingtalk") else {})))
        _, bodies = build_bodies(bulletin.renderer, plan)
        for body in bodies:
            assert await env.send(plan.channel, body) is None
    shown = " ".join(r.text or str(r.json) for r in robot.received)
    assert "按时完成率" in shown
    if platform == "wecom":
        assert [r.json["msgtype"] for r in robot.received] == ["markdown", "image"]
        assert "/chart/" not in shown
    else:
        assert plan.picture_url is not None and plan.picture_url in str([r.json for r in robot.received])
        if platform == "dingtalk":
            assert f"![通报图表]({plan.picture_url})" in shown


@needs_font
async def test_the_units_period_menu_reaches_an_occurrence_due_next_month_and_no_offered_png_is_a_404(
        bulletin: Runtime) -> None:
    await fire_due(bulletin, "study", bj(2027, 1, 5, 9, 0))  # fired ahead: due next month
    bulletin.settings.admin_user, bulletin.settings.admin_password = "gw", SecretStr("pw-for-the-test")
    auth = {"Authorization": "Basic " + base64.b64encode(b"gw:pw-for-the-test").decode()}
    async with TestClient(TestServer(make_app(bulletin), host="127.0.0.1")) as client:
        page = await (await client.get("/admin/units", headers=auth)).text()
        offered = re.findall(r'<option value="([^"]+)"', page)
        assert "2027-01" in offered and "2027-Q1" in offered and "2027" in offered
        assert 'href="/admin/units?period=2027-01" rel="next"' in page
        ahead = await (await client.get("/admin/units?period=2027-01", headers=auth)).text()
        assert 'href="/admin/units.png?period=2027-01"' in ahead
        for spec in offered:
            response = await client.get(f"/admin/units.png?period={spec}", headers=auth)
            assert response.status == 200, spec
            body = await response.read()
            assert body.startswith(PNG) or "暂无数据" in body.decode(), spec
        png = await client.get("/admin/units.png?period=2027-01", headers=auth)
        assert (await png.read()).startswith(PNG)
        empty = await (await client.get("/admin/units?period=2026-06", headers=auth)).text()
        assert "units.png?period=2026-06" not in empty  # nothing to draw: no picture offered
