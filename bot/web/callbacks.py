"""Platform callbacks: ``/callback/<platform>/<app_id>`` for every app in the ``apps:`` section.

Each request goes to its platform's handler, found in the registry (``CALLBACKS``; the handler is
the platform's ``inbound.callback``, one signature for all: :data:`bot.platforms.spec.Callback`).
The handler verifies it (signature, timestamp, decryption) and turns it into "said" or "pressed"
events for :func:`bot.confirming.inbound.handle` (through :class:`WebInbox`), where the confirmation rules
live. This module only moves bytes: bounded body, Chinese 4xx for anything refused (never a 500 for
a bad body), and the answer back the way the platform allows without an access token:

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
from datetime import UTC, datetime
from typing import Any

import aiohttp
from aiohttp import web

from bot import metrics
from bot.confirming.confirmations import board
from bot.confirming.inbound import handle, person_for
from bot.delivery.compose import when_text
from bot.delivery.outbox import enqueue
from bot.platforms.apps import AppBase
from bot.platforms.base import Mention, Message
from bot.platforms.dingtalk import inbound as dingtalk_inbound
from bot.platforms.dingtalk.config import DingTalkApp
from bot.platforms.events import Answer, CallbackError, Pressed, Said
from bot.platforms.registry import CALLBACK_METHODS, CALLBACKS, platform_for
from bot.platforms.spec import CallbackRequest, CardState
from bot.runtime import Runtime
from bot.sentences import sentence
from bot.web.common import OWN_ANSWER, runtime_of

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
    metrics.INBOUND.labels(platform if platform in CALLBACKS else "other", "rejected").inc()
    # Ended once here, as the CLI's and the pages' refusals are: the platforms' messages come without 。
    response = web.Response(status=status, text=sentence(message), content_type="text/plain", charset="utf-8")
    response[OWN_ANSWER] = True
    return response


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
    handler = CALLBACKS.get(platform)
    if app is None or app.platform != platform or handler is None:
        return _refuse(platform, 404, "未配置此应用的回调")
    if request.method not in (methods := CALLBACK_METHODS[platform]):  # the registry says, once for all
        return _refuse(platform, 405, f"只接受 {'、'.join(methods)} 请求")
    try:
        body = await _body(request) if request.method == "POST" else b""
        asked = CallbackRequest(request.method, request.query, request.headers, body)
        reply = await handler(WebInbox(runtime, request.app[HTTP]), app, asked)
    except CallbackError as exc:
        log.info("拒绝了 %s 回调（应用 %s）：%s", platform, app_id, exc)
        return _refuse(platform, exc.status, str(exc))
    if reply.json is not None:
        return web.json_response(reply.json, status=reply.status)
    return web.Response(text=reply.text, status=reply.status, content_type=reply.content_type)


class WebInbox:
    """What the platforms' callback handlers use (:class:`bot.platforms.spec.Inbox`): the rules
    (:func:`bot.confirming.inbound.handle`), the outbox for answers, and the confirmations for cards."""

    def __init__(self, runtime: Runtime, http: aiohttp.ClientSession) -> None:
        self.runtime, self.http = runtime, http

    def now(self) -> datetime:
        return self.runtime.clock()

    async def handle(self, event: Said | Pressed) -> Answer:
        return await handle(self.runtime, event)

    async def answer_in_channel(self, app: AppBase, event: Said | Pressed, answer: Answer) -> bool:
        return await answer_in_channel(self.runtime, app, event, answer)

    async def card_state(self, occurrence_id: int) -> CardState | None:
        runtime = self.runtime
        try:
            b = await board(runtime.db, occurrence_id, runtime.clock())
        except LookupError:
            return None
        occ = b.occurrence
        reminder = runtime.schedules.reminders.get(occ.reminder_id)
        due = occ.due_at if occ.due_at.tzinfo else occ.due_at.replace(tzinfo=UTC)
        when = when_text(due, reminder.zone) if reminder else due.isoformat()
        confirmed = [r.name for r in b.rows if r.confirmed]
        return CardState(occ.id or 0, occ.title, when, confirmed, b.expected - b.confirmed - len(b.excused))


async def dingtalk_stream_callback(runtime: Runtime, http: aiohttp.ClientSession, app: DingTalkApp, topic: str,
                                   data: dict[str, Any], message_id: str = "") -> dict[str, Any] | None:
    """A DingTalk Stream callback (:func:`bot.platforms.dingtalk.inbound.stream_callback`): a robot
    message (answered by session webhook) or a card press (answered in the acknowledgement)."""
    return await dingtalk_inbound.stream_callback(WebInbox(runtime, http), app, topic, data, message_id)


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
