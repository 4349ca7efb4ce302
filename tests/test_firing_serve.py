"""What a running service does when things go wrong around a due time (real ``remindbot serve``
processes against a fake WeCom that counts what arrives):

* the database is unreachable across the due time: the reminder goes out within a minute of the
  database's return, marked 补发 with its original time, once;
* the service was down past the grace: the reminders are recorded as missed — in ``status``,
  ``report`` and the admin pages — and the admin channel is told once, also across a restart.

The outage is a TCP proxy in front of the shared PostgreSQL server that the test cuts and
restores (the server itself keeps running for everyone else). Due times are chosen relative to
the real clock, at minute precision, as an admin would write them.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import select

from storage.db import Database
from storage.models import DueStage, Outbox, SchedulerMark
from tests.fakes.platforms import FakePlatforms, FakeRobot
from tests.fakes.proxy import LoopThread, TcpProxy
from tests.servehelp import STARTED, Service, Workspace, wait_until

PG_URL = os.environ.get("REMINDBOT_TEST_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")


@pytest.fixture
def loop() -> Iterator[LoopThread]:
    with LoopThread() as running:
        yield running


@pytest.fixture
def fakes(loop: LoopThread) -> Iterator[FakePlatforms]:
    servers = FakePlatforms(clock=time.time)
    loop.run(servers.start())
    try:
        yield servers
    finally:
        loop.run(servers.close())


def minute_at(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


def write_schedules(workspace: Workspace, group: FakeRobot, admin: FakeRobot,
                    reminders: dict[str, tuple[str, datetime]]) -> None:
    """Only these reminders ("once", in UTC, kept on days off), a group chat and an admin chat."""
    for old in workspace.schedules.glob("*.yaml"):
        old.unlink()
    items = "".join(
        f"""  - id: {rid}
    title: {title}
    when: {{once: {at:%Y-%m-%d}, at: "{at:%H:%M}"}}
    timezone: UTC
    holiday: keep
    recipients: {{channels: [group]}}
""" for rid, (title, at) in reminders.items())
    workspace.replace("firing.yaml", f"""service:
  admin_channel: admin
channels:
  - {{id: group, name: 测试党支部群, platform: wecom, webhook: "{group.url}"}}
  - {{id: admin, name: 工委管理员群, platform: wecom, webhook: "{admin.url}"}}
