"""Slack: Events API (messages) and interactivity (button presses), with v0 request signatures.

The signature check is ``slack_sdk``'s ``SignatureVerifier`` (``v0=`` HMAC-SHA256 over
``v0:{timestamp}:{body}``, refused beyond 5 minutes), given our clock. Events: ``url_verification``
echoes the challenge; ``event_callback`` with a user's ``message``/``app_mention`` becomes a
:class:`Said`. Interactivity posts ``payload=<JSON>``; a ``block_actions`` press of the button whose
``action_id`` is ``confirm`` and whose ``value`` is the occurrence id becomes a :class:`Pressed`,
answered through the payload's ``response_url``.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs

import aiohttp
from slack_sdk.signature import Clock, SignatureVerifier

from bot import jsontext
from bot.platforms.events import CallbackError, Pressed, Said, button_number, stamp_of, stamp_refusal
from bot.platforms.slack.config import SlackApp
from bot.platforms.spec import CallbackReply, CallbackRequest, Inbox

CONFIRM_ACTION = "confirm"
_MENTION = re.compile(r"<@[A-Z0-9]+>")

log = logging.getLogger(__name__)


class _FixedClock(Clock):
    def __init__(self, now: datetime) -> None:
        self._now = now.timestamp()

    def now(self) -> float:
        return self._now


def check_signature(app: SlackApp, headers: dict[str, str], body: bytes, now: datetime) -> None:
    ts = headers.get("X-Slack-Request-Timestamp", "")
    given = headers.get("X-Slack-Signature", "")
    if not ts or not given:
        raise CallbackError(400, "缺少签名请求头")
    try:
        body.decode("utf-8")  # the SDK decodes the body itself and would raise
    except UnicodeDecodeError:
        raise CallbackError(400, "消息不是有效的 UTF-8 文本") from None
    verifier = SignatureVerifier(app.signing_secret.get_secret_value(), clock=_FixedClock(now))
    if (why := stamp_refusal(stamp_of(ts), now.timestamp(), 300)) is not None:
        raise CallbackError(403, why)
    if not verifier.is_valid(body, ts, given):
        raise CallbackError(403, "签名不正确")


@dataclass
class Inbound:
    challenge: str | None = None
    said: Said | None = None
    pressed: Pressed | None = None
    channel: str | None = None
    response_url: str | None = None


def read(app: SlackApp, headers: dict[str, str], body: bytes, now: datetime) -> Inbound:
    """Verify and parse an Events API or interactivity request."""
    check_signature(app, headers, body, now)
    if headers.get("Content-Type", "").startswith("application/x-www-form-urlencoded"):
        return _interaction(app, body)
    try:
        data = jsontext.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise CallbackError(400, jsontext.refusal(exc)) from None
    if not isinstance(data, dict):
        raise CallbackError(400, "消息格式不正确")
    if data.get("type") == "url_verification":
        return Inbound(challenge=str(data.get("challenge", "")))
    event = data.get("event") or {}
    if data.get("type") != "event_callback" or not isinstance(event, dict):
        return Inbound()
    if event.get("type") not in ("message", "app_mention") or event.get("bot_id") or event.get("subtype"):
        return Inbound()
    user = str(event.get("user") or "")
    msg_id = str(event.get("client_msg_id") or data.get("event_id") or "")
    if not user or not msg_id:
        return Inbound()
    text = _MENTION.sub(" ", str(event.get("text") or "")).strip()
    return Inbound(said=Said("slack", app.id, user, text, msg_id), channel=str(event.get("channel") or "") or None)


def _interaction(app: SlackApp, body: bytes) -> Inbound:
    try:
        payload = jsontext.loads(parse_qs(body.decode())["payload"][0])
    except (KeyError, IndexError, ValueError, UnicodeDecodeError):
        raise CallbackError(400, "消息格式不正确") from None
    if not isinstance(payload, dict) or payload.get("type") != "block_actions":
        return Inbound()
    user = str((payload.get("user") or {}).get("id") or "")
    actions: list[Any] = payload.get("actions") or []
    action = next((a for a in actions if isinstance(a, dict) and a.get("action_id") == CONFIRM_ACTION), None)
    if action is None or not user:
        return Inbound()
    try:
        occurrence_id = button_number(action.get("value"))
    except (TypeError, ValueError):
        raise CallbackError(400, "按钮数据不正确") from None
    press_id = str(payload.get("trigger_id") or action.get("action_ts") or "")
    return Inbound(pressed=Pressed("slack", app.id, user, occurrence_id, press_id),
                   response_url=payload.get("response_url"))


def confirm_button(occurrence_id: int) -> dict[str, Any]:
    """The Block Kit button the app half puts in a reminder sent as an app message."""
    return {"type": "actions", "elements": [{
        "type": "button", "action_id": CONFIRM_ACTION, "style": "primary", "value": str(occurrence_id),
        "text": {"type": "plain_text", "text": "确认已完成"}}]}


async def callback(inbox: Inbox, app: SlackApp, request: CallbackRequest) -> CallbackReply:
    """The callback handler (:data:`bot.platforms.spec.Callback`): only POSTs reach it. A button press is
    answered through the payload's ``response_url``; a message through the app or the
    ``answer_channel`` (:meth:`Inbox.answer_in_channel`)."""
    inbound = read(app, dict(request.headers), request.body, inbox.now())
    if inbound.challenge is not None:
        return CallbackReply(json={"challenge": inbound.challenge})
    if inbound.pressed is not None:
        answer = await inbox.handle(inbound.pressed)
        if answer.text and inbound.response_url:
            await _post(inbox.http, inbound.response_url,
                        {"response_type": "ephemeral", "replace_original": False, "text": answer.text})
    elif inbound.said is not None:
        answer = await inbox.handle(inbound.said)
        await inbox.answer_in_channel(app, inbound.said, answer)
    return CallbackReply()


async def _post(http: aiohttp.ClientSession, url: str, body: dict[str, Any]) -> None:
    try:
        async with http.post(url, json=body, timeout=aiohttp.ClientTimeout(total=5)) as resp:
            if resp.status >= 300:
                log.warning("回复失败：HTTP %s", resp.status)
    except (aiohttp.ClientError, TimeoutError) as exc:
        log.warning("回复失败：%s", type(exc).__name__)
