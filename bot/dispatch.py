"""The dispatcher: claims robot lanes and sends their messages, robot by robot, in order.

Each robot (a webhook) has its own ordered lane, held in the database by one instance at a time
(:mod:`bot.lanes`): the instance claims free lanes up to its fair share, adopts their pending
rows, renews the leases with its heartbeat and lets a lane go once it is empty. The robot's
recent send times are stored with each result, so its rate window holds across owners.

A fixed pool of ``send_concurrency`` workers takes ready lanes from a queue and sends one
message per turn: mark it in flight (``sending_since``), call the platform, store the result,
each write awaited through the group-commit writer (so one transaction carries every worker's
items). A worker takes its next message only once the last answer is durable, so a SIGKILL can
repeat at most the ``send_concurrency`` messages in flight, and their re-sends are recorded as
possible duplicates. A lane is back in the queue only after its result (or its rate-limit or
retry timer), so each robot sends one message at a time, in order and within its rate limit.

``run_once()`` is burst mode (tests, CLI): send everything due now, then return.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import random
import time
from collections import deque
from collections.abc import Callable, Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import aiohttp

from bot import lanes, outbox
from bot.deadletters import DeadDigest
from bot.metrics import LANES_HELD, MESSAGES, POSSIBLE_DUPLICATES, RETRIES
from bot.outbox import DEAD, DRY_RUN, PENDING, SENT, Claimed, Result
from bot.platforms.base import ChannelBase, DeliveryError, FailureKind, Platform
from bot.platforms.markup import redact
from bot.platforms.registry import platform_for as registry_platform_for
from bot.ratelimit import RobotLimiter, rules_for
from bot.repeats import RepeatedFailure
from bot.settings import Settings
from storage.db import Database
from storage.models import utcnow

log = logging.getLogger(__name__)

# Seconds before a rate-limit pause ends at which the next row's in-flight mark is written, so the
# send at the end of the pause does not wait for that commit. A crash within this lead re-sends the
# row marked as a possible duplicate although it never left; the mark must precede the send anyway.
PREMARK_LEAD = 0.25

ChannelFor = Callable[[str], ChannelBase | None]
PlatformFor = Callable[[ChannelBase], Platform]


@dataclass
class Stats:
    sent: int = 0
    dry_run: int = 0
    retried: int = 0
    dead: int = 0
    lost_lease: int = 0


@dataclass
class _Lane:
    """One robot's ordered queue. ``busy`` while it is queued, sending or waiting on a timer."""

    robot: str
    rows: deque[Claimed] = field(default_factory=deque)
    limiter: RobotLimiter | None = None
    channel: ChannelBase | None = None  # the config the adapter below was picked for
    adapter: Platform | None = None
    busy: bool = False
    timer: asyncio.TimerHandle | None = None
    seed: list[float] = field(default_factory=list)  # stored send times (epoch s) for the limiter
    # The head row's in-flight mark, written shortly before a rate-limit pause ends (see
    # ``PREMARK_LEAD``): (row id, the writer's future), and the timer that will write it.
    premark: tuple[int, asyncio.Future[bool]] | None = None
    premark_timer: asyncio.TimerHandle | None = None


