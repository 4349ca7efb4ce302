"""The adapter contract, run over every platform and format against the fake servers on loopback.

Each case sends real HTTP: build → prepare (sign) → POST → read_answer, and asserts on what the
fake platform accepted and what the group would read.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from bot.platforms.base import FailureKind, Mention, Message
from bot.platforms.registry import PLATFORMS, platform_for
from tests.fakes import FakeRobot, PlatformEnv, platform_env

SECRET = "SEC-contract-5ecret-value"

# (platform, format, robot options)
CASES = [
    ("wecom", "text", {}),
    ("wecom", "markdown", {}),
    ("dingtalk", "text", {"secret": SECRET, "keyword": "提醒"}),
    ("dingtalk", "markdown", {"secret": SECRET, "keyword": "提醒"}),
    ("dingtalk", "card", {"secret": SECRET, "keyword": "提醒"}),
    ("feishu", "text", {"secret": SECRET, "keyword": "提醒"}),
    ("feishu", "post", {"secret": SECRET, "keyword": "提醒"}),
    ("feishu", "card", {"secret": SECRET, "keyword": "提醒"}),
    ("lark", "card", {"secret": SECRET}),
    ("slack", "markdown", {}),
    ("slack", "text", {}),
    ("generic", "markdown", {"secret": SECRET}),
]
IDS = [f"{platform}-{fmt}" for platform, fmt, _ in CASES]
SIGNED = [case for case in CASES if "secret" in case[2]]

PEOPLE = (
    Mention(
        "zhang",
        "张三",
        "13800001111",
        {"wecom": "zhangsan", "dingtalk": "zs01", "feishu": "ou_zhang", "lark": "ou_zhang", "slack": "U0ZHANG"},
    ),
    Mention(
        "li",
        "李四",
        "13900002222",
        {"wecom": "lisi", "dingtalk": "ls02", "feishu": "ou_li", "lark": "ou_li", "slack": "U0LI"},
    ),
)
EXPECTED_NOTIFIED = {
    "wecom": {"zhangsan", "lisi"},
    "dingtalk": {"13800001111", "13900002222"},
    "feishu": {"ou_zhang", "ou_li"},
    "lark": {"ou_zhang", "ou_li"},
    "slack": {"U0ZHANG", "U0LI"},
    "generic": {"zhang", "li"},
}
BUTTON = "https://remindbot.example.cn/c/tok-123"


def reminder(markdown: str | None = None) -> Message:
    return Message(
        title="主题党日提醒",
        markdown=markdown
        or "**本月主题党日**定于周五上午举行。\n\n- 学习最新重要讲话精神\n- 交流心得\n\n详情见[通知](https://example.cn/n?a=1&b=2)",
        mentions=PEOPLE,
        button_url=BUTTON,
    )


def long_markdown(paragraphs: int = 1000) -> str:
    line = "各党支部要认真组织党员学习，做好记录，按时报送学习情况，确保学习质量和参与率。"
    return "\n\n".join(f"{index}. {line}" for index in range(paragraphs))


@pytest.fixture
async def env() -> AsyncIterator[PlatformEnv]:
    async with platform_env() as environment:
        yield environment


def robot_for(env: PlatformEnv, platform: str, options: dict[str, object]) -> FakeRobot:
    return env.fakes.add(platform, **options)


@pytest.mark.parametrize(("platform", "fmt", "options"), CASES, ids=IDS)
async def test_a_reminder_is_accepted_with_its_title_and_confirmation_link(
    env: PlatformEnv, platform: str, fmt: str, options: dict[str, object]
) -> None:
    robot = robot_for(env, platform, options)
    channel = robot.channel(format=fmt)

    outcomes = await env.deliver(channel, reminder())

    assert outcomes == [None] * len(outcomes)
    first = robot.received[0]
    assert "主题党日提醒" in first.text
    assert "本月主题党日" in first.text
    assert any(BUTTON in request.raw.decode() for request in robot.received)


@pytest.mark.parametrize(("platform", "fmt", "options"), CASES, ids=IDS)
async def test_every_mentioned_person_is_really_notified(
    env: PlatformEnv, platform: str, fmt: str, options: dict[str, object]
) -> None:
    robot = robot_for(env, platform, options)

    await env.deliver(robot.channel(format=fmt), reminder())

    notified = set().union(*(request.notified for request in robot.received))
    assert notified == EXPECTED_NOTIFIED[platform]


@pytest.mark.parametrize(("platform", "fmt", "options"), CASES, ids=IDS)
async def test_a_long_chinese_message_is_split_into_marked_parts_the_platform_accepts(
    env: PlatformEnv, platform: str, fmt: str, options: dict[str, object]
) -> None:
    robot = robot_for(env, platform, {**options, "limit": None, "per_second": None})

    outcomes = await env.deliver(robot.channel(format=fmt), reminder(long_markdown()))

    assert all(outcome is None for outcome in outcomes), outcomes
    texts = robot.texts()
    assert len(texts) >= 2
    assert "（1/" in texts[0] and "未完" in texts[0]
    assert "（续 2/" in texts[1]
    assert set().union(*(r.notified for r in robot.received)) == EXPECTED_NOTIFIED[platform]


@pytest.mark.parametrize(("platform", "fmt", "options"), CASES, ids=IDS)
async def test_build_is_deterministic_and_bodies_hold_no_secret_or_webhook(
    env: PlatformEnv, platform: str, fmt: str, options: dict[str, object]
) -> None:
    robot = robot_for(env, platform, options)
    channel = robot.channel(format=fmt)
    adapter = platform_for(channel)

    first, again = adapter.build(channel, reminder()), adapter.build(channel, reminder())

    assert first == again
    serialised = json.dumps(first, ensure_ascii=False)
    assert SECRET not in serialised
    assert robot.token not in serialised


@pytest.mark.parametrize(("platform", "fmt", "options"), CASES, ids=IDS)
async def test_a_server_error_is_worth_retrying(
    env: PlatformEnv, platform: str, fmt: str, options: dict[str, object]
) -> None:
    robot = robot_for(env, platform, options)
    robot.fail_next(1, status=502)

    error, *_ = await env.deliver(robot.channel(format=fmt), reminder())

    assert error is not None and error.kind is FailureKind.RETRY
    assert not error.permanent


@pytest.mark.parametrize(("platform", "fmt", "options"), CASES, ids=IDS)
async def test_a_throttled_robot_is_retried_after_the_wait_the_platform_asks(
    env: PlatformEnv, platform: str, fmt: str, options: dict[str, object]
) -> None:
    robot = robot_for(env, platform, options)
    robot.throttle_next(1, retry_after=7)

    error, *_ = await env.deliver(robot.channel(format=fmt), reminder())

    assert error is not None and error.kind is FailureKind.RETRY
    assert error.retry_after == 7
    assert "频繁" in error.message


@pytest.mark.parametrize(("platform", "fmt", "options"), CASES, ids=IDS)
async def test_going_over_the_robots_rate_limit_is_retried_and_passes_after_the_window(
    env: PlatformEnv, platform: str, fmt: str, options: dict[str, object]
) -> None:
    robot = robot_for(env, platform, {**options, "limit": 1, "per_second": None})
    channel = robot.channel(format="text" if platform in ("wecom", "dingtalk") else fmt)
    body = platform_for(channel).build(channel, reminder())[0]

    assert await env.send(channel, body) is None
    error = await env.send(channel, body)
    env.clock.advance(61)
    later = await env.send(channel, body)

    assert error is not None and error.kind is FailureKind.RETRY
    assert later is None


@pytest.mark.parametrize(("platform", "fmt", "options"), CASES, ids=IDS)
async def test_a_removed_robot_is_a_configuration_error_that_names_no_secret(
    env: PlatformEnv, platform: str, fmt: str, options: dict[str, object]
) -> None:
    robot = robot_for(env, platform, options)
    robot.revoke()

    error, *_ = await env.deliver(robot.channel(format=fmt), reminder())

    assert error is not None and error.kind is FailureKind.CONFIG
    for shown in (error.message, str(error), repr(error), repr(error.args)):
        assert robot.token not in shown
        assert SECRET not in shown
        assert "http" not in shown


@pytest.mark.parametrize(("platform", "fmt", "options"), SIGNED, ids=[f"{p}-{f}" for p, f, _ in SIGNED])
async def test_a_wrong_signing_secret_is_a_configuration_error(
    env: PlatformEnv, platform: str, fmt: str, options: dict[str, object]
) -> None:
    robot = robot_for(env, platform, options)

    error, *_ = await env.deliver(robot.channel(format=fmt, secret="SEC-wrong-one"), reminder())

    assert error is not None and error.kind is FailureKind.CONFIG
    assert "SEC-wrong-one" not in repr(error) and SECRET not in repr(error)


@pytest.mark.parametrize(("platform", "fmt", "options"), SIGNED, ids=[f"{p}-{f}" for p, f, _ in SIGNED])
async def test_a_signature_made_with_a_clock_two_hours_off_is_refused(
    env: PlatformEnv, platform: str, fmt: str, options: dict[str, object]
) -> None:
    robot = robot_for(env, platform, options)
    channel = robot.channel(format=fmt)
    body = platform_for(channel).build(channel, reminder())[0]
    adapter = platform_for(channel)

    request = adapter.prepare(channel, body, env.clock.now - 7200)
    async with env.session.post(request.url, data=request.body, headers=dict(request.headers)) as answer:
        status, headers, raw = answer.status, answer.headers, await answer.read()

    with pytest.raises(Exception) as caught:
        adapter.read_answer(status, headers, raw)
    assert getattr(caught.value, "kind", None) is FailureKind.CONFIG
    assert robot.received == []


def test_every_platform_is_registered_with_a_chinese_title_and_limits() -> None:
    assert set(PLATFORMS) == {"wecom", "dingtalk", "feishu", "lark", "slack", "generic"}
    assert PLATFORMS["feishu"] is PLATFORMS["lark"]
    for adapter in PLATFORMS.values():
        assert adapter.title and adapter.limits.per_minute > 0 and adapter.limits.max_bytes > 0
