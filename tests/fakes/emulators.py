"""What each fake platform checks and how it answers, after platforms.md §1, 3, 5, 7.

An emulator reads one :class:`Incoming` request for a robot (``None`` when the key or token is
unknown or revoked) and returns the platform's :class:`Answer`; ``visible`` tells what the group
would read and who would really be notified (DingTalk, for one, only notifies a mobile whose
"@mobile" text is in the content).
"""

from __future__ import annotations

import abc
import base64
import binascii
import hashlib
import hmac
import json
import re
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import parse_qs

if TYPE_CHECKING:
    from tests.fakes.platforms import FakeRobot


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    accepted: bool = False


def json_answer(data: dict[str, Any], status: int = 200, accepted: bool = False) -> Answer:
    body = json.dumps(data, ensure_ascii=False).encode()
    return Answer(status, body, {"Content-Type": "application/json"}, accepted)


def text_answer(status: int, text: str, headers: dict[str, str] | None = None) -> Answer:
    return Answer(status, text.encode(), {"Content-Type": "text/plain", **(headers or {})}, status == 200)


def wait_header(wait: float | None) -> dict[str, str]:
    return {} if wait is None else {"Retry-After": f"{wait:g}"}


@dataclass
class Incoming:
    path: str
    raw_query: str
    headers: dict[str, str]
    raw: bytes
    now: float

    @cached_property
    def query(self) -> dict[str, str]:
        # parse_qs decodes once, as the real servers do: "%3D" -> "=", "%253D" -> "%3D", "+" -> " "
        return {k: v[0] for k, v in parse_qs(self.raw_query, keep_blank_values=True).items()}

    @cached_property
    def json(self) -> Any:
        try:
            return json.loads(self.raw.decode("utf-8"))
        except ValueError:
            return None


def _dig(data: Any, *keys: str) -> Any:
    for key in keys:
        data = data.get(key) if isinstance(data, dict) else None
    return data


def _is_text(value: Any) -> bool:
    return isinstance(value, str) and value != ""


class Emulator(abc.ABC):
    """One platform's server-side checks and answers; each platform subclasses it."""

    family = ""
    prefix = ""

    def path_for(self, token: str) -> str:
        return self.prefix + token

    def token_of(self, incoming: Incoming) -> str:
        return incoming.path.removeprefix(self.prefix)

    @abc.abstractmethod
    def throttled(self, wait: float | None) -> Answer:
        """Implemented by each platform."""

    @abc.abstractmethod
    def check(self, robot: FakeRobot | None, incoming: Incoming) -> Answer:
        """Implemented by each platform."""

    @abc.abstractmethod
    def visible(self, data: Any) -> tuple[str, frozenset[str]]:
        """Implemented by each platform."""


