"""An occurrence fired ahead of its day (``remindbot fire study-day --date 2026-12-04``, as the README's
tutorial does) gets no advance notices afterwards, and its day's own stage says it went out early.

In-process, against a real SQLite file, with a clock the tests move by hand (trial 12 #3).
"""

from __future__ import annotations

import logging
import shutil
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from sqlmodel import select

from bot.config.loader import load_schedules
from bot.delivery.render import Renderer
from bot.runtime import Runtime
from bot.scheduling.occurrences import due_from_date, fire
from bot.scheduling.reconcile import Reconciler
from bot.scheduling.timing import Fire, fires
from bot.scheduling.workdays import WorkCalendar
from bot.settings import Settings
from bot.web.admin import mark_fired_early, upcoming
from bot.web.common import zh_datetime
from storage.db import Database
from storage.models import Occurrence
from tests.test_scheduler import BJ, ROOT, STUDY_DAY, Clock, clock, fires_counted, outbox, stage
from tests.test_scheduler import runtime as runtime


async def fire_early(runtime: Runtime) -> int:
    """What the tutorial's admin does on Monday 30 November: fire Friday's study day ahead."""
    clock(runtime).now = datetime(2026, 11, 30, 20, 0, tzinfo=BJ)
    reminder = runtime.schedules.reminders["study-day"]
    due = due_from_date(runtime, reminder, date(2026, 12, 4))
    assert due is not None
    result = await fire(runtime, Fire(reminder.id, "due", due.due_at, due, None), by_hand=True)
    assert result.queued > 0
    return result.occurrence_id


def said(caplog: pytest.LogCaptureFixture, words: str) -> list[str]:
    return [m for r in caplog.records if words in (m := r.getMessage())]


async def test_notices_after_an_early_fire_queue_nothing_and_say_why(
        runtime: Runtime, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="bot")
    occurrence_id = await fire_early(runtime)
    day_rows = len(await outbox(runtime, stage_prefix="due"))
    reconciler = Reconciler(runtime)
    skipped_before = fires_counted("skipped")

    clock(runtime).now = datetime(2026, 12, 1, 9, 0, tzinfo=BJ)  # the 3-day notice's time
    await reconciler.run_pass()
    notice = await stage(runtime, "study-day", "notice:3d", STUDY_DAY)
    assert notice.status == "skipped" and notice.occurrence_id == occurrence_id
    assert not [r for r in await outbox(runtime, stage_prefix="notice:") if r.occurrence_id == occurrence_id]
    [line] = said(caplog, "每月学习日”（提前3天通知）已跳过")
    assert "已于 2026年11月30日（星期一）20:00 提前发出，届时不再发送提前3天通知" in line

    clock(runtime).now = datetime(2026, 12, 3, 9, 0, tzinfo=BJ)  # the 1-day notice's time
    await reconciler.run_pass()
    assert (await stage(runtime, "study-day", "notice:1d", STUDY_DAY)).status == "skipped"
    assert not [r for r in await outbox(runtime, stage_prefix="notice:") if r.occurrence_id == occurrence_id]

    clock(runtime).now = STUDY_DAY  # the day itself: nothing again, and not "按时发出，排队 0 条"
    await reconciler.run_pass()
    assert (await stage(runtime, "study-day", "due", STUDY_DAY)).status == "skipped"
    assert len(await outbox(runtime, stage_prefix="due")) == day_rows
    assert said(caplog, "每月学习日”（当天提醒）已跳过：这次提醒已于 2026年11月30日（星期一）20:00 提前发出，"
                        "届时不再发送当天提醒")
    assert not said(caplog, "每月学习日”（当天提醒）按时发出")
    assert fires_counted("skipped") - skipped_before == 3


async def test_a_notice_without_an_early_fire_still_goes_out(runtime: Runtime) -> None:
    await Reconciler(runtime).run_pass()  # 2026-12-01 09:00
    assert (await stage(runtime, "study-day", "notice:3d", STUDY_DAY)).status == "fired"
    assert await outbox(runtime, stage_prefix="notice:3d")


