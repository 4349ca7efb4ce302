"""Fake WeCom, DingTalk, Feishu/Lark, Slack and generic webhook servers on one loopback port.

Usage::

    clock = ManualClock(1_700_000_000)
    async with FakePlatforms(clock=clock) as fakes:
        robot = fakes.dingtalk(secret="SEC-x", keyword="提醒")
        ...  # POST to robot.url (sign with clock.now)
        assert robot.received[0].text.startswith("### ")

Each robot checks what the real one checks (see ``tests/fakes/emulators.py``): its key or token,
signature and timestamp window, body shape, size limit, keyword and a per-robot rate limit over a
sliding window (default 60 s). Answers use the platform's own codes. ``robot.requests`` holds every
request with the answer it got; ``robot.received`` only what the group would see. Failures can be
scripted: ``fail_next(n)`` (5xx), ``throttle_next(n, retry_after)`` (the platform's rate-limit
answer), ``answer_next(status, body)`` (anything), ``revoke()`` (the key stops working).

Time comes from ``clock`` (any ``() -> float``), so tests sign with the same ``now`` and move time
with :meth:`ManualClock.advance` instead of sleeping.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import aiohttp
from aiohttp import web

from bot.platforms.base import ChannelBase, DeliveryError, Message, Platform
from bot.platforms.registry import PLATFORMS, platform_for
from tests.fakes.emulators import EMULATORS, Answer, Emulator, Incoming

Clock = Callable[[], float]


class ManualClock:
    """A clock tests move by hand."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass(frozen=True)
class Received:
    """One request as the fake saw it, and what it answered."""

    at: float
    robot: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    raw: bytes
    json: Any
    status: int
    answer: bytes
    accepted: bool
    text: str = ""  # what group members would read (all text fields joined)
    notified: frozenset[str] = frozenset()  # user ids / mobiles / "all" that were really @-ed

    @property
    def answer_json(self) -> Any:
        return json.loads(self.answer) if self.answer[:1] == b"{" else None


@dataclass(eq=False)
class FakeRobot:
    platform: str  # wecom, dingtalk, feishu, lark, slack, generic
    token: str  # key, access_token, hook token, Slack path or generic name
    secret: str | None = None
    keyword: str | None = None
    limit: int | None = None  # accepted messages per window
    window: float = 60.0
    per_second: int | None = None
    requests: list[Received] = field(default_factory=list)
    revoked: bool = False
    _script: deque[Answer | str] = field(default_factory=deque)
    _sent_at: deque[float] = field(default_factory=deque)
    _server: FakePlatforms | None = None
    _gate: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self._gate.set()

    @property
    def name(self) -> str:
        return f"{self.platform}:{self.token}"

    @property
    def url(self) -> str:
        assert self._server is not None, "robot not attached to a server"
        return self._server.base_url + EMULATORS[self.platform].path_for(self.token)

    @property
    def received(self) -> list[Received]:
        return [request for request in self.requests if request.accepted]

    def channel(self, channel_id: str | None = None, **options: Any) -> ChannelBase:
        """A channel config pointing at this robot, with its secret and keyword."""
        data: dict[str, Any] = {
            "id": channel_id or self.token.replace("/", "-"),
            "name": "测试党支部群",
            "platform": self.platform,
            "webhook": self.url,
        }
        if self.secret:
            data["secret"] = self.secret
        if self.keyword:
            data["keyword"] = self.keyword
        data.update(options)
        return PLATFORMS[self.platform].channel_model.model_validate(data)

    def texts(self) -> list[str]:
        return [request.text for request in self.received]

    # ---- scripting

    def fail_next(self, n: int = 1, status: int = 503) -> None:
        self._script.extend(Answer(status, b"Service Unavailable", {}) for _ in range(n))

    def throttle_next(self, n: int = 1, retry_after: float | None = None) -> None:
        marker = "throttle" if retry_after is None else f"throttle:{retry_after:g}"
        self._script.extend(marker for _ in range(n))

    def answer_next(self, status: int, body: Any, headers: dict[str, str] | None = None, n: int = 1) -> None:
        raw = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode()
        self._script.extend(Answer(status, raw, headers or {}) for _ in range(n))

    def revoke(self) -> None:
        self.revoked = True

    def restore(self) -> None:
        self.revoked = False

    # ---- used by the server

    def scripted(self, emulator: Emulator) -> Answer | None:
        if not self._script:
            return None
        item = self._script.popleft()
        if isinstance(item, Answer):
            return item
        wait = float(item.split(":", 1)[1]) if ":" in item else None
        return emulator.throttled(wait)

    def over_rate(self, now: float) -> bool:
        """Count this attempt and say whether it is over the limit.

        Every authenticated attempt counts, refused ones included (WeCom documents that failed
        sends count too), so a client that hammers a throttled robot stays throttled.
        """
        while self._sent_at and self._sent_at[0] <= now - self.window:
            self._sent_at.popleft()
        in_window = len(self._sent_at)
        last_second = sum(1 for at in self._sent_at if at > now - 1.0)
        self._sent_at.append(now)
        if self.limit is not None and in_window >= self.limit:
            return True
        return self.per_second is not None and last_second >= self.per_second

    # ---- stalling (to test timeouts and shutdown with requests in flight)

    def hold(self) -> None:
        """Answer nothing until :meth:`release` (requests wait inside the server)."""
        self._gate.clear()

    def release(self) -> None:
        self._gate.set()

    async def wait_if_held(self) -> None:
        await self._gate.wait()


