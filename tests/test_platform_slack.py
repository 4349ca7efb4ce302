"""Slack incoming webhook: mrkdwn conversion and Slack's text error answers."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bot.platforms.base import FailureKind, Mention, Message
from bot.platforms.slack.robot import Mrkdwn
from tests.fakes import PlatformEnv, platform_env


@pytest.fixture
async def env() -> AsyncIterator[PlatformEnv]:
    async with platform_env() as environment:
        yield environment


def message(markdown: str = "请阅读**学习材料**。", *people: Mention) -> Message:
    return Message(title="学习提醒", markdown=markdown, mentions=people, mention_all=True)


def test_markdown_becomes_mrkdwn_with_escaped_text() -> None:
    markdown = "# 本周安排\n**周五** [学习材料](https://example.cn/a?x=1) & <附件>\n- 一项\n> 引文"

    assert Mrkdwn().convert(markdown) == (
        "*本周安排*\n*周五* <https://example.cn/a?x=1|学习材料> &amp; &lt;附件&gt;\n• 一项\n> 引文"
    )


async def test_mentions_use_member_ids_and_channel_for_everyone(env: PlatformEnv) -> None:
    robot = env.fakes.slack()
    people = (Mention("z", "张三", ids={"slack": "U0ZHANG"}), Mention("l", "李四"))

    await env.deliver(robot.channel(), message("请阅读。", *people))

    (sent,) = robot.received
    assert sent.text.startswith("*学习提醒*")
    assert "<@U0ZHANG>" in sent.text and "@李四" in sent.text and "<!channel>" in sent.text


@pytest.mark.parametrize(
    ("status", "text", "kind"),
    [
        (404, "no_team", FailureKind.CONFIG),
        (403, "invalid_token", FailureKind.CONFIG),
        (404, "channel_not_found", FailureKind.CONFIG),
        (410, "channel_is_archived", FailureKind.CONFIG),
        (400, "invalid_payload", FailureKind.REJECTED),
        (400, "no_text", FailureKind.REJECTED),
        (500, "", FailureKind.RETRY),
        (429, "rate_limited", FailureKind.RETRY),
        (200, "ok", None),
    ],
)
async def test_slack_text_answers_are_classified(
    env: PlatformEnv, status: int, text: str, kind: FailureKind | None
) -> None:
    robot = env.fakes.slack()
    robot.answer_next(status, text.encode(), {"Retry-After": "12"} if status == 429 else None)

    (error,) = await env.deliver(robot.channel(), message())

    assert (error.kind if error else None) is kind
    if error:
        assert robot.token not in error.message
    if status == 429:
        assert error is not None and error.retry_after == 12


async def test_an_unknown_webhook_path_is_a_configuration_error(env: PlatformEnv) -> None:
    robot = env.fakes.slack()
    robot.revoke()

    (error,) = await env.deliver(robot.channel(), message())

    assert error is not None and error.kind is FailureKind.CONFIG
    assert "invalid_token" in error.message
