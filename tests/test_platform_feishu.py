"""Feishu / Lark custom bot: signing vectors, the three formats with mentions, answers."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from bot.platforms.base import FailureKind, Mention, Message
from bot.platforms.dingtalk.robot import sign as dingtalk_sign
from bot.platforms.feishu.config import FeishuChannel
from bot.platforms.feishu.robot import Feishu, sign
from bot.platforms.markup import json_bytes
from tests.fakes import PlatformEnv, platform_env

WITH_OPEN_ID = Mention("zhang", "张三", "13800001111", {"feishu": "ou_zhang"})
NO_OPEN_ID = Mention("li", "李四", "13900002222")
BUTTON = "https://remindbot.example.cn/c/tok"


@pytest.fixture
async def env() -> AsyncIterator[PlatformEnv]:
    async with platform_env() as environment:
        yield environment


def message(
    *people: Mention, mention_all: bool = False, markdown: str = "## 议程\n请阅读[材料](https://example.cn/m)。"
) -> Message:
    return Message(title="党课提醒", markdown=markdown, mentions=people, mention_all=mention_all, button_url=BUTTON)


def test_the_signature_matches_the_known_vectors() -> None:
    assert sign("SEC-test-secret", 1700000000) == "N/YfEei+5/EskDDCjSL3nvdh2x/Igb36CEA5Cc6MdHk="
    assert sign("test-secret", 1700000000) == "mbm4Y4oluIPQ00qlBIhX8vAZ0EKv3nw0LuTb91jPL84="
    assert sign("demo", 100) == "jquNHnVOwmDRfw+vqTIrY5dooJAgi5EcRtLsQE4wfXg="
    assert sign("demo", 100) != dingtalk_sign("demo", 100)


def test_the_timestamp_in_seconds_and_the_sign_go_into_the_body() -> None:
    channel = FeishuChannel(
        id="f",
        name="群",
        platform="feishu",
        webhook="https://open.feishu.cn/open-apis/bot/v2/hook/abc",
        secret="SEC-test-secret",
    )

    request = Feishu().prepare(channel, {"msg_type": "text", "content": {"text": "x"}}, 1700000000.9)

    body = json.loads(request.body)
    assert body["timestamp"] == "1700000000"
    assert body["sign"] == "N/YfEei+5/EskDDCjSL3nvdh2x/Igb36CEA5Cc6MdHk="
    assert request.url == "https://open.feishu.cn/open-apis/bot/v2/hook/abc"


def test_a_lark_channel_posts_to_its_own_host() -> None:
    url = "https://open.larksuite.com/open-apis/bot/v2/hook/abc"
    channel = FeishuChannel(id="l", name="group", platform="lark", webhook=url)

    assert Feishu().prepare(channel, {"msg_type": "text"}, 0.0).url == url


async def test_text_mentions_with_at_tags_and_everyone(env: PlatformEnv) -> None:
    robot = env.fakes.feishu()

    await env.deliver(robot.channel(format="text"), message(WITH_OPEN_ID, NO_OPEN_ID, mention_all=True))

    (sent,) = robot.received
    assert '<at user_id="ou_zhang">张三</at>' in sent.text
    assert '<at user_id="all">所有人</at>' in sent.text
    assert "@李四" in sent.text
    assert "材料（https://example.cn/m）" in sent.text
    assert sent.notified == {"ou_zhang", "all"}


async def test_post_uses_at_and_link_tags(env: PlatformEnv) -> None:
    robot = env.fakes.feishu()

    await env.deliver(robot.channel(format="post"), message(WITH_OPEN_ID, mention_all=True))

    (sent,) = robot.received
    post = sent.json["content"]["post"]["zh_cn"]
    tags = [tag for paragraph in post["content"] for tag in paragraph]
    assert post["title"] == "党课提醒"
    assert {"tag": "a", "text": "材料", "href": "https://example.cn/m"} in tags
    assert {"tag": "a", "text": "确认", "href": BUTTON} in tags
    assert sent.notified == {"ou_zhang", "all"}


async def test_the_card_has_lark_md_mentions_and_a_confirm_button(env: PlatformEnv) -> None:
    robot = env.fakes.feishu()

    await env.deliver(robot.channel(format="card"), message(WITH_OPEN_ID, mention_all=True))

    (sent,) = robot.received
    card = sent.json["card"]
    div, action = card["elements"]
    assert div["text"]["tag"] == "lark_md"
    assert "**议程**" in div["text"]["content"]  # headings become bold lines in lark_md
    assert "<at id=ou_zhang></at>" in div["text"]["content"]
    assert action["actions"][0]["url"] == BUTTON
    assert sent.notified == {"ou_zhang", "all"}


async def test_the_lark_id_serves_when_the_person_has_no_feishu_id(env: PlatformEnv) -> None:
    robot = env.fakes.lark()
    person = Mention("z", "Zhang", ids={"lark": "ou_lark_zhang"})

    await env.deliver(robot.channel(), message(person))

    assert robot.received[0].notified == {"ou_lark_zhang"}


@pytest.mark.parametrize("fmt", ["text", "post", "card"])
async def test_long_messages_stay_under_20kb_with_the_signature(env: PlatformEnv, fmt: str) -> None:
    robot = env.fakes.feishu(secret="SEC-x", limit=None, per_second=None)
    markdown = "\n\n".join(f"{i}. 请各支部落实[学习要求](https://example.cn/{i})。" for i in range(1200))
    channel = robot.channel(format=fmt)

    outcomes = await env.deliver(channel, message(WITH_OPEN_ID, markdown=markdown))

    assert len(outcomes) > 1 and outcomes == [None] * len(outcomes)
    assert all(len(r.raw) <= 20000 for r in robot.received)
    bodies = Feishu().build(channel, message(WITH_OPEN_ID, markdown=markdown))
    assert all(len(json_bytes(body)) <= 20000 for body in bodies)


async def test_a_missing_keyword_is_explained(env: PlatformEnv) -> None:
    robot = env.fakes.feishu(keyword="党建")

    (error,) = await env.deliver(robot.channel(keyword=None), message())

    assert error is not None and error.kind is FailureKind.CONFIG and error.code == 19024


@pytest.mark.parametrize(
    ("status", "answer", "kind"),
    [
        (200, {"code": 11232, "msg": "frequency limited", "data": {}}, FailureKind.RETRY),
        (200, {"code": 19021, "msg": "sign match fail"}, FailureKind.CONFIG),
        (200, {"code": 19022, "msg": "Ip Not Allowed"}, FailureKind.CONFIG),
        (200, {"code": 19024, "msg": "Key Words Not Found"}, FailureKind.CONFIG),
        (400, {"code": 9499, "msg": "Bad Request"}, FailureKind.REJECTED),
        (200, {"StatusCode": 19021, "StatusMessage": "sign match fail"}, FailureKind.CONFIG),
        (200, {"StatusCode": 0, "StatusMessage": "success"}, None),
    ],
)
async def test_feishu_answers_are_read_from_code_or_status_code(
    env: PlatformEnv, status: int, answer: dict[str, object], kind: FailureKind | None
) -> None:
    robot = env.fakes.feishu()
    robot.answer_next(status, answer)

    (error,) = await env.deliver(robot.channel(), message())

    assert (error.kind if error else None) is kind