DEFAULT_LIMITS: dict[str, tuple[int | None, int | None]] = {
    "wecom": (20, None),
    "dingtalk": (20, None),
    "feishu": (100, 5),
    "lark": (100, 5),
    "slack": (60, None),
    "generic": (None, None),
}


class FakePlatforms:
    """Every fake platform on one aiohttp server at 127.0.0.1, with per-robot state."""

    def __init__(self, clock: Clock = time.time, window: float = 60.0) -> None:
        self.clock = clock
        self.window = window
        self.robots: dict[tuple[str, str], FakeRobot] = {}
        self._counter = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    async def __aenter__(self) -> FakePlatforms:
        await self.start()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def start(self) -> None:
        app = web.Application(client_max_size=4 * 1024 * 1024)
        app.router.add_post("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.base_url = f"http://127.0.0.1:{port}"

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # ---- robots

    def add(self, platform: str, token: str | None = None, **options: Any) -> FakeRobot:
        limit, per_second = DEFAULT_LIMITS[platform]
        options.setdefault("limit", limit)
        options.setdefault("per_second", per_second)
        options.setdefault("window", self.window)
        token = token or f"{platform}-robot-{next(self._counter)}"
        robot = FakeRobot(platform=platform, token=token, _server=self, **options)
        self.robots[(EMULATORS[platform].family, token)] = robot
        return robot

    def wecom(self, key: str | None = None, **options: Any) -> FakeRobot:
        return self.add("wecom", key, **options)

    def dingtalk(self, token: str | None = None, **options: Any) -> FakeRobot:
        return self.add("dingtalk", token, **options)

    def feishu(self, token: str | None = None, **options: Any) -> FakeRobot:
        return self.add("feishu", token, **options)

    def lark(self, token: str | None = None, **options: Any) -> FakeRobot:
        return self.add("lark", token, **options)

    def slack(self, path: str | None = None, **options: Any) -> FakeRobot:
        return self.add("slack", path or f"T0001/B000{next(self._counter)}/slacksecretpath", **options)

    def generic(self, name: str | None = None, **options: Any) -> FakeRobot:
        return self.add("generic", name, **options)

    def received(self, robot: FakeRobot | str) -> list[Received]:
        if isinstance(robot, str):
            robot = next(r for r in self.robots.values() if robot in (r.name, r.token))
        return robot.received

    # ---- serving

    async def _handle(self, request: web.Request) -> web.Response:
        now = self.clock()
        raw = await request.read()
        emulator = EMULATORS.for_path(request.path)
        if emulator is None:
            return web.Response(status=404, text="not found")
        incoming = Incoming(request.path, request.rel_url.raw_query_string, dict(request.headers), raw, now)
        robot = self.robots.get((emulator.family, emulator.token_of(incoming)))
        if robot is not None and robot.revoked:
            robot_known = None
        else:
            robot_known = robot
        if robot is not None:
            await robot.wait_if_held()
        answer = robot.scripted(emulator) if robot is not None else None
        accepted = False
        if answer is None:
            answer = emulator.check(robot_known, incoming)
            accepted = answer.accepted
        if robot is not None:
            robot.requests.append(self._record(robot, incoming, answer, accepted, emulator))
        return web.Response(status=answer.status, body=answer.body, headers=answer.headers)

    @staticmethod
    def _record(robot: FakeRobot, incoming: Incoming, answer: Answer, accepted: bool, emulator: Emulator) -> Received:
        text, notified = emulator.visible(incoming.json) if accepted else ("", frozenset())
        return Received(
            at=incoming.now,
            robot=robot.name,
            path=incoming.path,
            query=incoming.query,
            headers=incoming.headers,
            raw=incoming.raw,
            json=incoming.json,
            status=answer.status,
            answer=answer.body,
            accepted=accepted,
            text=text,
            notified=notified,
        )


async def deliver(
    session: aiohttp.ClientSession,
    platform: Platform,
    channel: ChannelBase,
    message: Message,
    now: float,
) -> list[DeliveryError | None]:
    """build → prepare → POST → read_answer for every body, in order, as the dispatcher does."""
    return [await send(session, platform, channel, body, now) for body in platform.build(channel, message)]


async def send(
    session: aiohttp.ClientSession, platform: Platform, channel: ChannelBase, body: dict[str, Any], now: float
) -> DeliveryError | None:
    """Send one stored body through the adapter; the DeliveryError it raised, or None."""
    request = platform.prepare(channel, body, now)
    async with session.post(request.url, data=request.body, headers=dict(request.headers)) as response:
        answer = await response.read()
        try:
            platform.read_answer(response.status, response.headers, answer)
        except DeliveryError as error:
            return error
    return None


@dataclass
class PlatformEnv:
    """Fakes, a manual clock and one client session: what an adapter test needs."""

    fakes: FakePlatforms
    clock: ManualClock
    session: aiohttp.ClientSession

    async def deliver(self, channel: ChannelBase, message: Message) -> list[DeliveryError | None]:
        return await deliver(self.session, platform_for(channel), channel, message, self.clock.now)

    async def send(self, channel: ChannelBase, body: dict[str, Any], now: float | None = None) -> DeliveryError | None:
        """Send one body, signed at ``now`` (default: the fake's clock, i.e. clocks agree)."""
        at = self.clock.now if now is None else now
        return await send(self.session, platform_for(channel), channel, body, at)


@asynccontextmanager
async def platform_env(now: float = 1_700_000_000.0) -> AsyncIterator[PlatformEnv]:
    clock = ManualClock(now)
    async with FakePlatforms(clock=clock) as fakes, aiohttp.ClientSession() as session:
        yield PlatformEnv(fakes, clock, session)