async def test_a_rehearsed_fire_never_stands_for_the_real_one(runtime: Runtime) -> None:
    """A dry run of the day ahead is not the real message: the real notice still goes out."""
    runtime.settings.dry_run = True
    await fire_early(runtime)
    runtime.settings.dry_run = False
    clock(runtime).now = datetime(2026, 12, 1, 9, 0, tzinfo=BJ)
    await Reconciler(runtime).run_pass()
    assert (await stage(runtime, "study-day", "notice:3d", STUDY_DAY)).status == "fired"
    async with runtime.db.session() as session:
        real = (await session.exec(select(Occurrence).where(Occurrence.dry_run == False))).one()  # noqa: E712
    assert real.fired_at is None
    assert [r for r in await outbox(runtime, stage_prefix="notice:3d") if r.occurrence_id == real.id]


async def test_a_rehearsed_notice_after_a_real_early_fire_rehearses_nothing(runtime: Runtime) -> None:
    await fire_early(runtime)
    runtime.settings.dry_run = True
    notice_at = datetime(2026, 12, 1, 9, 0, tzinfo=BJ)
    clock(runtime).now = notice_at
    reminder = runtime.schedules.reminders["study-day"]
    [notice] = [f for f in fires(reminder, runtime.calendar, notice_at, STUDY_DAY) if f.stage == "notice:3d"]
    result = await fire(runtime, notice)
    assert result.queued == 0 and result.dry_run and result.fired_before is not None
    assert not await outbox(runtime, stage_prefix="notice:")
    async with runtime.db.session() as session:  # the real occurrence is untouched by the rehearsal
        real = (await session.exec(select(Occurrence).where(Occurrence.dry_run == False))).one()  # noqa: E712
    assert real.fired_at is not None


async def test_the_admin_upcoming_list_marks_the_day_sent_early(runtime: Runtime) -> None:
    await fire_early(runtime)
    now = clock(runtime).now
    rows = [r for r in upcoming(runtime, now, datetime(2026, 12, 10, tzinfo=BJ)) if r["reminder"].id == "study-day"]
    await mark_fired_early(runtime.db, rows)
    [row] = rows
    assert row["fired_early"] == zh_datetime(datetime(2026, 11, 30, 20, 0, tzinfo=BJ), BJ)


def pg_runtime(pg_db: Database, tmp_path: Path) -> Runtime:
    """The shipped schedules on PostgreSQL (the session path), the evening before the day message."""
    templates = tmp_path / "message_templates"
    shutil.copytree(ROOT / "message_templates", templates)
    schedules = load_schedules(ROOT / "schedules", templates_dir=templates, env={})
    return Runtime(settings=Settings(var_dir=tmp_path, secret_key="k", templates_dir=templates), db=pg_db,
                   schedules=schedules, calendar=WorkCalendar(schedules.calendar), renderer=Renderer(templates),
                   clock=Clock(datetime(2026, 11, 30, 20, 0, tzinfo=BJ)))


async def test_on_postgresql_a_notice_after_an_early_fire_queues_nothing(pg_db: Database, tmp_path: Path) -> None:
    runtime = pg_runtime(pg_db, tmp_path)
    await fire_early(runtime)
    notice_at = datetime(2026, 12, 1, 9, 0, tzinfo=BJ)
    clock(runtime).now = notice_at
    [notice] = [f for f in fires(runtime.schedules.reminders["study-day"], runtime.calendar, notice_at, STUDY_DAY)
                if f.stage == "notice:3d"]
    result = await fire(runtime, notice)
    assert result.queued == 0 and result.fired_before == datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    assert not await outbox(runtime, stage_prefix="notice:")
    rows = [r for r in upcoming(runtime, notice_at, datetime(2026, 12, 10, tzinfo=BJ))
            if r["reminder"].id == "study-day"]
    await mark_fired_early(runtime.db, rows)
    assert [r["fired_early"] for r in rows] == [zh_datetime(datetime(2026, 11, 30, 20, 0, tzinfo=BJ), BJ)]


