"""WeCom (企业微信 / 政务微信) callbacks: a self-built app's messages and a group robot's callback.

Protocol (docs/platforms notes §2, checked against wechatpy's vectors): ``msg_signature =
sha1(sorted(token, timestamp, nonce, encrypt))``; AES-256-CBC with ``key = b64(EncodingAESKey+"=")``
and ``iv = key[:16]``; plaintext ``random16 || len(be32) || msg || receiveid`` padded PKCS#7 to 32.
The receiveid is the CorpID for an app and empty for a group robot's callback.

Written here rather than with wechatpy: the crypto is 40 lines over ``cryptography``, and a whole
SDK (with its own HTTP client) for it would be a second way of doing what the service already does.
Answers go back as the encrypted passive reply WeCom waits for (a text for an app, markdown for a
group robot), so no access token is needed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import struct
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import datetime
from xml.sax.saxutils import escape

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from bot.platforms.events import CallbackError, Said, stamp_of, stamp_refusal
from bot.platforms.spec import CallbackReply, CallbackRequest, Inbox
from bot.platforms.wecom.config import WeComApp

MAX_SKEW_SECONDS = 300  # a callback's timestamp may differ from our clock by this much


def signature(token: str, timestamp: str, nonce: str, encrypted: str) -> str:
    return hashlib.sha1("".join(sorted([token, timestamp, nonce, encrypted])).encode()).hexdigest()


def _key(encoding_aes_key: str) -> bytes:
    try:
        key = base64.b64decode(encoding_aes_key + "=")
    except ValueError as exc:
        raise ValueError("EncodingAESKey 不是有效的 base64") from exc
    if len(key) != 32:
        raise ValueError("EncodingAESKey 长度不对")
    return key


def encrypt(encoding_aes_key: str, message: str, receive_id: str, random: bytes | None = None) -> str:
    key = _key(encoding_aes_key)
    body = message.encode()
    plain = (random or os.urandom(16)) + struct.pack(">I", len(body)) + body + receive_id.encode()
    pad = 32 - len(plain) % 32
    plain += bytes([pad]) * pad
    enc = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    return base64.b64encode(enc.update(plain) + enc.finalize()).decode()


def decrypt(encoding_aes_key: str, encrypted: str, receive_id: str) -> str:
    """The plaintext message; raises :class:`CallbackError` (400) when it cannot be decrypted."""
    try:
        key = _key(encoding_aes_key)
        raw = base64.b64decode(encrypted, validate=True)
        if not raw or len(raw) % 16:
            raise ValueError("length")
        dec = Cipher(algorithms.AES(key), modes.CBC(key[:16])).decryptor()
        plain = dec.update(raw) + dec.finalize()
        pad = plain[-1]
        if not 1 <= pad <= 32:
            raise ValueError("padding")
        plain = plain[:-pad]
        (length,) = struct.unpack(">I", plain[16:20])
        message, rest = plain[20:20 + length], plain[20 + length:]
        if len(message) != length or rest.decode() != receive_id:
            raise ValueError("receive id")
        return message.decode()
    except (ValueError, struct.error, UnicodeDecodeError) as exc:
        raise CallbackError(400, "消息无法解密") from exc


def _check(app: WeComApp, query: dict[str, str], encrypted: str, now: datetime) -> None:
    ts, nonce, sig = query.get("timestamp", ""), query.get("nonce", ""), query.get("msg_signature", "")
    if not (ts and nonce and sig):
        raise CallbackError(400, "缺少签名参数")
    expected = signature(app.token.get_secret_value(), ts, nonce, encrypted)
    if not hmac.compare_digest(expected, sig.lower()):
        raise CallbackError(403, "签名不正确")
    if (why := stamp_refusal(stamp_of(ts), now.timestamp(), MAX_SKEW_SECONDS)) is not None:
        raise CallbackError(403, why)


def _receive_id(app: WeComApp) -> str:
    return app.corp_id or "" if app.kind == "app" else ""


def verify_url(app: WeComApp, query: dict[str, str], now: datetime) -> str:
    """GET URL verification: the decrypted ``echostr`` to answer as plain text."""
    echostr = query.get("echostr", "")
    if not echostr:
        raise CallbackError(400, "缺少 echostr")
    _check(app, query, echostr, now)
    return decrypt(app.encoding_aes_key.get_secret_value(), echostr, _receive_id(app))


def _xml(text: str) -> ET.Element:
    if "<!DOCTYPE" in text or "<!ENTITY" in text:  # no entity expansion, ever
        raise CallbackError(400, "消息格式不正确")
    try:
        return ET.fromstring(text)
    except ET.ParseError as exc:
        raise CallbackError(400, "消息格式不正确") from exc


@dataclass
class Inbound:
    """A decrypted callback: the event (None when it is not a text message) and who to answer."""

    said: Said | None
    to_user: str  # the app's reply goes to this user (app) / ignored (robot)
    from_user: str


def read_message(app: WeComApp, query: dict[str, str], body: bytes, now: datetime) -> Inbound:
    """Verify and decrypt a POSTed callback."""
    outer = _xml(body.decode("utf-8", "replace"))
    encrypted = (outer.findtext("Encrypt") or "").strip()
    if not encrypted:
        raise CallbackError(400, "缺少 Encrypt")
    _check(app, query, encrypted, now)
    inner = _xml(decrypt(app.encoding_aes_key.get_secret_value(), encrypted, _receive_id(app)))
    if app.kind == "robot":
        user = inner.findtext("From/UserId") or ""
        text = inner.findtext("Text/Content") or ""
        msg_id = inner.findtext("MsgId") or ""
        kind = inner.findtext("MsgType") or ""
        to_user, from_user = user, ""
    else:
        user = inner.findtext("FromUserName") or ""
        text = inner.findtext("Content") or ""
        msg_id = inner.findtext("MsgId") or f"{user}:{inner.findtext('CreateTime')}"
        kind = inner.findtext("MsgType") or ""
        to_user, from_user = user, inner.findtext("ToUserName") or ""
    said = None
    if kind == "text" and user and msg_id:
        said = Said("wecom", app.id, user, strip_mentions(text), msg_id)
    return Inbound(said, to_user, from_user)


def strip_mentions(text: str) -> str:
    """Drop the ``@robot`` mentions a group message starts with."""
    words = text.strip().split()
    while words and words[0].startswith("@"):
        words.pop(0)
    return " ".join(words)


def passive_reply(app: WeComApp, inbound: Inbound, answer: str, now: datetime | None = None,
                  nonce: str | None = None) -> str:
    """The encrypted XML answer WeCom shows to the sender (app: text; robot: markdown)."""
    stamp = str(int(now.timestamp() if now else time.time()))
    if app.kind == "robot":
        inner = (f"<xml><MsgType>markdown</MsgType><Markdown><Content><![CDATA[{_cdata(answer)}]]>"
                 f"</Content></Markdown></xml>")
    else:
        inner = (f"<xml><ToUserName><![CDATA[{_cdata(inbound.to_user)}]]></ToUserName>"
                 f"<FromUserName><![CDATA[{_cdata(inbound.from_user)}]]></FromUserName>"
                 f"<CreateTime>{stamp}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
                 f"<Content><![CDATA[{_cdata(answer)}]]></Content></xml>")
    encrypted = encrypt(app.encoding_aes_key.get_secret_value(), inner, _receive_id(app))
    nonce = nonce or secrets.token_hex(8)
    sig = signature(app.token.get_secret_value(), stamp, nonce, encrypted)
    return (f"<xml><Encrypt><![CDATA[{encrypted}]]></Encrypt><MsgSignature><![CDATA[{sig}]]></MsgSignature>"
            f"<TimeStamp>{stamp}</TimeStamp><Nonce><![CDATA[{escape(nonce)}]]></Nonce></xml>")


def _cdata(text: str) -> str:
    return text.replace("]]>", "]]]]><![CDATA[>")


async def callback(inbox: Inbox, app: WeComApp, request: CallbackRequest) -> CallbackReply:
    """The callback handler (:data:`bot.platforms.spec.Callback`): a GET verifies the URL; a POST
    message is answered with an encrypted passive reply (an empty body tells WeCom not to retry)."""
    query = dict(request.query)
    now = inbox.now()
    if request.method == "GET":
        return CallbackReply(text=verify_url(app, query, now))
    inbound = read_message(app, query, request.body, now)
    if inbound.said is None:
        return CallbackReply()
    answer = await inbox.handle(inbound.said)
    if not answer.text:
        return CallbackReply()
    return CallbackReply(text=passive_reply(app, inbound, answer.text, now), content_type="application/xml")
