"""An excusal made in one ``remindbot serve`` holds in the next: real processes, a fake WeCom group.

Study day three days ago (fired with ``remindbot fire``), deadline passed, follow-ups and
escalations due. Serve #1 sends the first round to everyone; an admin excuses 吴敏 over HTTP
(CSRF token from the board); serve #1 stops. A day passes (the due times that exist come due);
serve #2 sends the second round: nothing to or about 吴敏, and ``status`` and ``report`` (each
their own process) show them apart, not late. Working hours are the whole day and today is
declared a working day, so the test runs at any hour.
"""

from __future__ import annotations

import base64
import csv
import io
import re
import sqlite3
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from bot.admins import hash_password
from tests.fakes.platforms import FakePlatforms, FakeRobot
from tests.fakes.proxy import LoopThread
from tests.servehelp import Service, Workspace, wait_until

BJ = ZoneInfo("Asia/Shanghai")
ADMIN, PASSWORD = "陈明", "chen-ming-serve-password"
WU_MOBILE = "13800000104"


@pytest.fixture
def loop() -> Iterator[LoopThread]:
    with LoopThread() as running:
        yield running


@pytest.fixture
def group(loop: LoopThread) -> Iterator[FakeRobot]:
    servers = FakePlatforms(clock=time.time)
    loop.run(servers.start())
    try:
        yield servers.wecom()
    finally:
        loop.run(servers.close())


def write_schedules(workspace: Workspace, robot: FakeRobot, due: datetime) -> None:
    for old in workspace.schedules.glob("*.yaml"):
        old.unlink()
    today = datetime.now(BJ).date()
    workspace.replace("excuse.yaml", f"""calendar:
  workdays: [{today}, {today + timedelta(days=1)}]
units:
  - {{id: gw, name: 市直机关工委}}
  - {{id: b1, name: 第一党支部, parent: gw, leaders: [zhao]}}
  - {{id: b2, name: 第二党支部, parent: gw, leaders: [zhao]}}
  - {{id: b3, name: 第三党支部, parent: gw, leaders: [zhao]}}
people:
  - {{id: zhao, name: 赵明, roles: [leader], unit: gw, mobile: "13800000002"}}
  - {{id: wang, name: 王芳, roles: [secretary], unit: b1, mobile: "13800000101"}}
  - {{id: liu, name: 刘洋, roles: [secretary], unit: b2, mobile: "13800000102"}}
  - {{id: wu, name: 吴敏, roles: [secretary], unit: b3, mobile: "{WU_MOBILE}"}}
channels:
  - {{id: group, name: 党务工作群, platform: wecom, webhook: "{robot.url}"}}
reminders:
  - id: study
    title: 每月学习日
    when: {{once: {due:%Y-%m-%d}, at: "{due:%H:%M}"}}
    holiday: keep
    recipients: {{channels: [group], mention: {{roles: [secretary]}}}}
    confirm: {{deadline: 1d, remind_every: 1d, escalate_every: 1d}}
""")


def admin_request(service: Service, path: str, form: dict[str, str] | None = None) -> tuple[int, str]:
    data = urllib.parse.urlencode(form).encode() if form is not None else None
    request = urllib.request.Request(f"http://127.0.0.1:{service.port}{path}", data=data)
    request.add_header("Authorization", "Basic " + base64.b64encode(f"{ADMIN}:{PASSWORD}".encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode("utf-8")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode("utf-8")


def nudged(workspace: Workspace) -> set[tuple[str, str, int]]:
    with sqlite3.connect(workspace.database) as db:
        return set(db.execute("select person_id, kind, number from nudge").fetchall())


def cli(workspace: Workspace, env: dict[str, str], *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "bot", *args], env=workspace.env(**env), capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_an_excused_person_stays_out_of_follow_ups_escalations_and_late_figures_across_a_restart(
        workspace: Workspace, group: FakeRobot) -> None:
    env = {"REMINDBOT_ADMINS": f"{ADMIN}:{hash_password(PASSWORD)}", "REMINDBOT_WORK_HOURS": "00:00-23:59"}
    due = (datetime.now(BJ) - timedelta(days=3)).replace(second=0, microsecond=0)
    write_schedules(workspace, group, due)
    cli(workspace, env, "fire", "study", "--date", f"{due:%Y-%m-%d}", "--yes")
    with sqlite3.connect(workspace.database) as db:
        [(occ,)] = db.execute("select id from occurrence").fetchall()

    first = Service.start(workspace, name="serve1", env=env)
    try:
        first.wait_ready()
        wait_until(lambda: {("wu", "followup", 1), ("wu", "escalation", 1)} <= nudged(workspace),
                   "the first follow-up and escalation rounds")
        status, board = admin_request(first, f"/admin/occurrences/{occ}")
        assert status == 200, board
        token = re.search(r'name="csrf" value="([^"]+)"', board)
        assert token is not None
        status, page = admin_request(first, f"/admin/occurrences/{occ}/excuse",
                                     {"csrf": token[1], "person": "wu", "kind": "出差", "reason": "赴省委党校学习"})
        assert status == 200 and "已登记：吴敏 免于确认" in page and "出差：赴省委党校学习" in page
        assert first.stop() == 0
    finally:
        first.kill()

    before = len(group.received)
    # A day passes: the due times that exist come due (written as SQLAlchemy writes them).
    passed = (datetime.now(UTC) - timedelta(minutes=1)).replace(tzinfo=None).isoformat(" ", "microseconds")
    with sqlite3.connect(workspace.database) as db:
        for column in ("next_followup_at", "next_escalation_at"):
            db.execute(f"update expectation set {column} = ? where {column} is not null", (passed,))
    second = Service.start(workspace, name="serve2", env=env)
    try:
        second.wait_ready()
        wait_until(lambda: {("liu", "followup", 2), ("liu", "escalation", 2)} <= nudged(workspace),
                   "the second rounds after the restart")
        wait_until(lambda: len(group.received) > before + 1, "the second rounds in the group")
        assert second.stop() == 0
    finally:
        second.kill()

    assert not {n for n in nudged(workspace) if n[0] == "wu" and n[2] > 1}
    later = group.received[before:]
    assert later and all("吴敏" not in r.text and WU_MOBILE not in r.notified for r in later)
    assert any("刘洋" in r.text for r in later)

    shown = cli(workspace, env, "status", "study")
    line = next(line for line in shown.splitlines() if "吴敏" in line)
    assert "免于确认" in line and "逾期" not in line
    assert "逾期未确认 3 人" not in shown and "请假等免于确认 1 人" in shown
    table = cli(workspace, env, "report", "--period", f"{due:%Y-%m}", "--format", "csv")
    rows = {r[1]: r for r in csv.reader(io.StringIO(table.lstrip("\ufeff")))}
    assert rows["第三党支部"][2:6] == ["0", "0", "0", "0"] and rows["第三党支部"][-1] == "1"  # apart, not late
    assert rows["第二党支部"][5] == "1" and rows["第二党支部"][-1] == "0"
