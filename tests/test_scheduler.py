"""Firing from the database: each stage fires once at its time, a failure is retried, downtime is
caught up (补发) within the grace and recorded as missed beyond it — never silently dropped.

In-process, against a real SQLite file, with a clock the tests move by hand.
"""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import col, func, select

from bot.cli.confirmations import _report, fire_outcomes_text
from bot.config.loader import load_schedules
from bot.delivery.render import Renderer
from bot.metrics import REGISTRY
from bot.runtime import Runtime
from bot.scheduling.firelog import settled
from bot.scheduling.reconcile import RETRY_BASE_SECONDS, Reconciler
from bot.scheduling.scheduler import ReminderScheduler
from bot.scheduling.workdays import WorkCalendar
from bot.settings import Settings
from storage.db import Database
from storage.models import DueStage, Occurrence, Outbox, SchedulerMark

ROOT = Path(__file__).resolve().parent.parent
BJ = ZoneInfo("Asia/Shanghai")
STUDY_DAY = datetime(2026, 12, 4, 9, 0, tzinfo=BJ)  # the first Friday of December 2026


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
async def runtime(tmp_path: Path) -> AsyncIterator[Runtime]:
    templates = tmp_path / "message_templates"
    shutil.copytree(ROOT / "message_templates", templates)
    schedules = load_schedules(ROOT / "schedules", templates_dir=templates, env={})
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}")
    await db.start()
    rt = Runtime(settings=Settings(var_dir=tmp_path, secret_key="k", templates_dir=templates), db=db,
                 schedules=schedules, calendar=WorkCalendar(schedules.calendar), renderer=Renderer(templates),
                 clock=Clock(datetime(2026, 12, 1, 9, 0, 0, tzinfo=BJ)))
    yield rt
    await db.stop()


def clock(runtime: Runtime) -> Clock:
    assert isinstance(runtime.clock, Clock)
    return runtime.clock


async def set_last_pass(runtime: Runtime, at: datetime) -> None:
    """As if the service last ran at ``at`` and was down since."""
    async with runtime.db.session() as session:
        session.add(SchedulerMark(id=1, last_pass_at=at.astimezone(UTC)))
        await session.commit()


async def stage(runtime: Runtime, reminder_id: str, name: str, due: datetime) -> DueStage:
    async with runtime.db.session() as session:
        return (await session.exec(select(DueStage).where(
            DueStage.reminder_id == reminder_id, DueStage.stage == name,
            DueStage.due_at == due.astimezone(UTC)))).one()


async def outbox(runtime: Runtime, *, stage_prefix: str = "") -> list[Outbox]:
    async with runtime.db.session() as session:
        rows = (await session.exec(select(Outbox).order_by(col(Outbox.id)))).all()
    return [r for r in rows if r.stage.startswith(stage_prefix)]


def text_of(row: Outbox) -> str:
    return json.dumps(row.body, ensure_ascii=False)


def fires_counted(outcome: str) -> float:
    return REGISTRY.get_sample_value("remindbot_fires_total", {"outcome": outcome}) or 0.0


async def test_a_pass_at_a_stage_time_fires_it_once_on_time_and_plans_the_next_day(runtime: Runtime) -> None:
    reconciler = Reconciler(runtime)
    first = await reconciler.run_pass()
    # 2026-12-01 09:00 is the study day's 3-day notice (the study day is Friday 2026-12-04).
    notice = await stage(runtime, "study-day", "notice:3d", STUDY_DAY)
    assert (notice.status, notice.attempts, notice.lateness_seconds) == ("fired", 1, 0.0)
    sent = await outbox(runtime)
    assert sent and all("补发" not in text_of(r) for r in sent)
    assert first.on_time >= 1 and first.planned >= 1
    # Tomorrow's 1-day notice... is three days ahead; the 24 h plan holds what fires before then.
    async with runtime.db.session() as session:
        planned = (await session.exec(select(DueStage).where(DueStage.status == "planned"))).all()
    assert all(p.fire_at.replace(tzinfo=UTC) <= clock(runtime).now + timedelta(hours=24) for p in planned)
    # Woken again a minute later, nothing is fired a second time.
    clock(runtime).advance(minutes=1)
    again = await reconciler.run_pass()
    assert again.fired == 0 and len(await outbox(runtime)) == len(sent)


