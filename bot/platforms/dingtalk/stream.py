"""DingTalk Stream mode: an outbound WebSocket, so no public address is needed.

Protocol (DingTalk developerpedia "Stream protocol"; the SDK's ``stream.py``/``frames.py``):
``POST {api_base}/v1.0/gateway/connections/open`` with the app's client id and secret and the
subscriptions returns ``{"endpoint", "ticket"}``; the socket is ``{endpoint}?ticket=<ticket>``.
Frames are JSON ``{"type": SYSTEM|EVENT|CALLBACK, "headers": {"messageId", "topic", ...},
"data": "<JSON string>"}``; every frame is acknowledged with ``{"code", "headers": {"messageId",
"contentType"}, "message", "data"}``. SYSTEM ``disconnect`` means reconnect. Robot messages arrive
as CALLBACK ``/v1.0/im/bot/messages/get`` with the same body as the HTTP callback; interactive
card presses as CALLBACK ``/v1.0/card/instances/callback`` (``userId``, ``outTrackId``, ``value``
= JSON with ``cardPrivateData.actionIds`` and ``params``), answered in the acknowledgement.

Why not the ``dingtalk-stream`` SDK: it opens the connection with a blocking ``requests.post``
without a timeout inside the event loop, brings ``websockets`` and ``requests`` besides the
aiohttp session this service already owns, and its gateway address is a class attribute shared by
every client. This client uses the service's aiohttp session, takes ``api_base`` from the app
(tests point it at a local fake), acknowledges every frame, reconnects with capped exponential
backoff and jitter, and drops a frame whose message id it has already handled.

:class:`StreamPool` keeps one client per stream-mode app and follows schedule reloads: a new app
connects, a removed one (or one switched to ``mode: http``) disconnects, and one whose connection
credentials (``app_key``, ``app_secret``, ``api_base``) changed reconnects; any other change
(name, answer channel, card template…) is taken by the running client for the next message.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from typing import Any
from urllib.parse import quote_plus

import aiohttp

from bot import jsontext, metrics
from bot.platforms.apps import AppBase
from bot.platforms.dingtalk.config import DingTalkApp
from bot.platforms.events import CallbackError
from bot.repeats import whole

log = logging.getLogger(__name__)

ROBOT_TOPIC = "/v1.0/im/bot/messages/get"
CARD_TOPIC = "/v1.0/card/instances/callback"
SEEN_MAX = 2000  # message ids remembered per connection client (DingTalk redelivers within minutes)

# (app, topic, decoded data, frame message id) -> the response for the acknowledgement (None: none)
OnMessage = Callable[[DingTalkApp, str, dict[str, Any], str], Awaitable[dict[str, Any] | None]]


class StreamClient:
    """One app's stream connection; ``start()`` runs it as a task, ``stop()`` ends it."""

    def __init__(self, app: DingTalkApp, http: aiohttp.ClientSession, on_message: OnMessage, *,
                 backoff_base: float = 1.0, backoff_max: float = 60.0) -> None:
        self.app = app
        self.http = http
        self.on_message = on_message
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.seen: OrderedDict[str, None] = OrderedDict()
        self.connections = 0  # successful connections so far (shown in logs, used by tests)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> asyncio.Task[None]:
        self._task = asyncio.create_task(self.run(), name=f"dingtalk-stream-{self.app.id}")
        return self._task

    async def stop(self) -> None:
        task = self.cancel()
        if task is None:
            return
        try:
            await task
        except asyncio.CancelledError:
            pass

    def cancel(self) -> asyncio.Task[None] | None:
        """Ask the running task to end (the connection closes); the task, to await, or None."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
        return task

    async def run(self) -> None:
        """Connect, serve, reconnect; until cancelled. Failures are logged and counted."""
        failures = 0
        while True:
            try:
                await self._serve_once()
                failures = 0  # a clean close (disconnect frame, server restart): reconnect soon
                delay = self.backoff_base * random.uniform(0.5, 1.0)
            except asyncio.CancelledError:
                raise
            except (aiohttp.ClientError, TimeoutError, ValueError, KeyError) as exc:
                failures += 1
                delay = min(self.backoff_max, self.backoff_base * 2 ** (failures - 1))
                delay *= random.uniform(0.8, 1.2)
                metrics.INBOUND.labels("dingtalk", "stream_error").inc()
                log.warning("钉钉 Stream 连接（应用 %s）中断：%s；%.1f 秒后重连", self.app.label,
                            type(exc).__name__, delay)
            await asyncio.sleep(delay)

    async def _open(self) -> str:
        body = {
            "clientId": self.app.app_key,
            "clientSecret": self.app.app_secret.get_secret_value(),
            "subscriptions": [{"type": "EVENT", "topic": "*"}, {"type": "CALLBACK", "topic": ROBOT_TOPIC},
                              {"type": "CALLBACK", "topic": CARD_TOPIC}],
            "ua": "remindbot",
        }
        url = f"{self.app.api_base.rstrip('/')}/v1.0/gateway/connections/open"
        async with self.http.post(url, json=body, timeout=aiohttp.ClientTimeout(total=10)) as resp:
            data = await resp.json(loads=jsontext.loads, content_type=None)
            if resp.status != 200 or not isinstance(data, dict) or "endpoint" not in data:
                raise ValueError(f"open connection: HTTP {resp.status}")
        return f"{data['endpoint']}?ticket={quote_plus(str(data['ticket']))}"

    async def _serve_once(self) -> None:
        url = await self._open()
        async with self.http.ws_connect(url, heartbeat=60, timeout=aiohttp.ClientWSTimeout(ws_close=5)) as ws:
            self.connections += 1
            log.info("钉钉 Stream 已连接（应用 %s）", self.app.label)
            async for msg in ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    if msg.type in (aiohttp.WSMsgType.ERROR, aiohttp.WSMsgType.CLOSE):
                        break
                    continue
                if not await self._frame(ws, msg.data):
                    await ws.close()
                    return
            raise aiohttp.ClientConnectionError("stream closed by the server")

    async def _frame(self, ws: aiohttp.ClientWebSocketResponse, raw: str) -> bool:
        """Handle and acknowledge one frame; False when the server asked us to reconnect."""
        try:
            frame = jsontext.loads(raw)
            headers = frame.get("headers") or {}
            message_id = str(headers.get("messageId") or "")
            topic = str(headers.get("topic") or "")
            kind = frame.get("type")
        except (ValueError, AttributeError):
            log.warning("钉钉 Stream：无法解析的帧，已忽略")
            return True
        if kind == "SYSTEM":
            if topic == "disconnect":
                return False
            await self._ack(ws, message_id, 200, frame.get("data") or "{}")
            return True
        code, data = 200, json.dumps({"response": None})
        if kind == "EVENT":
            data = json.dumps({"status": "SUCCESS", "message": "success"})
        elif message_id in self.seen:
            pass  # a repeated frame: acknowledge, do nothing
        elif kind == "CALLBACK" and topic in (ROBOT_TOPIC, CARD_TOPIC):
            try:
                body = jsontext.loads(frame.get("data") or "{}")
                if not isinstance(body, dict):
                    raise ValueError("data")
                response = await whole(self.on_message(self.app, topic, body, message_id), "钉钉 Stream 消息处理")
                data = json.dumps({"response": response}, ensure_ascii=False)
            except (ValueError, TypeError, CallbackError) as exc:
                log.warning("钉钉 Stream：消息无法处理（%s）", type(exc).__name__)
                code = 400
            except Exception:  # a database failure must not end the connection; DingTalk redelivers
                log.exception("钉钉 Stream：处理消息时出错")
                metrics.INBOUND.labels("dingtalk", "error").inc()
                await self._ack(ws, message_id, 500, json.dumps({"response": None}))
                return True
        self._remember(message_id)
        await self._ack(ws, message_id, code, data)
        return True

    def _remember(self, message_id: str) -> None:
        if not message_id:
            return
        self.seen[message_id] = None
        while len(self.seen) > SEEN_MAX:
            self.seen.popitem(last=False)

    @staticmethod
    async def _ack(ws: aiohttp.ClientWebSocketResponse, message_id: str, code: int, data: str) -> None:
        await ws.send_json({"code": code, "headers": {"messageId": message_id, "contentType": "application/json"},
                            "message": "OK" if code == 200 else "error", "data": data})


def _credentials(app: DingTalkApp) -> tuple[str | None, str, str]:
    """What the connection is opened with: a change of any of these needs a new connection."""
    return app.app_key, app.app_secret.get_secret_value(), app.api_base


class StreamPool:
    """The Stream clients of a service, one per ``mode: stream`` app, following reloads (:meth:`apply`)."""

    def __init__(self, http: aiohttp.ClientSession, on_message: OnMessage, **client_options: float) -> None:
        self.http = http
        self.on_message = on_message
        self.client_options = client_options
        self.clients: dict[str, StreamClient] = {}
        self._ending: set[asyncio.Task[None]] = set()

    def apply(self, apps: Iterable[AppBase]) -> None:
        """Start, stop or restart clients so there is one per stream app in ``apps`` (in the event loop)."""
        wanted = {a.id: a for a in apps if isinstance(a, DingTalkApp) and a.mode == "stream"}
        for app_id, client in list(self.clients.items()):
            app = wanted.get(app_id)
            if app is not None and _credentials(app) == _credentials(client.app):
                client.app = app  # same connection; the next message sees the new settings
                continue
            self._end(self.clients.pop(app_id))
            if app is None:
                log.info("钉钉 Stream：应用 %s 已从配置中移除（或不再使用 stream 模式），断开连接", client.app.label)
            else:
                log.info("钉钉 Stream：应用 %s 的连接凭据已变更，重新连接", app.label)
                self._start(app, seen=client.seen)
        for app_id, app in wanted.items():
            if app_id not in self.clients:
                log.info("钉钉 Stream：连接应用 %s", app.label)
                self._start(app)

    def _start(self, app: DingTalkApp, seen: OrderedDict[str, None] | None = None) -> None:
        client = StreamClient(app, self.http, self.on_message, **self.client_options)
        if seen is not None:
            client.seen = seen  # message ids handled before the reconnect stay handled
        client.start()
        self.clients[app.id] = client

    def _end(self, client: StreamClient) -> None:
        task = client.cancel()
        if task is not None:
            self._ending.add(task)
            task.add_done_callback(self._ending.discard)

    async def stop(self) -> None:
        """End every client and wait for their tasks."""
        for client in list(self.clients.values()):
            self._end(client)
        self.clients.clear()
        ending = list(self._ending)
        if ending:
            await asyncio.gather(*ending, return_exceptions=True)