class Dispatcher:
    """Sends outbox rows. Owns its tasks; the database and HTTP session are the service's.

    A fixed pool of ``send_concurrency`` workers takes robots from a ready queue, one message per
    turn. A robot is in the queue at most once and goes back only after its last result is
    stored (or after its rate-limit or retry timer), so each robot sends one message at a time,
    in order, and a slow robot ties up one worker, never the others.
    """

    def __init__(
        self,
        db: Database,
        settings: Settings,
        channel_for: ChannelFor,
        http: aiohttp.ClientSession,
        *,
        clock: Callable[[], datetime] = utcnow,
        platform_for: PlatformFor = registry_platform_for,
        admin_channel: Callable[[], str | None] = lambda: None,
        owner: str | None = None,
        max_held: int | None = None,
        lease_seconds: float | None = None,
        poll_seconds: float | None = None,
        backoff_base: float | None = None,
        backoff_max: float | None = None,
        rng: Callable[[], float] = random.random,
        ticks: dict[str, datetime] | None = None,
    ) -> None:
        self.db, self.settings, self._http = db, settings, http
        self._channel_for, self._platform_for = channel_for, platform_for
        self._admin_channel, self._clock, self._rng = admin_channel, clock, rng
        self.owner = owner or lanes.instance_id()
        self.max_held = settings.claim_rows_max if max_held is None else max_held
        self.lease_seconds = settings.lane_lease_seconds if lease_seconds is None else lease_seconds
        self.poll_seconds = settings.claim_poll_seconds if poll_seconds is None else poll_seconds
        self.beat_seconds, self.stale_seconds = settings.heartbeat_seconds, settings.heartbeat_stale_seconds
        # Defaults ride out a platform outage of about half an hour before a message is dead.
        self.backoff_base = settings.retry_base_seconds if backoff_base is None else backoff_base
        self.backoff_max = settings.retry_max_seconds if backoff_max is None else backoff_max
        self.stats = Stats()
        self.ticks = ticks if ticks is not None else {}
        self._timeout = aiohttp.ClientTimeout(total=settings.send_timeout_seconds)
        # Claims, lease renewals and result batches take turns: SQLite has one writer at a time
        # (and its busy handler sleeps in coarse steps), and on PostgreSQL a renewal and a batch
        # touching the same lanes in different orders could deadlock.
        self._write_lock = asyncio.Lock()
        self._writer = outbox.ResultWriter(db, self.owner, self._write_lock)
        self._started_at = clock()
        self._beat_ok = time.monotonic()  # last heartbeat stored (monotonic seconds)
        self._fair = True  # take only a fair share of the lanes (off in burst mode)
        self._lanes: dict[str, _Lane] = {}
        self._mine: set[str] = set()  # lanes held in the database
        self._releasing: set[str] = set()  # lanes being let go (their new rows are not taken)
        self._held: set[int] = set()
        self._ready: asyncio.Queue[_Lane | None] = asyncio.Queue()
        self._busy = 0  # lanes queued, sending or waiting on a timer
        self._idle = asyncio.Event()
        self._idle.set()
        self._full = False  # max_held was reached: a finishing robot should trigger a refill
        self._wake = asyncio.Event()
        self._accepting = False
        self._max_retry_wait = math.inf
        self._tasks: list[asyncio.Task[None]] = []
        self._workers: list[asyncio.Task[None]] = []
        self._side: set[asyncio.Task[None]] = set()  # give-backs and admin notices in progress
        self._premarked: list[int] = []  # rows marked in flight during a pause, unsent at stop
        self._dead = DeadDigest(db, channel_for=channel_for, platform_for=platform_for, admin_channel=admin_channel,
                                clock=clock, wake=self.wake, window_seconds=settings.dead_digest_seconds)

    # ---- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        self._accepting = True
        try:
            await self._beat()
        except Exception as exc:
            log.warning("记录实例心跳失败，稍后重试：%s", type(exc).__name__)
        self._start_workers()
        self._tasks = [asyncio.create_task(self._loop()), asyncio.create_task(self._heartbeat())]

    def wake(self) -> None:
        """New rows were enqueued: look now instead of at the next poll."""
        self._wake.set()

    async def stop(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109 (a grace period)
        """Stop taking work, wait up to ``timeout`` for sends in flight, cancel the rest."""
        self._accepting = False
        self._wake.set()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        late = await self._stop_workers(timeout)
        await asyncio.gather(*self._side, return_exceptions=True)
        await self._dead.flush()
        if self._writer.task:
            with suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(self._writer.task, timeout=max(timeout, 1.0))
        returned = await self._leave()
        s = self.stats
        log.info(
            "发送器已停止：已发送 %d 条，%s %d 条，重试 %d 次，失败 %d 条；"
            "中断 %d 个发送，%d 条未发消息已交还，下次启动继续",
            s.sent, "演练未发送" if self.settings.dry_run else "未配置 webhook 只记录", s.dry_run,
            s.retried, s.dead, late, returned,
        )

    async def run_once(self, max_retry_wait: float = 60.0) -> Stats:
        """Burst mode: send everything due now and return.

        Retries that are due within ``max_retry_wait`` seconds are waited for; a robot whose
        next retry is later is left pending (in order) for the service or the next run. Burst
        mode takes every free lane (no fair share) and lets go of all of them at the end.
        """
        self._accepting, self._max_retry_wait, self._fair = True, max_retry_wait, False
        await self._beat()
        self._start_workers()
        heartbeat = asyncio.create_task(self._heartbeat())
        try:
            while True:
                # Refill at half empty (few claim queries, no lull while the last robots finish);
                # once nothing more is due, wait for every robot, then look again (admin notices).
                low = len(self._held) <= self.max_held // 2
                exhausted = await self._fill() if low else False
                if self._busy == 0 and not self._side:
                    if exhausted and not await self._dead.flush():  # idle: tell the admin now
                        break
                    continue
                self._wake.clear()
                waits = [asyncio.ensure_future(self._idle.wait())]
                if not exhausted:
                    waits.append(asyncio.ensure_future(self._wake.wait()))
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                for w in waits:
                    w.cancel()
                await asyncio.gather(*self._side, return_exceptions=True)
            await self._writer.flush()
        finally:
            heartbeat.cancel()
            await asyncio.gather(heartbeat, return_exceptions=True)
            self._accepting, self._max_retry_wait, self._fair = False, math.inf, True
            await self._stop_workers(5.0)
            await self._writer.flush()
            await self._leave()
        return self.stats

    async def _leave(self) -> int:
        """Let go of every lane and unsent row; drop the heartbeat. Returns rows given back."""
        self._mine.clear()
        self._releasing.clear()
        LANES_HELD.set(0)
        unsent, self._premarked = self._premarked, []
        try:
            if unsent:
                await outbox.unmark(self.db, self.owner, unsent)
            return await lanes.leave(self.db, self.owner)
        except Exception as exc:
            log.warning("交还机器人通道失败（其他实例将在租约到期后接手）：%s", type(exc).__name__)
            return 0

    def _start_workers(self) -> None:
        if not self._workers:
            count = max(1, self.settings.send_concurrency)
            self._workers = [asyncio.create_task(self._worker()) for _ in range(count)]

    async def _stop_workers(self, timeout: float) -> int:  # noqa: ASYNC109
        """Let idle workers go, give busy ones ``timeout`` to finish; returns sends cut off."""
        for lane in self._lanes.values():
            if lane.timer is not None:
                lane.timer.cancel()
            if lane.premark_timer is not None:
                lane.premark_timer.cancel()
            if lane.premark is not None:  # marked during a pause, never sent: not a possible duplicate
                self._premarked.append(lane.premark[0])
        for _ in self._workers:
            self._ready.put_nowait(None)
        late: set[asyncio.Task[None]] = set()
        if self._workers:
            _, late = await asyncio.wait(self._workers, timeout=timeout)
        for task in late:
            task.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        self._workers = []
        self._ready = asyncio.Queue()
        self._lanes.clear()
        self._held.clear()
        self._busy = 0
        self._idle.set()
        return len(late)

    # ---- claiming --------------------------------------------------------------------------

    async def _loop(self) -> None:
        failing = RepeatedFailure(log, "领取机器人通道失败，稍后重试")
        while self._accepting:
            self._wake.clear()
            self.ticks["dispatcher"] = self._clock()
            try:
                await self._fill()
                failing.ok()
            except Exception as exc:
                failing.failed(exc)
            with suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.poll_seconds)

    async def _beat(self) -> None:
        now = self._clock()
        await lanes.beat(self.db, self.owner, now, self._started_at)
        async with self._write_lock:
            still = await lanes.renew(self.db, self.owner, now, self.lease_seconds)
        self._beat_ok = time.monotonic()
        for robot in self._mine - still - self._releasing:
            self._lost(robot)

    async def _heartbeat(self) -> None:
        """Beat and renew the lanes' leases every ``heartbeat_seconds``."""
        failing = RepeatedFailure(log, "记录实例心跳失败")
        while True:
            await asyncio.sleep(self.beat_seconds)
            try:
                await self._beat()
                failing.ok()
            except Exception as exc:
                failing.failed(exc)

    def _alive(self) -> bool:
        """Whether our heartbeat is fresh enough that nobody can have taken our lanes."""
        return time.monotonic() - self._beat_ok < self.stale_seconds - self.beat_seconds / 2

    def _lost(self, robot: str) -> None:
        """Another instance took this lane (we were silent too long): drop its rows here."""
        self._mine.discard(robot)
        lane = self._lanes.get(robot)
        if lane is not None:
            self._held.difference_update(row.id for row in lane.rows)
            lane.rows.clear()
        log.warning("机器人通道 %s 已由其他实例接手", robot)
        LANES_HELD.set(len(self._mine))

    async def _fill(self) -> bool:
        """Claim free lanes (up to a fair share) and adopt their rows (up to ``max_held``).

        Returns True when nothing more is there to take now.
        """
        self._full = False
        if not self._accepting:
            return True
        now = self._clock()
        room = self.max_held - len(self._held)
        limit = self.settings.claim_lanes_max
        share = await lanes.fair_share(self.db, now, self.stale_seconds) if self._fair else limit
        want = min(limit, share) - len(self._mine) if room > 0 else 0
        async with self._write_lock:
            won, more = await lanes.claim(self.db, self.owner, now, want, self.lease_seconds,
                                          self.stale_seconds)
            self._mine.update(won)
            rows = await lanes.adopt(self.db, self.owner, list(won), max(room, 0))
        for robot, recent in won.items():
            self._lanes.setdefault(robot, _Lane(robot)).seed = recent
        for row in rows:
            self._route(row)
        for robot in won:
            lane = self._lanes.get(robot)
            if lane is not None and not lane.rows and not lane.busy:
                self._let_go(lane)  # its rows were sent by the last owner meanwhile
        LANES_HELD.set(len(self._mine))
        self._full = room <= 0 or len(rows) >= room
        return not more and not self._full

    def _route(self, row: Claimed) -> None:
        if row.id in self._held or row.robot not in self._mine or row.robot in self._releasing:
            return  # a lane being let go: its next owner takes the row
        self._held.add(row.id)
        lane = self._lanes.setdefault(row.robot, _Lane(row.robot))
        if row.maybe_sent:
            lane.seed.append(time.time())  # the platform may have counted it just now
        lane.rows.append(row)
        self._schedule(lane)

    def _let_go(self, lane: _Lane) -> None:
        """The lane is empty: give it up (after its last result, in the writer's next batch)."""
        self._lanes.pop(lane.robot, None)
        if lane.robot not in self._mine:
            return
        self._mine.discard(lane.robot)
        self._releasing.add(lane.robot)
        self._writer.let_go(lane.robot).add_done_callback(
            lambda _: self._releasing.discard(lane.robot))
        LANES_HELD.set(len(self._mine))

    # ---- one robot at a time ---------------------------------------------------------------

    def _schedule(self, lane: _Lane, delay: float = 0.0) -> None:
        """Put an idle lane with work in the ready queue, now or after ``delay`` seconds."""
        if lane.busy or not lane.rows or not self._accepting:
            return
        lane.busy = True
        self._busy += 1
        self._idle.clear()
        if delay > 0:
            lane.timer = asyncio.get_running_loop().call_later(delay, self._ready.put_nowait, lane)
        else:
            self._ready.put_nowait(lane)

    def _release(self, lane: _Lane, delay: float = 0.0) -> None:
        """The lane's turn is over; it goes back in line if it has more to send."""
        lane.busy, lane.timer = False, None
        self._busy = max(0, self._busy - 1)
        if lane.rows:
            self._schedule(lane, delay)
        elif self._lanes.get(lane.robot) is lane:
            self._let_go(lane)
        if self._busy == 0:
            self._idle.set()
        if self._full and len(self._held) <= self.max_held // 2:
            self._full = False
            self._wake.set()  # room for more: claim again

    async def _worker(self) -> None:
        while True:
            lane = await self._ready.get()
            if lane is None:
                return
            lane.timer = None
            if not self._accepting:
                continue  # its rows are released at stop
            try:
                await self._turn(lane)
            except Exception:
                log.exception("发送器内部错误（机器人 %s）", lane.robot)
                self._release(lane, 1.0)

    async def _turn(self, lane: _Lane) -> None:
        """Send the lane's messages while they can go at once (or wait for its rate limit).

        Each answer is stored together with the in-flight mark of the lane's next message (one
        commit), then that message is sent by the same worker: one commit per message.
        """
        marked = False  # the first row's in-flight mark is already stored
        while lane.rows:
            row = lane.rows[0]
            channel = self._channel_for(row.channel_id)
            if channel is None:
                message = f"频道“{row.channel_id}”已不在配置中"
                await self._failed(lane, row, DeliveryError(FailureKind.CONFIG, message))
                return
            if self.settings.dry_run or channel.dry_run:
                log.info(
                    "只记录、不发送（%s）：频道“%s”（%s）%s：%s",
                    "演练" if self.settings.dry_run else "未配置 webhook",
                    channel.name, row.platform, row.summary, redact(_short_json(row.body)),
                )
                await self._finish(lane, row, Result(row.id, DRY_RUN, self._clock()))
                return
            if lane.channel is not channel or lane.adapter is None:  # first turn, or a reload
                lane.channel, lane.adapter = channel, self._platform_for(channel)
            adapter = lane.adapter
            if lane.limiter is None:
                window = self.settings.rate_window_seconds
                # Wall-clock seconds: the window is stored and read by other instances.
                lane.limiter = RobotLimiter(rules_for(channel, adapter.limits, window), clock=time.time)
                lane.limiter.seed(lane.seed)
            if not marked:
                pause = lane.limiter.pause() if self._alive() else 1.0
                if pause > 0:
                    # A hair over the exact time so the platform's own clock agrees the slot is free.
                    lane.busy = False
                    self._busy = max(0, self._busy - 1)
                    self._premark_later(lane, row, pause)
                    self._schedule(lane, pause + 0.001)
                    return
                if not await self._begin(lane, row):  # in flight, durably, first
                    self._lost(lane.robot)
                    self._release(lane)
                    return
            status: int | None = None
            try:
                status, headers, payload = await self._post(adapter, channel, row, lane.limiter)
                adapter.read_answer(status, headers, payload)
            except DeliveryError as err:
                await self._failed(lane, row, err, status, channel, sent=True)
                return
            except Exception:
                log.exception("发送消息 %s 时出现内部错误", row.id)
                error = DeliveryError(FailureKind.RETRY, "内部错误")
                await self._failed(lane, row, error, status, channel, sent=True)
                return
            result = Result(row.id, SENT, self._clock(), http_status=status)
            marked = await self._finish(lane, row, result, sent=True, chain=self._next_now(lane))
            if not marked:
                return
        self._release(lane)  # taken over meanwhile: nothing left here

    def _premark_later(self, lane: _Lane, row: Claimed, pause: float) -> None:
        """Write ``row``'s in-flight mark ``PREMARK_LEAD`` before the pause ends (long pauses only)."""
        if pause <= 2 * PREMARK_LEAD or lane.premark is not None or lane.premark_timer is not None:
            return

        def mark() -> None:
            lane.premark_timer = None
            if self._accepting and lane.rows and lane.rows[0] is row and self._lanes.get(lane.robot) is lane:
                lane.premark = (row.id, self._writer.begin(row.id, self._clock()))

        lane.premark_timer = asyncio.get_running_loop().call_later(pause - PREMARK_LEAD, mark)

    async def _begin(self, lane: _Lane, row: Claimed) -> bool:
        """The row's in-flight mark, stored: the one written during the pause, or a new one now."""
        early, lane.premark = lane.premark, None
        if lane.premark_timer is not None:  # the pause was cut short: write it now instead
            lane.premark_timer.cancel()
            lane.premark_timer = None
        if early is not None and early[0] == row.id:
            return await early[1]
        return await self._writer.begin(row.id, self._clock())

    def _next_now(self, lane: _Lane) -> Claimed | None:
        """The lane's next row if it may be sent right after this one (same worker, no wait)."""
        if len(lane.rows) < 2 or not self._accepting or not self._alive() or lane.limiter is None:
            return None
        return lane.rows[1] if lane.limiter.pause() <= 0 else None

    async def _post(
        self, adapter: Platform, channel: ChannelBase, row: Claimed, limiter: RobotLimiter
    ) -> tuple[int, Mapping[str, str], bytes]:
        timeout = self.settings.send_timeout_seconds
        send = getattr(adapter, "send", None)  # an app sender: access token, one refresh when invalid
        try:
            if send is not None:
                return await send(self._http, channel, row.body, time.time(), self._timeout)  # type: ignore[no-any-return]
            request = adapter.prepare(channel, row.body, time.time())
            # aiohttp's own total timeout covers connect, send and reading the answer.
            async with self._http.post(
                request.url, data=request.body, headers=request.headers, timeout=self._timeout,
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

    async def _finish(self, lane: _Lane, row: Claimed, result: Result, retry_in: float | None = None,
                      *, sent: bool = False, chain: Claimed | None = None) -> bool:
        """Store a result (group commit) and wait for it: only then does this worker go on.

        With ``chain`` (the lane's next row), its in-flight mark goes in the same commit and the
        lane stays with this worker: returns True when that mark is stored and it may be sent.
        """
        if sent:
            result.possible_duplicate = bool(row.maybe_sent)
            if row.maybe_sent:
                POSSIBLE_DUPLICATES.labels(row.platform).inc()
                log.warning("消息 %s 在上一个发送实例中断时正在发送，已重发，群里可能看到两次（可能重复）", row.id)
            row.maybe_sent = None
            if lane.limiter is not None:
                result.robot, result.window = lane.robot, lane.limiter.recent()
        stored = self._writer.submit(result)
        begun = self._writer.begin(chain.id, result.at) if chain is not None else None
        try:
            ours = await asyncio.shield(stored)
            chained = await asyncio.shield(begun) if begun is not None else False
        except asyncio.CancelledError:
            return False  # stopping: the writer still stores it
        if ours:
            _count(row.platform, result.status)
        if ours and chained and retry_in is None:
            self.stats.sent += result.status == SENT
            self.stats.dry_run += result.status == DRY_RUN
            if lane.rows and lane.rows[0] is row:
                lane.rows.popleft()
            self._held.discard(row.id)
            return True
        self._recorded(lane, row, result, retry_in, ours)
        return False

    def _recorded(self, lane: _Lane, row: Claimed, result: Result, retry_in: float | None,
                  ours: bool) -> None:
        if not ours:
            self.stats.lost_lease += 1
            log.warning("消息 %s 的租约已被其他实例接管，结果未写入", result.outbox_id)
        elif result.status == SENT:
            self.stats.sent += 1
        elif result.status == DRY_RUN:
            self.stats.dry_run += 1
        if retry_in is None or not ours:
            if lane.rows and lane.rows[0] is row:
                lane.rows.popleft()
            self._held.discard(row.id)
            self._release(lane)
        elif retry_in > self._max_retry_wait:
            self._give_back(lane)
        else:
            self._release(lane, retry_in)

    def _give_back(self, lane: _Lane) -> None:
        """Burst mode: a retry due later than we wait; leave the robot's rows for later, in order."""
        ids = [row.id for row in lane.rows]
        lane.rows.clear()
        self._held.difference_update(ids)
        self._release(lane)  # empty: the lane is let go
        task = asyncio.create_task(self._give_back_rows(ids))
        self._side.add(task)
        task.add_done_callback(self._side.discard)

    async def _give_back_rows(self, ids: list[int]) -> None:
        async with self._write_lock:
            await outbox.release(self.db, self.owner, ids)

    async def _failed(
        self,
        lane: _Lane,
        row: Claimed,
        err: DeliveryError,
        status: int | None = None,
        channel: ChannelBase | None = None,
        *,
        sent: bool = False,
    ) -> None:
        attempt = row.attempts + 1
        now = self._clock()
        reason = redact(err.message)
        if err.permanent or attempt >= self.settings.max_attempts:
            if not err.permanent:
                reason = f"已尝试 {attempt} 次仍未成功，最后一次：{reason}"
            self.stats.dead += 1
            name = channel.name if channel else row.channel_id
            log.warning("消息投递失败（频道“%s”，%s）：%s", name, row.summary, reason, extra={
                "event": "message_dead", "outbox_id": row.id, "platform": row.platform,
                "channel_id": row.channel_id, "stage": row.stage, "error_kind": err.kind.value,
                "attempts": attempt})
            self._dead.add(row, channel, reason)  # one digest per robot per window to the admin channel
            await self._finish(lane, row, Result(row.id, DEAD, now, reason, err.kind.value, status), sent=sent)
            return
        delay = self._backoff(attempt, err.retry_after)
        retry_at = now + timedelta(seconds=delay)
        row.attempts = attempt
        self.stats.retried += 1
        log.info("消息 %s 未发出，%.1f 秒后重试（第 %d 次）：%s", row.id, delay, attempt, reason)
        await self._finish(lane, row, Result(row.id, PENDING, now, reason, err.kind.value, status, retry_at),
                           retry_in=delay, sent=sent)

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        """Exponential backoff with jitter (50-100 %), never sooner than the platform asked."""
        delay = min(self.backoff_max, self.backoff_base * 2 ** (attempt - 1))
        delay *= 0.5 + self._rng() / 2
        return max(delay, retry_after or 0.0)


def _count(platform: str, status: str) -> None:
    """Metrics for a stored result: a finished message by outcome, or a retry."""
    if status == PENDING:
        RETRIES.labels(platform).inc()
    else:
        MESSAGES.labels(platform, status).inc()


def _short_json(body: Any, limit: int = 2000) -> str:
    text = json.dumps(body, ensure_ascii=False)
    return text if len(text) <= limit else text[:limit] + "…"
