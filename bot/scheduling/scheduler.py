"""The timer: APScheduler wakes the reconciliation pass at each reminder's times.

APScheduler holds one job per enabled reminder (``ReminderTrigger``); a job does nothing but
wake the pass loop. The record of what is due and what went out is the database
(``bot.scheduling.reconcile``): the loop runs a pass at start, after each wake-up, after a schedules reload
and at least every :data:`PASS_EVERY`; after a failed pass (database unreachable) it tries again
after 1, 2, 4 … seconds (at most :data:`FAILED_PASS_MAX`).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.config.models import Schedules
from bot.platforms.markup import redact
from bot.runtime import Runtime
from bot.scheduling.reconcile import PassResult, Reconciler
from bot.scheduling.triggers import ReminderTrigger
from bot.scheduling.workdays import WorkCalendar

log = logging.getLogger(__name__)

PASS_EVERY = timedelta(seconds=60)  # a pass at least this often, whatever APScheduler does
FAILED_PASS_MAX = 15.0  # seconds: after a failed pass, the next comes at most this much later


class ReminderScheduler:
    """Owns the AsyncIOScheduler and the pass loop. ``start()``, ``apply(schedules)`` on reload, ``stop()``."""

    def __init__(self, runtime: Runtime, reconciler: Reconciler | None = None) -> None:
        self.runtime = runtime
        self.reconciler = reconciler or Reconciler(runtime)
        self._scheduler = AsyncIOScheduler(timezone="UTC")
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._loop_task: asyncio.Task[None] | None = None
        self._failures = 0
        self._next_retry: datetime | None = None

    async def start(self) -> PassResult | None:
        """Start the timer, run the first pass (what fell due while down), then the loop."""
        self._scheduler.start()
        self.apply(self.runtime.schedules, self.runtime.calendar, wake=False)
        first = await self.run_pass()
        self._loop_task = asyncio.create_task(self._loop(), name="reconcile")
        return first

    async def stop(self, timeout: float = 5.0) -> None:  # noqa: ASYNC109 (a grace period)
        """Stop the timer; a pass in progress may finish (up to ``timeout`` seconds), then the loop ends."""
        if self._scheduler.running:
            self._scheduler.pause()
        held = False
        try:
            await asyncio.wait_for(self._lock.acquire(), timeout)
            held = True
        except TimeoutError:
            log.warning("调度检查 %.0f 秒内未结束，已中断（未完成的提醒下次启动时继续）", timeout)
        if self._loop_task is not None:
            self._loop_task.cancel()
            try:
                await self._loop_task
            except asyncio.CancelledError:
                pass
            self._loop_task = None
        if held:
            self._lock.release()
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)

    def wake(self) -> None:
        """Run a pass now (a stage is due, or the schedules changed)."""
        self._wake.set()

    async def _woken(self, reminder_id: str) -> None:
        self.wake()

    def apply(self, schedules: Schedules, calendar: WorkCalendar, *, wake: bool = True) -> None:
        """Replace every timer with the given schedules' reminders, then reconcile."""
        self._scheduler.remove_all_jobs()
        for reminder in schedules.reminders.values():
            if not reminder.enabled:
                continue
            self._scheduler.add_job(
                self._woken, trigger=ReminderTrigger(reminder, calendar), args=[reminder.id], id=reminder.id,
                name=reminder.title, misfire_grace_time=None, coalesce=True, max_instances=1,
                replace_existing=True,
            )
        log.info("已加载 %d 个提醒", len(self._scheduler.get_jobs()))
        if wake:
            self.wake()

    def next_runs(self) -> dict[str, datetime | None]:
        return {job.id: job.next_run_time for job in self._scheduler.get_jobs()}

    async def run_pass(self) -> PassResult | None:
        """One reconciliation pass (never two at once); None when it failed (logged, retried soon)."""
        async with self._lock:
            self.runtime.ticks["scheduler"] = self.runtime.clock().astimezone(UTC)
            try:
                result = await self.reconciler.run_pass()
            except Exception as exc:  # the database is unreachable, most likely: try again soon
                self._failures += 1
                log.warning("调度检查失败（第 %d 次），%.0f 秒后重试：%s", self._failures, self._pause(),
                            redact(f"{type(exc).__name__}: {exc}")[:300])
                return None
            if self._failures:
                log.info("调度检查已恢复（此前连续失败 %d 次）", self._failures)
            self._failures = 0
            self._next_retry = result.next_retry_at
            return result

    def _pause(self) -> float:
        """Seconds until the next pass if nothing wakes the loop earlier."""
        if self._failures:
            return min(FAILED_PASS_MAX, 2.0 ** (self._failures - 1))
        pause = PASS_EVERY.total_seconds()
        if self._next_retry is not None:
            until = (self._next_retry - self.runtime.clock()).total_seconds()
            pause = min(pause, max(until, 0.5))
        return pause

    async def _loop(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=self._pause())
            except TimeoutError:
                pass
            self._wake.clear()
            await self.run_pass()