class WeComEmulator(Emulator):
    family, prefix = "wecom", "/cgi-bin/webhook/send"
    ok: ClassVar[dict[str, Any]] = {"errcode": 0, "errmsg": "ok"}

    def path_for(self, token: str) -> str:
        return f"{self.prefix}?key={token}"

    def token_of(self, incoming: Incoming) -> str:
        return incoming.query.get("key", "")

    def error(self, code: int, msg: str) -> Answer:
        hint = f", hint: [1700000000{code}], from ip: 127.0.0.1, more info at https://open.work.weixin.qq.com/devtool/query?e={code}"
        return json_answer({"errcode": code, "errmsg": msg + hint})

    def throttled(self, wait: float | None) -> Answer:
        answer = self.error(45009, "api freq out of limit")
        return Answer(answer.status, answer.body, {**answer.headers, **wait_header(wait)})

    def check(self, robot: FakeRobot | None, incoming: Incoming) -> Answer:
        if robot is None:
            return self.error(93000, "invalid webhook url")
        data = incoming.json
        if not isinstance(data, dict):
            return self.error(40058, "invalid request parameter")
        if robot.over_rate(incoming.now):
            return self.throttled(None)
        kind = data.get("msgtype")
        if kind == "text":
            return self._text(data.get("text"))
        if kind in ("markdown", "markdown_v2"):
            content = _dig(data, kind, "content")
            if not _is_text(content):
                return self.error(44004, "empty content")
            if len(content.encode()) > 4096:
                return self.error(40058, f"{kind}.content exceed max length 4096")
            return json_answer(self.ok, accepted=True)
        if kind == "image":
            return self._image(data.get("image"))
        if kind in ("news", "file", "template_card") and isinstance(data.get(kind), dict):
            return json_answer(self.ok, accepted=True)
        return self.error(40008, "invalid message type")

    def _image(self, image: Any) -> Answer:
        """Image messages: base64 of a JPG/PNG of at most 2 MB, with the MD5 of the raw bytes."""
        if not isinstance(image, dict) or not _is_text(image.get("base64")) or not _is_text(image.get("md5")):
            return self.error(40058, "invalid image")
        try:
            raw = base64.b64decode(image["base64"], validate=True)
        except (ValueError, binascii.Error):
            return self.error(40058, "invalid base64 image")
        if len(raw) > 2 * 1024 * 1024:
            return self.error(40009, "invalid image size")
        if not raw.startswith((b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff")):
            return self.error(40058, "invalid image format")
        if hashlib.md5(raw).hexdigest() != image["md5"]:
            return self.error(301019, "media md5 not match")
        return json_answer(self.ok, accepted=True)

    def _text(self, text: Any) -> Answer:
        content = _dig(text, "content")
        if not _is_text(content):
            return self.error(44004, "empty content")
        if len(content.encode()) > 2048:  # the documented limit (servers have said 5120)
            return self.error(40058, "text.content exceed max length 2048")
        for key in ("mentioned_list", "mentioned_mobile_list"):
            value = text.get(key, [])
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                return self.error(40058, f"invalid {key}")
        return json_answer(self.ok, accepted=True)

    def visible(self, data: Any) -> tuple[str, frozenset[str]]:
        kind = data["msgtype"]
        content = _dig(data, kind, "content") or ""
        if kind == "text":
            text = data["text"]
            people = set(text.get("mentioned_list", [])) | set(text.get("mentioned_mobile_list", []))
            return content, frozenset("all" if p == "@all" else p for p in people)
        return content, frozenset(re.findall(r"<@([^>]+)>", content))


# DingTalk's current 310000 wordings (seen in public issue reports: qd-today/qd#510,
# megaease/easeprobe#202, 0wQ/air780e-forwarder#51, RayWangQvQ/BiliBiliToolPro#271).
DINGTALK_SIGN_MISMATCH = (
    "description:机器人发送签名不匹配;solution:请确认签名和生成签名的时间戳必须都放在调用的网址中，"
    "请确认机器人的密钥加密和填写正确;link:请参考本接口对应文档获得具体要求，"
    "或者在https://open.dingtalk.com/document/  搜索相关文档;"
)
DINGTALK_SIGN_EXPIRED = "description:机器人发送签名过期;solution:签名生成时间和发送时间请保持在 timestampms 以内;"
DINGTALK_KEYWORD_MISSING = (
    "description:关键词不匹配;solution:请联系群管理员查看此机器人的关键词，并在发送的信息中包含此关键词;"
)


class DingTalkEmulator(Emulator):
    family, prefix = "dingtalk", "/robot/send"

    def path_for(self, token: str) -> str:
        return f"{self.prefix}?access_token={token}"

    def token_of(self, incoming: Incoming) -> str:
        return incoming.query.get("access_token", "")

    @staticmethod
    def error(code: int, msg: str) -> Answer:
        return json_answer({"errcode": code, "errmsg": msg})

    def throttled(self, wait: float | None) -> Answer:
        answer = self.error(130101, "send too fast, exceed 20 times per minute")
        return Answer(answer.status, answer.body, {**answer.headers, **wait_header(wait)})

    def check(self, robot: FakeRobot | None, incoming: Incoming) -> Answer:
        if robot is None:
            return self.error(300001, "token is not exist")
        if robot.secret and (failure := self._signature(robot.secret, incoming)):
            return failure
        if robot.over_rate(incoming.now):
            return self.throttled(None)
        if len(incoming.raw) > 20000:
            return self.error(460101, "message too long, exceed 20000 bytes")
        data = incoming.json
        if not isinstance(data, dict) or not self._shape_ok(data):
            return self.error(40035, "缺少参数 json")
        text, _ = self.visible(data)
        if robot.keyword and robot.keyword not in text:
            return self.error(310000, DINGTALK_KEYWORD_MISSING)
        return json_answer({"errcode": 0, "errmsg": "ok"}, accepted=True)

    @staticmethod
    def _signature(secret: str, incoming: Incoming) -> Answer | None:
        timestamp, sign = incoming.query.get("timestamp", ""), incoming.query.get("sign", "")
        if not timestamp.isdigit() or abs(incoming.now * 1000 - int(timestamp)) > 3_600_000:
            return DingTalkEmulator.error(310000, DINGTALK_SIGN_EXPIRED)
        digest = hmac.new(secret.encode(), f"{timestamp}\n{secret}".encode(), hashlib.sha256)
        if not hmac.compare_digest(base64.b64encode(digest.digest()).decode(), sign):
            return DingTalkEmulator.error(310000, DINGTALK_SIGN_MISMATCH)
        return None

    @staticmethod
    def _shape_ok(data: dict[str, Any]) -> bool:
        kind = data.get("msgtype")
        if kind == "text":
            return _is_text(_dig(data, "text", "content"))
        if kind == "markdown":
            return _is_text(_dig(data, "markdown", "title")) and _is_text(_dig(data, "markdown", "text"))
        if kind == "actionCard":
            card = data.get("actionCard") or {}
            single = _is_text(card.get("singleTitle")) and _is_text(card.get("singleURL"))
            return _is_text(card.get("title")) and _is_text(card.get("text")) and (single or bool(card.get("btns")))
        if kind == "link":
            return all(_is_text(_dig(data, "link", k)) for k in ("title", "text", "messageUrl"))
        return kind == "feedCard" and bool(_dig(data, "feedCard", "links"))

    def visible(self, data: Any) -> tuple[str, frozenset[str]]:
        kind = data["msgtype"]
        part = data.get(kind) or {}
        text = "\n".join(str(part.get(k, "")) for k in ("title", "text", "content") if part.get(k))
        at = data.get("at") or {}
        people = {m for m in at.get("atMobiles", []) + at.get("atUserIds", []) if f"@{m}" in text}
        if at.get("isAtAll"):
            people.add("all")
        return text, frozenset(people)


class FeishuEmulator(Emulator):
    family, prefix = "feishu", "/open-apis/bot/v2/hook/"
    ok: ClassVar[dict[str, Any]] = {
        "StatusCode": 0,
        "StatusMessage": "success",
        "code": 0,
        "data": {},
        "msg": "success",
    }

    @staticmethod
    def error(code: int, msg: str, status: int = 200) -> Answer:
        return json_answer({"code": code, "data": {}, "msg": msg}, status)

    def throttled(self, wait: float | None) -> Answer:
        answer = self.error(11232, "frequency limited psm[lark.oapi.app_platform_runtime]appID[1]")
        return Answer(answer.status, answer.body, {**answer.headers, **wait_header(wait)})

    def check(self, robot: FakeRobot | None, incoming: Incoming) -> Answer:
        if robot is None:
            return self.error(19001, "param invalid: incoming webhook access token invalid")
        data = incoming.json
        if len(incoming.raw) > 20 * 1024 or not isinstance(data, dict):
            return self.error(9499, "Bad Request", status=400)
        if robot.secret and not self._signed(robot.secret, data, incoming.now):
            return self.error(19021, "sign match fail or timestamp is not within one hour from current time")
        if robot.over_rate(incoming.now):
            return self.throttled(None)
        if not self._shape_ok(data):
            return self.error(9499, "Bad Request", status=400)
        if robot.keyword and robot.keyword not in self.visible(data)[0]:
            return self.error(19024, "Key Words Not Found")
        return json_answer(self.ok, accepted=True)

    @staticmethod
    def _signed(secret: str, data: dict[str, Any], now: float) -> bool:
        timestamp, sign = str(data.get("timestamp", "")), str(data.get("sign", ""))
        if not timestamp.isdigit() or abs(now - int(timestamp)) > 3600:
            return False
        key = f"{timestamp}\n{secret}".encode()
        expected = base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode()
        return hmac.compare_digest(expected, sign)

    @staticmethod
    def _shape_ok(data: dict[str, Any]) -> bool:
        kind = data.get("msg_type")
        if kind == "text":
            return _is_text(_dig(data, "content", "text"))
        if kind == "post":
            langs = _dig(data, "content", "post") or {}
            return bool(langs) and all(
                isinstance(lang.get("content"), list)
                and all(isinstance(p, list) and all("tag" in t for t in p) for p in lang["content"])
                for lang in langs.values()
            )
        if kind == "interactive":
            card = data.get("card")
            return isinstance(card, dict) and isinstance(card.get("elements"), list)
        return kind in ("image", "share_chat") and isinstance(data.get("content"), dict)

    def visible(self, data: Any) -> tuple[str, frozenset[str]]:
        kind = data["msg_type"]
        if kind == "text":
            text = data["content"]["text"]
            return text, frozenset(re.findall(r'<at user_id="([^"]+)">', text))
        if kind == "post":
            lines, people = [], set()
            for lang in data["content"]["post"].values():
                lines.append(lang.get("title", ""))
                for paragraph in lang["content"]:
                    lines.append("".join(t.get("text", "") for t in paragraph))
                    people |= {t["user_id"] for t in paragraph if t["tag"] == "at"}
            return "\n".join(lines), frozenset(people)
        card = data.get("card") or {}
        texts = [_dig(card, "header", "title", "content") or ""]
        texts += [_dig(e, "text", "content") or "" for e in card.get("elements", [])]
        text = "\n".join(texts)
        return text, frozenset(re.findall(r"<at id=([^>\s]+)></at>", text))


class SlackEmulator(Emulator):
    family, prefix = "slack", "/services/"

    def throttled(self, wait: float | None) -> Answer:
        return text_answer(429, "rate_limited", wait_header(30 if wait is None else wait))

    def check(self, robot: FakeRobot | None, incoming: Incoming) -> Answer:
        if robot is None:
            return text_answer(403, "invalid_token")
        if robot.over_rate(incoming.now):
            return self.throttled(None)
        data = incoming.json
        if not isinstance(data, dict):
            return text_answer(400, "invalid_payload")
        if not _is_text(data.get("text")) and not data.get("blocks"):
            return text_answer(400, "no_text")
        if len(data.get("text", "")) > 40000:
            return text_answer(400, "msg_too_long")
        return text_answer(200, "ok")

    def visible(self, data: Any) -> tuple[str, frozenset[str]]:
        text = data.get("text", "")
        people = set(re.findall(r"<@([A-Z0-9]+)>", text))
        if "<!channel>" in text or "<!here>" in text:
            people.add("all")
        return text, frozenset(people)


class GenericEmulator(Emulator):
    family, prefix = "generic", "/generic/"
    fields = ("title", "markdown", "text", "mentions", "mention_all", "button")

    def throttled(self, wait: float | None) -> Answer:
        return text_answer(429, "too many requests", wait_header(wait))

    def check(self, robot: FakeRobot | None, incoming: Incoming) -> Answer:
        if robot is None:
            return text_answer(404, "no such hook")
        if robot.secret and not self._signed(robot.secret, incoming):
            return text_answer(401, "bad signature")
        if robot.over_rate(incoming.now):
            return self.throttled(None)
        data = incoming.json
        if not isinstance(data, dict) or any(key not in data for key in self.fields):
            return text_answer(400, "missing fields")
        answer = json_answer({"ok": True}, accepted=True)
        return answer

    @staticmethod
    def _signed(secret: str, incoming: Incoming) -> bool:
        timestamp = incoming.headers.get("X-Remindbot-Timestamp", "")
        given = incoming.headers.get("X-Remindbot-Signature", "")
        if not timestamp.isdigit() or abs(incoming.now - int(timestamp)) > 300:
            return False
        digest = hmac.new(secret.encode(), timestamp.encode() + b"." + incoming.raw, hashlib.sha256)
        return hmac.compare_digest("sha256=" + digest.hexdigest(), given)

    def visible(self, data: Any) -> tuple[str, frozenset[str]]:
        people = {m["person_id"] for m in data.get("mentions", [])}
        if data.get("mention_all"):
            people.add("all")
        return f"{data.get('title', '')}\n{data.get('text', '')}", frozenset(people)


class Emulators(dict[str, Emulator]):
    def for_path(self, path: str) -> Emulator | None:
        for emulator in self.values():
            if path == emulator.prefix or (emulator.prefix.endswith("/") and path.startswith(emulator.prefix)):
                return emulator
        return None


_FEISHU = FeishuEmulator()
EMULATORS = Emulators(
    wecom=WeComEmulator(),
    dingtalk=DingTalkEmulator(),
    feishu=_FEISHU,
    lark=_FEISHU,
    slack=SlackEmulator(),
    generic=GenericEmulator(),
)
