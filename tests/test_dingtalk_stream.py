"""DingTalk Stream mode against a local gateway that speaks its frames (aiohttp, loopback).

The fake gateway answers the open-connection call, then scripts three connections: the first
delivers a robot message and drops without a close frame; the second delivers the same message
id again, a new message, two card button presses and an event, then asks the client to reconnect
(SYSTEM disconnect).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from pydantic import TypeAdapter

from bot.config.models import PlatformIds
from bot.platforms.dingtalk.config import DingTalkApp
from bot.platforms.dingtalk.stream import CARD_TOPIC, ROBOT_TOPIC, StreamClient
from bot.platforms.registry import AppConfig
from bot.web.callbacks import dingtalk_stream_callback
from storage.db import Database
from tests.fakes import chat
from tests.test_inbound_http import IDS
from tests.test_web_confirm import build_world, serve

TICKET = "tk+1/=="


@dataclass
class Gateway:
    url: str = ""
    opened: list[dict[str, Any]] = field(default_factory=list)
    tickets: list[str] = field(default_factory=list)
    acks: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    sent: list[str] = field(default_factory=list)
    answers: list[dict[str, Any]] = field(default_factory=list)
    connections: int = 0
    occurrence: int = 0

    async def open(self, request: web.Request) -> web.Response:
        self.opened.append(await request.json())
        return web.json_response({"endpoint": self.url.replace("http://", "ws://") + "/ws", "ticket": TICKET})

    async def session(self, request: web.Request) -> web.Response:
        self.answers.append(await request.json())
        return web.json_response({"errcode": 0, "errmsg": "ok"})

    def robot_frame(self, frame_id: str, staff: str, text: str, msg_id: str) -> dict[str, Any]:
        data = chat.dingtalk_message(staff, text, msg_id, f"{self.url}/session")
        return {"specVersion": "1.0", "type": "CALLBACK", "data": json.dumps(data, ensure_ascii=False),
                "headers": {"appId": "app", "connectionId": "c", "contentType": "application/json",
                            "messageId": frame_id, "time": "1700000000000", "topic": ROBOT_TOPIC}}

    def card_frame(self, frame_id: str, user: str) -> dict[str, Any]:
        value = {"cardPrivateData": {"actionIds": ["confirm"], "params": {"occurrence": str(self.occurrence)}}}
        data = {"extension": "{}", "corpId": "dingcorp", "userIdType": 1, "type": "actionCallback", "userId": user,
                "outTrackId": f"track-{frame_id}", "value": json.dumps(value)}
        return {"specVersion": "1.0", "type": "CALLBACK", "data": json.dumps(data),
                "headers": {"messageId": frame_id, "topic": CARD_TOPIC, "contentType": "application/json"}}

    async def ws(self, request: web.Request) -> web.WebSocketResponse:
        self.tickets.append(request.query.get("ticket", ""))
        self.connections += 1
        number = self.connections
        ws = web.WebSocketResponse()
        await ws.prepare(request)

        async def send(frame: dict[str, Any]) -> None:
            self.sent.append(frame["headers"]["messageId"])
            await ws.send_json(frame)
            reply = await asyncio.wait_for(ws.receive_json(), timeout=10)
            self.acks.setdefault(frame["headers"]["messageId"], []).append(reply)

        if number == 1:
            await send({"specVersion": "1.0", "type": "SYSTEM", "data": '{"opaque":"p1"}',
                        "headers": {"messageId": "ping-1", "topic": "ping", "contentType": "application/json"}})
            await send(self.robot_frame("f1", "staff-zhang", "已完成 参加23人", "m1"))
            assert request.transport is not None
            request.transport.abort()  # dropped: no close frame
            return ws
        if number == 2:
            await send(self.robot_frame("f1", "staff-zhang", "已完成 参加23人", "m1"))  # repeated
            await send(self.robot_frame("f2", "staff-li", "收到 参加5人", "m2"))
            await send(self.card_frame("c1", "staff-liu"))  # owes nothing: a polite answer
            await send(self.card_frame("c2", "staff-wang"))
            await send({"specVersion": "1.0", "type": "EVENT", "data": "{}",
                        "headers": {"messageId": "e1", "topic": "chat_update_title", "eventId": "ev"}})
            await ws.send_json({"specVersion": "1.0", "type": "SYSTEM", "data": "{}",
                                "headers": {"messageId": "d1", "topic": "disconnect"}})
        async for _ in ws:  # keep the connection until the client goes
            pass
        return ws


async def wait_for(check: Callable[[], Awaitable[bool] | bool], what: str) -> None:
    deadline = time.monotonic() + 20.0
    while True:
        result = check()
        if isinstance(result, Awaitable):
            result = await result
        if result:
            return
        assert time.monotonic() < deadline, f"gave up waiting for: {what}"
        await asyncio.sleep(0.05)


async def test_stream_acks_every_frame_survives_a_drop_and_records_a_repeated_message_once(
        db: Database, tmp_path: Path) -> None:
    world = await build_world(db, tmp_path)
    s = world.runtime.schedules
    for pid, ids in IDS.items():
        s.people[pid] = s.people[pid].model_copy(update={"ids": ids})
    s.people["wang"] = s.people["wang"].model_copy(update={"ids": PlatformIds(dingtalk="staff-wang")})
    gateway = Gateway(occurrence=world.occurrence_id)
    fake = web.Application()
    fake.router.add_post("/v1.0/gateway/connections/open", gateway.open)
    fake.router.add_get("/ws", gateway.ws)
    fake.router.add_post("/session", gateway.session)
    async with serve(fake) as url, aiohttp.ClientSession() as http:
        gateway.url = url
        app = TypeAdapter(AppConfig).validate_python(
            {"id": "ding", "platform": "dingtalk", "mode": "stream", "app_key": "dingkey",
             "app_secret": "ding-secret", "api_base": url})
        assert isinstance(app, DingTalkApp)
        s.apps = {app.id: app}

        async def on_message(a: DingTalkApp, topic: str, data: dict[str, Any], message_id: str) -> Any:
            return await dingtalk_stream_callback(world.runtime, http, a, topic, data, message_id)

        client = StreamClient(app, http, on_message, backoff_base=0.05, backoff_max=0.2)
        client.start()
        try:
            await wait_for(lambda: gateway.connections >= 3, "a third connection after drop and disconnect")
        finally:
            await client.stop()

    assert gateway.opened[0]["clientId"] == "dingkey" and gateway.opened[0]["clientSecret"] == "ding-secret"
    assert {"type": "CALLBACK", "topic": ROBOT_TOPIC} in gateway.opened[0]["subscriptions"]
    assert set(gateway.tickets) == {TICKET}  # the ticket arrives intact (encoded once)
    for frame_id in gateway.sent:  # every frame acknowledged, by its own id
        assert all(a["code"] == 200 and a["headers"]["messageId"] == frame_id for a in gateway.acks[frame_id])
    assert json.loads(gateway.acks["ping-1"][0]["data"]) == {"opaque": "p1"}
    assert len(gateway.acks["f1"]) == 2
    confirmations = sorted((c.person_id, c.via, c.note) for c in await world.confirmations())
    assert confirmations == [("li", "chat", "参加5人"), ("wang", "card", None), ("zhang", "chat", "参加23人")]
    card = json.loads(gateway.acks["c2"][0]["data"])["response"]["cardData"]["cardParamMap"]["confirm_status"]
    assert "王芳" in card and "已登记" in card
    refused = json.loads(gateway.acks["c1"][0]["data"])["response"]["cardData"]["cardParamMap"]["confirm_status"]
    assert "刘强" in refused and "未记录" in refused
    texts = [a["text"]["content"] for a in gateway.answers]
    assert len(texts) == 2 and sum("张伟" in t for t in texts) == 1 and sum("李娜" in t for t in texts) == 1
    assert gateway.answers[0]["at"]["atUserIds"] in (["staff-zhang"], ["staff-li"])
    assert client.connections >= 3


async def test_stream_retries_with_backoff_while_the_gateway_refuses(db: Database, tmp_path: Path) -> None:
    calls: list[float] = []

    async def refuse(request: web.Request) -> web.Response:
        calls.append(time.monotonic())
        return web.json_response({"code": "invalidClient", "message": "bad"}, status=401)

    fake = web.Application()
    fake.router.add_post("/v1.0/gateway/connections/open", refuse)
    async with serve(fake) as url, aiohttp.ClientSession() as http:
        app = TypeAdapter(AppConfig).validate_python(
            {"id": "ding", "platform": "dingtalk", "mode": "stream", "app_key": "k", "app_secret": "s",
             "api_base": url})

        async def never(a: DingTalkApp, topic: str, data: dict[str, Any], message_id: str) -> None:
            raise AssertionError("no message expected")

        client = StreamClient(app, http, never, backoff_base=0.05, backoff_max=0.4)  # type: ignore[arg-type]
        client.start()
        try:
            await wait_for(lambda: len(calls) >= 5, "five attempts")
        finally:
            await client.stop()
    gaps = [b - a for a, b in itertools.pairwise(calls)]
    assert gaps[-1] > gaps[0]  # backing off, not hammering
    assert client.connections == 0
