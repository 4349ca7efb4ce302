"""The dispatcher: takes due outbox rows and sends them, robot by robot, in order.

Each robot (a webhook) has its own ordered lane and task, so one send at a time per robot keeps
its messages in order and within its rate limit, while a slow or broken robot holds up nobody
else. A semaphore bounds how many sends are in flight across all robots. Results are written
in batches by one writer (group commit); a lane waits for its result to be stored before it
sends the next message, so a message answered "ok" is marked sent before anything else happens.

``run_once()`` is burst mode (tests, CLI): send everything due now, then return.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import random
import re
import socket
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any

import aiohttp

from bot import outbox
from bot.outbox import DEAD, DRY_RUN, PENDING, SENT, Claimed, Result
from bot.platforms.base import ChannelBase, DeliveryError, FailureKind, Message, Platform
from bot.platforms.markup import redact_url
from bot.ratelimit import RobotLimiter, rules_for
from bot.settings import Settings
from storage.db import Database
from storage.models import utcnow

log = logging.getLogger(__name__)

_URL = re.compile(r"https?://[^\s\"'<>)\]]+")


def redact(text: str) -> str:
    """Every URL in ``text`` with its keys, tokens and path secrets masked."""
    return _URL.sub(lambda m: redact_url(m.group(0)), text)


ChannelFor = Callable[[str], ChannelBase | None]
PlatformFor = Callable[[ChannelBase], Platform]


def _registry_platform_for(channel: ChannelBase) -> Platform:
    from bot.platforms.registry import platform_for  # type: ignore[attr-defined]

    return platform_for(channel)  # type: ignore[no-any-return]


@dataclass
class Stats:
    sent: int = 0
    dry_run: int = 0
    retried: int = 0
    dead: int = 0
    lost_lease: int = 0


@dataclass
class _Lane:
    """One robot's ordered queue and the task that works through it."""

    robot: str
    rows: deque[Claimed] = field(default_factory=deque)
    limiter: RobotLimiter | None = None
    last: asyncio.Future[bool] | None = None  # the previous result, until it is stored
    task: asyncio.Task[None] | None = None


