"""The scheduler fires each reminder and notice at its time, catches up after downtime, never twice."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bot.config.loader import load_schedules
from bot.occurrences import fire
from bot.render import Renderer
from bot.runtime import Runtime
from bot.scheduler import ReminderScheduler
from bot.settings import Settings
from bot.timing import Fire
from bot.workdays import WorkCalendar
from storage.db import Database

ROOT = Path(__file__).resolve().parent.parent
BJ = ZoneInfo("Asia/Shanghai")


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
async def runtime(tmp_path: Path) -> Runtime:
    schedules = load_schedules(ROOT / "schedules", templates_dir=ROOT / "message_templates", env={})
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}")
    await db.start()
    rt = Runtime(settings=Settings(var_dir=tmp_path, secret_key="k"), db=db, schedules=schedules,
                 calendar=WorkCalendar(schedules.calendar), renderer=Renderer(ROOT / "message_templates"),
                 clock=Clock(datetime(2026, 12, 1, 9, 0, 30, tzinfo=BJ)))
    yield rt
    await db.stop()


async def test_a_job_woken_at_its_time_fires_that_notice_and_queues_it_once(runtime: Runtime) -> None:
    seen: list[Fire] = []
    queued: list[int] = []

    async def on_fire(f: Fire) -> None:
        seen.append(f)
        queued.append((await fire(runtime, f)).queued)

    scheduler = ReminderScheduler(runtime, on_fire)
    # 2026-12-01 09:00 is the study day's 3-day notice (the study day is Friday 2026-12-04).
    assert await scheduler.run_reminder("study-day") == 1
    assert [(f.stage, f.due.due_at) for f in seen] == [("notice:3d", datetime(2026, 12, 4, 9, 0, tzinfo=BJ))]
    # Woken again a minute later (its look-back overlaps), the notice is not queued a second time.
    runtime.clock.now += timedelta(minutes=1)  # type: ignore[attr-defined]
    await scheduler.run_reminder("study-day")
    assert queued[0] > 0 and all(n == 0 for n in queued[1:])


async def test_catch_up_after_downtime_fires_what_fell_due_within_the_grace_period(runtime: Runtime) -> None:
    seen: list[Fire] = []

    async def on_fire(fire: Fire) -> None:
        seen.append(fire)

    runtime.clock.now = datetime(2026, 12, 4, 11, 0, tzinfo=BJ)  # type: ignore[attr-defined]
    await ReminderScheduler(runtime, on_fire).catch_up()
    assert ("study-day", "due") in {(f.reminder_id, f.stage) for f in seen}


async def test_the_apscheduler_job_runs_at_the_computed_time(runtime: Runtime) -> None:
    fired = asyncio.Event()
    seen: list[Fire] = []

    async def on_fire(fire: Fire) -> None:
        seen.append(fire)
        fired.set()

    scheduler = ReminderScheduler(runtime, on_fire)
    scheduler.start()
    try:
        next_runs = scheduler.next_runs()
        # Every enabled shipped reminder has a job, and the study day's next run is its next fire.
        assert set(runtime.schedules.reminders) <= set(next_runs)
        assert next_runs["study-day"] is not None
        assert next_runs["study-day"].astimezone(BJ) > datetime.now(BJ)
    finally:
        await scheduler.stop()


async def test_a_failing_fire_does_not_stop_the_others(runtime: Runtime, caplog: pytest.LogCaptureFixture) -> None:
    calls: list[str] = []

    async def on_fire(fire: Fire) -> None:
        calls.append(fire.reminder_id)
        if len(calls) == 1:
            raise RuntimeError("boom")

    # 2026-12-08: the monthly research visit, a notice of the annual assessment and a spot check.
    runtime.clock.now = datetime(2026, 12, 8, 11, 0, tzinfo=BJ)  # type: ignore[attr-defined]
    await ReminderScheduler(runtime, on_fire).catch_up()
    assert {"monthly-research", "annual-assessment", "spot-check-2026q4"} <= set(calls)
    assert "发送失败" in caplog.text
