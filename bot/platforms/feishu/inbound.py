"""Feishu / Lark event subscription: ``im.message.receive_v1`` and ``card.action.trigger``.

Protocol (open.feishu.cn event subscription docs; the oapi SDK's ``dispatcher_handler.py`` and
``decryptor.py``): a body ``{"encrypt": ...}`` is AES-256-CBC with ``key = sha256(encrypt_key)``
and the IV in the first 16 bytes; with an Encrypt Key set, events carry ``X-Lark-Signature =
sha256(timestamp + nonce + encrypt_key + raw_body)``. The verification token is in
``header.token`` (schema 2.0) or ``token`` (url_verification). A card button press is answered in
the HTTP response (within 3 seconds) with a toast and the updated card.

Why not ``lark-oapi``: its event dispatcher is synchronous (``requests``-based client, handlers
called inline) and pulls in a large dependency tree; the three checks above are 30 lines.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from bot import jsontext
from bot.platforms.events import CallbackError, Pressed, Said, button_number, stamp_of, stamp_refusal
from bot.platforms.feishu.config import FeishuApp
from bot.platforms.spec import CallbackReply, CallbackRequest, Inbox

MAX_SKEW_SECONDS = 300
CONFIRM_ACTION = "confirm"  # a card button's value: {"action": "confirm", "occurrence": <id>}


def decrypt(encrypt_key: str, encrypted: str) -> str:
    try:
        raw = base64.b64decode(encrypted, validate=True)
        if len(raw) < 32 or len(raw) % 16:
            raise ValueError("length")
        key = hashlib.sha256(encrypt_key.encode()).digest()
        dec = Cipher(algorithms.AES(key), modes.CBC(raw[:16])).decryptor()
        plain = dec.update(raw[16:]) + dec.finalize()
        pad = plain[-1]
        if not 1 <= pad <= 16 or plain[-pad:] != bytes([pad]) * pad:
            raise ValueError("padding")
        return plain[:-pad].decode()
    except (ValueError, UnicodeDecodeError) as exc:
        raise CallbackError(400, "消息无法解密") from exc


def encrypt(encrypt_key: str, plain: str, iv: bytes) -> str:
    key = hashlib.sha256(encrypt_key.encode()).digest()
    data = plain.encode()
    pad = 16 - len(data) % 16
    enc = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    return base64.b64encode(iv + enc.update(data + bytes([pad]) * pad) + enc.finalize()).decode()


def signature(timestamp: str, nonce: str, encrypt_key: str, body: bytes) -> str:
    return hashlib.sha256((timestamp + nonce + encrypt_key).encode() + body).hexdigest()


@dataclass
class Inbound:
    """A verified request: the challenge to echo, or an event (or neither: nothing to do)."""

    challenge: str | None = None
    said: Said | None = None
    pressed: Pressed | None = None
    chat_id: str | None = None


def read(app: FeishuApp, headers: dict[str, str], body: bytes, now: datetime) -> Inbound:
    """Verify, decrypt and parse a request; raises :class:`CallbackError` when refused."""
    outer = _json(body)
    key = app.encrypt_key.get_secret_value() if app.encrypt_key else ""
    if "encrypt" in outer:
        if not key:
            raise CallbackError(400, "收到加密消息，但未配置 encrypt_key")
        data = _json(decrypt(key, str(outer["encrypt"])).encode())
    else:
        if key:
            raise CallbackError(400, "已配置 encrypt_key，但消息未加密")
        data = outer
    token = data.get("token") if "header" not in data else (data.get("header") or {}).get("token")
    if not isinstance(token, str) or not hmac.compare_digest(token.encode(),
                                                             app.verification_token.get_secret_value().encode()):
        raise CallbackError(403, "Verification Token 不正确")
    if data.get("type") == "url_verification":
        return Inbound(challenge=str(data.get("challenge", "")))
    if key:
        _check_signature(key, headers, body, now)
    header = data.get("header") or {}
    event = data.get("event") or {}
    if not isinstance(header, dict) or not isinstance(event, dict):
        raise CallbackError(400, "消息格式不正确")
    kind, event_id = header.get("event_type"), str(header.get("event_id") or "")
    if not key and kind in ("im.message.receive_v1", "card.action.trigger"):
        _check_fresh(header, event, now)
    if kind == "im.message.receive_v1":
        return _message(app, event, event_id)
    if kind == "card.action.trigger":
        return _press(app, event, event_id)
    return Inbound()


def _check_signature(key: str, headers: dict[str, str], body: bytes, now: datetime) -> None:
    ts = headers.get("X-Lark-Request-Timestamp", "")
    nonce = headers.get("X-Lark-Request-Nonce", "")
    given = headers.get("X-Lark-Signature", "")
    if not (ts and given):
        raise CallbackError(403, "缺少签名请求头")
    if not hmac.compare_digest(signature(ts, nonce, key, body), given):
        raise CallbackError(403, "签名不正确")
    if (why := stamp_refusal(stamp_of(ts), now.timestamp(), MAX_SKEW_SECONDS)) is not None:
        raise CallbackError(403, why)


def _check_fresh(header: dict[str, Any], event: dict[str, Any], now: datetime) -> None:
    """Token-only mode has no signed request timestamp, so a captured or forged event could be
    replayed at any time: refuse one whose ``create_time`` (milliseconds; the header's, and the
    message's when it has one) is outside the window the signed modes apply to their timestamp."""
    message = event.get("message")
    stamps = [header.get("create_time")]
    if isinstance(message, dict) and "create_time" in message:
        stamps.append(message.get("create_time"))
    for raw in stamps:
        at = stamp_of(raw) if isinstance(raw, str) else None
        why = stamp_refusal(None if at is None else at / 1000, now.timestamp(), MAX_SKEW_SECONDS)
        if why is not None:
            raise CallbackError(403, why)


def _message(app: FeishuApp, event: dict[str, Any], event_id: str) -> Inbound:
    sender = event.get("sender") or {}
    message = event.get("message") or {}
    open_id = str((sender.get("sender_id") or {}).get("open_id") or "")
    if sender.get("sender_type") != "user" or message.get("message_type") != "text" or not open_id:
        return Inbound()
    try:
        text = str(jsontext.loads(message.get("content") or "{}").get("text", ""))
    except (ValueError, AttributeError):
        raise CallbackError(400, "消息内容格式不正确") from None
    words = [w for w in text.split() if not w.startswith("@_user_")]
    msg_id = str(message.get("message_id") or event_id)
    said = Said(app.platform, app.id, open_id, " ".join(words), msg_id)
    return Inbound(said=said, chat_id=str(message.get("chat_id") or "") or None)


def _press(app: FeishuApp, event: dict[str, Any], event_id: str) -> Inbound:
    operator = event.get("operator") or {}
    value = (event.get("action") or {}).get("value") or {}
    open_id = str(operator.get("open_id") or "")
    if not isinstance(value, dict) or value.get("action") != CONFIRM_ACTION or not open_id:
        return Inbound()
    try:
        occurrence_id = button_number(value.get("occurrence"))
    except (TypeError, ValueError):
        raise CallbackError(400, "按钮数据不正确") from None
    return Inbound(pressed=Pressed(app.platform, app.id, open_id, occurrence_id, event_id or "?"))


def _json(body: bytes) -> dict[str, Any]:
    try:
        data = jsontext.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise CallbackError(400, jsontext.refusal(exc)) from None
    if not isinstance(data, dict):
        raise CallbackError(400, "消息格式不正确")
    return data


def confirm_card(title: str, when: str, occurrence_id: int, confirmed: list[str], pending: int) -> dict[str, Any]:
    """The interactive card with a confirm button; sent by the app and returned updated after presses."""
    done = "、".join(confirmed) if confirmed else "暂无"
    return {
        "config": {"wide_screen_mode": True, "update_multi": True},
        "header": {"title": {"tag": "plain_text", "content": title}},
        "elements": [
            {"tag": "div", "text": {"tag": "lark_md", "content": f"**时间：**{when}"}},
            {"tag": "div", "text": {"tag": "lark_md", "content": f"**已确认：**{done}（尚有 {pending} 人未确认）"}},
            {"tag": "action", "actions": [{
                "tag": "button", "type": "primary", "text": {"tag": "plain_text", "content": "确认已完成"},
                "value": {"action": CONFIRM_ACTION, "occurrence": occurrence_id}}]},
        ],
    }


def card_response(text: str, ok: bool, card: dict[str, Any] | None) -> dict[str, Any]:
    """The HTTP answer to a card press: a toast, and the updated card when there is one."""
    out: dict[str, Any] = {"toast": {"type": "success" if ok else "info", "content": text}}
    if card is not None:
        out["card"] = {"type": "raw", "data": card}
    return out


async def callback(inbox: Inbox, app: FeishuApp, request: CallbackRequest) -> CallbackReply:
    """The callback handler (:data:`bot.platforms.spec.Callback`): only POSTs reach it. A card press is
    answered in the response (toast and the updated card); a message through the app or the
    ``answer_channel`` (:meth:`Inbox.answer_in_channel`)."""
    inbound = read(app, dict(request.headers), request.body, inbox.now())
    if inbound.challenge is not None:
        return CallbackReply(json={"challenge": inbound.challenge})
    if inbound.pressed is not None:
        answer = await inbox.handle(inbound.pressed)
        state = await inbox.card_state(answer.occurrence_id) if answer.occurrence_id else None
        card = (confirm_card(state.title, state.when, state.occurrence_id, state.confirmed, state.outstanding)
                if state else None)
        return CallbackReply(json=card_response(answer.text or "已处理", answer.recorded, card))
    if inbound.said is not None:
        answer = await inbox.handle(inbound.said)
        await inbox.answer_in_channel(app, inbound.said, answer)
    return CallbackReply(json={})
