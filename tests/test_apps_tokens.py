"""App access tokens and direct-message senders against the fake platform app API on loopback.

Contract tests run over every platform's sender: the token is fetched once and reused until
shortly before it expires, a burst of 100 senders costs one fetch, a token the platform calls
invalid is refreshed once and the message sent again, wrong credentials are a configuration error
in plain Chinese that names no secret. DingTalk runs twice: the app robot's one-to-one messages
(``dingtalk``) and work notifications of an app with ``agent_id`` (``dingtalk-notice``).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from pydantic import TypeAdapter

from bot.metrics import REGISTRY
from bot.platforms.appsend import AppChannel
from bot.platforms.base import DeliveryError, FailureKind, Mention, Message
from bot.platforms.registry import APP_SENDERS, AppConfig, platform_for
from bot.platforms.tokens import MARGIN_SECONDS, TokenCache
from tests.fakes import ManualClock
from tests.fakes.apps import DINGTALK, DINGTALK_AGENT_ID, FEISHU, SLACK, WECOM, FakeAppApi

USERS = {"wecom": "ZhaoMing", "dingtalk": "staff-zhao", "dingtalk-notice": "staff-zhao", "feishu": "ou_zhao",
         "slack": "U0ZHAO"}
SENDERS = ["wecom", "dingtalk", "dingtalk-notice", "feishu", "slack"]
EXPIRING = ("wecom", "dingtalk", "dingtalk-notice", "feishu")  # Slack's bot token does not expire


def app_config(platform: str, url: str, **override: Any) -> Any:
    base: dict[str, Any] = {"id": f"{platform}-app", "platform": platform, "api_base": url}
    if platform == "wecom":
        base |= {"token": "cb-token", "encoding_aes_key": "k" * 43, **WECOM}
    elif platform == "dingtalk":
        base |= DINGTALK
    elif platform == "dingtalk-notice":  # work notifications only: agent_id, no robot
        base |= {"platform": "dingtalk", "app_key": DINGTALK["app_key"], "app_secret": DINGTALK["app_secret"],
                 "agent_id": DINGTALK_AGENT_ID, "oapi_base": url}
    elif platform == "feishu":
        base |= {"verification_token": "vt", **FEISHU}
    else:
        base |= {"signing_secret": "ss", **SLACK}
    return TypeAdapter(AppConfig).validate_python(base | override)


def dm(platform: str, text: str = "请于周五前完成学习", occurrence: int | None = 7) -> Message:
    return Message(title="每月学习日", markdown=text, confirm_occurrence=occurrence,
                   mentions=(Mention(person_id="zhao", name="赵明",
                                     ids={platform.removesuffix("-notice"): USERS[platform]}),))


@pytest.fixture
async def api() -> AsyncIterator[tuple[FakeAppApi, ManualClock, aiohttp.ClientSession]]:
    clock = ManualClock(1_700_000_000)
    async with FakeAppApi(clock=clock) as fake, aiohttp.ClientSession() as http:
        yield fake, clock, http


async def send(http: aiohttp.ClientSession, channel: AppChannel, message: Message) -> None:
    sender = platform_for(channel)
    [body] = sender.build(channel, message)
    assert sender.oversize(body) is None
    status, headers, payload = await sender.send(http, channel, body, 0.0)  # type: ignore[attr-defined]
    sender.read_answer(status, headers, payload)


@pytest.mark.parametrize("platform", SENDERS)
async def test_a_direct_message_reaches_the_person_by_their_platform_id(api: Any, platform: str) -> None:
    fake, clock, http = api
    channel = AppChannel.of(app_config(platform, fake.url), TokenCache(clock=clock))
    await send(http, channel, dm(platform))
    [sent] = fake.sent
    assert (sent.platform, sent.user) == (platform, USERS[platform])
    assert "请于周五前完成学习" in sent.text and "每月学习日" in sent.text
    if platform == "feishu":  # an interactive card with the confirm button the inbound half reads
        card = json.loads(sent.body["content"])
        [button] = [a for a in card["elements"][-1]["actions"] if a.get("value")]
        assert button["value"] == {"action": "confirm", "occurrence": 7}
    if platform == "slack":
        assert sent.body["blocks"][-1]["elements"][0] == {
            "type": "button", "action_id": "confirm", "style": "primary", "value": "7",
            "text": {"type": "plain_text", "text": "确认已完成"}}


async def test_a_dingtalk_app_with_a_card_template_sends_the_confirm_card(api: Any) -> None:
    fake, clock, http = api
    channel = AppChannel.of(app_config("dingtalk", fake.url, card_template_id="tpl-confirm.schema"),
                            TokenCache(clock=clock))
    await send(http, channel, dm("dingtalk"))
    await send(http, channel, dm("dingtalk", "没有要确认的", occurrence=None))  # no button: a plain message
    card, plain = fake.sent
    assert card.user == "staff-zhao" and card.body["cardTemplateId"] == "tpl-confirm.schema"
    assert json.loads(card.body["cardData"])["cardParamMap"]["occurrence"] == "7"  # read back by read_card_press
    assert plain.body["msgKey"] == "sampleMarkdown" and plain.user == "staff-zhao"


@pytest.mark.parametrize("platform", EXPIRING)
async def test_the_token_is_reused_until_shortly_before_it_expires(api: Any, platform: str) -> None:
    fake, clock, http = api
    channel = AppChannel.of(app_config(platform, fake.url), TokenCache(clock=clock))
    for _ in range(3):
        await send(http, channel, dm(platform))
    assert fake.token_fetches[platform] == 1
    clock.advance(fake.lifetime - MARGIN_SECONDS - 1)  # still well before the refresh point
    await send(http, channel, dm(platform))
    assert fake.token_fetches[platform] == 1
    clock.advance(2)  # within the margin before expiry: refreshed before the platform would refuse it
    await send(http, channel, dm(platform))
    assert fake.token_fetches[platform] == 2
    assert len(fake.sent) == 5
    assert not [r for r in fake.requests if r[1] != 200 or r[2].get("errcode", 0) or r[2].get("code", 0)]


@pytest.mark.parametrize("platform", SENDERS)
async def test_a_hundred_concurrent_senders_share_one_token_fetch(api: Any, platform: str) -> None:
    fake, clock, http = api
    fake.token_delay = 0.05  # the fetch is still in flight while the others ask
    channel = AppChannel.of(app_config(platform, fake.url), TokenCache(clock=clock))
    await asyncio.gather(*(send(http, channel, dm(platform, f"第{i}条")) for i in range(100)))
    assert fake.token_fetches[platform] == 1
    assert len(fake.sent) == 100


@pytest.mark.parametrize("platform", EXPIRING)
async def test_an_invalid_token_is_refreshed_once_and_the_message_sent_again(api: Any, platform: str) -> None:
    fake, clock, http = api
    channel = AppChannel.of(app_config(platform, fake.url), TokenCache(clock=clock))
    await send(http, channel, dm(platform))
    fake.revoke_tokens()  # e.g. the secret was reset in the console, or the platform dropped the token early
    await asyncio.gather(*(send(http, channel, dm(platform, f"第{i}条")) for i in range(5)))
    assert fake.token_fetches[platform] == 2  # five senders told "invalid" at once: one refresh
    assert len(fake.sent) == 6


@pytest.mark.parametrize("platform", EXPIRING)
async def test_an_expired_token_the_cache_still_trusted_is_refreshed_once(api: Any, platform: str) -> None:
    fake, clock, http = api
    fake.lifetime = 60.0
    channel = AppChannel.of(app_config(platform, fake.url), TokenCache(clock=clock, margin=0.0))
    await send(http, channel, dm(platform))
    cache = channel.tokens
    key = platform_for(channel).token_key(channel.app)  # type: ignore[attr-defined]
    cache._entries[key] = type(cache._entries[key])(cache._entries[key].value, float("inf"))  # clocks disagree
    clock.advance(61)
    await send(http, channel, dm(platform))
    assert fake.token_fetches[platform] == 2 and len(fake.sent) == 2
    codes = [r[2] for r in fake.requests if r[1] != 200 or r[2].get("errcode") or r[2].get("code")]
    expected = {"wecom": {"errcode": 42001}, "dingtalk": {"code": "InvalidAuthentication"},
                "dingtalk-notice": {"errcode": 42001}, "feishu": {"code": 99991677}}[platform]
    assert len(codes) == 1 and expected.items() <= codes[0].items()


@pytest.mark.parametrize("platform", SENDERS)
async def test_wrong_credentials_are_a_configuration_error_in_plain_words(api: Any, platform: str) -> None:
    fake, clock, http = api
    secret_field = {"wecom": "secret", "dingtalk": "app_secret", "dingtalk-notice": "app_secret",
                    "feishu": "app_secret", "slack": "bot_token"}[platform]
    wrong = "wrong-secret-value-9876"
    channel = AppChannel.of(app_config(platform, fake.url, **{secret_field: wrong}), TokenCache(clock=clock))
    labels = {"platform": platform.removesuffix("-notice"), "outcome": "refused"}
    before = REGISTRY.get_sample_value("remindbot_app_token_fetches_total", labels) or 0.0
    with pytest.raises(DeliveryError) as exc:
        await send(http, channel, dm(platform))
    assert REGISTRY.get_sample_value("remindbot_app_token_fetches_total", labels) == before + 1  # counted
    assert exc.value.kind is FailureKind.CONFIG
    assert wrong not in exc.value.message and any("\u4e00" <= ch <= "\u9fff" for ch in exc.value.message)
    assert not fake.sent


async def test_a_changed_secret_is_not_served_the_old_secrets_token(api: Any) -> None:
    fake, clock, http = api
    cache = TokenCache(clock=clock)
    await send(http, AppChannel.of(app_config("feishu", fake.url), cache), dm("feishu"))
    with pytest.raises(DeliveryError):
        await send(http, AppChannel.of(app_config("feishu", fake.url, app_secret="rotated-wrong"), cache), dm("feishu"))
    assert fake.token_fetches["feishu"] == 1 and len(fake.sent) == 1


def test_every_app_platform_has_a_sender() -> None:
    assert set(APP_SENDERS) == {"wecom", "dingtalk", "feishu", "lark", "slack"}


# ---------------------------------------------------------------- DingTalk work notifications (工作通知)


async def test_a_work_notification_carries_the_link_as_a_button_and_stays_within_2048_bytes(api: Any) -> None:
    fake, clock, http = api
    channel = AppChannel.of(app_config("dingtalk-notice", fake.url), TokenCache(clock=clock))
    linked = Message(title="每月学习日", markdown="请确认", button_url="https://dj.example.gov.cn/c/tok",
                     button_text="确认已完成", mentions=dm("dingtalk-notice").mentions)
    await send(http, channel, linked)
    await send(http, channel, dm("dingtalk-notice", "学习内容" * 400))  # 4800 bytes of text: shortened
    card, long = fake.sent
    assert card.body["agent_id"] == int(DINGTALK_AGENT_ID) and card.body["userid_list"] == "staff-zhao"
    action = card.body["msg"]["action_card"]
    assert (action["single_title"], action["single_url"]) == ("确认已完成", "https://dj.example.gov.cn/c/tok")
    assert "每月学习日" in action["markdown"] and "请确认" in action["markdown"]
    assert long.body["msg"]["msgtype"] == "markdown" and "已截断" in long.text
    assert len(json.dumps(long.body["msg"], ensure_ascii=False).encode()) <= 2048
    assert fake.token_fetches["dingtalk-notice"] == 1 and fake.token_fetches["dingtalk"] == 0


async def test_an_app_with_robot_and_agent_id_sends_confirm_cards_by_robot_and_the_rest_as_work_notifications(
        api: Any) -> None:
    fake, clock, http = api
    app = app_config("dingtalk", fake.url, card_template_id="tpl-confirm.schema", agent_id=int(DINGTALK_AGENT_ID),
                     oapi_base=fake.url)  # YAML may write the AgentId as a number
    channel = AppChannel.of(app, TokenCache(clock=clock))
    await send(http, channel, dm("dingtalk"))  # a confirmation owed: the interactive card
    await send(http, channel, dm("dingtalk", "逾期告知", occurrence=None))  # no button: a work notification
    card, notice = fake.sent
    assert card.platform == "dingtalk" and card.body["cardTemplateId"] == "tpl-confirm.schema"
    assert notice.platform == "dingtalk-notice" and "逾期告知" in notice.text
    assert fake.token_fetches["dingtalk"] == 1 and fake.token_fetches["dingtalk-notice"] == 1  # one per API


@pytest.mark.parametrize(("answer", "kind", "words"), [
    ({"errcode": 88, "sub_code": "60011", "errmsg": "ding talk error[subcode=60011]"}, FailureKind.CONFIG, "权限"),
    ({"errcode": -1, "errmsg": "系统繁忙"}, FailureKind.RETRY, "暂时不可用"),
    ({"errcode": 400002, "errmsg": "消息内容不合法"}, FailureKind.REJECTED, "拒收"),
])
async def test_a_work_notification_error_is_told_in_plain_words_by_its_kind(
        api: Any, answer: dict[str, Any], kind: FailureKind, words: str) -> None:
    fake, clock, http = api
    sender = APP_SENDERS["dingtalk"]
    with pytest.raises(DeliveryError) as exc:
        sender.read_answer(200, {}, json.dumps(answer, ensure_ascii=False).encode())
    assert exc.value.kind is kind and words in exc.value.message
    # and a wrong agent_id against the fake API: refused as configuration, nothing delivered
    channel = AppChannel.of(app_config("dingtalk-notice", fake.url, agent_id="1"), TokenCache(clock=clock))
    with pytest.raises(DeliveryError) as wrong:
        await send(http, channel, dm("dingtalk-notice"))
    assert wrong.value.kind is FailureKind.CONFIG and "88" in wrong.value.message and not fake.sent


def test_agent_id_needs_the_app_key_and_is_a_number() -> None:
    from pydantic import ValidationError

    base = {"id": "d", "platform": "dingtalk", "app_secret": "s"}
    with pytest.raises(ValidationError, match="agent_id"):
        TypeAdapter(AppConfig).validate_python(base | {"agent_id": "123"})
    with pytest.raises(ValidationError):
        TypeAdapter(AppConfig).validate_python(base | {"app_key": "k", "agent_id": "12a"})
    app = TypeAdapter(AppConfig).validate_python(base | {"app_key": "k", "agent_id": 123})
    assert app.can_send and app.agent_id == "123"
