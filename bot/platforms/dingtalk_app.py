"""DingTalk app robot one-to-one messages (``robot/oToMessages/batchSend``, the new API).

Token: ``POST <api_base>/v1.0/oauth2/accessToken`` with ``{"appKey","appSecret"}`` →
``{"accessToken","expireIn":7200}``. Send: ``POST <api_base>/v1.0/robot/oToMessages/batchSend``
with header ``x-acs-dingtalk-access-token`` and ``{"robotCode","userIds":[…],"msgKey":
"sampleMarkdown","msgParam":"{\\"title\\":…,\\"text\\":…}"}`` (``msgParam`` is a JSON string);
success is HTTP 200 with a ``processQueryKey``; ids DingTalk refused come back in
``invalidStaffIdList``, throttled ones in ``flowControlledStaffIdList``. Errors are non-200 with
``{"code","message"}``; an invalid or expired token is ``InvalidAuthentication`` (HTTP 401/400).
With ``card_template_id`` set (a card built in DingTalk's card builder whose button has actionId
``confirm`` and the parameter ``occurrence`` bound to the card variable of that name), a message
with a confirm button goes as an interactive card instead: ``POST <api_base>/v1.0/im/v1.0/robot/
interactiveCards/send`` with ``{"cardTemplateId","singleChatReceiver":"{\"userId\":…}","cardBizId",
"robotCode","cardData":"{\"cardParamMap\":{title, markdown, occurrence, confirm_status}}"}``; the
press comes back over Stream (bot/platforms/dingtalk_inbound.py ``read_card_press``).
Written by hand: the official asyncio-capable SDK is Tea-based and heavy for two JSON calls.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from bot.platforms import markup
from bot.platforms.appsend import AppSender, answer_json, recipient
from bot.platforms.base import ChannelBase, DeliveryError, FailureKind, HttpRequest, Limits, Message

if TYPE_CHECKING:
    import aiohttp

MAX_TEXT_BYTES = 5000
TOKEN_INVALID = {"InvalidAuthentication", "invalidAuthentication", "Unauthorized"}


class DingTalkAppSender(AppSender):
    name: ClassVar[str] = "dingtalk_app"
    title: ClassVar[str] = "钉钉应用机器人单聊消息"
    platform: ClassVar[str] = "dingtalk"
    # DingTalk limits server API calls per app (QPS, flow control); 10 a second keeps clear of it.
    limits: ClassVar[Limits] = Limits(max_bytes=MAX_TEXT_BYTES, per_minute=600, per_second=10)

    def credentials(self, app: Any) -> tuple[str, ...]:
        return (app.api_base, app.app_key or "", app.app_secret.get_secret_value())

    def build(self, channel: ChannelBase, message: Message) -> list[dict[str, Any]]:
        text = markup.Dialect().convert(markup.with_title(message))
        if message.button_url:
            text += f"\n\n[{message.button_text or '打开'}]({message.button_url})"
        param = {"title": message.title[:60], "text": markup.shorten(text, MAX_TEXT_BYTES)}
        app = channel.app  # type: ignore[attr-defined]
        user = recipient(message, "dingtalk")
        if app.card_template_id and message.confirm_occurrence is not None:
            data = {"cardParamMap": {"title": param["title"], "markdown": param["text"],
                                     "occurrence": str(message.confirm_occurrence), "confirm_status": ""}}
            return [{"cardTemplateId": app.card_template_id, "robotCode": app.robot_code,
                     "singleChatReceiver": json.dumps({"userId": user}),
                     "cardBizId": f"remindbot-{message.confirm_occurrence}-{user}",
                     "cardData": json.dumps(data, ensure_ascii=False), "sendOptions": {}}]
        return [{"robotCode": app.robot_code, "userIds": [user],
                 "msgKey": "sampleMarkdown", "msgParam": json.dumps(param, ensure_ascii=False)}]

    def prepare(self, channel: ChannelBase, body: dict[str, Any], now: float, token: str = "") -> HttpRequest:
        base = channel.app.api_base  # type: ignore[attr-defined]
        path = "/v1.0/im/v1.0/robot/interactiveCards/send" if "cardTemplateId" in body else \
            "/v1.0/robot/oToMessages/batchSend"
        return HttpRequest(url=f"{base}{path}",
                           body=json.dumps(body, ensure_ascii=False).encode(),
                           headers={"Content-Type": "application/json; charset=utf-8",
                                    "x-acs-dingtalk-access-token": token})

    def token_invalid(self, status: int, body: bytes) -> bool:
        return status in (400, 401) and answer_json(body).get("code") in TOKEN_INVALID

    def read_answer(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
        data = answer_json(body)
        code = str(data.get("code", ""))
        if status >= 500 or status == 429 or "QpsLimit" in code or "Throttl" in code:
            raise DeliveryError(FailureKind.RETRY, f"钉钉暂时不可用或调用太频繁（HTTP {status}）", code=code or None)
        if status in (400, 401, 403) and (code in TOKEN_INVALID or "AccessDenied" in code or status == 403):
            raise DeliveryError(FailureKind.CONFIG, f"钉钉拒绝了应用的访问令牌或权限（{code or status}）：请检查应用"
                                "是否开通了“企业内机器人发送消息”权限", code=code or status)
        if status != 200:
            why = markup.redact(str(data.get("message", "")))[:80]
            raise DeliveryError(FailureKind.REJECTED, f"钉钉拒收了这条消息（{code or status}：{why}）",
                                code=code or status)
        if data.get("flowControlledStaffIdList"):
            raise DeliveryError(FailureKind.RETRY, "钉钉对接收人限流，稍后重试", code="flowControlled")
        if data.get("invalidStaffIdList"):
            raise DeliveryError(FailureKind.REJECTED, "接收人的钉钉 userid 无效或不在应用可见范围内",
                                code="invalidStaff")

    async def fetch_token(self, http: aiohttp.ClientSession, app: Any,
                          deadline: aiohttp.ClientTimeout | None = None) -> tuple[str, float]:
        payload = {"appKey": app.app_key or "", "appSecret": app.app_secret.get_secret_value()}
        async with http.post(f"{app.api_base}/v1.0/oauth2/accessToken", json=payload, timeout=deadline) as resp:
            status, data = resp.status, answer_json(await resp.read())
        if status >= 500 or status == 429:
            raise DeliveryError(FailureKind.RETRY, f"钉钉暂时无法发放访问令牌（HTTP {status}）")
        if status != 200 or not data.get("accessToken"):
            code = markup.redact(str(data.get("code", status)))
            raise DeliveryError(FailureKind.CONFIG, f"钉钉拒绝了 AppKey / AppSecret（{code}）：请到钉钉开发者后台"
                                "“凭证与基础信息”重新复制 Client ID 和 Client Secret", code=code)
        return str(data["accessToken"]), float(data.get("expireIn", 7200))
