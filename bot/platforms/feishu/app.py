"""Feishu / Lark app messages: an interactive card to one user (``im/v1/messages``, open_id).

Token: ``POST <api>/open-apis/auth/v3/tenant_access_token/internal`` with ``{"app_id","app_secret"}``
→ ``{"code":0,"tenant_access_token","expire":7200}`` (in its last 30 minutes a new token is issued
while the old one still works). Send: ``POST <api>/open-apis/im/v1/messages?receive_id_type=open_id``
with ``Authorization: Bearer <token>`` and ``{"receive_id","msg_type":"interactive","content":"<card
JSON>"}``. ``99991661``/``99991663``/``99991668``/``99991677`` (token malformed, invalid, invalid,
expired) mean: fetch a new token. The card carries the confirm button whose press comes back as
``card.action.trigger`` (bot/platforms/feishu/inbound.py). Written by hand: ``lark-oapi``'s client
is synchronous (requests).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from bot.platforms import markup
from bot.platforms.appsend import AppSender, answer_json, recipient, token_answer
from bot.platforms.base import ChannelBase, DeliveryError, FailureKind, HttpRequest, Limits, Message
from bot.platforms.feishu.robot import LarkMarkdown

if TYPE_CHECKING:
    import aiohttp

MAX_CARD_BYTES = 30000  # a card's content is limited to 30 KB
TOKEN_INVALID = {99991661, 99991663, 99991668, 99991677}
RETRY_CODES = {99991400, 11232, 230020}  # request too frequent / rate limits


def card(message: Message) -> dict[str, Any]:
    """The message as a card: title, markdown, the link button and the confirm button."""
    from bot.platforms.feishu.inbound import (
        CONFIRM_ACTION,  # (it imports bot.confirming.inbound, which needs the registry)
    )

    text = markup.shorten(LarkMarkdown().convert(markup.without_title(message)), MAX_CARD_BYTES - 2000)
    actions: list[dict[str, Any]] = []
    if message.confirm_occurrence is not None:
        actions.append({"tag": "button", "type": "primary", "text": {"tag": "plain_text", "content": "确认已完成"},
                        "value": {"action": CONFIRM_ACTION, "occurrence": message.confirm_occurrence}})
    if message.button_url:
        actions.append({"tag": "button", "type": "default", "url": message.button_url,
                        "text": {"tag": "plain_text", "content": message.button_text or "打开"}})
    elements: list[dict[str, Any]] = [{"tag": "markdown", "content": text}]
    if actions:
        elements.append({"tag": "action", "actions": actions})
    return {"config": {"wide_screen_mode": True, "update_multi": True},
            "header": {"title": {"tag": "plain_text", "content": message.title}}, "elements": elements}


class FeishuAppSender(AppSender):
    name: ClassVar[str] = "feishu_app"
    title: ClassVar[str] = "飞书/Lark 应用消息"
    platform: ClassVar[str] = "feishu"
    # Feishu: the send-message API allows 1000 calls a minute and 50 a second per app.
    limits: ClassVar[Limits] = Limits(max_bytes=MAX_CARD_BYTES, per_minute=1000, per_second=50)

    def credentials(self, app: Any) -> tuple[str, ...]:
        return (app.api, app.app_id or "", app.app_secret.get_secret_value() if app.app_secret else "")

    def build(self, channel: ChannelBase, message: Message) -> list[dict[str, Any]]:
        user = recipient(message, channel.app.platform)  # type: ignore[attr-defined]
        return [{"receive_id": user, "msg_type": "interactive",
                 "content": json.dumps(card(message), ensure_ascii=False)}]

    def oversize(self, body: dict[str, Any]) -> str | None:
        if markup.utf8_len(body["content"]) > MAX_CARD_BYTES:
            return f"卡片超过 {MAX_CARD_BYTES} 字节"
        return None

    def prepare(self, channel: ChannelBase, body: dict[str, Any], now: float, token: str = "") -> HttpRequest:
        api = channel.app.api  # type: ignore[attr-defined]
        return HttpRequest(url=f"{api}/open-apis/im/v1/messages?receive_id_type=open_id",
                           body=json.dumps(body, ensure_ascii=False).encode(),
                           headers={"Content-Type": "application/json; charset=utf-8",
                                    "Authorization": f"Bearer {token}"})

    def token_invalid(self, status: int, body: bytes) -> bool:
        return answer_json(body).get("code") in TOKEN_INVALID

    def read_answer(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
        data = answer_json(body)
        code = data.get("code")
        if status >= 500 or status == 429 or code in RETRY_CODES:
            retry = headers.get("x-ogw-ratelimit-reset")
            raise DeliveryError(FailureKind.RETRY, f"飞书暂时不可用或调用太频繁（HTTP {status}）", code=code,
                                retry_after=float(retry) if retry and retry.isdigit() else None)
        if code == 0 and status == 200:
            return
        msg = markup.redact(str(data.get("msg", "")))[:80]
        if code in TOKEN_INVALID or code in (99991672, 99991676, 230006):
            raise DeliveryError(FailureKind.CONFIG, f"飞书拒绝了应用的访问令牌或权限（{code}：{msg}）：请检查应用是否"
                                "开通“以应用的身份发消息”权限并已发布", code=code)
        if code is None:
            raise DeliveryError(FailureKind.RETRY, f"飞书的答复无法识别（HTTP {status}）")
        raise DeliveryError(FailureKind.REJECTED, f"飞书拒收了这条消息（{code}：{msg}）", code=code)

    async def fetch_token(self, http: aiohttp.ClientSession, app: Any,
                          deadline: aiohttp.ClientTimeout | None = None) -> tuple[str, float]:
        secret = app.app_secret.get_secret_value() if app.app_secret else ""
        payload = {"app_id": app.app_id or "", "app_secret": secret}
        async with http.post(f"{app.api}/open-apis/auth/v3/tenant_access_token/internal", json=payload,
                             timeout=deadline) as resp:
            status, data = await token_answer(resp, "飞书")
        if status >= 500 or status == 429:
            raise DeliveryError(FailureKind.RETRY, f"飞书暂时无法发放访问令牌（HTTP {status}）")
        if data.get("code") != 0 or not data.get("tenant_access_token"):
            code = data.get("code", status)
            raise DeliveryError(FailureKind.CONFIG, f"飞书拒绝了 App ID / App Secret（code {code}）：请到开发者后台"
                                "“凭证与基础信息”重新复制", code=code)
        return str(data["tenant_access_token"]), float(data.get("expire", 7200))
