"""DingTalk Stream clients follow schedule reloads in a real ``remindbot serve`` process.

A local gateway (aiohttp on loopback, in a thread) answers the open-connection call per client id
and holds each WebSocket. The test rewrites ``apps.yaml`` under the running service: an app
replaced by another disconnects while the new one connects, a message pushed through the new
connection is recorded (``remindbot status`` shows it), and a changed secret reconnects.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from tests.fakes import chat
from tests.fakes.proxy import LoopThread
from tests.servehelp import RELOADED, Service, Workspace, wait_until
from tests.test_dingtalk_stream import ROBOT_TOPIC

ZHOU_HUA = "0203040506"  # 周华, secretary of 财政局第一党支部: owes the study day


@dataclass
class Gateway:
    """DingTalk's Stream gateway: one ticket per opened connection, sockets held by ticket."""

    url: str = ""
    opened: list[dict[str, Any]] = field(default_factory=list)
    live: dict[str, web.WebSocketResponse] = field(default_factory=dict)  # ticket -> socket
    closed: list[str] = field(default_factory=list)  # tickets whose socket ended
    acks: dict[str, dict[str, Any]] = field(default_factory=dict)
    answers: list[dict[str, Any]] = field(default_factory=list)

    async def open(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.opened.append(body)
        ticket = f"{body['clientId']}.{len(self.opened)}"
        return web.json_response({"endpoint": self.url.replace("http://", "ws://") + "/ws", "ticket": ticket})

    async def ws(self, request: web.Request) -> web.WebSocketResponse:
        ticket = request.query["ticket"]
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.live[ticket] = ws
        try:
            async for msg in ws:
                ack = json.loads(msg.data)
                self.acks[ack["headers"]["messageId"]] = ack
        finally:
            self.live.pop(ticket, None)
            self.closed.append(ticket)
        return ws

    async def session(self, request: web.Request) -> web.Response:
        self.answers.append(await request.json())
        return web.json_response({"errcode": 0, "errmsg": "ok"})

    async def push(self, ticket: str, frame: dict[str, Any]) -> None:
        await self.live[ticket].send_json(frame)

    def tickets(self, client_id: str) -> list[str]:
        """Live connections of one client id."""
        return [t for t in self.live if t.startswith(f"{client_id}.")]


@pytest.fixture
def gateway() -> Iterator[tuple[LoopThread, Gateway]]:
    with LoopThread() as loop:
        fake = Gateway()
        app = web.Application()
        app.router.add_post("/v1.0/gateway/connections/open", fake.open)
        app.router.add_get("/ws", fake.ws)
        app.router.add_post("/session", fake.session)

        async def start() -> web.AppRunner:
            runner = web.AppRunner(app, shutdown_timeout=1)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            fake.url = f"http://127.0.0.1:{port}"
            return runner

        runner = loop.run(start())
        try:
            yield loop, fake
        finally:
            loop.run(runner.cleanup())


def apps_yaml(url: str, *apps: tuple[str, str, str]) -> str:
    items = "".join(f"""  - id: {app_id}
    platform: dingtalk
    mode: stream
    app_key: {key}
    app_secret: {secret}
    api_base: {url}
""" for app_id, key, secret in apps)
    return f"apps:\n{items}"


def run(workspace: Workspace, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bot", *args], env=workspace.env(), cwd=workspace.root,
                          capture_output=True, text=True, timeout=120, check=False)


def robot_frame(gateway: Gateway, frame_id: str, staff: str, text: str) -> dict[str, Any]:
    data = chat.dingtalk_message(staff, text, f"msg-{frame_id}", f"{gateway.url}/session")
    return {"specVersion": "1.0", "type": "CALLBACK", "data": json.dumps(data, ensure_ascii=False),
            "headers": {"messageId": frame_id, "topic": ROBOT_TOPIC, "contentType": "application/json"}}


def test_stream_apps_added_removed_and_rekeyed_by_a_reload_connect_and_disconnect(
        workspace: Workspace, gateway: tuple[LoopThread, Gateway]) -> None:
    loop, fake = gateway
    fired = run(workspace, "fire", "study-day", "--date", "2026-11-06", "--yes")
    assert fired.returncode == 0, fired.stderr
    workspace.replace("apps.yaml", apps_yaml(fake.url, ("ding-a", "key-a", "secret-a")))

    service = Service.start(workspace)
    try:
        service.wait_ready()
        wait_until(lambda: fake.tickets("key-a"), "ding-a connected at start-up")
        [first_a] = fake.tickets("key-a")

        # ding-a replaced by ding-b: a reload, no restart
        workspace.replace("apps.yaml", apps_yaml(fake.url, ("ding-b", "key-b", "secret-b")))
        service.wait_for_log(RELOADED)
        wait_until(lambda: fake.tickets("key-b"), "ding-b connected after the reload")
        wait_until(lambda: first_a in fake.closed, "ding-a disconnected after the reload")
        assert fake.tickets("key-a") == []
        [first_b] = fake.tickets("key-b")

        # a reply through the new connection is acknowledged, recorded and answered
        loop.run(fake.push(first_b, robot_frame(fake, "f1", ZHOU_HUA, "已完成参加12人")))
        wait_until(lambda: "f1" in fake.acks and fake.answers, "the frame acknowledged and answered")
        assert fake.acks["f1"]["code"] == 200
        assert "周华" in fake.answers[0]["text"]["content"] and "参加12人" in fake.answers[0]["text"]["content"]

        # a changed secret: the connection is opened again with it, the old one ends
        workspace.replace("apps.yaml", apps_yaml(fake.url, ("ding-b", "key-b", "secret-b2")))
        service.wait_for_log(RELOADED, 2)
        wait_until(lambda: first_b in fake.closed and fake.tickets("key-b"), "ding-b reconnected")
        assert fake.opened[-1]["clientSecret"] == "secret-b2"
        # the same frame delivered again on the new connection: acknowledged, nothing more
        [second_b] = fake.tickets("key-b")
        del fake.acks["f1"]
        loop.run(fake.push(second_b, robot_frame(fake, "f1", ZHOU_HUA, "已完成参加12人")))
        wait_until(lambda: "f1" in fake.acks, "the repeated frame acknowledged")
        loop.run(asyncio.sleep(0.3))
        assert len(fake.answers) == 1

        # an unchanged reload keeps the connection
        opened = len(fake.opened)
        workspace.replace("apps.yaml", apps_yaml(fake.url, ("ding-b", "key-b", "secret-b2")) + "# touched\n")
        service.wait_for_log(RELOADED, 3)
        assert len(fake.opened) == opened and fake.tickets("key-b") == [second_b]
        for secret in ("secret-a", "secret-b", "secret-b2"):
            assert secret not in service.output()
    finally:
        assert service.stop() == 0
        service.kill()
    assert wait_until(lambda: not fake.live, "every stream connection closed on stop")

    shown = run(workspace, "status", "study-day")
    zhou = next(line for line in shown.stdout.splitlines() if "周华" in line)
    assert "群内回复" in zhou and "参加12人" in zhou
