"""Follow-ups and escalations on a controllable clock, against a real SQLite file.

The world (``WORLD_YAML``, ``make_runtime``, ``fire_due``) is imported by the report and CLI
tests too: two organs with their branches, three secretaries, two leaders, one admin, a group
chat without personal links and an office-automation channel with them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import col, select

from bot.config.loader import load_schedules
from bot.confirming.confirmations import record_confirmation
from bot.confirming.followup import LATE_FOLLOWUPS, FollowUps
from bot.confirming.tokens import read_token
from bot.delivery.render import Renderer
from bot.runtime import Runtime
from bot.scheduling.occurrences import fire
from bot.scheduling.timing import Due, Fire
from bot.scheduling.workdays import WorkCalendar
from bot.settings import ROOT, Settings
from storage.db import Database
from storage.models import Expectation, Nudge, Outbox

BJ = ZoneInfo("Asia/Shanghai")
SECRET = "followup-test-signing-key-0123456789"

WORLD_YAML = """
units:
  - {id: gw, name: 市直机关工委}
  - {id: fgw, name: 市发展改革委, parent: gw, leaders: [zhao]}
  - {id: fgw_b1, name: 发改委第一党支部, parent: fgw}
  - {id: fgw_b2, name: 发改委第二党支部, parent: fgw}
  - {id: jyj, name: 市教育局, parent: gw, leaders: [sun]}
  - {id: jyj_b1, name: 教育局第一党支部, parent: jyj}
people:
  - {id: zhao, name: 赵明, roles: [leader], unit: gw, mobile: "13800000002", channels: [group]}
  - {id: sun, name: 孙丽, roles: [leader], unit: gw, mobile: "13800000003"}
  - {id: chen, name: 陈静, roles: [admin, worker], unit: gw}
  - {id: wang, name: 王芳, roles: [secretary], unit: fgw_b1, mobile: "13800000101"}
  - {id: liu, name: 刘洋, roles: [secretary], unit: fgw_b2, mobile: "13800000102"}
  - {id: wu, name: 吴敏, roles: [secretary], unit: jyj_b1, mobile: "13800000104", channels: [group]}
channels:
  - {id: group, name: 党务工作群, platform: generic}
  - {id: oa, name: 协同办公待办, platform: generic, personal_links: true}
reminders:
  - id: study
    title: 每月学习日
    when: {monthly: {weekday: tue, nth: 1}, at: "09:00"}
    recipients: {channels: [group, oa], mention: {roles: [secretary]}}
    confirm: {deadline: 3d, remind_every: 1d}
  - id: eve
    title: 节前安全检查
    when: {once: 2026-09-30, at: "09:00"}
    recipients: {channels: [group], mention: {roles: [secretary]}}
    confirm: {deadline: 9h, escalate_every: 1wd}
  - id: duties
    title: “一岗双责”党建工作提醒
    when: {quarterly: {month: 1, workday: 5}, at: "10:00"}
    template: duty_brief
    recipients: {channels: [group], mention: {roles: [leader]}, per_person: true}
  - id: bulletin
    title: 组织生活情况通报
    kind: report
    when: {monthly: {workday: 2}, at: "16:00"}
    template: report
    report: {period: previous_month}
    recipients: {channels: [group]}
