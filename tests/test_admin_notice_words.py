"""What the admin group reads in remindbot's own notices, on every platform, as the fake robots received it:

* the notice's title once (the platform's title or heading), never again as the body's first line;
* a failed delivery names the cause after 的机器人：, and its advice fits the cause: a server error or a
  timeout is the platform's or the network's fault (remindbot retried), only a permanent refusal points
  at the robot's settings.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest

from bot.delivery import outbox
from bot.delivery.dispatch import Dispatcher
from bot.platforms.base import ChannelBase, Message
from bot.platforms.registry import platform_for
from bot.scheduling.firelog import missed_notice
from bot.settings import Settings
from bot.watch import applied_text, notice_text
from storage.db import Database
from tests.fakes.platforms import FakePlatforms, FakeRobot, Received, deliver

ADMIN_PLATFORMS = ["wecom", "dingtalk", "feishu", "slack", "generic"]
SETTINGS_ADVICE = "请检查该群机器人的设置"


@pytest.fixture
async def fakes() -> AsyncIterator[FakePlatforms]:
    async with FakePlatforms(clock=time.time) as server:
        yield server


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def readable(request: Received) -> str:
    """What the group reads in the chat. DingTalk's markdown ``title`` is only the notification preview,
    so it is left out; everything else the fake joined is shown."""
    data: Any = request.json
    if request.robot.startswith("dingtalk:") and data.get("msgtype") == "markdown":
        return str(data["markdown"]["text"])
    return request.text


def admin_robot(fakes: FakePlatforms, platform: str) -> FakeRobot:
    return fakes.add(platform)


async def one_dead_message(db: Database, fakes: FakePlatforms, http: aiohttp.ClientSession, admin: FakeRobot,
                           broken: FakeRobot, settings: Settings) -> str:
    """One message through ``broken`` (scripted by the caller) until it is dead; the admin's notice."""
    channel, admin_channel = broken.channel("one", name="一支部群"), admin.channel("admin", name="管理员群")
    adapter = platform_for(channel)
    async with db.session() as session:
        await outbox.enqueue(session, dedupe_key="occ1/due/one", channel=channel, platform=broken.platform,
                             bodies=adapter.build(channel, Message(title="学习日", markdown="请确认")),
                             stage="due", summary="学习日·一支部")
        await session.commit()
    by_id: dict[str, ChannelBase] = {c.id: c for c in (channel, admin_channel)}
    await Dispatcher(db, settings, by_id.get, http, admin_channel=lambda: "admin").run_once()
    (notice,) = [readable(r) for r in admin.received]
    return notice


def quick(tmp_path: Path, **extra: Any) -> Settings:
    return Settings(max_attempts=2, retry_base_seconds=0.01, var_dir=tmp_path, **extra)


@pytest.mark.parametrize("platform", ADMIN_PLATFORMS)
async def test_a_server_error_notice_blames_the_platform_not_the_robot_settings_and_shows_its_title_once(
    db: Database, fakes: FakePlatforms, http: aiohttp.ClientSession, tmp_path: Path, platform: str
) -> None:
    broken, admin = fakes.wecom(), admin_robot(fakes, platform)
    broken.fail_next(5, status=500)

    notice = await one_dead_message(db, fakes, http, admin, broken, quick(tmp_path))

    assert notice.count("消息投递失败") == 1, notice
    assert "企业微信群“一支部群”的机器人：企业微信服务器暂时出错，1 条消息未送达。" in notice
    assert "问题出在企业微信服务器，不是机器人设置的问题" in notice and "已自动重试" in notice
    assert SETTINGS_ADVICE not in notice


async def test_a_timeout_notice_blames_the_network_or_the_platform(
    db: Database, fakes: FakePlatforms, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    broken, admin = fakes.wecom(), fakes.wecom()
    broken.hold()  # never answers
    try:
        notice = await one_dead_message(db, fakes, http, admin, broken, quick(tmp_path, send_timeout_seconds=0.2))
    finally:
        broken.release()

    assert "的机器人：发送超时，1 条消息未送达。" in notice
    assert "问题出在网络或企业微信服务器" in notice and SETTINGS_ADVICE not in notice


async def test_a_revoked_key_still_points_at_the_robot_settings(
    db: Database, fakes: FakePlatforms, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    broken, admin = fakes.wecom(), fakes.wecom()
    broken.revoke()

    notice = await one_dead_message(db, fakes, http, admin, broken, quick(tmp_path))

    assert "企业微信群“一支部群”的机器人：Webhook 地址无效，1 条消息未送达。" in notice
    assert SETTINGS_ADVICE in notice and "不是机器人设置的问题" not in notice


NOTICES = [
    ("日程配置已恢复生效", applied_text([], True)),
    ("日程配置已恢复生效", applied_text(["提醒 study-day（每月学习日）"], True)),
    ("日程配置已生效，有内容被移除", applied_text(["提醒 study-day（每月学习日）"], False)),
    ("日程配置未生效", notice_text(["schedules/study.yaml:3:5: 错误 未知字段 templte"])),
    ("提醒未能发出（已错过）", None),
    ("消息过长被截断", "**消息过长被截断**\n\n> 提醒：每月学习日\n\n该提醒超出平台的长度上限。"),
]


@pytest.mark.parametrize("platform", ADMIN_PLATFORMS)
@pytest.mark.parametrize(("title", "markdown"), NOTICES, ids=[f"{t}-{n}" for n, (t, _) in enumerate(NOTICES)])
async def test_every_admin_notice_shows_its_title_once(
    fakes: FakePlatforms, http: aiohttp.ClientSession, platform: str, title: str, markdown: str | None
) -> None:
    if markdown is None:
        line = SimpleNamespace(text="每月学习日（当天提醒）原定 12月4日 09:00：超过补发时限 2小时 仍未发出，已记为错过")
        markdown = missed_notice([line], 0)  # type: ignore[list-item]
    robot = admin_robot(fakes, platform)
    channel = robot.channel("admin", name="管理员群")
    errors = await deliver(http, platform_for(channel), channel, Message(title=title, markdown=markdown), time.time())

    assert errors == [None]
    (text,) = [readable(r) for r in robot.received]
    assert text.count(title) == 1, text
    heading = title.split("，")[0].split("（")[0]
    assert text.count(heading) == 1, text  # not 日程配置已生效 again under 日程配置已生效，有内容被移除