async def test_a_failing_fire_is_retried_on_the_next_pass_and_goes_out_marked_late(runtime: Runtime) -> None:
    template = Path(runtime.settings.templates_dir) / "study_day.md.j2"
    kept = template.read_text(encoding="utf-8")
    template.unlink()  # firing the study day's notice now raises (its template is missing)
    reconciler = Reconciler(runtime)
    await reconciler.run_pass()
    notice = await stage(runtime, "study-day", "notice:3d", STUDY_DAY)
    assert notice.status == "failed" and notice.attempts == 1
    assert "study_day" in (notice.last_error or "")
    assert not [r for r in await outbox(runtime) if r.stage == "notice:3d"]
    # Before the backoff has passed, the next pass leaves it alone.
    clock(runtime).advance(seconds=RETRY_BASE_SECONDS / 2)
    await reconciler.run_pass()
    assert (await stage(runtime, "study-day", "notice:3d", STUDY_DAY)).attempts == 1
    template.write_text(kept, encoding="utf-8")  # fixed
    clock(runtime).advance(seconds=60)
    result = await reconciler.run_pass()
    notice = await stage(runtime, "study-day", "notice:3d", STUDY_DAY)
    assert (notice.status, notice.attempts) == ("late", 2)
    assert result.late == 1
    assert notice.lateness_seconds is not None and notice.lateness_seconds > 60
    rows = [r for r in await outbox(runtime) if r.stage == "notice:3d"]
    assert rows and all("补发" in text_of(r) and "12月1日 09:00" in text_of(r) for r in rows)


async def test_after_downtime_within_the_grace_the_stage_is_sent_as_补发_with_its_time(
        runtime: Runtime, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="bot")
    late_before = fires_counted("late")
    observed = REGISTRY.get_sample_value("remindbot_fire_lateness_seconds_count") or 0.0
    await set_last_pass(runtime, STUDY_DAY - timedelta(hours=12))
    clock(runtime).now = STUDY_DAY + timedelta(hours=2)
    result = await Reconciler(runtime).run_pass()
    due = await stage(runtime, "study-day", "due", STUDY_DAY)
    assert due.status == "late" and due.lateness_seconds == 2 * 3600
    assert result.late >= 1 and fires_counted("late") - late_before == result.late
    assert (REGISTRY.get_sample_value("remindbot_fire_lateness_seconds_count") or 0.0) - observed == result.fired
    rows = [r for r in await outbox(runtime) if r.stage == "due" and r.occurrence_id == due.occurrence_id]
    assert rows and all("补发" in text_of(r) and "12月4日 09:00" in text_of(r) for r in rows)
    said = [m for r in caplog.records if (m := r.getMessage()).startswith("提醒“") and "补发" in m]
    assert said and all("（当天提醒）" in line and "（due）" not in line for line in said), said


async def test_a_first_start_sends_nothing_that_fell_due_before_it_and_says_so(
        runtime: Runtime, caplog: pytest.LogCaptureFixture) -> None:
    # A fresh install two hours after the study day's 09:00 used to send it as 补发 "因服务中断",
    # and status counted it as sent late: there was no outage, the service was not yet installed.
    caplog.set_level(logging.INFO, logger="bot")
    clock(runtime).now = STUDY_DAY + timedelta(hours=2)
    result = await Reconciler(runtime).run_pass()
    assert (result.late, result.missed) == (0, 0)
    assert not [r for r in await outbox(runtime) if "补发" in text_of(r)]
    async with runtime.db.session() as session:
        before = (await session.exec(select(DueStage).where(
            DueStage.reminder_id == "study-day", DueStage.due_at == STUDY_DAY.astimezone(UTC)))).all()
    assert before == []
    said = [m for r in caplog.records if (m := r.getMessage()).startswith("首次启动")]
    assert len(said) == 1 and "每月学习日（当天提醒，12月4日 09:00）" in said[0] and "不补发" in said[0], said
    # From then on the mark exists: a later downtime is caught up as before (the tests above).
    clock(runtime).advance(minutes=1)
    await Reconciler(runtime).run_pass()
    assert len([r for r in caplog.records if r.getMessage().startswith("首次启动")]) == 1