reminders:
{items}""")


def pg_or_skip(loop: LoopThread) -> None:
    async def ping() -> None:
        db = Database(PG_URL)
        try:
            await db.create_schema()
            async with db.engine.connect():
                pass
        finally:
            await db.stop()

    try:
        loop.run(ping())
    except (OSError, ConnectionError) as exc:
        if os.environ.get("REMINDBOT_REQUIRE_PG") == "1":
            pytest.fail(f"REMINDBOT_REQUIRE_PG=1 but PostgreSQL at {PG_URL} does not answer: {exc}")
        pytest.skip(f"no PostgreSQL server answers at {PG_URL}")


def sleep_until(moment: datetime) -> None:
    time.sleep(max((moment - datetime.now(UTC)).total_seconds(), 0))


def test_a_database_outage_across_the_due_time_sends_it_within_a_minute_of_recovery_marked_补发(
        workspace: Workspace, loop: LoopThread, fakes: FakePlatforms) -> None:
    pg_or_skip(loop)
    proxy = loop.run(TcpProxy.open("127.0.0.1", int(PG_URL.rsplit(":", 1)[1].split("/")[0])))
    schema = f"test_firing_{uuid.uuid4().hex[:10]}"
    group, admin = fakes.wecom(), fakes.wecom()
    due = minute_at(datetime.now(UTC) + timedelta(seconds=100))
    write_schedules(workspace, group, admin, {"outage-day": ("中断期间的学习日", due)})
    url = PG_URL.replace(PG_URL.rsplit("@", 1)[1].split("/")[0], f"127.0.0.1:{proxy.port}")
    service = Service.start(workspace, env={"REMINDBOT_DATABASE_URL": url, "REMINDBOT_DATABASE_SCHEMA": schema})
    try:
        service.wait_ready()
        sleep_until(due - timedelta(seconds=10))
        loop.run(proxy.cut())
        sleep_until(due + timedelta(seconds=50))
        assert not group.received, "nothing can be queued while the database is away"
        assert proxy.refused > 0, "the service kept trying to reach the database"
        proxy.restore()
        back = time.monotonic()
        wait_until(lambda: group.received, "the reminder after the database came back", timeout=60)
        took = time.monotonic() - back
        time.sleep(3)  # anything sent twice would arrive now
        texts = group.texts()
        assert len(texts) == 1, texts
        assert "补发" in texts[0] and f"原定 {due.month}月{due.day}日 {due:%H:%M}" in texts[0]
        assert "中断期间的学习日" in texts[0]
        assert not admin.received  # late, not missed: nothing to tell the admin
        row = loop.run(_due_stage(schema, "outage-day"))
        assert row.status == "late" and row.lateness_seconds is not None and row.lateness_seconds >= 50
        assert row.attempts == 1  # the outage made passes fail; the stage itself was fired once
        print(f"sent {took:.1f} s after the database came back; {row.lateness_seconds:.0f} s late")
    finally:
        service.kill()
        loop.run(proxy.close())
        loop.run(_drop(schema))


async def _due_stage(schema: str, reminder_id: str) -> DueStage:
    db = Database(PG_URL, schema=schema)
    try:
        async with db.session() as session:
            return (await session.exec(select(DueStage).where(DueStage.reminder_id == reminder_id))).one()
    finally:
        await db.stop()


async def _drop(schema: str) -> None:
    db = Database(PG_URL, schema=schema)
    try:
        await db.drop_schema()
    finally:
        await db.stop()


async def _last_ran(url: str, at: datetime) -> None:
    """A database as a service leaves it that last ran at ``at``."""
    db = Database(url)
    await db.start()
    try:
        async with db.session() as session:
            session.add(SchedulerMark(id=1, last_pass_at=at))
            await session.commit()
    finally:
        await db.stop()


def cli(workspace: Workspace, *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "bot", *args], env=workspace.env(), capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_downtime_past_the_grace_records_missed_in_status_report_and_admin_and_tells_the_admin_once(
        workspace: Workspace, fakes: FakePlatforms) -> None:
    now = datetime.now(UTC)
    short = minute_at(now - timedelta(hours=6, minutes=11))  # 6 h 10 min (and a bit) before the start
    long = minute_at(now - timedelta(days=2))
    group, admin = fakes.wecom(), fakes.wecom()
    write_schedules(workspace, group, admin, {"short-outage": ("六小时前的支部委员会", short),
                                              "long-outage": ("两天前的主题党日", long)})
    asyncio.run(_last_ran(f"sqlite+aiosqlite:///{workspace.database}", now - timedelta(days=3)))
    service = Service.start(workspace)
    try:
        service.wait_ready()
        wait_until(lambda: admin.received, "the admin channel told of the missed reminders")
        time.sleep(2)
        assert len(admin.received) == 1, admin.texts()
        told = admin.texts()[0]
        assert "错过" in told and "六小时前的支部委员会" in told and "两天前的主题党日" in told
        assert not group.received, "a missed reminder is recorded, never sent late beyond the grace"

        status = cli(workspace, "status")
        assert "错过 2 项" in status
        assert "【错过】六小时前的支部委员会（当天提醒）" in status and "超过补发时限 6小时" in status
        assert "【错过】两天前的主题党日（当天提醒）" in status
        for title, at in (("六小时前的支部委员会", short), ("两天前的主题党日", long)):
            local = at.astimezone(ZoneInfo("Asia/Shanghai"))
            report = cli(workspace, "report", "--period", f"{local:%Y-%m}")
            assert "未发出（错过）" in report and title in report

        code, page = service.get("/admin/", admin=True)
        assert code == 200 and "未能按时发出的提醒" in page
        assert "六小时前的支部委员会" in page and "两天前的主题党日" in page and "错过" in page

        # After a restart the record stays and the admin is not told again.
        assert service.stop() == 0
        service = Service.start(workspace)
        service.wait_ready()
        service.wait_for_log(STARTED)
        time.sleep(3)
        assert len(admin.received) == 1 and not group.received
        assert "错过 2 项" in cli(workspace, "status")
    finally:
        service.kill()


def test_the_stop_summary_counts_the_messages_recorded_for_channels_without_a_webhook(
        workspace: Workspace) -> None:
    now = datetime.now(UTC)
    due = minute_at(now - timedelta(minutes=2))  # late, within the grace: fired at start
    for old in workspace.schedules.glob("*.yaml"):
        old.unlink()
    workspace.replace("firing.yaml", f"""channels:
  - {{id: group, name: 测试党支部群, platform: wecom, webhook: ""}}
reminders:
  - id: record-only
    title: 没有 webhook 的学习日
    when: {{once: {due:%Y-%m-%d}, at: "{due:%H:%M}"}}
    timezone: UTC
    holiday: keep
    recipients: {{channels: [group]}}
""")
    url = f"sqlite+aiosqlite:///{workspace.database}"
    asyncio.run(_last_ran(url, now - timedelta(minutes=5)))
    service = Service.start(workspace)
    try:
        service.wait_ready()
        service.wait_for_log("只记录、不发送（未配置 webhook）")
        assert service.stop() == 0
    finally:
        service.kill()
    recorded = asyncio.run(_recorded_rows(url))
    assert recorded >= 1
    assert f"未配置 webhook 只记录 {recorded} 条" in service.output(), service.output()


async def _recorded_rows(url: str) -> int:
    db = Database(url)
    try:
        async with db.session() as session:
            return len((await session.exec(select(Outbox).where(Outbox.status == "dry_run"))).all())
    finally:
        await db.stop()
