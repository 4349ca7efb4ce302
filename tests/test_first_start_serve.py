"""A first start sends nothing that fell due before it — on its later passes and after a restart too
(real ``remindbot serve`` processes against a fake WeCom that counts what arrives).

Trial 13: a fresh install started at 10:38 logged that the 10:36 reminder would not be sent; its
second pass, a minute on, looked back 10 minutes and sent it to the group as 补发 "因服务中断". The
same after a rehearsal: ``serve --dry-run`` records no pass, so the real start after it is a first
start, and what the rehearsal had shown went out for real as 补发.

Passes are woken by schedules reloads (a pass follows each) and seen done by the database's record
of the last pass moving on, so the test waits for what it checks, not for the one-minute timer.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from tests.fakes.platforms import FakePlatforms, FakeRobot
from tests.fakes.proxy import LoopThread
from tests.servehelp import RELOADED, STARTED, Service, Workspace, wait_until

TITLE = "首启测试"


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


def write_schedules(workspace: Workspace, group: FakeRobot, admin: FakeRobot, due: datetime) -> None:
    for old in workspace.schedules.glob("*.yaml"):
        old.unlink()
    workspace.replace("first.yaml", f"""service:
  admin_channel: admin
channels:
  - {{id: group, name: 测试党支部群, platform: wecom, webhook: "{group.url}"}}
  - {{id: admin, name: 工委管理员群, platform: wecom, webhook: "{admin.url}"}}
reminders:
  - id: first-start
    title: {TITLE}
    when: {{once: {due:%Y-%m-%d}, at: "{due:%H:%M}"}}
    timezone: UTC
    holiday: keep
    recipients: {{channels: [group]}}
""")


def marks(workspace: Workspace) -> dict[int, datetime]:
    """The scheduler's marks as the database holds them (1: the last pass, 2: the first start)."""
    with sqlite3.connect(workspace.database) as db:
        rows = db.execute("SELECT id, last_pass_at FROM scheduler_mark").fetchall()
    return {row_id: datetime.fromisoformat(at).replace(tzinfo=UTC) for row_id, at in rows}


def another_pass(service: Service, workspace: Workspace, n: int) -> None:
    """Wake a pass with a reload (``n``-th reload of this process) and wait until it has completed."""
    asked = datetime.now(UTC)
    workspace.edit("first.yaml", "reminders:", f"# reload {n}\nreminders:")
    service.wait_for_log(RELOADED, count=n)
    wait_until(lambda: marks(workspace).get(1, asked) > asked, f"pass {n + 1} recorded")


def test_a_first_start_sends_nothing_due_before_it_on_its_next_passes_nor_after_a_restart(
        workspace: Workspace, fakes: FakePlatforms) -> None:
    group, admin = fakes.wecom(), fakes.wecom()
    due = (datetime.now(UTC) - timedelta(minutes=3)).replace(second=0, microsecond=0)
    write_schedules(workspace, group, admin, due)
    service = Service.start(workspace)
    try:
        service.wait_ready()
        service.wait_for_log(STARTED)
        wait_until(lambda: 1 in marks(workspace), "the first pass recorded")
        said = f"首次启动：启动前已到期的 1 项提醒不补发：{TITLE}（当天提醒，{due.month}月{due.day}日 {due:%H:%M}）"
        assert service.log_count(said) == 1, service.output()
        another_pass(service, workspace, 1)
        another_pass(service, workspace, 2)
        assert service.stop() == 0
        first = marks(workspace)[2]
        service = Service.start(workspace, name="restarted")
        service.wait_ready()
        service.wait_for_log(STARTED)
        another_pass(service, workspace, 1)
        time.sleep(1)  # anything queued would be posted now
        assert group.texts() == [], group.texts()
        assert admin.texts() == [], admin.texts()  # not missed either: it was never the service's to send
        assert marks(workspace)[2] == first  # the first start's mark stays the first start's
        assert "已补发" not in service.stdout and service.log_count("首次启动") == 0, service.output()
    finally:
        service.kill()


def test_a_real_start_after_a_rehearsal_is_a_first_start_and_sends_nothing_the_rehearsal_showed(
        workspace: Workspace, fakes: FakePlatforms) -> None:
    group, admin = fakes.wecom(), fakes.wecom()
    due = (datetime.now(UTC) + timedelta(seconds=70)).replace(second=0, microsecond=0)
    write_schedules(workspace, group, admin, due)
    rehearsal = Service.start(workspace, "--dry-run", name="rehearsal")
    try:
        rehearsal.wait_ready()
        rehearsal.wait_for_log(f"{TITLE}（当天提醒）已演练", timeout=90)
        assert rehearsal.stop() == 0
    finally:
        rehearsal.kill()
    assert marks(workspace) == {}, "a rehearsal records no pass: its runs never stand for the real ones"
    service = Service.start(workspace)
    try:
        service.wait_ready()
        service.wait_for_log(STARTED)
        wait_until(lambda: 1 in marks(workspace), "the first pass recorded")
        assert service.log_count(f"首次启动：启动前已到期的 1 项提醒不补发：{TITLE}") == 1, service.output()
        another_pass(service, workspace, 1)
        another_pass(service, workspace, 2)
        time.sleep(1)
        assert group.texts() == [] and admin.texts() == [], service.output()
        assert "已补发" not in service.stdout
    finally:
        service.kill()
