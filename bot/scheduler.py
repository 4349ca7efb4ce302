"""APScheduler jobs: one per enabled reminder, each firing at the reminder's computed times.

A job does not trust the moment it was woken: it asks ``timing.fires`` which fires of its reminder
fall between a short look-back and now, and hands each to the firing pipeline. Firing is
idempotent (unique occurrence and outbox keys), so a fire seen twice is sent once, and a fire
missed while the process was down is caught up within the grace period at start.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.config.models import Schedules
from bot.runtime import Runtime
from bot.timing import Fire, ReminderTrigger, fires
from bot.workdays import WorkCalendar

log = logging.getLogger(__name__)

FireHandler = Callable[[Fire], Awaitable[object]]
LOOK_BACK = timedelta(minutes=10)
CATCH_UP = timedelta(hours=6)
TICK = timedelta(seconds=30)


class ReminderScheduler:
    """Owns the AsyncIOScheduler. ``start()``, ``apply(schedules)`` on reload, ``stop()``."""

    def __init__(self, runtime: Runtime, on_fire: FireHandler) -> None:
        self.runtime = runtime
        self.on_fire = on_fire
        self._scheduler = AsyncIOScheduler(timezone="UTC")
        self._last_run: dict[str, datetime] = {}

    def start(self) -> None:
        self.runtime.ticks["scheduler"] = self.runtime.clock()
        self._scheduler.start()
        self.apply(self.runtime.schedules, self.runtime.calendar)

    async def _tick(self) -> None:
        """Every TICK: the scheduler's loop is alive (read by /healthz)."""
        self.runtime.ticks["scheduler"] = self.runtime.clock()

    async def stop(self) -> None:
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)

    def apply(self, schedules: Schedules, calendar: WorkCalendar) -> None:
        """Replace every job with the given schedules' reminders."""
        self._scheduler.remove_all_jobs()
        self._scheduler.add_job(self._tick, "interval", seconds=TICK.total_seconds(), id="tick",
                                misfire_grace_time=None, coalesce=True)
        for reminder in schedules.reminders.values():
            if not reminder.enabled:
                continue
            self._scheduler.add_job(
                self.run_reminder,
                trigger=ReminderTrigger(reminder, calendar),
                args=[reminder.id],
                id=reminder.id,
                name=reminder.title,
                misfire_grace_time=int(CATCH_UP.total_seconds()),
                coalesce=True,
                max_instances=1,
                replace_existing=True,
            )
        count = len(self._scheduler.get_jobs()) - 1  # not the tick
        if self._scheduler.running:
            # A fire due while the jobs were being replaced would otherwise be skipped: look back
            # once now (firing is idempotent, so what was already sent is not sent again).
            self._scheduler.add_job(self.run_recent, id="reload-catch-up", replace_existing=True)
        log.info("已加载 %d 个提醒", count)

    async def run_recent(self) -> None:
        for reminder_id in list(self.runtime.schedules.reminders):
            await self.run_reminder(reminder_id)

    def next_runs(self) -> dict[str, datetime | None]:
        return {job.id: job.next_run_time for job in self._scheduler.get_jobs() if job.id != "tick"}

    async def run_reminder(self, reminder_id: str, *, since: datetime | None = None) -> int:
        """Fire whatever of this reminder is due between the look-back and now."""
        reminder = self.runtime.schedules.reminders.get(reminder_id)
        if reminder is None or not reminder.enabled:
            return 0
        now = self.runtime.clock()
        start = since or self._last_run.get(reminder_id, now - LOOK_BACK)
        start = min(start, now - LOOK_BACK)
        due = fires(reminder, self.runtime.calendar, start, now + timedelta(seconds=1))
        self._last_run[reminder_id] = now
        for fire in due:
            try:
                await self.on_fire(fire)
            except Exception:  # one bad fire must not stop the others
                log.exception("提醒 %s（%s）发送失败", reminder.title, fire.stage)
        return len(due)

    async def catch_up(self) -> int:
        """At start: fire what fell due while the service was down (within the grace period)."""
        now = self.runtime.clock()
        count = 0
        for reminder_id in list(self.runtime.schedules.reminders):
            count += await self.run_reminder(reminder_id, since=now - CATCH_UP)
        return count
