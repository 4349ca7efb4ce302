"""APScheduler 3 triggers: a reminder's fires (the service's timer) and a plain crontab expression.

Apart from :mod:`bot.scheduling.timing` so that computing due times imports no APScheduler: its
package reads its own version from the installed metadata at import (``importlib.metadata``,
``email``, ``zipfile``), which commands that only compute or fire (``fire``, ``preview``,
``upcoming``) never need. The service's timer (:mod:`bot.scheduling.scheduler`) imports it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from apscheduler.triggers.base import BaseTrigger

from bot.config import cron
from bot.config.models import Reminder
from bot.scheduling.timing import TICK, Fire, fires, next_fire
from bot.scheduling.workdays import WorkCalendar


class CronTrigger(BaseTrigger):
    """An APScheduler 3 trigger for a standard 5-field crontab expression, computed by cronsim."""

    def __init__(self, expr: str, zone: ZoneInfo) -> None:
        cron.check(expr)
        self.expr, self.zone = cron.normalized(expr), zone

    def get_next_fire_time(self, previous_fire_time: datetime | None, now: datetime) -> datetime | None:
        after = previous_fire_time if previous_fire_time is not None else now - timedelta(seconds=1)
        return next(cron.iterate(self.expr, after.astimezone(self.zone)), None)

    def __str__(self) -> str:
        return f"cron[{self.expr}]"


@lru_cache(maxsize=4096)
def cron_trigger(expr: str, zone: ZoneInfo) -> CronTrigger:
    """An APScheduler trigger for a standard 5-field crontab expression in ``zone``."""
    return CronTrigger(expr, zone)




class ReminderTrigger(BaseTrigger):
    """An APScheduler 3 trigger firing at every :func:`fires` time of one reminder.

    Several fires can share an instant (a due and a notice of the next occurrence); APScheduler
    runs the job once for that instant, so the job should handle ``fires_at(scheduled_time)``.
    """

    def __init__(self, reminder: Reminder, calendar: WorkCalendar) -> None:
        self.reminder = reminder
        self.calendar = calendar
        self.last_fire: Fire | None = None  # the fire computed by the latest call

    def get_next_fire_time(
        self, previous_fire_time: datetime | None, now: datetime
    ) -> datetime | None:
        # Without a previous fire, a fire exactly at `now` is still due.
        after = previous_fire_time if previous_fire_time is not None else now - TICK
        self.last_fire = next_fire(self.reminder, self.calendar, after)
        return self.last_fire.fire_at if self.last_fire else None

    def fires_at(self, when: datetime) -> list[Fire]:
        """Every fire of the reminder at exactly the instant ``when``."""
        return fires(self.reminder, self.calendar, when, when + TICK)

    def fire_at(self, when: datetime) -> Fire | None:
        """The first fire at ``when`` (the one :meth:`get_next_fire_time` returned for it)."""
        found = self.fires_at(when)
        return found[0] if found else None

    def __str__(self) -> str:
        return f"reminder[{self.reminder.id}]"

    def __repr__(self) -> str:
        return f"<ReminderTrigger (reminder={self.reminder.id!r})>"