class Dispatcher:
    """Sends outbox rows. Owns its tasks; the database and HTTP session are the service's."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        channel_for: ChannelFor,
        http: aiohttp.ClientSession,
        *,
        clock: Callable[[], datetime] = utcnow,
        platform_for: PlatformFor = _registry_platform_for,
        admin_channel: Callable[[], str | None] = lambda: None,
        owner: str | None = None,
        claim_batch: int = 2000,
        max_held: int = 10000,
        lease_seconds: float = 60.0,
        poll_seconds: float = 5.0,
        backoff_base: float = 2.0,
        backoff_max: float = 600.0,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.db, self.settings, self._http = db, settings, http
        self._channel_for, self._platform_for = channel_for, platform_for
        self._admin_channel, self._clock, self._rng = admin_channel, clock, rng
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.claim_batch, self.max_held = claim_batch, max_held
        self.lease_seconds, self.poll_seconds = lease_seconds, poll_seconds
        self.backoff_base, self.backoff_max = backoff_base, backoff_max
        self.stats = Stats()
        self._sem = asyncio.Semaphore(settings.send_concurrency)
        # SQLite has one writer at a time and its busy handler sleeps in coarse steps: taking
        # turns here (claims vs. result batches) is much faster than colliding in SQLite.
        self._write_lock = asyncio.Lock() if db.is_sqlite else outbox.NoLock()
        self._writer = outbox.ResultWriter(db, self.owner, self._write_lock)
        self._lanes: dict[str, _Lane] = {}
        self._held: set[int] = set()
        self._wake = asyncio.Event()
        self._stopped = asyncio.Event()
        self._accepting = False
        self._full = False  # max_held reached: a robot finishing should trigger a refill
        self._max_retry_wait = math.inf
        self._tasks: list[asyncio.Task[None]] = []

    # ---- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        self._accepting = True
        self._stopped.clear()
        self._tasks = [asyncio.create_task(self._loop()), asyncio.create_task(self._heartbeat())]

    def wake(self) -> None:
        """New rows were enqueued: look now instead of at the next poll."""
        self._wake.set()

    async def stop(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109 (a grace period)
        """Stop taking work, wait up to ``timeout`` for sends in flight, cancel the rest."""
        self._accepting = False
        self._stopped.set()
        self._wake.set()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        lanes = [lane.task for lane in self._lanes.values() if lane.task]
        _, late = await asyncio.wait(lanes, timeout=timeout) if lanes else (set(), set())
        for task in late:
            task.cancel()
        await asyncio.gather(*late, return_exceptions=True)
        if self._writer.task:
            with suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(self._writer.task, timeout=max(timeout, 1.0))
        returned = await outbox.release(self.db, self.owner)
        s = self.stats
        log.info(
            "发送器已停止：已发送 %d 条，演练 %d 条，重试 %d 次，失败 %d 条；"
            "中断 %d 个发送，%d 条未发消息已交还，下次启动继续",
            s.sent, s.dry_run, s.retried, s.dead, len(late), returned,
        )

    async def run_once(self, max_retry_wait: float = 60.0) -> Stats:
        """Burst mode: send everything due now and return.

        Retries that are due within ``max_retry_wait`` seconds are waited for; a robot whose
        next retry is later is left pending (in order) for the service or the next run.
        """
        self._accepting, self._max_retry_wait = True, max_retry_wait
        self._stopped.clear()
        heartbeat = asyncio.create_task(self._heartbeat())
        try:
            while True:
                # Refill at half empty (few claim queries, no lull while the last robots finish);
                # once nothing more is due, wait for every robot, then look again (admin notices).
                low = len(self._held) <= self.max_held // 2
                exhausted = await self._fill() if low else False
                running = [lane.task for lane in self._lanes.values() if lane.task]
                if not running:
                    if exhausted:
                        break
                    continue
                when = asyncio.ALL_COMPLETED if exhausted else asyncio.FIRST_COMPLETED
                await asyncio.wait(running, return_when=when)
            await self._writer.flush()
        finally:
            heartbeat.cancel()
            await asyncio.gather(heartbeat, return_exceptions=True)
            self._accepting, self._max_retry_wait = False, math.inf
        return self.stats

    # ---- claiming --------------------------------------------------------------------------

    async def _loop(self) -> None:
        while self._accepting:
            self._wake.clear()
            try:
                await self._fill()
            except Exception as exc:
                log.warning("领取待发消息失败，稍后重试：%s", type(exc).__name__)
            with suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.poll_seconds)

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.lease_seconds / 3)
            with suppress(Exception):
                await outbox.renew(self.db, self.owner, self._clock(), self.lease_seconds)

    async def _fill(self) -> bool:
        """Claim due rows (up to ``max_held`` in hand) for the robots' lanes.

        Returns True when everything due was claimed, False when ``max_held`` stopped it.
        """
        self._full = False
        while self._accepting:
            room = min(self.claim_batch, self.max_held - len(self._held))
            if room <= 0:
                self._full = True
                return False
            async with self._write_lock:
                rows = await outbox.claim(
                    self.db, self.owner, room, self._clock(), self.lease_seconds
                )
            for row in rows:
                self._route(row)
            if len(rows) < room:
                return True
        return True

    def _route(self, row: Claimed) -> None:
        if row.id in self._held:
            return
        self._held.add(row.id)
        lane = self._lanes.setdefault(row.robot, _Lane(row.robot))
        lane.rows.append(row)
        if lane.task is None:
            lane.task = asyncio.create_task(self._run_lane(lane))

    # ---- one robot -------------------------------------------------------------------------

    async def _run_lane(self, lane: _Lane) -> None:
        try:
            while lane.rows and self._accepting:
                row = lane.rows[0]
                try:
                    delay = await self._deliver(lane, row)
                except Exception:
                    log.exception("发送消息 %s 时出现内部错误", row.id)
                    error = DeliveryError(FailureKind.RETRY, "内部错误")
                    delay = await self._failed(lane, row, error)
                if delay is None:
                    lane.rows.popleft()
                    self._held.discard(row.id)
                elif delay > self._max_retry_wait:
                    await self._give_back(lane)
                else:
                    await self._pause(delay)
        finally:
            lane.task = None
            if not lane.rows:
                self._lanes.pop(lane.robot, None)
            if self._full:
                self._wake.set()

    async def _pause(self, seconds: float) -> None:
        # Sleep until the retry is due, but end early when the dispatcher stops.
        with suppress(TimeoutError):
            await asyncio.wait_for(self._stopped.wait(), timeout=seconds)

    async def _give_back(self, lane: _Lane) -> None:
        await self._writer.flush()  # a retry's result must be stored while the lease is ours
        ids = [row.id for row in lane.rows if row.id is not None]
        lane.rows.clear()
        self._held.difference_update(ids)
        await outbox.release(self.db, self.owner, ids)

    async def _deliver(self, lane: _Lane, row: Claimed) -> float | None:
        """Send one row. Returns the delay before a retry, or None when the row is settled."""
        channel = self._channel_for(row.channel_id)
        if channel is None:
            message = f"频道“{row.channel_id}”已不在配置中"
            return await self._failed(lane, row, DeliveryError(FailureKind.CONFIG, message))
        if self.settings.dry_run or channel.dry_run:
            log.info(
                "演练模式，未发送：频道“%s”（%s）%s：%s",
                channel.name, row.platform, row.summary, redact(_short_json(row.body)),
            )
            self._finish(lane, Result(row.id, DRY_RUN, self._clock()))
            return None
        adapter = self._platform_for(channel)
        if lane.limiter is None:
            window = self.settings.rate_window_seconds
            lane.limiter = RobotLimiter(rules_for(channel, adapter.limits, window))
        await lane.limiter.wait()
        status: int | None = None
        try:
            if lane.last is not None and not lane.last.done():
                # The previous message's result is stored before the next one goes out,
                # so a crash can leave at most one message per robot unrecorded.
                await asyncio.wait([lane.last])
            async with self._sem:
                status, headers, payload = await self._post(adapter, channel, row, lane.limiter)
            adapter.read_answer(status, headers, payload)
        except DeliveryError as err:
            return await self._failed(lane, row, err, status, channel)
        self._finish(lane, Result(row.id, SENT, self._clock(), http_status=status))
        return None

    async def _post(
        self, adapter: Platform, channel: ChannelBase, row: Claimed, limiter: RobotLimiter
    ) -> tuple[int, Mapping[str, str], bytes]:
        request = adapter.prepare(channel, row.body, time.time())
        timeout = self.settings.send_timeout_seconds
        try:
            # aiohttp's own total timeout covers connect, send and reading the answer.
            async with self._http.post(
                request.url, data=request.body, headers=dict(request.headers),
                timeout=aiohttp.ClientTimeout(total=timeout),
            ) as response:
                return response.status, response.headers, await response.read()
        except TimeoutError:
            raise DeliveryError(FailureKind.RETRY, f"发送超时（{timeout:g} 秒内无答复）") from None
        except (aiohttp.ClientError, OSError) as exc:
            # The exception text can hold the URL; name the kind of failure only.
            raise DeliveryError(FailureKind.RETRY, f"连接失败（{type(exc).__name__}）") from None
        finally:
            limiter.record()  # failed sends count against the platform's limit too

    # ---- results ---------------------------------------------------------------------------

    def _finish(self, lane: _Lane, result: Result) -> None:
        """Hand a result to the batch writer; the lane's next send waits until it is stored."""
        lane.last = self._writer.submit(result)
        lane.last.add_done_callback(partial(self._recorded, result))

    def _recorded(self, result: Result, stored: asyncio.Future[bool]) -> None:
        if stored.cancelled() or stored.exception() is not None:
            return
        if not stored.result():
            self.stats.lost_lease += 1
            log.warning("消息 %s 的租约已被其他实例接管，结果未写入", result.outbox_id)
        elif result.status == SENT:
            self.stats.sent += 1
        elif result.status == DRY_RUN:
            self.stats.dry_run += 1

    async def _failed(
        self,
        lane: _Lane,
        row: Claimed,
        err: DeliveryError,
        status: int | None = None,
        channel: ChannelBase | None = None,
    ) -> float | None:
        attempt = row.attempts + 1
        now = self._clock()
        reason = redact(err.message)
        if err.permanent or attempt >= self.settings.max_attempts:
            if not err.permanent:
                reason = f"已尝试 {attempt} 次仍未成功，最后一次：{reason}"
            result = Result(row.id, DEAD, now, reason, err.kind.value, status)
            self._finish(lane, result)
            self.stats.dead += 1
            name = channel.name if channel else row.channel_id
            log.warning("消息投递失败（频道“%s”，%s）：%s", name, row.summary, reason)
            await self._tell_admin(row, name, reason)
            return None
        delay = self._backoff(attempt, err.retry_after)
        retry_at = now + timedelta(seconds=delay)
        self._finish(lane, Result(row.id, PENDING, now, reason, err.kind.value,
                                       status, retry_at))
        row.attempts = attempt
        self.stats.retried += 1
        log.info("消息 %s 未发出，%.1f 秒后重试（第 %d 次）：%s", row.id, delay, attempt, reason)
        return delay

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        """Exponential backoff with jitter (50-100 %), never sooner than the platform asked."""
        delay = min(self.backoff_max, self.backoff_base * 2 ** (attempt - 1))
        delay *= 0.5 + self._rng() / 2
        return max(delay, retry_after or 0.0)

    async def _tell_admin(self, row: Claimed, channel_name: str, reason: str) -> None:
        """Queue a notice to the admin channel (never about the admin channel's own failures)."""
        admin_id = self._admin_channel()
        if not admin_id or admin_id == row.channel_id or row.stage == "admin":
            return
        admin = self._channel_for(admin_id)
        if admin is None:
            return
        try:
            adapter = self._platform_for(admin)
            text = (
                f"**消息投递失败**\n\n> 频道：{channel_name}\n> 内容：{row.summary}\n"
                f"> 原因：{reason}\n\n请检查该群机器人的设置"
                "（Webhook、加签密钥、关键词、IP 白名单）。"
            )
            bodies = adapter.build(admin, Message(title="消息投递失败", markdown=text))
            async with self.db.session() as session:
                await outbox.enqueue(
                    session, dedupe_key=f"admin:dead:{row.id}", channel=admin,
                    platform=getattr(admin, "platform", adapter.name), bodies=bodies,
                    stage="admin", summary=f"投递失败通知：{channel_name}",
                    now=self._clock(),
                )
                await session.commit()
        except Exception as exc:
            log.warning("无法通知管理员频道：%s", type(exc).__name__)
            return
        self.wake()


def _short_json(body: Any, limit: int = 2000) -> str:
    text = json.dumps(body, ensure_ascii=False)
    return text if len(text) <= limit else text[:limit] + "…"