"""


def bj(y: int, m: int, d: int, h: int = 0, mi: int = 0, sec: int = 0) -> datetime:
    return datetime(y, m, d, h, mi, sec, tzinfo=BJ)


@dataclass
class Clock:
    now: datetime

    def __call__(self) -> datetime:
        return self.now


def write_world(folder: Path) -> Settings:
    (folder / "schedules").mkdir(parents=True, exist_ok=True)
    (folder / "schedules" / "world.yaml").write_text(WORLD_YAML, encoding="utf-8")
    return Settings(database_url=f"sqlite+aiosqlite:///{folder / 'remindbot.db'}",
                    schedules_dir=folder / "schedules", var_dir=folder / "var", secret_key=SECRET,
                    base_url="https://dj.example.gov.cn")


async def make_runtime(settings: Settings, clock: Clock, db: Database | None = None) -> Runtime:
    schedules = load_schedules(settings.schedules_dir, templates_dir=settings.templates_dir)
    if db is None:
        db = Database(settings.database_url)
        await db.start()
    return Runtime(settings=settings, db=db, schedules=schedules, calendar=WorkCalendar(schedules.calendar),
                   renderer=Renderer(ROOT / "message_templates"), clock=clock)


async def fire_due(runtime: Runtime, reminder_id: str, due_at: datetime) -> int:
    """Run the real firing pipeline for a due time; return the occurrence id."""
    due = Due(reminder_id, due_at, None, False, False, None)
    result = await fire(runtime, Fire(reminder_id, "due", due_at, due, None))
    return result.occurrence_id


async def outbox(runtime: Runtime, stage_prefix: str) -> list[Outbox]:
    async with runtime.db.session() as session:
        rows = (await session.exec(select(Outbox).order_by(col(Outbox.id)))).all()
    return [r for r in rows if r.stage.startswith(stage_prefix)]


def mentioned(row: Outbox) -> list[str]:
    return [m["person_id"] for m in row.body["mentions"]]


async def nudges(runtime: Runtime) -> list[tuple[str, str, int]]:
    async with runtime.db.session() as session:
        rows = (await session.exec(select(Nudge).order_by(col(Nudge.id)))).all()
    return [(n.person_id, n.kind, n.number) for n in rows]


async def confirm(runtime: Runtime, occ: int, person: str, when: datetime) -> None:
    await record_confirmation(runtime.db, occ, person, via="link", now=when)


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[tuple[Runtime, Clock]]:
    clock = Clock(bj(2026, 11, 3, 9, 0))
    runtime = await make_runtime(write_world(tmp_path), clock)
    try:
        yield runtime, clock
    finally:
        await runtime.db.stop()


# ---------------------------------------------------------------- follow-ups


async def test_follow_up_mentions_only_those_who_have_not_confirmed(world: tuple[Runtime, Clock]) -> None:
    runtime, _ = world
    occ = await fire_due(runtime, "study", bj(2026, 11, 3, 9, 0))  # Tuesday; deadline Friday 09:00
    await confirm(runtime, occ, "wang", bj(2026, 11, 3, 15, 0))
    assert await FollowUps(runtime).run_once(bj(2026, 11, 4, 8, 59)) == 0  # not yet, and before hours

    assert await FollowUps(runtime).run_once(bj(2026, 11, 4, 9, 0)) > 0

    group = [r for r in await outbox(runtime, "followup:1") if r.channel_id == "group"]
    assert len(group) == 1  # one message for the group, mentioning everyone still owing
    assert mentioned(group[0]) == ["liu", "wu"]
    assert "刘洋" in group[0].body["markdown"] and "吴敏" in group[0].body["markdown"]
    assert "王芳" not in group[0].body["markdown"]
    assert "【催办】" in group[0].body["markdown"]
    assert group[0].body["button"] is None  # no personal links in a group chat
    assert sorted(await nudges(runtime)) == [("liu", "followup", 1), ("wu", "followup", 1)]


async def test_a_channel_with_personal_links_gets_one_message_per_person_with_their_own_link(
        world: tuple[Runtime, Clock]) -> None:
    runtime, _ = world
    occ = await fire_due(runtime, "study", bj(2026, 11, 3, 9, 0))
    await FollowUps(runtime).run_once(bj(2026, 11, 4, 9, 0))

    rows = [r for r in await outbox(runtime, "followup:1") if r.channel_id == "oa"]
    assert [mentioned(r) for r in rows] == [["wang"], ["liu"]]  # wu is not in the oa channel
    for row in rows:
        token = row.body["button"]["url"].rsplit("/", 1)[1]
        assert read_token(SECRET, token, 86400, now=bj(2026, 11, 4, 9, 5)) == (occ, mentioned(row)[0])
        assert row.dedupe_key.removeprefix("dry/").startswith(f"occ{occ}/followup:1/oa/{mentioned(row)[0]}")


async def test_follow_ups_come_once_per_interval_and_stop_for_whoever_confirms(
        world: tuple[Runtime, Clock]) -> None:
    runtime, _ = world
    occ = await fire_due(runtime, "study", bj(2026, 11, 3, 9, 0))
    engine = FollowUps(runtime)
    assert await engine.run_once(bj(2026, 11, 4, 9, 0)) > 0
    assert await engine.run_once(bj(2026, 11, 4, 9, 0)) == 0
    assert await engine.run_once(bj(2026, 11, 4, 16, 0)) == 0  # next one is a day later
    await confirm(runtime, occ, "liu", bj(2026, 11, 4, 17, 0))

    assert await engine.run_once(bj(2026, 11, 5, 9, 0)) > 0

    second = [r for r in await outbox(runtime, "followup:2") if r.channel_id == "group"]
    assert [mentioned(r) for r in second] == [["wang", "wu"]]
    assert ("liu", "followup", 2) not in await nudges(runtime)


async def test_a_fully_confirmed_occurrence_is_never_followed_up_again(world: tuple[Runtime, Clock]) -> None:
    runtime, _ = world
    occ = await fire_due(runtime, "study", bj(2026, 11, 3, 9, 0))
    for person in ("wang", "liu", "wu"):
        await confirm(runtime, occ, person, bj(2026, 11, 3, 10, 0))
    engine = FollowUps(runtime)

    for day in (4, 5, 6, 9, 10):
        assert await engine.run_once(bj(2026, 11, day, 10, 0)) == 0

    assert await outbox(runtime, "followup") == [] and await outbox(runtime, "escalation") == []
    async with runtime.db.session() as session:
        exps = (await session.exec(select(Expectation))).all()
    assert all(e.next_followup_at is None and e.next_escalation_at is None for e in exps)


async def test_a_restart_neither_repeats_nor_loses_a_follow_up(tmp_path: Path) -> None:
    settings = write_world(tmp_path)
    clock = Clock(bj(2026, 11, 3, 9, 0))
    first = await make_runtime(settings, clock)
    await fire_due(first, "study", bj(2026, 11, 3, 9, 0))
    await FollowUps(first).run_once(bj(2026, 11, 4, 9, 0))
    await first.db.stop()

    second = await make_runtime(settings, clock)  # a new process on the same database
    try:
        engine = FollowUps(second)
        assert await engine.run_once(bj(2026, 11, 4, 9, 0)) == 0
        assert await engine.run_once(bj(2026, 11, 4, 14, 0)) == 0
        assert await engine.run_once(bj(2026, 11, 5, 9, 1)) > 0
        assert len([r for r in await outbox(second, "followup:1") if r.channel_id == "group"]) == 1
        assert len([r for r in await outbox(second, "followup:2") if r.channel_id == "group"]) == 1
    finally:
        await second.db.stop()


async def test_two_instances_at_once_send_a_round_only_once(tmp_path: Path) -> None:
    settings = write_world(tmp_path)
    clock = Clock(bj(2026, 11, 3, 9, 0))
    a, b = await make_runtime(settings, clock), await make_runtime(settings, clock)
    try:
        await fire_due(a, "study", bj(2026, 11, 3, 9, 0))
        sent = await asyncio.gather(FollowUps(a).run_once(bj(2026, 11, 4, 9, 0)),
                                    FollowUps(b).run_once(bj(2026, 11, 4, 9, 0)))
        assert sorted(sent)[0] == 0 and sorted(sent)[1] == 3  # group + two personal oa messages
        assert len(await outbox(a, "followup")) == 3
        assert len(await nudges(a)) == 3
    finally:
        await a.db.stop()
        await b.db.stop()


async def test_a_follow_up_due_at_the_weekend_waits_for_monday_and_the_next_comes_tuesday(
        world: tuple[Runtime, Clock]) -> None:
    runtime, _ = world
    await fire_due(runtime, "study", bj(2026, 11, 6, 9, 0))  # Friday: first follow-up falls on Saturday
    engine = FollowUps(runtime)
    for moment in (bj(2026, 11, 7, 9, 0), bj(2026, 11, 8, 15, 0), bj(2026, 11, 9, 8, 59)):
        assert await engine.run_once(moment) == 0

    assert await engine.run_once(bj(2026, 11, 9, 9, 0)) > 0
    assert await engine.run_once(bj(2026, 11, 9, 14, 0)) == 0  # not again on Monday afternoon
    assert await engine.run_once(bj(2026, 11, 10, 9, 0)) > 0
    assert {r.stage for r in await outbox(runtime, "followup")} == {"followup:1", "followup:2"}


async def test_the_loop_runs_rounds_until_stopped(world: tuple[Runtime, Clock]) -> None:
    runtime, clock = world
    await fire_due(runtime, "study", bj(2026, 11, 3, 9, 0))
    clock.now = bj(2026, 11, 4, 9, 30)
    queued = asyncio.Event()
    runtime.wake_dispatcher = queued.set  # the engine wakes the dispatcher after queuing
    engine = FollowUps(runtime)
    await engine.start()
    try:
        await asyncio.wait_for(queued.wait(), timeout=10)
    finally:
        await engine.stop()
    assert len(await outbox(runtime, "followup:1")) == 3
    await engine.stop()  # stopping twice is harmless


# ---------------------------------------------------------------- escalation


async def test_after_the_deadline_each_leader_hears_of_their_own_overdue_people(
        world: tuple[Runtime, Clock]) -> None:
    runtime, _ = world
    occ = await fire_due(runtime, "study", bj(2026, 11, 3, 9, 0))  # deadline Friday 6 Nov 09:00
    engine = FollowUps(runtime)
    for day in (4, 5):
        await engine.run_once(bj(2026, 11, day, 9, 0))
    await confirm(runtime, occ, "wang", bj(2026, 11, 5, 10, 0))
    assert await outbox(runtime, "escalation") == []

    await engine.run_once(bj(2026, 11, 6, 9, 0))

    rows = await outbox(runtime, "escalation:1")
    # Zhao is only in the group chat; Sun is in both, but Wu, who is late, only in the group.
    assert sorted((r.channel_id, mentioned(r)[0]) for r in rows) == [("group", "sun"), ("group", "zhao")]
    zhao = next(r for r in rows if mentioned(r) == ["zhao"])
    assert "刘洋" in zhao.body["markdown"] and "吴敏" not in zhao.body["markdown"]
    assert "王芳" not in zhao.body["markdown"]  # confirmed in time
    assert "已催办 2 次" in zhao.body["markdown"]
    assert "2026年11月6日" in zhao.body["markdown"]  # overdue since the deadline
    sun = next(r for r in rows if mentioned(r) == ["sun"])
    assert "吴敏" in sun.body["markdown"] and "刘洋" not in sun.body["markdown"]
    assert [n for n in await nudges(runtime) if n[1] == "escalation"] == [
        ("liu", "escalation", 1), ("wu", "escalation", 1)]
    assert await engine.run_once(bj(2026, 11, 9, 9, 0)) > 0  # follow-ups go on; no escalate_every
    assert len(await outbox(runtime, "escalation")) == 2


async def test_escalation_on_the_eve_of_national_day_waits_until_the_first_working_morning(
        world: tuple[Runtime, Clock]) -> None:
    runtime, _ = world
    # Due Wednesday 30 September 09:00, deadline 18:00 that evening; 1-7 October are holidays.
    await fire_due(runtime, "eve", bj(2026, 9, 30, 9, 0))
    engine = FollowUps(runtime)
    for moment in (bj(2026, 9, 30, 18, 0), bj(2026, 10, 1, 10, 0), bj(2026, 10, 5, 15, 0),
                   bj(2026, 10, 7, 17, 0), bj(2026, 10, 8, 8, 59)):
        assert await engine.run_once(moment) == 0

    assert await engine.run_once(bj(2026, 10, 8, 9, 0)) > 0
    assert {r.stage for r in await outbox(runtime, "escalation")} == {"escalation:1"}
    # escalate_every 1wd: Friday 9th, then the adjusted working Saturday 10th, then Monday 12th.
    assert await engine.run_once(bj(2026, 10, 8, 15, 0)) == 0
    assert await engine.run_once(bj(2026, 10, 9, 9, 0)) > 0
    assert await engine.run_once(bj(2026, 10, 10, 9, 0)) > 0
    assert await engine.run_once(bj(2026, 10, 11, 9, 0)) == 0
    assert await engine.run_once(bj(2026, 10, 12, 9, 0)) > 0
    assert {r.stage for r in await outbox(runtime, "escalation")} == {f"escalation:{n}" for n in (1, 2, 3, 4)}


async def test_follow_ups_after_the_deadline_stop_after_a_few(world: tuple[Runtime, Clock]) -> None:
    runtime, _ = world
    await fire_due(runtime, "study", bj(2026, 11, 3, 9, 0))  # deadline Friday 6 Nov 09:00
    engine = FollowUps(runtime)
    days = [bj(2026, 11, d, 9, 0) for d in (4, 5, 6, 9, 10, 11, 12, 13, 16, 17)]
    for moment in days:
        await engine.run_once(moment)

    numbers = sorted({n for p, kind, n in await nudges(runtime) if p == "liu" and kind == "followup"})
    # Wed, Thu before the deadline, then LATE_FOLLOWUPS from Friday on.
    assert numbers == list(range(1, 3 + LATE_FOLLOWUPS))


async def test_a_reminder_removed_from_the_schedules_stops_its_follow_ups(world: tuple[Runtime, Clock]) -> None:
    runtime, _ = world
    await fire_due(runtime, "study", bj(2026, 11, 3, 9, 0))
    runtime.schedules.reminders.pop("study")

    assert await FollowUps(runtime).run_once(bj(2026, 11, 4, 9, 0)) == 0

    async with runtime.db.session() as session:
        exps = (await session.exec(select(Expectation))).all()
    assert all(e.next_followup_at is None for e in exps)


async def test_the_loop_wakes_when_the_next_round_is_due_or_polls(world: tuple[Runtime, Clock]) -> None:
    runtime, _ = world
    await fire_due(runtime, "study", bj(2026, 11, 3, 9, 0))  # first follow-up Wednesday 09:00
    engine = FollowUps(runtime)
    assert await engine.seconds_to_next(bj(2026, 11, 4, 8, 59, 45)) == 15.0
    assert await engine.seconds_to_next(bj(2026, 11, 3, 12, 0)) == 30.0  # a day away: poll


async def test_a_follow_up_falling_at_night_goes_next_morning_and_the_next_a_day_after(
        world: tuple[Runtime, Clock]) -> None:
    runtime, _ = world
    await fire_due(runtime, "study", bj(2026, 11, 3, 19, 0))  # first follow-up Wednesday 19:00
    engine = FollowUps(runtime)
    assert await engine.run_once(bj(2026, 11, 4, 19, 0)) == 0
    assert await engine.run_once(bj(2026, 11, 4, 23, 30)) == 0

    assert await engine.run_once(bj(2026, 11, 5, 9, 0)) > 0
    assert await engine.run_once(bj(2026, 11, 5, 14, 0)) == 0  # not once more the same day
    assert await engine.run_once(bj(2026, 11, 6, 9, 0)) > 0
    assert {r.stage for r in await outbox(runtime, "followup")} == {"followup:1", "followup:2"}


async def test_escalation_goes_to_the_people_named_in_escalate_to(world: tuple[Runtime, Clock]) -> None:
    runtime, _ = world
    confirm_spec = runtime.schedules.reminders["eve"].confirm
    assert confirm_spec is not None
    confirm_spec.escalate_to = ["chen"]
    await fire_due(runtime, "eve", bj(2026, 10, 9, 9, 0))  # deadline 18:00; Saturday 10th is a working day

    assert await FollowUps(runtime).run_once(bj(2026, 10, 10, 9, 0)) > 0

    rows = await outbox(runtime, "escalation:1")
    assert [mentioned(r) for r in rows] == [["chen"]]
    assert all(name in rows[0].body["markdown"] for name in ("王芳", "刘洋", "吴敏"))


async def same_schema(db: Database) -> Database:
    """A second engine (a second instance) on the PostgreSQL schema the fixture made."""
    return Database(db.url, schema=db.schema)


@pytest.mark.postgres
async def test_two_instances_on_postgresql_send_a_round_only_once_and_stop_on_confirmation(
        pg_db: Database, tmp_path: Path) -> None:
    settings, clock = write_world(tmp_path), Clock(bj(2026, 11, 3, 9, 0))
    a = await make_runtime(settings, clock, pg_db)
    other = await same_schema(pg_db)
    b = await make_runtime(settings, clock, other)
    try:
        occ = await fire_due(a, "study", bj(2026, 11, 3, 9, 0))
        sent = await asyncio.gather(FollowUps(a).run_once(bj(2026, 11, 4, 9, 0)),
                                    FollowUps(b).run_once(bj(2026, 11, 4, 9, 0)))
        assert sorted(sent) == [0, 3]
        await confirm(b, occ, "liu", bj(2026, 11, 4, 10, 0))
        assert await FollowUps(b).run_once(bj(2026, 11, 5, 9, 0)) > 0
        second = [r for r in await outbox(a, "followup:2") if r.channel_id == "group"]
        assert [mentioned(r) for r in second] == [["wang", "wu"]]
        await FollowUps(a).run_once(bj(2026, 11, 6, 9, 0))
        assert {mentioned(r)[0] for r in await outbox(a, "escalation:1")} == {"zhao", "sun"}
    finally:
        await other.stop()
