"""WeCom (and 政务微信) application messages: a self-built app's markdown message to one member.

Token: ``GET <api_base>/cgi-bin/gettoken?corpid=…&corpsecret=…`` → ``{"errcode":0,"access_token":…,
"expires_in":7200}``. Send: ``POST <api_base>/cgi-bin/message/send?access_token=…`` with
``{"touser","msgtype":"markdown","agentid","markdown":{"content"}}``; success is ``errcode`` 0 with
an empty ``invaliduser``. ``40014`` (invalid token) and ``42001`` (expired) mean: fetch a new
token. ``api_base`` points a 政务微信 or private deployment at its own host. Written by hand: the
protocol is two JSON calls, and no maintained asyncio SDK exists.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import quote

import aiohttp

from bot.platforms import markup
from bot.platforms.appsend import AppSender, answer_json, recipient
from bot.platforms.base import ChannelBase, DeliveryError, FailureKind, HttpRequest, Limits, Message

MARKDOWN_MAX_BYTES = 2048  # application message markdown content
TOKEN_INVALID = {40014, 42001}
RETRY_CODES = {-1, 45009, 45033}  # system busy, API frequency limits
WORDS = {
    40001: "应用 Secret 不正确（请到应用详情页重新复制 Secret）",
    40013: "企业 ID（corp_id）不正确",
    40056: "AgentId 不正确",
    60020: "本服务器的 IP 不在应用的“企业可信 IP”列表中",
    81013: "接收人的 userid 不存在或不在应用的可见范围内",
    301002: "接收人不在应用的可见范围内",
}


def words(code: int, errmsg: str) -> str:
    return WORDS.get(code, f"企业微信返回错误 {code}（{markup.redact(errmsg)[:80]}）")


class WeComAppSender(AppSender):
    name: ClassVar[str] = "wecom_app"
    title: ClassVar[str] = "企业微信应用消息"
    platform: ClassVar[str] = "wecom"
    # Per-app pacing: WeCom documents per-member and per-account daily caps for app messages and
    # frequency interception on the API; 10 a second stays far below both.
    limits: ClassVar[Limits] = Limits(max_bytes=MARKDOWN_MAX_BYTES, per_minute=600, per_second=10)

    def credentials(self, app: Any) -> tuple[str, ...]:
        return (app.api_base, app.corp_id or "", app.secret.get_secret_value() if app.secret else "")

    def build(self, channel: ChannelBase, message: Message) -> list[dict[str, Any]]:
        text = markup.Dialect().convert(markup.with_title(message))
        if message.button_url:
            text += f"\n\n[{message.button_text or '打开'}]({message.button_url})"
        text = markup.shorten(text, MARKDOWN_MAX_BYTES)
        app = channel.app  # type: ignore[attr-defined]
        return [{"touser": recipient(message, "wecom"), "msgtype": "markdown",
                 "agentid": int(app.agent_id) if str(app.agent_id).isdigit() else app.agent_id,
                 "markdown": {"content": text}}]

    def oversize(self, body: dict[str, Any]) -> str | None:
        if markup.utf8_len(body["markdown"]["content"]) > MARKDOWN_MAX_BYTES:
            return f"应用消息 markdown 超过 {MARKDOWN_MAX_BYTES} 字节"
        return None

    def prepare(self, channel: ChannelBase, body: dict[str, Any], now: float, token: str = "") -> HttpRequest:
        base = channel.app.api_base  # type: ignore[attr-defined]
        return HttpRequest(url=f"{base}/cgi-bin/message/send?access_token={quote(token, safe='')}",
                           body=json.dumps(body, ensure_ascii=False).encode())

    def token_invalid(self, status: int, body: bytes) -> bool:
        return answer_json(body).get("errcode") in TOKEN_INVALID

    def read_answer(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
        if status >= 500 or status == 429:
            raise DeliveryError(FailureKind.RETRY, f"企业微信暂时不可用（HTTP {status}）")
        data = answer_json(body)
        code = data.get("errcode")
        if status != 200 or code is None:
            raise DeliveryError(FailureKind.RETRY, f"企业微信的答复无法识别（HTTP {status}）")
        if code in RETRY_CODES:
            raise DeliveryError(FailureKind.RETRY, "企业微信接口繁忙或调用太频繁，稍后重试", code=code)
        if code in TOKEN_INVALID or code in (40001, 40013, 40056, 60020):
            raise DeliveryError(FailureKind.CONFIG, words(code, str(data.get("errmsg", ""))), code=code)
        if code != 0:
            raise DeliveryError(FailureKind.REJECTED, words(code, str(data.get("errmsg", ""))), code=code)
        if data.get("invaliduser"):
            raise DeliveryError(FailureKind.REJECTED, "接收人的 userid 无效或不在应用的可见范围内", code="invaliduser")

    async def fetch_token(self, http: aiohttp.ClientSession, app: Any,
                          deadline: aiohttp.ClientTimeout | None = None) -> tuple[str, float]:
        params = {"corpid": app.corp_id or "", "corpsecret": app.secret.get_secret_value() if app.secret else ""}
        async with http.get(f"{app.api_base}/cgi-bin/gettoken", params=params, timeout=deadline) as resp:
            status, data = resp.status, answer_json(await resp.read())
        code = data.get("errcode", -2)
        if status >= 500 or code in RETRY_CODES:
            raise DeliveryError(FailureKind.RETRY, f"企业微信暂时无法发放访问令牌（HTTP {status}）", code=code)
        if code != 0 or not data.get("access_token"):
            raise DeliveryError(FailureKind.CONFIG, words(int(code), str(data.get("errmsg", ""))), code=code)
        return str(data["access_token"]), float(data.get("expires_in", 7200))
