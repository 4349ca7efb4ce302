"""Generic JSON webhook: the documented body, the signature a receiver verifies, status classes."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Mapping

import pytest

from bot.platforms.base import FailureKind, Mention, Message
from bot.platforms.generic.config import GenericChannel
from bot.platforms.generic.robot import Generic
from tests.fakes import PlatformEnv, platform_env

PERSON = Mention("zhang", "张三", "13800001111", {"wecom": "zhangsan"})


@pytest.fixture
async def env() -> AsyncIterator[PlatformEnv]:
    async with platform_env() as environment:
        yield environment


def message() -> Message:
    return Message(
        title="述职评议提醒",
        markdown="请于**1月20日**前提交[述职报告](https://example.cn/r)。",
        mentions=(PERSON,),
        button_text="已提交",
        button_url="https://remindbot.example.cn/c/t",
    )


def receiver_accepts(secret: str, headers: Mapping[str, str], raw: bytes, now: float) -> bool:
    """What the module docstring tells a receiver to do."""
    timestamp = headers["X-Remindbot-Timestamp"]
    expected = hmac.new(secret.encode(), timestamp.encode() + b"." + raw, hashlib.sha256).hexdigest()
    fresh = abs(now - int(timestamp)) <= 300
    return fresh and hmac.compare_digest("sha256=" + expected, headers["X-Remindbot-Signature"])


def channel(secret: str | None = "whsec-1") -> GenericChannel:
    return GenericChannel(
        id="g", name="接收系统", platform="generic", webhook="https://hooks.example.cn/in", secret=secret
    )


def test_the_body_carries_markdown_text_mentions_and_button() -> None:
    (body,) = Generic().build(channel(), message())

    assert body == {
        "title": "述职评议提醒",
        "markdown": "请于**1月20日**前提交[述职报告](https://example.cn/r)。",
        "text": "请于1月20日前提交述职报告（https://example.cn/r）。",
        "mentions": [{"person_id": "zhang", "name": "张三", "mobile": "13800001111", "ids": {"wecom": "zhangsan"}}],
        "mention_all": False,
        "button": {"text": "已提交", "url": "https://remindbot.example.cn/c/t"},
    }


def test_a_receiver_following_the_docstring_verifies_the_signature() -> None:
    (body,) = Generic().build(channel(), message())

    request = Generic().prepare(channel(), body, 1700000000.0)

    assert request.headers["X-Remindbot-Timestamp"] == "1700000000"
    assert receiver_accepts("whsec-1", request.headers, request.body, 1700000100.0)
    assert not receiver_accepts("whsec-2", request.headers, request.body, 1700000100.0)
    assert not receiver_accepts("whsec-1", request.headers, request.body + b" ", 1700000100.0)
    assert not receiver_accepts("whsec-1", request.headers, request.body, 1700001000.0)
    assert json.loads(request.body) == body


def test_without_a_secret_no_signature_headers_are_sent() -> None:
    (body,) = Generic().build(channel(None), message())

    request = Generic().prepare(channel(None), body, 1700000000.0)

    assert "X-Remindbot-Signature" not in request.headers


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (200, None),
        (202, None),
        (204, None),
        (401, FailureKind.CONFIG),
        (403, FailureKind.CONFIG),
        (404, FailureKind.CONFIG),
        (400, FailureKind.REJECTED),
        (422, FailureKind.REJECTED),
        (429, FailureKind.RETRY),
        (503, FailureKind.RETRY),
    ],
)
async def test_http_status_decides_the_outcome(env: PlatformEnv, status: int, kind: FailureKind | None) -> None:
    robot = env.fakes.generic(secret="whsec-1")
    robot.answer_next(status, b"" if status == 204 else b"{}", {"Retry-After": "3"})

    (error,) = await env.deliver(robot.channel(), message())

    assert (error.kind if error else None) is kind
    if kind is FailureKind.RETRY:
        assert error is not None and error.retry_after == 3