async def test_a_first_start_minutes_after_a_due_time_never_sends_it_on_later_passes_or_after_a_restart(
        runtime: Runtime, caplog: pytest.LogCaptureFixture) -> None:
    # Trial 13: the first start at 10:38 said the 10:36 reminder would not be sent; the next pass,
    # a minute on, looked back 10 minutes and sent it as 补发 "因服务中断" to every group.
    caplog.set_level(logging.INFO, logger="bot")
    notice_at = datetime(2026, 12, 1, 9, 0, tzinfo=BJ)  # the study day's 3-day notice
    clock(runtime).now = notice_at + timedelta(minutes=3)
    await Reconciler(runtime).run_pass()
    said = [m for r in caplog.records if (m := r.getMessage()).startswith("首次启动")]
    assert len(said) == 1 and "不补发：每月学习日（提前3天通知，12月1日 09:00）" in said[0], said
    reconciler = Reconciler(runtime)
    for _ in range(2):  # the second and third passes
        clock(runtime).advance(minutes=1)
        result = await reconciler.run_pass()
        assert (result.late, result.on_time, result.missed) == (0, 0, 0)
    # A restart a minute later (its mark 1 minute old, the overlap 10) reaches back no further.
    clock(runtime).advance(minutes=1)
    result = await Reconciler(runtime, owner="restarted").run_pass()
    assert (result.late, result.missed) == (0, 0)
    assert await outbox(runtime) == []
    async with runtime.db.session() as session:
        assert (await session.exec(select(DueStage).where(DueStage.fire_at <= clock(runtime).now))).all() == []


async def test_the_first_start_line_names_at_most_five_sends_and_counts_the_rest(
        runtime: Runtime, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="bot")
    stamp = datetime(2026, 12, 1, 9, 0, tzinfo=BJ)
    titles = [f"第{n}项测试提醒" for n in range(7)]
    extra = "".join(f"""  - id: t{n}
    title: {title}
    when: {{once: 2026-12-01, at: "08:{50 + n}"}}
    recipients: {{channels: [{next(iter(runtime.schedules.channels))}]}}
""" for n, title in enumerate(titles))
    folder = Path(runtime.settings.var_dir) / "many"
    shutil.copytree(ROOT / "schedules", folder)
    (folder / "many.yaml").write_text(f"reminders:\n{extra}", encoding="utf-8")
    runtime.schedules = load_schedules(folder, templates_dir=runtime.settings.templates_dir, env={})
    clock(runtime).now = stamp + timedelta(minutes=1)
    await Reconciler(runtime).run_pass()
    said = [m for r in caplog.records if (m := r.getMessage()).startswith("首次启动")]
    assert len(said) == 1, said
    # The shipped 3-day notice (09:00) and these seven: the latest five named, then the count.
    assert said[0].startswith("首次启动：启动前已到期的 8 项提醒不补发：每月学习日（提前3天通知，12月1日 09:00）、"
                              "第6项测试提醒（当天提醒，12月1日 08:56）"), said
    assert "第3项测试提醒（当天提醒，12月1日 08:53）等 8 项" in said[0] and "第2项测试提醒" not in said[0]


async def test_the_start_up_list_marks_the_sends_of_a_day_fired_ahead_as_upcoming_does(
        runtime: Runtime, caplog: pytest.LogCaptureFixture) -> None:
    # Trial 13 #3: after `fire study-day --date 2026-12-04`, a restarted serve still listed the
    # 1-day notice and the day itself as to come; upcoming and the admin page said 已提前发出.
    from bot.scheduling.occurrences import fire
    from bot.scheduling.timing import fires
    from bot.service import log_coming

    clock(runtime).now = datetime(2026, 12, 1, 10, 0, tzinfo=BJ)
    study = runtime.schedules.reminders["study-day"]
    [day] = [f for f in fires(study, runtime.calendar, STUDY_DAY, STUDY_DAY + timedelta(minutes=1)) if f.stage == "due"]
    await fire(runtime, day, by_hand=True)
    caplog.set_level(logging.INFO, logger="bot")
    await log_coming(runtime)
    coming = [m for r in caplog.records if (m := r.getMessage()).startswith("接下来：")]
    ahead = "：已于 2026年12月1日（星期二）10:00 提前发出，届时不再发送"
    assert f"接下来：2026年12月3日（星期四）09:00 每月学习日（提前1天通知）{ahead}提前1天通知" in coming, coming
    assert f"接下来：2026年12月4日（星期五）09:00 每月学习日（当天提醒）{ahead}当天提醒" in coming, coming
    assert [m for m in coming if "每月学习日" not in m and "提前发出" in m] == []  # only that occurrence


