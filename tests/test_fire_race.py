"""Instances that lose the race to fire: no error, no traceback, one occurrence (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import select

from bot.config.loader import load_schedules
from bot.delivery.render import Renderer
from bot.runtime import Runtime
from bot.scheduling.occurrences import fire
from bot.scheduling.timing import Fire, due_times
from bot.scheduling.workdays import WorkCalendar
from bot.settings import Settings
from storage.db import Database
from storage.models import Expectation, Occurrence

ROOT = Path(__file__).resolve().parent.parent
BJ = ZoneInfo("Asia/Shanghai")


def runtime_on(db: Database, tmp_path: Path) -> Runtime:
    settings = Settings(database_url=db.url, var_dir=tmp_path / "var", secret_key="k")
    schedules = load_schedules(ROOT / "schedules", templates_dir=ROOT / "message_templates", env={})
    return Runtime(settings=settings, db=db, schedules=schedules, calendar=WorkCalendar(schedules.calendar),
                   renderer=Renderer(ROOT / "message_templates"),
                   clock=lambda: datetime(2026, 12, 4, 9, 0, tzinfo=BJ))


def study_days(rt: Runtime, count: int) -> list[Fire]:
    reminder = rt.schedules.reminders["study-day"]
    start = datetime(2026, 1, 1, tzinfo=BJ)
    dues = due_times(reminder, rt.calendar, start, start.replace(year=2027))[:count]
    return [Fire("study-day", "due", due.due_at, due, None) for due in dues]


async def test_instances_racing_to_fire_a_confirmed_reminder_all_succeed_without_an_error(
    any_db: Database, tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    # Several "instances" (own runtimes, own sessions, one database) fire the same due time at once,
    # for six due times: those that lose the insert race must read the winner's rows, not crash.
    instances = [runtime_on(any_db, tmp_path) for _ in range(3)]
    days = study_days(instances[0], 6)
    with caplog.at_level(logging.INFO):
        for day in days:
            results = await asyncio.gather(*(fire(rt, day) for rt in instances),
                                           return_exceptions=True)
            assert [r for r in results if isinstance(r, BaseException)] == []
            assert len({r.occurrence_id for r in results}) == 1  # type: ignore[union-attr]
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    async with any_db.session() as session:
        occurrences = (await session.exec(select(Occurrence))).all()
        expectations = (await session.exec(select(Expectation))).all()
    assert len(occurrences) == len(days)
    secretaries = len(instances[0].schedules.select(instances[0].schedules.reminders["study-day"].recipients.mention))
    assert len(expectations) == len(days) * secretaries
