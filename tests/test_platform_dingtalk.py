"""DingTalk custom robot: signing vectors, mentions in the content, cards, keyword, answers."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from bot.platforms.base import DeliveryError, FailureKind, Mention, Message
from bot.platforms.dingtalk.config import DingTalkChannel
from bot.platforms.dingtalk.robot import DingTalk, sign, signed_url
from bot.platforms.markup import json_bytes
from tests.fakes import PlatformEnv, platform_env
from tests.fakes.emulators import DINGTALK_KEYWORD_MISSING, DINGTALK_SIGN_EXPIRED, DINGTALK_SIGN_MISMATCH

BY_MOBILE = Mention("zhang", "张三", "13800001111", {"dingtalk": "zs01"})
BY_USERID = Mention("li", "李四", None, {"dingtalk": "ls02"})
BUTTON = "https://remindbot.example.cn/c/tok"


@pytest.fixture
async def env() -> AsyncIterator[PlatformEnv]:
    async with platform_env() as environment:
        yield environment


def message(*people: Mention, button: str | None = BUTTON, markdown: str = "请于周五前报送**学习记录**。") -> Message:
    return Message(title="学习日提醒", markdown=markdown, mentions=people, button_url=button)


def test_the_signature_matches_the_known_vectors() -> None:
    assert sign("SEC-test-secret", 1700000000000) == "Mrhy389nC5p7fqYHgciQpNWFiBNjbTx4Rn5BqEH45jY="
    assert sign("this is secret", 1700000000000) == "sSFWELbV2YwjdDQhWZwTcWlX5BWUx5J6TPpsZmuPii0="


def test_the_signature_is_url_encoded_exactly_once() -> None:
    url = signed_url("https://oapi.dingtalk.com/robot/send?access_token=T", "SEC-test-secret", 1700000000.0)

    assert url == (
        "https://oapi.dingtalk.com/robot/send?access_token=T"
        "&timestamp=1700000000000&sign=Mrhy389nC5p7fqYHgciQpNWFiBNjbTx4Rn5BqEH45jY%3D"
    )
    assert "%253D" not in url


def test_a_pasted_old_timestamp_and_sign_are_replaced() -> None:
    pasted = "https://oapi.dingtalk.com/robot/send?access_token=T&timestamp=1&sign=old"

    url = signed_url(pasted, "SEC-test-secret", 1700000000.0)

    assert url.count("timestamp=") == 1 and "sign=old" not in url and "timestamp=1700000000000" in url


async def test_mentions_are_listed_and_written_into_the_content(env: PlatformEnv) -> None:
    robot = env.fakes.dingtalk(secret="SEC-abc")

    await env.deliver(robot.channel(), message(BY_MOBILE, BY_USERID))

    (sent,) = robot.received
    assert sent.json["at"] == {"atMobiles": ["13800001111"], "atUserIds": ["ls02"], "isAtAll": False}
    assert "@13800001111" in sent.json["markdown"]["text"] and "@ls02" in sent.json["markdown"]["text"]
    assert sent.notified == {"13800001111", "ls02"}


async def test_a_card_has_one_confirm_button_and_mentions_follow_in_text(env: PlatformEnv) -> None:
    robot = env.fakes.dingtalk()

    await env.deliver(robot.channel(format="card"), message(BY_MOBILE))

    card, mentions = robot.received
    assert card.json["msgtype"] == "actionCard"
    assert card.json["actionCard"]["singleTitle"] == "确认"
    assert card.json["actionCard"]["singleURL"] == BUTTON
    assert mentions.json["msgtype"] == "text" and mentions.notified == {"13800001111"}


async def test_a_card_without_a_button_falls_back_to_markdown(env: PlatformEnv) -> None:
    robot = env.fakes.dingtalk()

    await env.deliver(robot.channel(format="card"), message(BY_MOBILE, button=None))

    (sent,) = robot.received
    assert sent.json["msgtype"] == "markdown" and sent.notified == {"13800001111"}


async def test_the_security_keyword_is_added_when_the_text_lacks_it(env: PlatformEnv) -> None:
    robot = env.fakes.dingtalk(keyword="党建")

    outcomes = await env.deliver(robot.channel(format="text"), message())

    assert outcomes == [None]
    assert "党建" in robot.received[0].text


async def test_a_missing_keyword_setting_is_explained_to_the_admin(env: PlatformEnv) -> None:
    robot = env.fakes.dingtalk(keyword="党建")
    channel = robot.channel(keyword=None)

    (error,) = await env.deliver(channel, message())

    assert error is not None and error.kind is FailureKind.CONFIG
    assert "自定义关键词" in error.message and "keyword" in error.message


async def test_a_wrong_secret_reads_as_plain_chinese_with_dingtalks_words(env: PlatformEnv) -> None:
    robot = env.fakes.dingtalk(secret="SEC-right")

    (error,) = await env.deliver(robot.channel(secret="SEC-wrong"), message())

    assert error is not None and error.kind is FailureKind.CONFIG
    assert error.message.startswith("签名错误：加签密钥不匹配")
    assert "机器人发送签名不匹配" in error.message  # DingTalk's own words follow in brackets
    assert "时钟" not in error.message  # its solution text mentions 时间戳: not a clock problem


DINGTALK_310000_WORDINGS = [
    # (errmsg as DingTalk words it, what the admin must fix)
    ("sign not match, more: [https://ding-doc.dingtalk.com/doc#/serverapi2/qf2nxq]", "签名错误"),
    (DINGTALK_SIGN_MISMATCH, "签名错误"),
    ("invalid timestamp, more: [https://ding-doc.dingtalk.com/doc#/serverapi2/qf2nxq]", "校准服务器时间"),
    ("invalid timestamp", "校准服务器时间"),
    (DINGTALK_SIGN_EXPIRED, "校准服务器时间"),
    ("keywords not in content, more: [https://ding-doc.dingtalk.com/doc#/serverapi2/qf2nxq]", "自定义关键词"),
    (DINGTALK_KEYWORD_MISSING, "自定义关键词"),
    ("错误描述:关键词不匹配;解决方案:请联系群管理员查看此机器人的关键词，并在发送的信息中包含此关键词;",
     "自定义关键词"),
    ("ip xx.xx.xx.xx not in whitelist", "IP 白名单"),
]


@pytest.mark.parametrize(("errmsg", "fix"), DINGTALK_310000_WORDINGS)
def test_each_310000_wording_names_the_setting_to_fix(errmsg: str, fix: str) -> None:
    with pytest.raises(DeliveryError) as caught:
        DingTalk().read_answer(200, {}, json.dumps({"errcode": 310000, "errmsg": errmsg}).encode())
    assert caught.value.kind is FailureKind.CONFIG
    assert fix in caught.value.message.split("（")[0]
    others = {"签名错误", "校准服务器时间", "自定义关键词", "IP 白名单"} - {fix}
    assert not any(other in caught.value.message.split("（")[0] for other in others)


async def test_a_clock_off_by_two_hours_is_named_as_the_cause(env: PlatformEnv) -> None:
    robot = env.fakes.dingtalk(secret="SEC-right")
    channel = robot.channel()
    body = DingTalk().build(channel, message())[0]

    error = await env.send(channel, body, now=env.clock.now - 7200)  # our clock two hours slow

    assert error is not None and error.kind is FailureKind.CONFIG and "时钟" in error.message


@pytest.mark.parametrize(
    ("code", "errmsg", "kind"),
    [
        (130101, "send too fast, exceed 20 times per minute", FailureKind.RETRY),
        (660026, "", FailureKind.RETRY),
        (310000, "keywords not in content", FailureKind.CONFIG),
        (310000, "ip xx.xx.xx.xx not in whitelist", FailureKind.CONFIG),
        (300001, "token is not exist", FailureKind.CONFIG),
        (300005, "token is not exist", FailureKind.CONFIG),
        (460101, "message too long, exceed 20000 bytes", FailureKind.REJECTED),
        (40035, "缺少参数 json", FailureKind.REJECTED),
    ],
)
async def test_dingtalk_codes_are_classified(env: PlatformEnv, code: int, errmsg: str, kind: FailureKind) -> None:
    robot = env.fakes.dingtalk()
    robot.answer_next(200, {"errcode": code, "errmsg": errmsg})

    (error,) = await env.deliver(robot.channel(), message())

    assert error is not None and error.kind is kind and error.code == code


async def test_the_rate_limit_code_waits_out_dingtalks_ten_minute_block(env: PlatformEnv) -> None:
    robot = env.fakes.dingtalk()
    robot.throttle_next()

    (error,) = await env.deliver(robot.channel(), message())

    assert error is not None and error.kind is FailureKind.RETRY and error.retry_after == 600


async def test_a_long_message_stays_under_20000_bytes_per_body(env: PlatformEnv) -> None:
    robot = env.fakes.dingtalk(secret="SEC-x", keyword="提醒", limit=None)
    markdown = "\n\n".join(f"{i}. 各支部要认真落实“三会一课”制度，按时报送。" for i in range(1500))
    channel = robot.channel()

    bodies = DingTalk().build(channel, message(BY_MOBILE, markdown=markdown))
    outcomes = await env.deliver(channel, message(BY_MOBILE, markdown=markdown))

    assert len(bodies) > 1
    assert all(len(json_bytes(body)) <= 20000 for body in bodies)
    assert outcomes == [None] * len(bodies)


def test_a_dry_run_channel_is_never_prepared() -> None:
    channel = DingTalkChannel(id="d", name="群", platform="dingtalk", webhook="")

    with pytest.raises(Exception, match="演练模式"):
        DingTalk().prepare(channel, {"msgtype": "text"}, 0.0)
