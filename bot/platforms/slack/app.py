"""Slack app direct messages: ``chat.postMessage`` to a member id, with the confirm button.

The bot token (``xoxb-…``) does not expire; "fetching" it is ``auth.test``, which checks it once per
process (``{"ok":true}`` or ``{"ok":false,"error":"invalid_auth"}``). Send: ``POST
<api_base>/api/chat.postMessage`` with ``Authorization: Bearer`` and ``{"channel":<member id>,
"text","blocks"}``; errors are HTTP 200 ``{"ok":false,"error":…}``, rate limits HTTP 429 with
``Retry-After``. ``invalid_auth``/``token_expired`` are checked once more before giving up.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from bot.platforms import markup
from bot.platforms.appsend import AppSender, answer_json, recipient, token_answer
from bot.platforms.base import ChannelBase, DeliveryError, FailureKind, HttpRequest, Limits, Message
from bot.platforms.slack.robot import Mrkdwn

if TYPE_CHECKING:
    import aiohttp

MAX_SECTION_CHARS = 3000  # a section block's text
TOKEN_INVALID = {"invalid_auth", "not_authed", "token_expired"}
CONFIG_ERRORS = TOKEN_INVALID | {"token_revoked", "account_inactive", "missing_scope", "not_allowed_token_type"}


class SlackAppSender(AppSender):
    name: ClassVar[str] = "slack_app"
    title: ClassVar[str] = "Slack 应用私信"
    token_granted: ClassVar[str] = "Bot Token 有效"
    platform: ClassVar[str] = "slack"
    # chat.postMessage: about one message a second per conversation, short bursts allowed.
    limits: ClassVar[Limits] = Limits(max_bytes=MAX_SECTION_CHARS, per_minute=60, per_second=1)

    def credentials(self, app: Any) -> tuple[str, ...]:
        return (app.api_base, app.bot_token.get_secret_value() if app.bot_token else "")

    def build(self, channel: ChannelBase, message: Message) -> list[dict[str, Any]]:
        text = Mrkdwn().convert(markup.with_title(message))
        if message.button_url:
            text += f"\n<{message.button_url}|{message.button_text or '打开'}>"
        text = markup.shorten(text, MAX_SECTION_CHARS, markup.char_len)
        blocks: list[dict[str, Any]] = [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]
        if message.confirm_occurrence is not None:
            from bot.platforms.slack.inbound import (
                confirm_button,  # (imports bot.confirming.inbound, which needs the registry)
            )

            blocks.append(confirm_button(message.confirm_occurrence))
        return [{"channel": recipient(message, "slack"), "text": text, "blocks": blocks}]

    def prepare(self, channel: ChannelBase, body: dict[str, Any], now: float, token: str = "") -> HttpRequest:
        base = channel.app.api_base  # type: ignore[attr-defined]
        return HttpRequest(url=f"{base}/api/chat.postMessage", body=json.dumps(body, ensure_ascii=False).encode(),
                           headers={"Content-Type": "application/json; charset=utf-8",
                                    "Authorization": f"Bearer {token}"})

    def token_invalid(self, status: int, body: bytes) -> bool:
        return answer_json(body).get("error") in TOKEN_INVALID

    def read_answer(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
        if status == 429 or status >= 500:
            retry = headers.get("Retry-After")
            raise DeliveryError(FailureKind.RETRY, f"Slack 暂时不可用或发送太频繁（HTTP {status}）",
                                retry_after=float(retry) if retry and retry.isdigit() else None)
        data = answer_json(body)
        if status == 200 and data.get("ok") is True:
            return
        error = markup.redact(str(data.get("error", status)))[:60]
        if error in CONFIG_ERRORS:
            raise DeliveryError(FailureKind.CONFIG, f"Slack 拒绝了 Bot Token（{error}）：请在应用的"
                                " OAuth & Permissions 页面重新安装应用并复制 xoxb- 开头的令牌", code=error)
        raise DeliveryError(FailureKind.REJECTED, f"Slack 拒收了这条私信（{error}）", code=error)

    async def fetch_token(self, http: aiohttp.ClientSession, app: Any,
                          deadline: aiohttp.ClientTimeout | None = None) -> tuple[str, float]:
        token = app.bot_token.get_secret_value() if app.bot_token else ""
        async with http.post(f"{app.api_base}/api/auth.test", headers={"Authorization": f"Bearer {token}"},
                             timeout=deadline) as resp:
            status, data = await token_answer(resp, "Slack")
        if status >= 500 or status == 429:
            raise DeliveryError(FailureKind.RETRY, f"Slack 暂时无法验证 Bot Token（HTTP {status}）")
        if data.get("ok") is not True:
            error = markup.redact(str(data.get("error", status)))[:60]
            raise DeliveryError(FailureKind.CONFIG, f"Slack 不认这个 Bot Token（{error}）", code=error)
        return token, math.inf