async def fire_early_by(runtime: Runtime, who: str) -> int:
    """As :func:`fire_early`, by ``remindbot fire`` run as ``who`` (what the command records)."""
    clock(runtime).now = datetime(2026, 11, 30, 20, 0, tzinfo=BJ)
    reminder = runtime.schedules.reminders["study-day"]
    due = due_from_date(runtime, reminder, date(2026, 12, 4))
    assert due is not None
    result = await fire(runtime, Fire(reminder.id, "due", due.due_at, due, None), by_hand=True, fired_by=who)
    assert result.queued > 0
    return result.occurrence_id


async def test_the_skip_lines_and_the_admin_list_name_who_fired_it_ahead(
        runtime: Runtime, caplog: pytest.LogCaptureFixture) -> None:
    """The service's skip lines say who fired the occurrence ahead and when; the admin list too."""
    caplog.set_level(logging.INFO, logger="bot")
    occurrence_id = await fire_early_by(runtime, "zhangsan")
    async with runtime.db.session() as session:
        assert (await session.get(Occurrence, occurrence_id)).fired_by == "zhangsan"  # type: ignore[union-attr]
    reconciler = Reconciler(runtime)
    clock(runtime).now = datetime(2026, 12, 1, 9, 0, tzinfo=BJ)
    await reconciler.run_pass()
    [line] = said(caplog, "每月学习日”（提前3天通知）已跳过")
    assert "这次提醒已于 2026年11月30日（星期一）20:00 由 zhangsan 在命令行提前发出，届时不再发送提前3天通知" in line
    clock(runtime).now = STUDY_DAY
    await reconciler.run_pass()
    assert said(caplog, "每月学习日”（当天提醒）已跳过：这次提醒已于 2026年11月30日（星期一）20:00 "
                        "由 zhangsan 在命令行提前发出，届时不再发送当天提醒")
    rows = [r for r in upcoming(runtime, datetime(2026, 12, 1, 9, 0, tzinfo=BJ), datetime(2026, 12, 10, tzinfo=BJ))
            if r["reminder"].id == "study-day"]
    await mark_fired_early(runtime.db, rows)
    assert [(r["fired_early"], r["fired_early_by"]) for r in rows] == [
        (zh_datetime(datetime(2026, 11, 30, 20, 0, tzinfo=BJ), BJ), "zhangsan")]


async def test_on_postgresql_the_skipped_notice_names_who_fired_it_ahead(
        pg_db: Database, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The session path (the service, any command on PostgreSQL) records and reads it too."""
    # Its own logger's level too: an in-process `remindbot fire` (CliRunner, earlier in the suite) set it to WARNING.
    caplog.set_level(logging.INFO, logger="bot.scheduling.occurrences")
    runtime = pg_runtime(pg_db, tmp_path)
    await fire_early_by(runtime, "lisi")
    notice_at = datetime(2026, 12, 1, 9, 0, tzinfo=BJ)
    clock(runtime).now = notice_at
    [notice] = [f for f in fires(runtime.schedules.reminders["study-day"], runtime.calendar, notice_at, STUDY_DAY)
                if f.stage == "notice:3d"]
    result = await fire(runtime, notice)
    assert result.queued == 0 and result.fired_before_by == "lisi"
    [line] = said(caplog, "已跳过")
    assert "由 lisi 在命令行提前发出，届时不再发送提前3天通知" in line
    rows = [r for r in upcoming(runtime, notice_at, datetime(2026, 12, 10, tzinfo=BJ))
            if r["reminder"].id == "study-day"]
    await mark_fired_early(runtime.db, rows)
    assert [r["fired_early_by"] for r in rows] == ["lisi"]
