"""DingTalk app robot, receiving: the HTTP callback (``timestamp``/``sign`` headers) and answers.

``sign == base64(HMAC-SHA256(key=AppSecret, msg=f"{timestamp}\\n{AppSecret}"))`` with the
timestamp in milliseconds, refused when more than an hour from our clock (DingTalk's rule).
The body is the robot message JSON (``senderStaffId``, ``text.content``, ``msgId``,
``sessionWebhook``); Stream mode (``bot.platforms.dingtalk.stream``) delivers the same body.
Answers go back through the message's ``sessionWebhook`` (valid about 90 minutes), which needs no
access token. Written without an SDK: this is one HMAC and one JSON shape.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aiohttp

from bot import jsontext
from bot.platforms.dingtalk.config import DingTalkApp
from bot.platforms.dingtalk.stream import CARD_TOPIC
from bot.platforms.events import Answer, CallbackError, Pressed, Said, button_number, stamp_of, stamp_refusal
from bot.platforms.spec import CallbackReply, CallbackRequest, Inbox

log = logging.getLogger(__name__)
MAX_SKEW_MS = 3600 * 1000


def sign(app_secret: str, timestamp: str) -> str:
    digest = hmac.new(app_secret.encode(), f"{timestamp}\n{app_secret}".encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def check_headers(app: DingTalkApp, timestamp: str, given: str, now: datetime) -> None:
    """Raise :class:`CallbackError` unless the headers are DingTalk's for this app and fresh."""
    if not timestamp or not given:
        raise CallbackError(400, "缺少 timestamp 或 sign 请求头")
    expected = sign(app.app_secret.get_secret_value(), timestamp)
    if not hmac.compare_digest(expected.encode(), given.encode()):
        raise CallbackError(403, "签名不正确")
    at = stamp_of(timestamp)  # milliseconds
    if (why := stamp_refusal(None if at is None else at / 1000, now.timestamp(), MAX_SKEW_MS / 1000)) is not None:
        raise CallbackError(403, why)


@dataclass
class Inbound:
    said: Said | None
    session_webhook: str | None
    webhook_expires_ms: int | None
    staff_id: str


def read_message(app: DingTalkApp, data: Any) -> Inbound:
    """The robot message body (dict) as an event; raises :class:`CallbackError` when malformed."""
    if not isinstance(data, dict):
        raise CallbackError(400, "消息格式不正确")
    staff = str(data.get("senderStaffId") or "")
    msg_id = str(data.get("msgId") or "")
    text = data.get("text", {}).get("content", "") if isinstance(data.get("text"), dict) else ""
    webhook = data.get("sessionWebhook") if isinstance(data.get("sessionWebhook"), str) else None
    expires = data.get("sessionWebhookExpiredTime")
    said = None
    if data.get("msgtype") == "text" and staff and msg_id:
        said = Said("dingtalk", app.id, staff, str(text).strip(), msg_id,
                    display_name=str(data.get("senderNick") or "") or None)
    return Inbound(said, webhook, expires if isinstance(expires, int) else None, staff)


CONFIRM_ACTION = "confirm"  # the card button's actionId; its params carry {"occurrence": "<id>"}


def read_card_press(app: DingTalkApp, data: dict[str, Any], message_id: str) -> Pressed | None:
    """A Stream card callback (``userId``, ``value``) as a press of the confirm button, or None."""
    try:
        value = jsontext.loads(data.get("value") or "{}")
        private = value.get("cardPrivateData") or {}
        if CONFIRM_ACTION not in (private.get("actionIds") or []):
            return None
        occurrence_id = button_number((private.get("params") or {}).get("occurrence"))
    except (ValueError, TypeError, AttributeError):
        raise CallbackError(400, "卡片回调数据不正确") from None
    user = str(data.get("userId") or "")
    if not user:
        return None
    return Pressed("dingtalk", app.id, user, occurrence_id, message_id or str(data.get("outTrackId") or ""))


def card_answer(text: str) -> dict[str, Any]:
    """The acknowledgement's response to a card press: the answer as the card's ``confirm_status``
    variable (the card template the app sends must show that variable)."""
    return {"cardData": {"cardParamMap": {"confirm_status": text}}}


def parse_body(body: bytes) -> Any:
    try:
        return jsontext.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise CallbackError(400, jsontext.refusal(exc)) from exc


async def answer(http: aiohttp.ClientSession, inbound: Inbound, text: str, now: datetime) -> bool:
    """Post the answer to the message's session webhook; False (logged) when that is not possible."""
    if not inbound.session_webhook:
        log.warning("钉钉消息没有 sessionWebhook，无法回复")
        return False
    if inbound.webhook_expires_ms is not None and inbound.webhook_expires_ms < now.timestamp() * 1000:
        log.warning("钉钉 sessionWebhook 已过期，无法回复")
        return False
    body = {"msgtype": "text", "text": {"content": text}, "at": {"atUserIds": [inbound.staff_id]}}
    try:
        async with http.post(inbound.session_webhook, json=body,
                             timeout=aiohttp.ClientTimeout(total=5)) as resp:
            data = await resp.json(loads=jsontext.loads, content_type=None)
            ok = resp.status == 200 and isinstance(data, dict) and data.get("errcode", 0) == 0
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        log.warning("钉钉回复失败：%s", type(exc).__name__)
        return False
    if not ok:
        log.warning("钉钉回复失败：HTTP %s %s", resp.status, str(data)[:200])
    return ok


async def message(inbox: Inbox, app: DingTalkApp, data: Any) -> Answer | None:
    """A robot message body (HTTP callback or Stream): handle it and answer by session webhook."""
    inbound = read_message(app, data)
    if inbound.said is None:
        return None
    result = await inbox.handle(inbound.said)
    if result.text:
        await answer(inbox.http, inbound, result.text, inbox.now())
    return result


async def stream_callback(inbox: Inbox, app: DingTalkApp, topic: str, data: dict[str, Any],
                          message_id: str = "") -> dict[str, Any] | None:
    """A Stream callback: a robot message (answered by session webhook) or a card press (answered
    in the acknowledgement, ``topic`` :data:`bot.platforms.dingtalk.stream.CARD_TOPIC`)."""
    if topic != CARD_TOPIC:
        await message(inbox, app, data)
        return None
    pressed = read_card_press(app, data, message_id)
    if pressed is None:
        return None
    result = await inbox.handle(pressed)
    return card_answer(result.text or "已处理")


async def callback(inbox: Inbox, app: DingTalkApp, request: CallbackRequest) -> CallbackReply:
    """The HTTP callback handler (:data:`bot.platforms.spec.Callback`): signed headers (only POSTs reach it)."""
    check_headers(app, request.headers.get("timestamp", ""), request.headers.get("sign", ""), inbox.now())
    await message(inbox, app, parse_body(request.body))
    return CallbackReply(json={})
