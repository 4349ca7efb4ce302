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
press comes back over Stream (bot/platforms/dingtalk/inbound.py ``read_card_press``).

Work notifications (工作通知), for an app with ``agent_id``: a message that is not a confirm card
goes as a work notification instead of a robot one-to-one message (:class:`DingTalkWorkNotice`,
the older server API on ``oapi_base``). Token: ``GET <oapi_base>/gettoken?appkey=…&appsecret=…`` →
``{"errcode":0,"access_token","expires_in":7200}`` (fetched and cached apart from the new API's
token: DingTalk does not say plainly that one serves both). Send: ``POST <oapi_base>/topapi/
message/corpconversation/asyncsend_v2?access_token=…`` with ``{"agent_id": <number>,
"userid_list": "<userid>", "msg": {"msgtype": "markdown", "markdown": {"title","text"}}}`` (with a
link: ``action_card`` with ``title``, ``markdown``, ``single_title``, ``single_url``); ``msg`` is at
most 2048 bytes. Success is ``{"errcode":0,"task_id":…}``; the send is asynchronous, so an
unknown userid is not reported here (DingTalk's ``getsendresult`` would tell; not called).
DingTalk delivers the same content from one app to one person at most once a day (a repeat is
accepted and dropped) and at most 500 a day per person per app.

Written by hand: the official asyncio-capable SDK is Tea-based and heavy for two JSON calls.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import quote

from bot.platforms import markup
from bot.platforms.appsend import AppChannel, AppSender, answer_json, recipient, token_answer
from bot.platforms.base import ChannelBase, DeliveryError, FailureKind, HttpRequest, Limits, Message

if TYPE_CHECKING:
    import aiohttp

MAX_TEXT_BYTES = 5000
TOKEN_INVALID = {"InvalidAuthentication", "invalidAuthentication", "Unauthorized"}
NOTICE_MAX_BYTES = 2048  # the ``msg`` object of a work notification
NOTICE_TOKEN_INVALID = {40014, 42001, 40001, 33}  # invalid / expired access_token
NOTICE_RETRY = {-1}  # 系统繁忙
NOTICE_WORDS = {
    88: "应用没有调用该接口的权限，或 agent_id 与 AppKey 不属于同一个应用",
    40035: "请求参数不合法（请核对 agent_id 和接收人 userid）",
    33001: "企业或应用标识无效",
}


class DingTalkWorkNotice(AppSender):
    """Work notifications (工作通知) of an app with ``agent_id``; see the module docstring."""

    name: ClassVar[str] = "dingtalk_notice"
    title: ClassVar[str] = "钉钉工作通知"
    platform: ClassVar[str] = "dingtalk"
    limits: ClassVar[Limits] = Limits(max_bytes=NOTICE_MAX_BYTES, per_minute=600, per_second=10)

    def credentials(self, app: Any) -> tuple[str, ...]:
        return ("oapi", app.oapi_base, app.app_key or "", app.app_secret.get_secret_value())

    def build(self, channel: ChannelBase, message: Message) -> list[dict[str, Any]]:
        app = channel.app  # type: ignore[attr-defined]
        title = message.title[:60]
        text = markup.Dialect().convert(markup.with_title(message))
        if message.button_url:
            msg: dict[str, Any] = {"msgtype": "action_card", "action_card": {
                "title": title, "markdown": "", "single_title": (message.button_text or "打开")[:20],
                "single_url": message.button_url}}
            field = msg["action_card"], "markdown"
        else:
            msg = {"msgtype": "markdown", "markdown": {"title": title, "text": ""}}
            field = msg["markdown"], "text"
        room = NOTICE_MAX_BYTES - len(json.dumps(msg, ensure_ascii=False).encode())
        field[0][field[1]] = markup.shorten(text, room, markup.json_len)
        return [{"agent_id": int(app.agent_id), "userid_list": recipient(message, "dingtalk"), "msg": msg}]

    def oversize(self, body: dict[str, Any]) -> str | None:
        size = len(json.dumps(body.get("msg", {}), ensure_ascii=False).encode())
        return f"工作通知内容为 {size} 字节，超过钉钉上限 {NOTICE_MAX_BYTES} 字节" if size > NOTICE_MAX_BYTES else None

    def prepare(self, channel: ChannelBase, body: dict[str, Any], now: float, token: str = "") -> HttpRequest:
        base = channel.app.oapi_base  # type: ignore[attr-defined]
        return HttpRequest(url=f"{base}/topapi/message/corpconversation/asyncsend_v2?access_token={quote(token)}",
                           body=json.dumps(body, ensure_ascii=False).encode(),
                           headers={"Content-Type": "application/json; charset=utf-8"})

    def token_invalid(self, status: int, body: bytes) -> bool:
        return answer_json(body).get("errcode") in NOTICE_TOKEN_INVALID

    def read_answer(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
        data = answer_json(body)
        code = data.get("errcode")
        if status >= 500 or status == 429 or code in NOTICE_RETRY:
            raise DeliveryError(FailureKind.RETRY, f"钉钉暂时不可用（HTTP {status}，{code}）", code=code or status)
        if status != 200 or code is None:
            raise DeliveryError(FailureKind.RETRY, f"钉钉工作通知接口的回答无法识别（HTTP {status}）", code=status)
        if code == 0:
            return
        if code in NOTICE_TOKEN_INVALID or code in NOTICE_WORDS:
            why = NOTICE_WORDS.get(code, "访问令牌无效")
            raise DeliveryError(FailureKind.CONFIG, f"钉钉拒绝发送工作通知（{code}）：{why}", code=code)
        why = markup.redact(str(data.get("errmsg", "")))[:80]
        raise DeliveryError(FailureKind.REJECTED, f"钉钉拒收了这条工作通知（{code}：{why}）", code=code)

    async def fetch_token(self, http: aiohttp.ClientSession, app: Any,
                          deadline: aiohttp.ClientTimeout | None = None) -> tuple[str, float]:
        query = {"appkey": app.app_key or "", "appsecret": app.app_secret.get_secret_value()}
        async with http.get(f"{app.oapi_base}/gettoken", params=query, timeout=deadline) as resp:
            status, data = await token_answer(resp, "钉钉", "oapi_base")
        if status >= 500 or status == 429 or data.get("errcode") in NOTICE_RETRY:
            raise DeliveryError(FailureKind.RETRY, f"钉钉暂时无法发放访问令牌（HTTP {status}）")
        if status != 200 or data.get("errcode") != 0 or not data.get("access_token"):
            code = markup.redact(str(data.get("errcode", status)))
            raise DeliveryError(FailureKind.CONFIG, f"钉钉拒绝了 AppKey / AppSecret（{code}）：请到钉钉开发者后台"
                                "“凭证与基础信息”重新复制 Client ID 和 Client Secret", code=code)
        return str(data["access_token"]), float(data.get("expires_in", 7200))


NOTICE = DingTalkWorkNotice()


def _is_notice(body: Mapping[str, Any]) -> bool:
    return "agent_id" in body and "msg" in body


def _notices_only(app: Any) -> bool:
    """An app with ``agent_id`` and no robot: every direct message is a work notification."""
    return bool(app.work_notices and not app.robot_code)


class DingTalkAppSender(AppSender):
    name: ClassVar[str] = "dingtalk_app"
    title: ClassVar[str] = "钉钉应用机器人单聊消息"
    platform: ClassVar[str] = "dingtalk"
    # DingTalk limits server API calls per app (QPS, flow control); 10 a second keeps clear of it.
    limits: ClassVar[Limits] = Limits(max_bytes=MAX_TEXT_BYTES, per_minute=600, per_second=10)

    def title_for(self, app: Any) -> str:
        if not app.work_notices:
            return self.title
        if app.robot_code and app.card_template_id:
            return f"{NOTICE.title}；待确认的提醒用应用机器人互动卡片"
        return NOTICE.title

    def credentials(self, app: Any) -> tuple[str, ...]:
        return (app.api_base, app.app_key or "", app.app_secret.get_secret_value())

    def build(self, channel: ChannelBase, message: Message) -> list[dict[str, Any]]:
        """A confirm card (``card_template_id`` and a confirmation owed), else a work notification
        (``agent_id``), else the app robot's one-to-one message."""
        app = channel.app  # type: ignore[attr-defined]
        card = bool(app.card_template_id and app.robot_code and message.confirm_occurrence is not None)
        if app.work_notices and not card:
            return NOTICE.build(channel, message)
        text = markup.Dialect().convert(markup.with_title(message))
        if message.button_url:
            text += f"\n\n[{message.button_text or '打开'}]({message.button_url})"
        param = {"title": message.title[:60], "text": markup.shorten(text, MAX_TEXT_BYTES)}
        user = recipient(message, "dingtalk")
        if card:
            data = {"cardParamMap": {"title": param["title"], "markdown": param["text"],
                                     "occurrence": str(message.confirm_occurrence), "confirm_status": ""}}
            return [{"cardTemplateId": app.card_template_id, "robotCode": app.robot_code,
                     "singleChatReceiver": json.dumps({"userId": user}),
                     "cardBizId": f"remindbot-{message.confirm_occurrence}-{user}",
                     "cardData": json.dumps(data, ensure_ascii=False), "sendOptions": {}}]
        return [{"robotCode": app.robot_code, "userIds": [user],
                 "msgKey": "sampleMarkdown", "msgParam": json.dumps(param, ensure_ascii=False)}]

    def prepare(self, channel: ChannelBase, body: dict[str, Any], now: float, token: str = "") -> HttpRequest:
        if _is_notice(body):
            return NOTICE.prepare(channel, body, now, token)
        base = channel.app.api_base  # type: ignore[attr-defined]
        path = "/v1.0/im/v1.0/robot/interactiveCards/send" if "cardTemplateId" in body else \
            "/v1.0/robot/oToMessages/batchSend"
        return HttpRequest(url=f"{base}{path}",
                           body=json.dumps(body, ensure_ascii=False).encode(),
                           headers={"Content-Type": "application/json; charset=utf-8",
                                    "x-acs-dingtalk-access-token": token})

    def oversize(self, body: dict[str, Any]) -> str | None:
        return NOTICE.oversize(body) if _is_notice(body) else None

    def token_invalid(self, status: int, body: bytes) -> bool:
        return status in (400, 401) and answer_json(body).get("code") in TOKEN_INVALID

    def token_key(self, app: Any) -> str:
        return NOTICE.token_key(app) if _notices_only(app) else super().token_key(app)

    async def token(self, http: aiohttp.ClientSession, channel: AppChannel,
                    deadline: aiohttp.ClientTimeout | None = None) -> str:
        """The new API's token; for an app that sends only work notifications, the older API's."""
        if _notices_only(channel.app):
            return await NOTICE.token(http, channel, deadline)
        return await super().token(http, channel, deadline)

    async def send(self, http: aiohttp.ClientSession, channel: ChannelBase, body: dict[str, Any], now: float,
                   deadline: aiohttp.ClientTimeout | None = None) -> tuple[int, Mapping[str, str], bytes]:
        if _is_notice(body):
            return await NOTICE.send(http, channel, body, now, deadline)
        return await super().send(http, channel, body, now, deadline)

    def read_answer(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
        data = answer_json(body)
        if "errcode" in data:  # only the older API (work notifications) answers with errcode
            NOTICE.read_answer(status, headers, body)
            return
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
            status, data = await token_answer(resp, "钉钉")
        if status >= 500 or status == 429:
            raise DeliveryError(FailureKind.RETRY, f"钉钉暂时无法发放访问令牌（HTTP {status}）")
        if status != 200 or not data.get("accessToken"):
            code = markup.redact(str(data.get("code", status)))
            raise DeliveryError(FailureKind.CONFIG, f"钉钉拒绝了 AppKey / AppSecret（{code}）：请到钉钉开发者后台"
                                "“凭证与基础信息”重新复制 Client ID 和 Client Secret", code=code)
        return str(data["accessToken"]), float(data.get("expireIn", 7200))
