"""Platform callbacks: ``/callback/<platform>/<app_id>`` for every app in the ``apps:`` section.

Each request is verified by its platform module (signature, timestamp, decryption) and becomes a
"said" or "pressed" event for :func:`bot.inbound.handle`, where the confirmation rules live. This
module only moves bytes: bounded body, Chinese 4xx for anything refused (never a 500 for a bad
body), and the answer back the way the platform allows without an access token:

- WeCom app / group robot: the encrypted passive reply in the HTTP response;
- DingTalk (HTTP callback and Stream): a POST to the message's ``sessionWebhook``;
- Feishu/Lark card press: the toast and updated card in the HTTP response; a Feishu message or a
  Slack message: a direct message from the app (the outbox) when the app can send, else the app's
  ``answer_channel`` group robot;
- Slack button press: a POST to the payload's ``response_url``.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import UTC
from typing import Any

import aiohttp
from aiohttp import web

from bot import metrics
from bot.compose import when_text
from bot.confirmations import board
from bot.inbound import Answer, handle, person_for
from bot.outbox import enqueue
from bot.platforms.apps import AppBase
from bot.platforms.base import Mention, Message
from bot.platforms.dingtalk import inbound as dingtalk_inbound
from bot.platforms.dingtalk.config import DingTalkApp
from bot.platforms.events import CallbackError, Pressed, Said
from bot.platforms.feishu import inbound as feishu_inbound
from bot.platforms.feishu.config import FeishuApp
from bot.platforms.registry import platform_for
from bot.platforms.slack import inbound as slack_inbound
from bot.platforms.slack.config import SlackApp
from bot.platforms.wecom import inbound as wecom_inbound
from bot.platforms.wecom.config import WeComApp
from bot.runtime import Runtime
from bot.web.common import runtime_of

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024
HTTP = web.AppKey("callback_http", aiohttp.ClientSession)


def add_callback_routes(app: web.Application) -> None:
    """Mount the callback routes and the HTTP session answers are posted with."""
    app.router.add_route("GET", "/callback/{platform}/{app_id}", callback)
    app.router.add_route("POST", "/callback/{platform}/{app_id}", callback)
    app.cleanup_ctx.append(_http_session)


async def _http_session(app: web.Application) -> AsyncIterator[None]:
    async with aiohttp.ClientSession() as session:
        app[HTTP] = session
        yield


def _refuse(platform: str, status: int, message: str) -> web.Response:
    metrics.INBOUND.labels(platform if platform in ("wecom", "dingtalk", "feishu", "lark", "slack") else "other",
                           "rejected").inc()
    return web.Response(status=status, text=message, content_type="text/plain", charset="utf-8")


async def _body(request: web.Request) -> bytes:
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise CallbackError(413, "请求内容过长")
    body = await request.content.read(MAX_BODY_BYTES + 1)
    if len(body) > MAX_BODY_BYTES:
        raise CallbackError(413, "请求内容过长")
    return body


async def callback(request: web.Request) -> web.StreamResponse:
    runtime = runtime_of(request)
    platform, app_id = request.match_info["platform"], request.match_info["app_id"]
    app = runtime.schedules.apps.get(app_id)
    if app is None or app.platform != platform:
        return _refuse(platform, 404, "未配置此应用的回调")
    try:
        body = await _body(request) if request.method == "POST" else b""
        if isinstance(app, WeComApp):
            return await _wecom(request, runtime, app, body)
        if request.method != "POST":
            return _refuse(platform, 405, "只接受 POST 请求")
        if isinstance(app, DingTalkApp):
            return await _dingtalk(request, runtime, app, body)
        if isinstance(app, FeishuApp):
            return await _feishu(request, runtime, app, body)
        if isinstance(app, SlackApp):
            return await _slack(request, runtime, app, body)
    except CallbackError as exc:
        log.info("拒绝了 %s 回调（应用 %s）：%s", platform, app_id, exc)
        return _refuse(platform, exc.status, str(exc))
    return _refuse(platform, 404, "未配置此应用的回调")


# ---------------------------------------------------------------- per platform


async def _wecom(request: web.Request, runtime: Runtime, app: WeComApp, body: bytes) -> web.Response:
    query = dict(request.query)
    now = runtime.clock()
    if request.method == "GET":
        return web.Response(text=wecom_inbound.verify_url(app, query, now), content_type="text/plain")
    inbound = wecom_inbound.read_message(app, query, body, now)
    if inbound.said is None:
        return web.Response(text="")
    answer = await handle(runtime, inbound.said)
    if not answer.text:
        return web.Response(text="")  # an empty answer tells WeCom not to retry
    xml = wecom_inbound.passive_reply(app, inbound, answer.text, now)
    return web.Response(text=xml, content_type="application/xml")


async def dingtalk_message(runtime: Runtime, http: aiohttp.ClientSession, app: DingTalkApp,
                           data: Any) -> Answer | None:
    """A robot message body (HTTP callback or Stream): handle it and answer by session webhook."""
    inbound = dingtalk_inbound.read_message(app, data)
    if inbound.said is None:
        return None
    answer = await handle(runtime, inbound.said)
    if answer.text:
        await dingtalk_inbound.answer(http, inbound, answer.text, runtime.clock())
    return answer


async def dingtalk_stream_callback(runtime: Runtime, http: aiohttp.ClientSession, app: DingTalkApp, topic: str,
                                   data: dict[str, Any], message_id: str = "") -> dict[str, Any] | None:
    """A Stream callback: a robot message (answered by session webhook) or a card press (answered
    in the acknowledgement)."""
    from bot.platforms.dingtalk.stream import CARD_TOPIC

    if topic != CARD_TOPIC:
        await dingtalk_message(runtime, http, app, data)
        return None
    pressed = dingtalk_inbound.read_card_press(app, data, message_id)
    if pressed is None:
        return None
    answer = await handle(runtime, pressed)
    return dingtalk_inbound.card_answer(answer.text or "已处理")


async def _dingtalk(request: web.Request, runtime: Runtime, app: DingTalkApp, body: bytes) -> web.Response:
    dingtalk_inbound.check_headers(app, request.headers.get("timestamp", ""), request.headers.get("sign", ""),
                                   runtime.clock())
    await dingtalk_message(runtime, request.app[HTTP], app, dingtalk_inbound.parse_body(body))
    return web.json_response({})


async def _feishu(request: web.Request, runtime: Runtime, app: FeishuApp, body: bytes) -> web.Response:
    inbound = feishu_inbound.read(app, dict(request.headers), body, runtime.clock())
    if inbound.challenge is not None:
        return web.json_response({"challenge": inbound.challenge})
    if inbound.pressed is not None:
        answer = await handle(runtime, inbound.pressed)
        card = await _feishu_card(runtime, answer) if answer.occurrence_id else None
        text = answer.text or "已处理"
        return web.json_response(feishu_inbound.card_response(text, answer.recorded, card))
    if inbound.said is not None:
        answer = await handle(runtime, inbound.said)
        await answer_in_channel(runtime, app, inbound.said, answer)
    return web.json_response({})


async def _feishu_card(runtime: Runtime, answer: Answer) -> dict[str, Any] | None:
    try:
        b = await board(runtime.db, answer.occurrence_id or 0, runtime.clock())
    except LookupError:
        return None
    occ = b.occurrence
    reminder = runtime.schedules.reminders.get(occ.reminder_id)
    due = occ.due_at if occ.due_at.tzinfo else occ.due_at.replace(tzinfo=UTC)
    when = when_text(due, reminder.zone) if reminder else due.isoformat()
    confirmed = [r.name for r in b.rows if r.confirmed]
    return feishu_inbound.confirm_card(occ.title, when, occ.id or 0, confirmed, b.expected - b.confirmed)


async def _slack(request: web.Request, runtime: Runtime, app: SlackApp, body: bytes) -> web.Response:
    inbound = slack_inbound.read(app, dict(request.headers), body, runtime.clock())
    if inbound.challenge is not None:
        return web.json_response({"challenge": inbound.challenge})
    if inbound.pressed is not None:
        answer = await handle(runtime, inbound.pressed)
        if answer.text and inbound.response_url:
            await _post(request.app[HTTP], inbound.response_url,
                        {"response_type": "ephemeral", "replace_original": False, "text": answer.text})
    elif inbound.said is not None:
        answer = await handle(runtime, inbound.said)
        await answer_in_channel(runtime, app, inbound.said, answer)
    return web.Response(text="")


async def _post(http: aiohttp.ClientSession, url: str, body: dict[str, Any]) -> None:
    try:
        async with http.post(url, json=body, timeout=aiohttp.ClientTimeout(total=5)) as resp:
            if resp.status >= 300:
                log.warning("回复失败：HTTP %s", resp.status)
    except (aiohttp.ClientError, TimeoutError) as exc:
        log.warning("回复失败：%s", type(exc).__name__)


async def answer_in_channel(runtime: Runtime, app: AppBase, said: Said | Pressed, answer: Answer) -> bool:
    """Queue the answer: a direct message from the app to the sender when the app can send and the
    sender is a known person; else to the app's ``answer_channel`` group robot, mentioning them."""
    if not answer.text:
        return False
    who = person_for(runtime, said.platform, said.user_id)
    channel = runtime.app_channel(app) if app.can_send and who is not None else None
    channel = channel or runtime.schedules.channels.get(app.answer_channel or "")
    if channel is None:
        log.warning("应用 %s 没有配置 answer_channel，确认结果未能回复到群里", app.label)
        return False
    mentions: tuple[Mention, ...] = ()
    if who is not None:
        person = runtime.schedules.people[who[0]]
        mentions = (Mention(person_id=person.id, name=person.name, mobile=person.mobile,
                            ids={k: v for k, v in person.ids.model_dump().items() if v}),)
    message = Message(title="确认回执", markdown=answer.text, mentions=mentions)
    platform = platform_for(channel)
    async with runtime.db.session() as session:
        await enqueue(session, dedupe_key=f"answer/{app.id}/{said.message_id}"[:250], channel=channel,
                      platform=platform.name, bodies=platform.build(channel, message),
                      occurrence_id=answer.occurrence_id, stage="answer", summary="确认回执",
                      now=runtime.clock(), dry_run=channel.dry_run)
        await session.commit()
    runtime.wake_dispatcher()
    return True
