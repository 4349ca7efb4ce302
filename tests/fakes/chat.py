"""The platforms' side of inbound callbacks: requests signed and encrypted as each platform does.

Written independently of ``bot/platforms/<platform>/inbound.py`` from the protocol notes
(``shared/platforms.md`` §2, §4, §6, §7), and checked against the known-answer vectors in
``tests/test_inbound_vectors.py``, so a bug in the bot's verification cannot hide behind the same
bug here.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import struct
from typing import Any
from urllib.parse import urlencode

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

# ---------------------------------------------------------------- WeCom §2


def wecom_encrypt(aes_key: str, msg: str, receive_id: str, random: bytes | None = None) -> str:
    key = base64.b64decode(aes_key + "=")
    plain = (random or os.urandom(16)) + struct.pack(">I", len(msg.encode())) + msg.encode() + receive_id.encode()
    pad = 32 - len(plain) % 32
    plain += bytes([pad]) * pad
    enc = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    return base64.b64encode(enc.update(plain) + enc.finalize()).decode()


def wecom_decrypt(aes_key: str, encrypted: str) -> tuple[str, str]:
    key = base64.b64decode(aes_key + "=")
    dec = Cipher(algorithms.AES(key), modes.CBC(key[:16])).decryptor()
    plain = dec.update(base64.b64decode(encrypted)) + dec.finalize()
    plain = plain[:-plain[-1]]
    (n,) = struct.unpack(">I", plain[16:20])
    return plain[20:20 + n].decode(), plain[20 + n:].decode()


def wecom_signature(token: str, timestamp: str, nonce: str, encrypted: str) -> str:
    return hashlib.sha1("".join(sorted([token, timestamp, nonce, encrypted])).encode()).hexdigest()


def wecom_app_xml(user: str, text: str, msg_id: str, corp_id: str = "corp") -> str:
    return (f"<xml><ToUserName><![CDATA[{corp_id}]]></ToUserName><FromUserName><![CDATA[{user}]]></FromUserName>"
            f"<CreateTime>1700000000</CreateTime><MsgType><![CDATA[text]]></MsgType>"
            f"<Content><![CDATA[{text}]]></Content><MsgId>{msg_id}</MsgId><AgentID>1000002</AgentID></xml>")


def wecom_robot_xml(user: str, name: str, text: str, msg_id: str) -> str:
    return (f"<xml><WebhookUrl><![CDATA[https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k]]></WebhookUrl>"
            f"<ChatId><![CDATA[wrkSFfCgAA]]></ChatId><ChatType>group</ChatType>"
            f"<From><UserId><![CDATA[{user}]]></UserId><Name><![CDATA[{name}]]></Name></From>"
            f"<MsgType>text</MsgType><Text><Content><![CDATA[@提醒机器人 {text}]]></Content></Text>"
            f"<MsgId>{msg_id}</MsgId></xml>")


def wecom_post(token: str, aes_key: str, receive_id: str, inner: str, timestamp: str,
               nonce: str = "n1") -> tuple[str, bytes]:
    """(query string, body) of a WeCom callback POST."""
    encrypted = wecom_encrypt(aes_key, inner, receive_id)
    sig = wecom_signature(token, timestamp, nonce, encrypted)
    query = urlencode({"msg_signature": sig, "timestamp": timestamp, "nonce": nonce})
    body = f"<xml><ToUserName><![CDATA[{receive_id}]]></ToUserName><Encrypt><![CDATA[{encrypted}]]></Encrypt>" \
           f"<AgentID><![CDATA[1000002]]></AgentID></xml>"
    return query, body.encode()


# ---------------------------------------------------------------- DingTalk §4


def dingtalk_sign(app_secret: str, timestamp_ms: str) -> str:
    mac = hmac.new(app_secret.encode(), f"{timestamp_ms}\n{app_secret}".encode(), hashlib.sha256)
    return base64.b64encode(mac.digest()).decode()


def dingtalk_message(staff_id: str, text: str, msg_id: str, session_webhook: str, *, nick: str = "某人",
                     expires_ms: int = 4102444800000) -> dict[str, Any]:
    return {
        "msgtype": "text", "text": {"content": f" {text}"}, "msgId": msg_id, "createAt": 1700000000000,
        "conversationType": "2", "conversationId": "cid1", "conversationTitle": "党务工作群",
        "senderId": "$:LWCP_v1:$encrypted", "senderStaffId": staff_id, "senderNick": nick,
        "chatbotUserId": "$:bot", "isInAtList": True, "sessionWebhook": session_webhook,
        "sessionWebhookExpiredTime": expires_ms, "robotCode": "dingrobot",
    }


# ---------------------------------------------------------------- Feishu §6


def feishu_encrypt(encrypt_key: str, plain: str, iv: bytes | None = None) -> str:
    iv = iv or os.urandom(16)
    key = hashlib.sha256(encrypt_key.encode()).digest()
    data = plain.encode()
    pad = 16 - len(data) % 16
    enc = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    return base64.b64encode(iv + enc.update(data + bytes([pad]) * pad) + enc.finalize()).decode()


def feishu_decrypt(encrypt_key: str, encrypted: str) -> str:
    raw = base64.b64decode(encrypted)
    key = hashlib.sha256(encrypt_key.encode()).digest()
    dec = Cipher(algorithms.AES(key), modes.CBC(raw[:16])).decryptor()
    plain = dec.update(raw[16:]) + dec.finalize()
    return plain[:-plain[-1]].decode()


def feishu_signature(timestamp: str, nonce: str, encrypt_key: str, body: bytes) -> str:
    return hashlib.sha256((timestamp + nonce + encrypt_key).encode() + body).hexdigest()


def feishu_request(encrypt_key: str, event: dict[str, Any], timestamp: str,
                   nonce: str = "nonce-abc") -> tuple[dict[str, str], bytes]:
    body = json.dumps({"encrypt": feishu_encrypt(encrypt_key, json.dumps(event))}).encode()
    headers = {"X-Lark-Request-Timestamp": timestamp, "X-Lark-Request-Nonce": nonce,
               "X-Lark-Signature": feishu_signature(timestamp, nonce, encrypt_key, body),
               "Content-Type": "application/json"}
    return headers, body


def feishu_message_event(token: str, open_id: str, text: str, event_id: str,
                         created_ms: str = "1700000000000") -> dict[str, Any]:
    return {"schema": "2.0",
            "header": {"event_id": event_id, "token": token, "create_time": created_ms,
                       "event_type": "im.message.receive_v1", "tenant_key": "t", "app_id": "cli_a"},
            "event": {"sender": {"sender_id": {"open_id": open_id, "union_id": "on_x", "user_id": "u"},
                                 "sender_type": "user", "tenant_key": "t"},
                      "message": {"message_id": f"om_{event_id}", "chat_id": "oc_party", "chat_type": "group",
                                  "message_type": "text", "create_time": created_ms,
                                  "content": json.dumps({"text": f"@_user_1 {text}"}),
                                  "mentions": [{"key": "@_user_1", "id": {"open_id": "ou_bot"},
                                                "name": "提醒机器人"}]}}}


def feishu_card_event(token: str, open_id: str, occurrence_id: int, event_id: str,
                      created_ms: str = "1700000000000") -> dict[str, Any]:
    return {"schema": "2.0",
            "header": {"event_id": event_id, "token": token, "create_time": created_ms,
                       "event_type": "card.action.trigger", "tenant_key": "t", "app_id": "cli_a"},
            "event": {"operator": {"tenant_key": "t", "open_id": open_id, "user_id": "u"}, "token": "c-token",
                      "action": {"tag": "button", "value": {"action": "confirm", "occurrence": occurrence_id}},
                      "host": "im_message", "context": {"open_message_id": "om_card", "open_chat_id": "oc_party"}}}


# ---------------------------------------------------------------- Slack §7


def slack_signature(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"v0:{timestamp}:".encode() + body, hashlib.sha256)
    return "v0=" + mac.hexdigest()


def slack_headers(secret: str, timestamp: str, body: bytes, content_type: str) -> dict[str, str]:
    return {"X-Slack-Request-Timestamp": timestamp, "X-Slack-Signature": slack_signature(secret, timestamp, body),
            "Content-Type": content_type}


def slack_message_event(user: str, text: str, msg_id: str) -> bytes:
    return json.dumps({"token": "x", "team_id": "T1", "type": "event_callback", "event_id": f"Ev{msg_id}",
                       "event": {"type": "message", "user": user, "text": f"<@UBOT> {text}", "channel": "C1",
                                 "client_msg_id": msg_id, "ts": "1700000000.000100"}}).encode()


def slack_press(user: str, occurrence_id: int, trigger_id: str, response_url: str) -> bytes:
    payload = {"type": "block_actions", "user": {"id": user, "username": "someone"}, "trigger_id": trigger_id,
               "response_url": response_url,
               "actions": [{"action_id": "confirm", "value": str(occurrence_id), "action_ts": "1700000000.1"}]}
    return urlencode({"payload": json.dumps(payload)}).encode()