async def test_after_downtime_past_the_grace_it_is_missed_recorded_counted_and_told_once(runtime: Runtime) -> None:
    before = fires_counted("missed")
    await set_last_pass(runtime, STUDY_DAY - timedelta(days=1))
    clock(runtime).now = STUDY_DAY + timedelta(hours=6, minutes=10)
    result = await Reconciler(runtime).run_pass()
    due = await stage(runtime, "study-day", "due", STUDY_DAY)
    assert due.status == "missed" and due.grace_seconds == 6 * 3600 and due.fired_at is None
    assert result.missed >= 1 and fires_counted("missed") - before == result.missed
    async with runtime.db.session() as session:
        occ = await session.get(Occurrence, due.occurrence_id)
    assert occ is not None and occ.fired_at is None  # an occurrence-level record, never sent
    assert not [r for r in await outbox(runtime) if r.stage == "due" and r.occurrence_id == occ.id]
    told = await outbox(runtime, stage_prefix="admin")
    assert len(told) == 1 and "每月学习日" in text_of(told[0]) and "错过" in text_of(told[0])
    # Later passes, and another instance, never tell it again.
    clock(runtime).advance(minutes=1)
    await Reconciler(runtime).run_pass()
    await Reconciler(runtime, owner="other").run_pass()
    assert len(await outbox(runtime, stage_prefix="admin")) == 1
    # The 1-day notice (Thursday 09:00) fell in the downtime too, and is recorded the same way.
    missed = await settled(runtime.db, STUDY_DAY - timedelta(days=1), statuses=("missed",))
    assert {r.stage for r in missed if r.reminder_id == "study-day"} == {"due", "notice:1d"}
    # `remindbot status` and `remindbot report` say so.
    status = await fire_outcomes_text(runtime, clock(runtime).now, "study-day")
    assert "【错过】每月学习日（当天提醒）原定 2026年12月4日（星期五）09:00" in status
    report, _ = await _report(runtime, "2026-12", "table", (), (), False)
    assert "因服务中断超过补发时限而未发出（错过）" in report and "每月学习日（当天提醒）" in report


async def test_two_instances_passing_at_once_fire_each_stage_once(runtime: Runtime) -> None:
    a, b = Reconciler(runtime, owner="a"), Reconciler(runtime, owner="b")
    ra, rb = await asyncio.gather(a.run_pass(), b.run_pass())
    async with runtime.db.session() as session:
        fired = (await session.exec(select(func.count()).select_from(DueStage).where(
            col(DueStage.status) == "fired"))).one()
    assert ra.fired + rb.fired == fired >= 1
    keys = [r.dedupe_key for r in await outbox(runtime)]
    assert len(keys) == len(set(keys))


async def test_a_stage_the_schedules_no_longer_name_is_cancelled_not_sent(runtime: Runtime) -> None:
    await set_last_pass(runtime, clock(runtime).now - timedelta(minutes=1))
    clock(runtime).now = datetime(2026, 12, 3, 10, 0, tzinfo=BJ)  # the 1-day notice is planned
    await Reconciler(runtime).run_pass()
    assert (await stage(runtime, "study-day", "due", STUDY_DAY)).status == "planned"
    runtime.schedules.reminders["study-day"].enabled = False
    await Reconciler(runtime).run_pass()
    assert (await stage(runtime, "study-day", "due", STUDY_DAY)).status == "cancelled"
    # Enabled again before its time: it is planned again and goes out on time.
    runtime.schedules.reminders["study-day"].enabled = True
    await Reconciler(runtime).run_pass()
    assert (await stage(runtime, "study-day", "due", STUDY_DAY)).status == "planned"
    clock(runtime).now = STUDY_DAY
    await Reconciler(runtime).run_pass()
    assert (await stage(runtime, "study-day", "due", STUDY_DAY)).status == "fired"


async def test_the_apscheduler_timer_has_a_job_per_reminder_and_the_loop_stamps_its_tick(runtime: Runtime) -> None:
    scheduler = ReminderScheduler(runtime)
    first = await scheduler.start()
    try:
        next_runs = scheduler.next_runs()
        assert set(runtime.schedules.reminders) <= set(next_runs)
        assert next_runs["study-day"] is not None
        assert next_runs["study-day"].astimezone(BJ) > datetime.now(BJ)
        assert first is not None and runtime.ticks["scheduler"] == clock(runtime).now
    finally:
        await scheduler.stop()


async def test_a_dry_run_service_rehearses_without_touching_the_record_of_stages(runtime: Runtime) -> None:
    runtime.settings.dry_run = True
    result = await Reconciler(runtime).run_pass()
    assert result.on_time >= 1  # the 3-day notice was rehearsed …
    rows = await outbox(runtime)
    assert rows and all(r.status == "dry_run" for r in rows)
    async with runtime.db.session() as session:  # … and the real service will still send it
        assert (await session.exec(select(func.count()).select_from(DueStage))).one() == 0
        assert await session.get(SchedulerMark, 1) is None
