"""An admin on a phone (390 px, headless Chromium) doing each admin action: the page updates and
the audit row shows who did it and why. The app runs for real on loopback; the world is the
follow-up tests' (a real study day fired on Tuesday 3 November 2026, 10:00 Beijing time now).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from test_followup import Clock, bj, fire_due, make_runtime, write_world
from test_web_confirm import serve

from bot.admins import hash_password
from bot.runtime import Runtime
from bot.web import make_app
from tests.browserhelp import PHONE, SHOTS
from tests.fakes.platforms import FakePlatforms, FakeRobot

pytestmark = pytest.mark.browser

ADMIN, PASSWORD = "陈明", "chen-ming-phone-password"


@dataclass
class Served:
    runtime: Runtime
    url: str
    occ: int
    robot: FakeRobot


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    settings = write_world(tmp_path)
    settings.admins = SecretStr(f"{ADMIN}:{hash_password(PASSWORD)},李华:{hash_password('li-hua-password-1')}")
    runtime = await make_runtime(settings, Clock(bj(2026, 11, 3, 10, 0)))
    async with FakePlatforms() as fakes:
        robot = fakes.generic("phone-robot")
        runtime.schedules.channels["fake"] = robot.channel("fake", name="党建联络群")
        occ = await fire_due(runtime, "study", bj(2026, 11, 3, 9, 0))
        async with serve(make_app(runtime)) as url:
            yield Served(runtime, url, occ, robot)
    await runtime.db.stop()


@pytest.fixture
async def phone(browser: Any) -> AsyncIterator[Any]:
    context = await browser.new_context(**PHONE, http_credentials={"username": ADMIN, "password": PASSWORD})
    try:
        yield await context.new_page()
    finally:
        await context.close()


async def fits(page: Any) -> None:
    assert await page.evaluate("document.documentElement.scrollWidth") <= 390


async def audit_row(page: Any, action: str) -> str:
    row = page.locator("table.audit tbody tr", has_text=action).first
    await row.wait_for()
    return str(await row.inner_text())


async def test_recording_a_confirmation_on_someones_behalf_on_a_phone(served: Served, phone: Any) -> None:
    await phone.goto(f"{served.url}/admin/occurrences/{served.occ}")
    await phone.get_by_label("谁已完成").select_option(label="刘洋（发改委第二党支部）")
    await phone.get_by_label("备注（如何得知，选填）").fill("电话告知，参会 12 人")
    await phone.get_by_role("button", name="代为登记").click()
    await phone.locator("#done", has_text="已代为登记：刘洋 已完成").wait_for()
    row = phone.locator("table.board tbody tr", has_text="刘洋")
    assert "管理员代录（陈明）" in await row.inner_text() and (await row.inner_text()).count("代录") == 1
    audit = await audit_row(phone, "代为登记")
    assert "陈明" in audit and "刘洋" in audit and "电话告知，参会 12 人" in audit
    await fits(phone)
    await phone.screenshot(path=str(SHOTS / "admin-action-confirm.png"), full_page=True)


async def test_excusing_someone_on_a_phone(served: Served, phone: Any) -> None:
    await phone.goto(f"{served.url}/admin/occurrences/{served.occ}")
    await phone.get_by_label("谁", exact=True).select_option(label="吴敏（教育局第一党支部）")
    await phone.get_by_label("类别").select_option("出差")
    await phone.get_by_label("原因", exact=True).fill("赴省委党校学习")
    await phone.get_by_role("button", name="登记免于确认").click()
    await phone.locator("#done", has_text="已登记：吴敏 免于确认").wait_for()
    row = phone.locator("table.board tbody tr", has_text="吴敏")
    assert "免于确认" in await row.inner_text() and "出差：赴省委党校学习（陈明 登记）" in await row.inner_text()
    assert "1 人请假等免于确认" in await phone.content()
    audit = await audit_row(phone, "请假等免于确认")
    assert "陈明" in audit and "吴敏" in audit and "出差：赴省委党校学习" in audit
    await fits(phone)
    await phone.screenshot(path=str(SHOTS / "admin-action-excuse.png"), full_page=True)


async def test_sending_the_follow_up_now_on_a_phone(served: Served, phone: Any) -> None:
    await phone.goto(f"{served.url}/admin/occurrences/{served.occ}")
    await phone.get_by_label("原因（选填）").fill("支部书记会前再提醒一次")
    await phone.get_by_role("button", name="立即催办").click()
    await phone.locator("#done", has_text="已催办 3 人").wait_for()
    audit = await audit_row(phone, "立即催办")
    assert "陈明" in audit and "支部书记会前再提醒一次" in audit and "排队" in audit
    await fits(phone)


async def test_sending_a_dead_message_again_on_a_phone(served: Served, phone: Any) -> None:
    from bot.confirming.confirmations import to_db_time
    from bot.platforms.base import Message
    from bot.platforms.registry import platform_for
    from storage.models import Outbox

    channel = served.runtime.schedules.channels["fake"]
    body = platform_for(channel).build(channel, Message(title="每月学习日", markdown="请于本周五前完成学习。"))[0]
    async with served.runtime.db.session() as session:
        session.add(Outbox(dedupe_key="dead/1", occurrence_id=served.occ, stage="due", channel_id="fake",
                           platform="generic", robot="r:old", body=body, summary="每月学习日·当天提醒·党建联络群",
                           status="dead", attempts=8, error_kind="config", last_error="webhook 已失效",
                           next_attempt_at=to_db_time(bj(2026, 11, 3, 9, 0))))
        await session.commit()
    await phone.goto(f"{served.url}/admin/outbox")
    dead = phone.locator("table.list tbody tr", has_text="发送失败")  # not the rows only recorded (no webhook)
    await dead.get_by_label("重新发送的原因").fill("已更换 webhook")
    await dead.get_by_role("button", name="重新发送").click()
    await phone.locator("#done", has_text="已重新排队：每月学习日·当天提醒·党建联络群").wait_for()
    audit = await audit_row(phone, "重新发送")
    assert "陈明" in audit and "已更换 webhook" in audit
    assert await phone.locator("table.list tbody tr", has_text="发送失败").count() == 0  # no longer dead
    await fits(phone)
    await phone.screenshot(path=str(SHOTS / "admin-action-resend.png"), full_page=True)


async def test_sending_a_test_message_on_a_phone(served: Served, phone: Any) -> None:
    await phone.goto(f"{served.url}/admin/outbox")
    await phone.get_by_label("频道").select_option("fake")
    await phone.get_by_label("原因（选填）").fill("换群后检查")
    await phone.get_by_role("button", name="发送测试消息").click()
    await phone.locator("#done", has_text="党建联络群：发送成功").wait_for()
    audit = await audit_row(phone, "发送测试消息")
    assert "陈明" in audit and "换群后检查" in audit and "发送成功" in audit
    assert len(served.robot.received) == 1
    await fits(phone)
