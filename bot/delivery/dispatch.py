"""The dispatcher: claims robot lanes and sends their messages, robot by robot, in order.

Each robot (a webhook) has its own ordered lane, held in the database by one instance at a time
(:mod:`bot.delivery.lanes`): the instance claims free lanes up to its fair share, adopts their pending
rows, renews the leases with its heartbeat and lets a lane go once it is empty. The robot's
recent send times are stored with each result, so its rate window holds across owners.

A fixed pool of ``send_concurrency`` workers takes ready lanes from a queue; a worker sends the
lane's messages one after the other while the robot's rate window (kept in memory by the lane's
owner, seeded from the stored one) allows, then the lane waits on a timer. Every write goes
through the group-commit writer (:class:`bot.delivery.outbox.ResultWriter`: one transaction, on SQLite one
hand-over to its thread and on PostgreSQL one statement, for every worker's items).

The duplicate bound: a row's in-flight mark (``sending_since``) is committed before the platform
is called, and at most ``send_concurrency`` sends are *unrecorded* at any time (in flight, or
answered with the result not yet committed): a send takes a place in that budget and its committed
result gives it back. A SIGKILL therefore repeats at most ``send_concurrency`` messages, and each
re-send is recorded as a possible duplicate (its mark is there). Within that budget a worker does
not wait for its last result's commit before the next send, and the marks of the rows the window
lets go right after the current one are written ahead (``PREMARK_ROWS`` at most, the current one
included: in the claim's own transaction for a lane just claimed, else in the current row's batch;
for a paused robot's first rows ``PREMARK_LEAD`` before the pause ends), so no send waits for a
commit the rate window does not need. A mark written ahead for a row never sent is cleared at a
clean stop; after a crash such a row is re-sent marked as a possible duplicate although it never
left (at most ``PREMARK_ROWS`` per lane). A lane goes
back in the queue only after its turn, so each robot sends one message at a time, in order and
within its rate limit.

While it runs, the collector's young generation is sized for the sends in flight
(:mod:`bot.delivery.gcyoung`): the budget makes sends start in waves, which otherwise trigger a
collection every few messages and full collections of the heap.

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
from collections.abc import Callable, Iterable, Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import islice
from typing import Any

import aiohttp
from yarl import URL

from bot.delivery import gcyoung, lanes, outbox
from bot.delivery.deadletters import INTERNAL, DeadDigest
from bot.delivery.outbox import DEAD, DRY_RUN, PENDING, RECORDED_ONLY, SENT, Claimed, Result
from bot.delivery.ratelimit import RobotLimiter, rules_for
from bot.metrics import LANES_HELD, MESSAGES, POSSIBLE_DUPLICATES, RETRIES
from bot.platforms.appsend import CHANNEL_PREFIX as APP_PREFIX
from bot.platforms.base import ChannelBase, DeliveryError, FailureKind, Platform
from bot.platforms.markup import redact
from bot.platforms.registry import PlatformFor, as_configured
from bot.platforms.registry import platform_for as registry_platform_for
from bot.repeats import RepeatedFailure, whole
from bot.settings import Settings
from storage.db import Database
from storage.models import utcnow

log = logging.getLogger(__name__)

# Seconds before a rate-limit pause ends at which the next row's in-flight mark is written, so the
# send at the end of the pause does not wait for that commit. A crash within this lead re-sends the
# row marked as a possible duplicate although it never left; the mark must precede the send anyway.
PREMARK_LEAD = 0.25
# Rows of a paused lane marked then (at most, and at most its smallest rate limit): the sends the
# window lets go one after the other at its opening, so none of them waits for a commit. A crash
# in that lead flags at most this many unsent rows of the lane.
PREMARK_ROWS = 4
STOP_WRITE_SECONDS = 5.0  # the last write at stop (giving back lanes and rows), at most

ChannelFor = Callable[[str], ChannelBase | None]


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
    # In-flight marks written ahead of their sends (row id -> the writer's future, or a done one for
    # marks committed with the claim): the rows the window lets go right after the current one, and
    # a paused lane's first rows shortly before its pause ends (``PREMARK_LEAD``, and its timer).
    marks: dict[int, asyncio.Future[bool]] = field(default_factory=dict)
    premark_timer: asyncio.TimerHandle | None = None
    # The robot's URL parsed once (``url`` is the text it was parsed from): a webhook's URL is the same
    # at every send; a signed one (a timestamp in its query) differs each time and is parsed as it comes.
    url_text: str = ""
    url: URL | None = None


class Dispatcher:
    """Sends outbox rows. Owns its tasks; the database and HTTP session are the service's.

    A fixed pool of ``send_concurrency`` workers takes robots from a ready queue; a turn sends the
    robot's messages while its window allows. A robot is in the queue at most once and goes back
    only after its turn (or after its rate-limit or retry timer), so each robot sends one message
    at a time, in order, and a slow robot ties up one worker, never the others. At most
    ``send_concurrency`` sends are unrecorded at once (see the module's duplicate bound).
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
        base_url: str | None = None,
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
        self._base_url = base_url  # the service's, kept with its heartbeat for commands run elsewhere
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
        self._writer = outbox.ResultWriter(db, self.owner, self._write_lock, on_stored=self._stored)
        # Sends whose result is not committed yet (in flight, or answered and queued): at most
        # ``send_concurrency``, which bounds what a crash can repeat.
        self._budget = max(1, settings.send_concurrency)
        self._unrecorded = 0
        self._waiting: deque[asyncio.Future[None]] = deque()  # workers waiting for the budget, in turn
        self._counters: dict[tuple[str, str], Any] = {}  # metric children by (platform, status)
        self._started_at = clock()
        self._recorded_before = RECORDED_ONLY.rows  # queue-time record-only rows before this one ran
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
        self._widened = False  # the collector's young generation is widened for our sends (gcyoung)
        self._dead = DeadDigest(db, channel_for=channel_for, platform_for=platform_for, admin_channel=admin_channel,
                                clock=clock, wake=self.wake, window_seconds=settings.dead_digest_seconds)

    # ---- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        self._accepting = True
        self._widen()
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
        with suppress(TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(self._writer.close(), timeout=max(timeout, 1.0))
        returned = await self._leave()
        self._narrow()
        s = self.stats
        # Most record-only rows are recorded when queued (compose), never reaching this dispatcher.
        recorded = s.dry_run + RECORDED_ONLY.rows - self._recorded_before
        log.info(
            "发送器已停止：已发送 %d 条，%s %d 条，重试 %d 次，失败 %d 条；"
            "中断 %d 个发送，%d 条未发消息已交还，下次启动继续",
            s.sent, "演练未发送" if self.settings.dry_run else "未配置 webhook 只记录", recorded,
            s.retried, s.dead, late, returned,
        )

    async def run_once(self, max_retry_wait: float = 60.0) -> Stats:
        """Burst mode: send everything due now and return.

        Retries that are due within ``max_retry_wait`` seconds are waited for; a robot whose
        next retry is later is left pending (in order) for the service or the next run. Burst
        mode takes every free lane (no fair share) and lets go of all of them at the end.
        """
        self._accepting, self._max_retry_wait, self._fair = True, max_retry_wait, False
        self._widen()
        try:
            return await self._burst()
        finally:
            self._narrow()

    def _widen(self) -> None:
        if not self._widened:
            self._widened = True
            gcyoung.widen(self.settings.send_concurrency)

    def _narrow(self) -> None:
        if self._widened:
            self._widened = False
            gcyoung.restore()

    async def _burst(self) -> Stats:
        """:meth:`run_once` itself."""
        await self._beat()
        self._start_workers()
        heartbeat = asyncio.create_task(self._heartbeat())
        exhausted = False
        try:
            while True:
                # Refill at half empty (few claim queries, no lull while the last robots finish);
                # once nothing more is due, wait for every robot, then look again (admin notices).
                if len(self._held) > self.max_held // 2:
                    exhausted = False
                elif exhausted and self._busy == 0 and not self._mine:
                    # The last look: read-only, so it does not queue behind the last results' write
                    # (the write lock); a claim only if it finds something.
                    exhausted = not await lanes.claimable(self.db, self._clock(), self.stale_seconds)
                    if not exhausted:
                        exhausted = await self._fill()
                else:
                    exhausted = await self._fill()
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
            await self._writer.close()
            await self._leave()
        return self.stats

    async def _leave(self) -> int:
        """Let go of every lane and unsent row; drop the heartbeat. Returns rows given back."""
        self._mine.clear()
        self._releasing.clear()
        LANES_HELD.set(0)
        unsent, self._premarked = self._premarked, []
        try:
            # Bounded: the stop must end even if the database does not answer (leases expire).
            async with asyncio.timeout(STOP_WRITE_SECONDS):
                if unsent:
                    await outbox.unmark(self.db, self.owner, unsent)
                return await lanes.leave(self.db, self.owner)
        except Exception as exc:
            log.warning("交还机器人通道失败（其他实例将在租约到期后接手）：%s", type(exc).__name__)
            return 0

    def _start_workers(self) -> None:
        if not self._workers:
            self._unrecorded = 0
            self._waiting.clear()
            count = max(1, self.settings.send_concurrency)
            self._workers = [asyncio.create_task(self._worker()) for _ in range(count)]

    async def _stop_workers(self, timeout: float) -> int:  # noqa: ASYNC109
        """Let idle workers go, give busy ones ``timeout`` to finish; returns sends cut off."""
        for lane in self._lanes.values():
            if lane.timer is not None:
                lane.timer.cancel()
            if lane.premark_timer is not None:
                lane.premark_timer.cancel()
        for _ in self._workers:
            self._ready.put_nowait(None)
        late: set[asyncio.Task[None]] = set()
        if self._workers:
            _, late = await asyncio.wait(self._workers, timeout=timeout)
        for task in late:
            task.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        for lane in self._lanes.values():  # marked ahead, never sent: not possible duplicates
            self._premarked.extend(lane.marks)
            lane.marks.clear()
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
                await whole(self._fill(), "领取机器人通道")
                failing.ok()
            except Exception as exc:
                failing.failed(exc)
            with suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.poll_seconds)

    async def _beat(self) -> None:
        now = self._clock()
        await lanes.beat(self.db, self.owner, now, self._started_at, self._base_url)
        if not self._mine and not self._releasing:
            # Nothing held (a run's first beat): no lease to renew, none to lose. A claim in
            # progress sets its own lease; the next beat renews it.
            self._beat_ok = time.monotonic()
            return
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
                await whole(self._beat(), "实例心跳")
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
            lane.marks.clear()
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
        marked: list[int] = []

        def first_sends(rows: list[Claimed], won: dict[str, list[float]]) -> list[int]:
            marked.extend(self._first_sends(rows, won))
            return marked

        # Holding no lane (a run's first claim), the rows of lanes held before cannot be there to
        # adopt: no look for them (on PostgreSQL 5-25 ms before a burst's first sends).
        held = bool(self._mine or self._releasing)
        async with self._write_lock:  # claim and adopt: one transaction
            won, more, rows = await lanes.take(self.db, self.owner, now, want, self.lease_seconds,
                                               self.stale_seconds, max(room, 0), first_sends, held)
            self._mine.update(won)
        for robot, recent in won.items():
            self._lane(robot).seed = recent
        for row in rows:
            self._route(row)
        if marked:
            self._marked_at_claim(marked, won)
        for robot in won:
            lane = self._lanes.get(robot)
            if lane is not None and not lane.rows and not lane.busy:
                self._let_go(lane)  # its rows were sent by the last owner meanwhile
        LANES_HELD.set(len(self._mine))
        self._full = room <= 0 or len(rows) >= room
        return not more and not self._full

    def _first_sends(self, rows: list[Claimed], won: Mapping[str, list[float]]) -> list[int]:
        """Rows of lanes just claimed that their window lets go at once (``PREMARK_ROWS`` at most a
        lane, the head first): they are marked in flight in the claim's transaction, so a run's first
        sends wait for no commit after it. Not a dry run's rows, nor past a row that is not sent."""
        if self.settings.dry_run or not self._accepting:
            return []
        by_robot: dict[str, list[Claimed]] = {}
        for row in rows:
            by_robot.setdefault(row.robot, []).append(row)
        ids: list[int] = []
        for robot, mine in by_robot.items():
            head = self._channel_for(mine[0].channel_id)
            if head is None or head.dry_run or robot not in won:
                continue
            try:
                limits = self._platform_for(head).limits
            except Exception:  # the turn reports it
                continue
            limiter = RobotLimiter(rules_for(head, limits, self.settings.rate_window_seconds), clock=time.time)
            limiter.seed(won[robot])
            # A re-sent row counts as a send just now (see ``_route``).
            room = limiter.room() - sum(1 for row in mine if row.maybe_sent)
            for row in mine[:min(room, PREMARK_ROWS)]:
                if row.channel_id != mine[0].channel_id:
                    break
                ids.append(row.id)
        return ids

    def _marked_at_claim(self, ids: list[int], robots: Iterable[str]) -> None:
        """The in-flight marks committed with the claim: the turn finds them done."""
        done = set(ids)
        for robot in robots:
            lane = self._lanes.get(robot)
            if lane is None:
                continue
            for row in islice(lane.rows, PREMARK_ROWS):
                if row.id in done:
                    mark: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
                    mark.set_result(True)
                    lane.marks[row.id] = mark
                    done.discard(row.id)
        self._premarked.extend(done)  # marked but not routed here: cleared at stop

    def _route(self, row: Claimed) -> None:
        if row.id in self._held or row.robot not in self._mine or row.robot in self._releasing:
            return  # a lane being let go: its next owner takes the row
        self._held.add(row.id)
        lane = self._lane(row.robot)
        if row.maybe_sent:
            lane.seed.append(time.time())  # the platform may have counted it just now
        lane.rows.append(row)
        self._schedule(lane)

    def _lane(self, robot: str) -> _Lane:
        """The robot's lane here, made on first use (not a new one per row, as ``setdefault`` would build)."""
        lane = self._lanes.get(robot)
        if lane is None:
            lane = self._lanes[robot] = _Lane(robot)
        return lane

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
        """Send the lane's messages one after the other while its rate window allows (or pause).

        A row's in-flight mark is committed before it is sent. The next row's mark is written
        ahead (in the same batch as this one's, when the window allows both at once), and a plain
        success is handed to the writer without waiting for its commit, so the next send waits
        for no commit the rate window does not need. What is unrecorded at a crash is bounded by
        the budget (``send_concurrency`` sends in flight or answered but not yet committed).
        """
        while lane.rows:
            row = lane.rows[0]
            channel = self._channel_for(row.channel_id)
            if channel is None:
                await self._failed(lane, row, DeliveryError(FailureKind.CONFIG, gone_reason(row.channel_id)))
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
            limiter = lane.limiter
            if limiter is None:
                window = self.settings.rate_window_seconds
                # Wall-clock seconds: the window is stored and read by other instances.
                limiter = lane.limiter = RobotLimiter(rules_for(channel, adapter.limits, window), clock=time.time)
                limiter.seed(lane.seed)
            pause, room = limiter.pause_room() if self._alive() else (1.0, 0)
            if pause > 0:
                # A hair over the exact time so the platform's own clock agrees the slot is free.
                lane.busy = False
                self._busy = max(0, self._busy - 1)
                self._premark_later(lane, row, pause)
                self._schedule(lane, pause + 0.001)
                return
            mark = lane.marks.pop(row.id, None)
            if mark is None:
                mark = self._writer.begin(row.id, self._clock())
            if room > 1 and len(lane.rows) > 1:
                self._mark_ahead(lane, room)
            if not await self._cleared(lane, row, mark):
                return
            if lane.premark_timer is not None:  # the pause was cut short: the mark is written
                lane.premark_timer.cancel()
                lane.premark_timer = None
            status: int | None = None
            try:
                status, headers, payload = await self._post(adapter, channel, row, limiter, lane)
                adapter.read_answer(status, headers, payload)
            except DeliveryError as err:
                await self._failed(lane, row, err, status, channel, sent=True)
                return
            except Exception:
                log.exception("发送消息 %s 时出现内部错误", row.id)
                error = DeliveryError(FailureKind.RETRY, INTERNAL)
                await self._failed(lane, row, error, status, channel, sent=True)
                return
            result = Result(row.id, SENT, self._clock(), http_status=status)
            self._stamp(lane, row, result)
            if lane.rows and lane.rows[0] is row:
                lane.rows.popleft()
            self._held.discard(row.id)
            self._writer.queue(result)  # not awaited: see the budget
            if not self._accepting:
                break
        self._release(lane)

    def _mark_ahead(self, lane: _Lane, room: int) -> None:
        """Mark the rows after the head that the window lets go right after it (``room`` sends
        now, ``PREMARK_ROWS`` at most, the head included), in the head's batch: none of those
        sends then waits for a commit of its own (a run's first window sends them one after the
        other while the writer is still committing the first marks)."""
        at: datetime | None = None
        for ahead in islice(lane.rows, 1, min(room, PREMARK_ROWS)):
            if ahead.id not in lane.marks:
                at = at or self._clock()
                lane.marks[ahead.id] = self._writer.begin(ahead.id, at)

    async def _cleared(self, lane: _Lane, row: Claimed, mark: asyncio.Future[bool]) -> bool:
        """Wait for ``row``'s in-flight mark and a place in the budget; False: not to be sent now
        (the lane was taken over, or we are stopping), and the lane's turn is over."""
        ours = mark.result() if mark.done() else await mark
        if not ours:
            self._lost(lane.robot)
            self._release(lane)
            return False
        if self._unrecorded < self._budget and not self._waiting:
            self._unrecorded += 1
        else:  # a committed result hands its place over (one waiter woken per result, in order)
            turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiting.append(turn)
            await turn
        if not self._accepting or not lane.rows or lane.rows[0] is not row:
            self._free_place()
            if lane.rows and lane.rows[0] is row:
                lane.marks[row.id] = mark  # marked, unsent: unmarked at stop
            self._release(lane)
            return False
        return True

    def _free_place(self) -> None:
        """A send's result is committed (or it was not sent): its place goes to the next waiter."""
        while self._waiting:
            turn = self._waiting.popleft()
            if not turn.done():
                turn.set_result(None)
                return
        self._unrecorded -= 1

    def _premark_later(self, lane: _Lane, row: Claimed, pause: float) -> None:
        """Write the in-flight marks of ``row`` and the rows after it that the window lets go at its
        opening (``PREMARK_ROWS`` at most), ``PREMARK_LEAD`` before the pause ends (long pauses only)."""
        if pause <= 2 * PREMARK_LEAD or row.id in lane.marks or lane.premark_timer is not None:
            return
        limits = [w.rule.limit for w in lane.limiter.windows] if lane.limiter is not None else []
        count = min([PREMARK_ROWS, *limits])

        def mark() -> None:
            lane.premark_timer = None
            if self._accepting and lane.rows and lane.rows[0] is row and self._lanes.get(lane.robot) is lane:
                at = self._clock()
                for ahead in islice(lane.rows, count):
                    if ahead.id not in lane.marks:
                        lane.marks[ahead.id] = self._writer.begin(ahead.id, at)

        lane.premark_timer = asyncio.get_running_loop().call_later(pause - PREMARK_LEAD, mark)

    async def _post(
        self, adapter: Platform, channel: ChannelBase, row: Claimed, limiter: RobotLimiter, lane: _Lane
    ) -> tuple[int, Mapping[str, str], bytes]:
        timeout = self.settings.send_timeout_seconds
        send = getattr(adapter, "send", None)  # an app sender: access token, one refresh when invalid
        try:
            if send is not None:
                return await send(self._http, channel, row.body, time.time(), self._timeout)  # type: ignore[no-any-return]
            request = adapter.prepare(channel, row.body, time.time())
            text = request.url
            url = lane.url
            if url is None or (text is not lane.url_text and text != lane.url_text):
                url = URL(text)  # what aiohttp would make of the text
                lane.url_text, lane.url = text, url
            # aiohttp's own total timeout covers connect, send and reading the answer.
            async with self._http.post(
                url, data=request.body, headers=request.headers, timeout=self._timeout,
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

    def _stamp(self, lane: _Lane, row: Claimed, result: Result) -> None:
        """A sent row's result: possible duplicate, the robot's window to store, the budget."""
        result.sent, result.platform = True, row.platform
        if row.maybe_sent:
            result.possible_duplicate = True
            POSSIBLE_DUPLICATES.labels(row.platform).inc()
            log.warning("消息 %s 在上一个发送实例中断时正在发送，已重发，群里可能看到两次（可能重复）", row.id)
            row.maybe_sent = None
        if lane.limiter is not None:  # its window is read when the batch is written
            result.robot, result.window_from = lane.robot, lane.limiter

    async def _finish(self, lane: _Lane, row: Claimed, result: Result, retry_in: float | None = None,
                      *, sent: bool = False) -> None:
        """Store a failure or dry run (group commit) and wait for it: only then does the lane go on."""
        result.platform = row.platform
        if sent:
            self._stamp(lane, row, result)
        stored = self._writer.submit(result)
        try:
            ours = await asyncio.shield(stored)
        except asyncio.CancelledError:
            return  # stopping: the writer still stores it
        self._recorded(lane, row, retry_in, ours)

    def _stored(self, results: list[Result], marked: set[int]) -> None:
        """The writer committed a batch (``marked``: the ids whose lease was still ours): budget,
        stats, metrics (each counter moved once per batch, not once per message)."""
        counts: dict[tuple[str, str], int] = {}
        dry = self.settings.dry_run
        for result in results:
            if result.sent:
                self._free_place()
            if result.outbox_id not in marked:
                self.stats.lost_lease += 1
                log.warning("消息 %s 的租约已被其他实例接管，结果未写入", result.outbox_id)
                if result.robot in self._mine:
                    self._lost(result.robot)
                continue
            status = result.status
            if status == SENT:
                self.stats.sent += 1
            elif status == DRY_RUN:
                self.stats.dry_run += 1
            # A rehearsal and a channel without a webhook both end as DRY_RUN rows; the metric tells
            # them apart, so an operator never reads record-only real messages as rehearsals.
            key = (result.platform, "record_only" if status == DRY_RUN and not dry else status)
            counts[key] = counts.get(key, 0) + 1
        for key, count in counts.items():
            counter = self._counters.get(key)
            if counter is None:
                counter = self._counters[key] = RETRIES.labels(key[0]) if key[1] == PENDING else MESSAGES.labels(*key)
            counter.inc(count)

    def _recorded(self, lane: _Lane, row: Claimed, retry_in: float | None, ours: bool) -> None:
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
        marked = list(lane.marks)  # written ahead, never sent: not possible duplicates
        lane.rows.clear()
        lane.marks.clear()
        self._held.difference_update(ids)
        self._release(lane)  # empty: the lane is let go
        task = asyncio.create_task(self._give_back_rows(ids, marked))
        self._side.add(task)
        task.add_done_callback(self._side.discard)

    async def _give_back_rows(self, ids: list[int], marked: list[int]) -> None:
        await self._writer.flush()  # the marks written ahead are committed before they are cleared
        async with self._write_lock:
            if marked:
                await outbox.unmark(self.db, self.owner, marked)
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
        reason = redact(as_configured(err.message, channel, self._platform_for))
        if err.permanent or attempt >= self.settings.max_attempts:
            if not err.permanent:
                reason = f"已尝试 {attempt} 次仍未成功，最后一次：{reason}"
            self.stats.dead += 1
            name = channel.name if channel else row.channel_id
            log.warning("消息投递失败（频道“%s”，%s）：%s", name, row.summary, reason, extra={
                "event": "message_dead", "outbox_id": row.id, "platform": row.platform,
                "channel_id": row.channel_id, "stage": row.stage, "error_kind": err.kind.value,
                "attempts": attempt})
            self._dead.add(row, channel, reason, err)  # one digest per robot per window to the admin channel
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


def gone_reason(channel_id: str) -> str:
    """Why a message whose channel left the schedules is dead (the outbox page, the admin digest, the log):
    an app's direct messages (``app:<id>``) name the app, not a 频道 the admin never wrote."""
    if channel_id.startswith(APP_PREFIX):
        return (f"应用“{channel_id[len(APP_PREFIX):]}”已从日程配置中移除（或已不能发送私信），"
                "这条私信未发出")
    return f"频道“{channel_id}”已不在配置中"


def _short_json(body: Any, limit: int = 2000) -> str:
    text = json.dumps(body, ensure_ascii=False)
    return text if len(text) <= limit else text[:limit] + "…"
