"""A broken robot gives the admin channel one digest per window, never one notice per dead message."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from sqlmodel import select

from bot.delivery import outbox
from bot.delivery.deadletters import headline
from bot.delivery.dispatch import Dispatcher
from bot.platforms.base import ChannelBase, Message
from bot.platforms.registry import platform_for
from bot.settings import Settings
from storage.db import Database
from storage.models import Outbox
from tests.fakes.platforms import FakePlatforms


@pytest.fixture
async def fakes() -> AsyncIterator[FakePlatforms]:
    async with FakePlatforms(clock=time.time) as server:
        yield server


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(rate_window_seconds=60.0, max_attempts=3, send_timeout_seconds=5.0, var_dir=tmp_path,
                    retry_base_seconds=0.01)


async def enqueue(db: Database, channel: ChannelBase, count: int) -> None:
    """A per-person reminder: one message per person, all through the same robot."""
    adapter = platform_for(channel)
    async with db.session() as session:
        for n in range(count):
            bodies = adapter.build(channel, Message(title="学习日", markdown=f"请第{n}位同志确认"))
            await outbox.enqueue(session, dedupe_key=f"occ1/due/{channel.id}/p{n}", channel=channel,
                                 platform=channel.platform, bodies=bodies, stage="due",  # type: ignore[attr-defined]
                                 summary=f"学习日·同志{n}")
        await session.commit()


def dispatcher(db: Database, settings: Settings, http: aiohttp.ClientSession, admin: str,
               *channels: ChannelBase) -> Dispatcher:
    by_id = {c.id: c for c in channels}
    return Dispatcher(db, settings, by_id.get, http, admin_channel=lambda: admin)


async def test_fifteen_dead_messages_of_a_robot_with_a_wrong_secret_make_one_digest(
    db: Database, fakes: FakePlatforms, http: aiohttp.ClientSession, settings: Settings
) -> None:
    robot, admin_robot = fakes.dingtalk(secret="SEC-right"), fakes.wecom()
    broken = robot.channel("czj", name="财政局党支部群", secret="SEC-wrong")
    admin = admin_robot.channel("admin", name="工委管理群")
    await enqueue(db, broken, 15)

    stats = await dispatcher(db, settings, http, "admin", broken, admin).run_once()

    assert stats.dead == 15 and robot.received == []
    (notice,) = admin_robot.texts()
    assert "钉钉群“财政局党支部群”的机器人：签名错误，15 条消息未送达" in notice
    assert "另有 10 条" in notice and "SEC-" not in notice


def test_a_digest_does_not_name_the_platform_twice_when_the_channel_name_says_it() -> None:
    from bot.delivery.deadletters import group_words

    assert group_words("钉钉", "市财政局党建群（钉钉）") == "群“市财政局党建群（钉钉）”"
    assert group_words("钉钉", "财政局党支部群") == "钉钉群“财政局党支部群”"


def test_a_wecom_channel_on_a_government_deployment_is_shown_as_政务微信() -> None:
    from bot.platforms.registry import platform_title
    from bot.platforms.wecom.config import WeComChannel

    gov = WeComChannel(id="g", name="党务群", platform="wecom",
                       webhook="https://wx.gov.example.cn/cgi-bin/webhook/send?key=abc")
    public = WeComChannel(id="p", name="党务群", platform="wecom",
                          webhook="https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=abc")
    named = WeComChannel(id="n", name="市直机关党务工作群（政务微信）", platform="wecom")
    assert [platform_title(c) for c in (gov, public, named)] == ["政务微信", "企业微信", "政务微信"]


async def test_the_digest_never_goes_to_the_robot_that_is_failing(
    db: Database, fakes: FakePlatforms, http: aiohttp.ClientSession, settings: Settings
) -> None:
    robot = fakes.dingtalk(secret="SEC-right")
    broken = robot.channel("czj", secret="SEC-wrong")
    admin = robot.channel("admin", name="同一个机器人的管理群", secret="SEC-wrong")  # same webhook: same robot
    await enqueue(db, broken, 3)

    await dispatcher(db, settings, http, "admin", broken, admin).run_once()

    async with db.session() as session:
        rows = list((await session.exec(select(Outbox))).all())
    assert [r.status for r in rows] == ["dead"] * 3  # no notice was even queued for that robot
    assert len(robot.requests) == 3


async def test_two_broken_robots_make_one_digest_each(
    db: Database, fakes: FakePlatforms, http: aiohttp.ClientSession, settings: Settings
) -> None:
    first, second, admin_robot = fakes.wecom(), fakes.wecom(), fakes.wecom()
    one, two = first.channel("one", name="一支部群"), second.channel("two", name="二支部群")
    first.revoke()
    second.revoke()
    await enqueue(db, one, 4)
    await enqueue(db, two, 2)

    await dispatcher(db, settings, http, "admin", one, two, admin_robot.channel("admin")).run_once()

    notices = sorted(admin_robot.texts())
    assert len(notices) == 2
    assert "企业微信群“一支部群”的机器人：Webhook 地址无效，4 条消息未送达" in notices[0]
    assert "企业微信群“二支部群”的机器人：Webhook 地址无效，2 条消息未送达" in notices[1]


def test_the_headline_is_the_short_cause_of_a_reason() -> None:
    assert headline("签名错误：加签密钥不匹配（钉钉返回 310000：…）") == "签名错误"
    assert headline("已尝试 8 次仍未成功，最后一次：企业微信服务器暂时出错，稍后重试（企业微信返回 HTTP 503）") == (
        "企业微信服务器暂时出错")
    assert headline("") == "发送失败"


async def test_the_running_service_sends_the_digest_when_the_window_ends(
    db: Database, fakes: FakePlatforms, http: aiohttp.ClientSession, settings: Settings
) -> None:
    settings.dead_digest_seconds = 2.0
    robot, admin_robot = fakes.wecom(), fakes.wecom()
    broken, admin = robot.channel("one", name="一支部群"), admin_robot.channel("admin")
    robot.revoke()
    await enqueue(db, broken, 3)
    worker = dispatcher(db, settings, http, "admin", broken, admin)
    await worker.start()
    try:
        async with asyncio.timeout(15):
            while not admin_robot.texts():  # noqa: ASYNC110 (the fake has no event to wait on)
                await asyncio.sleep(0.05)
    finally:
        await worker.stop()
    (notice,) = admin_robot.texts()
    assert "3 条消息未送达" in notice and worker.stats.dead == 3


async def test_a_government_robot_failing_is_named_政务微信_throughout_the_notice(
    db: Database, fakes: FakePlatforms, http: aiohttp.ClientSession, settings: Settings
) -> None:
    robot, admin_robot = fakes.wecom(), fakes.wecom()
    failing = robot.channel("gw", name="市直机关党务工作群（政务微信）")
    admin = admin_robot.channel("admin", name="工委管理群")
    await enqueue(db, failing, 1)
    robot.fail_next(10, status=500)

    d = dispatcher(db, settings, http, "admin", failing, admin)
    for _ in range(settings.max_attempts):
        await d.run_once()
        await asyncio.sleep(0.05)

    (notice,) = admin_robot.texts()
    assert "政务微信服务器暂时出错" in notice and "问题出在政务微信服务器" in notice
    assert "企业微信" not in notice
    async with db.session() as session:
        (row,) = (await session.exec(select(Outbox).where(Outbox.channel_id == "gw"))).all()
    error = row.last_error or ""
    assert row.status == outbox.DEAD and "政务微信" in error and "企业微信" not in error
