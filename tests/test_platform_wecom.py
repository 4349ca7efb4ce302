"""WeCom (企业微信 / 政务微信) group robot against the fake WeCom server."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bot.platforms.base import FailureKind, Mention, Message
from bot.platforms.markup import utf8_len
from bot.platforms.wecom.config import WeComChannel
from bot.platforms.wecom.robot import WeCom
from tests.fakes import PlatformEnv, platform_env

WITH_ID = Mention("zhang", "张三", "13800001111", {"wecom": "zhangsan"})
MOBILE_ONLY = Mention("li", "李四", "13900002222")
NOTHING = Mention("wang", "王五")


@pytest.fixture
async def env() -> AsyncIterator[PlatformEnv]:
    async with platform_env() as environment:
        yield environment


def message(*people: Mention, mention_all: bool = False, markdown: str = "请按时参加**支部党员大会**。") -> Message:
    return Message(title="三会一课提醒", markdown=markdown, mentions=people, mention_all=mention_all)


async def test_text_mentions_userids_and_mobiles_and_everyone(env: PlatformEnv) -> None:
    robot = env.fakes.wecom()

    await env.deliver(robot.channel(format="text"), message(WITH_ID, MOBILE_ONLY, NOTHING, mention_all=True))

    (sent,) = robot.received
    assert sent.json["text"]["mentioned_list"] == ["zhangsan", "@all"]
    assert sent.json["text"]["mentioned_mobile_list"] == ["13900002222"]
    assert sent.notified == {"zhangsan", "13900002222", "all"}
    assert "@王五" in sent.text
    assert "支部党员大会" in sent.text and "**" not in sent.text


async def test_markdown_mentions_by_userid_in_the_content(env: PlatformEnv) -> None:
    robot = env.fakes.wecom()

    await env.deliver(robot.channel(), message(WITH_ID))

    (sent,) = robot.received
    assert sent.json["msgtype"] == "markdown"
    assert "<@zhangsan>" in sent.text
    assert "**支部党员大会**" in sent.text


async def test_markdown_people_known_only_by_mobile_are_mentioned_in_a_following_text(
    env: PlatformEnv,
) -> None:
    robot = env.fakes.wecom()

    await env.deliver(robot.channel(), message(WITH_ID, MOBILE_ONLY, mention_all=True))

    markdown, follow_up = robot.received
    assert markdown.json["msgtype"] == "markdown" and follow_up.json["msgtype"] == "text"
    assert follow_up.json["text"]["mentioned_mobile_list"] == ["13900002222"]
    assert "三会一课提醒" in follow_up.text
    assert markdown.notified | follow_up.notified == {"zhangsan", "13900002222", "all"}


async def test_more_people_than_the_mention_cap_are_mentioned_in_further_messages(
    env: PlatformEnv,
) -> None:
    robot = env.fakes.wecom(limit=None)
    people = [Mention(f"p{i}", f"书记{i}", ids={"wecom": f"user{i}"}) for i in range(120)]

    await env.deliver(robot.channel(format="text"), message(*people))

    assert len(robot.received) == 3
    assert all(len(r.json["text"].get("mentioned_list", [])) <= 50 for r in robot.received)
    assert set().union(*(r.notified for r in robot.received)) == {f"user{i}" for i in range(120)}


@pytest.mark.parametrize(("fmt", "limit"), [("text", 2048), ("markdown", 4096)])
async def test_long_messages_are_split_under_the_byte_limit_of_each_format(
    env: PlatformEnv, fmt: str, limit: int
) -> None:
    robot = env.fakes.wecom(limit=None)
    markdown = "\n\n".join(f"第{i}条：各党支部要认真组织学习并报送情况。" for i in range(200))

    outcomes = await env.deliver(robot.channel(format=fmt), message(WITH_ID, markdown=markdown))

    assert outcomes == [None] * len(outcomes)
    assert len(robot.received) > 2
    assert all(utf8_len(r.json[fmt]["content"]) <= limit for r in robot.received)


def test_a_government_wecom_webhook_on_its_own_host_is_used_as_is() -> None:
    url = "https://zwwx.example.gov.cn/cgi-bin/webhook/send?key=abc-123"
    channel = WeComChannel(id="zw", name="政务微信群", platform="wecom", webhook=url)

    request = WeCom().prepare(channel, {"msgtype": "text", "text": {"content": "x"}}, 0.0)

    assert request.url == url


async def test_an_invalid_key_says_so_in_chinese_without_the_link_or_hint(env: PlatformEnv) -> None:
    robot = env.fakes.wecom()
    channel = robot.channel()
    robot.revoke()

    (error,) = await env.deliver(channel, message())

    assert error is not None and error.kind is FailureKind.CONFIG and error.code == 93000
    assert error.message.startswith("Webhook 地址无效")
    assert "（企业微信返回 93000：invalid webhook url" in error.message
    assert "http" not in error.message and "hint" not in error.message and robot.token not in error.message


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        (45009, FailureKind.RETRY),
        (45033, FailureKind.RETRY),
        (-1, FailureKind.RETRY),
        (93000, FailureKind.CONFIG),
        (40058, FailureKind.REJECTED),
        (44004, FailureKind.REJECTED),
    ],
)
async def test_wecom_codes_in_an_http_200_answer_are_classified(env: PlatformEnv, code: int, kind: FailureKind) -> None:
    robot = env.fakes.wecom()
    robot.answer_next(200, {"errcode": code, "errmsg": "see https://open.work.weixin.qq.com/x?key=zzz"})

    (error,) = await env.deliver(robot.channel(), message())

    assert error is not None and error.kind is kind and error.code == code
    assert "zzz" not in error.message and "http" not in error.message


async def test_the_rate_limit_code_suggests_waiting_a_minute(env: PlatformEnv) -> None:
    robot = env.fakes.wecom()
    robot.throttle_next()

    (error,) = await env.deliver(robot.channel(), message())

    assert error is not None and error.retry_after == 60


async def test_an_answer_that_is_not_wecom_json_is_not_taken_for_success(env: PlatformEnv) -> None:
    robot = env.fakes.wecom()
    robot.answer_next(200, b"<html>gateway</html>")

    (error,) = await env.deliver(robot.channel(), message())

    assert error is not None and error.kind is FailureKind.REJECTED
