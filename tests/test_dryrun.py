"""A dry run leaves nothing that can become real: the admin's own commands, real processes, real HTTP.

The Found sequence of issue 7: ``remindbot fire study-day --date 2026-11-06 --dry-run`` (a past
date), then an ordinary ``remindbot serve`` with the groups' webhooks pointing at fake platforms
and working hours covering now. The rehearsal's deadline and follow-up times are long past, so a
service that took it for real would send follow-ups (催办) and overdue notices (逾期告知) at once.
A real occurrence fired beforehand (into channels without a webhook, which is configuration, not
a rehearsal) is the control: its follow-ups do arrive, so the service demonstrably ran its
follow-up round while the rehearsal's stayed silent.
"""

from __future__ import annotations

import asyncio
import re
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from servehelp import Service, Workspace
from sqlmodel import select

from storage.db import Database
from storage.models import Confirmation, Nudge, Occurrence, Outbox
from tests.fakes.platforms import FakePlatforms, FakeRobot

BJ = ZoneInfo("Asia/Shanghai")
REHEARSED = "2026-11-06"  # the first Friday of November 2026, in the past
REHEARSED_TEXT = "2026年11月6日"  # how every message about it names its day
CONTROL = "2026-10-20"  # theme-party-day, fired for real (no webhooks then: configuration)
CONTROL_TEXT = "2026年10月20日"
SECRETS = {"ding": "SEC-ding-secret-0001", "feishu": "feishu-secret-0002", "oa": "oa-signing-secret-0003"}
URL = re.compile(r"https?://\S+/c/[A-Za-z0-9_.-]+")


@dataclass
class Wired(Workspace):
    """A workspace whose commands and service get extra environment (webhooks, working hours)."""

    extra: dict[str, str] = field(default_factory=dict)

    def env(self, **extra: str) -> dict[str, str]:
        return super().env(**(self.extra | extra))

    async def cli(self, *args: str, **extra: str) -> tuple[int, str, str]:
        """``python -m bot ARGS`` as an admin runs it; returns (exit code, stdout, stderr)."""
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", *args, cwd=self.root, env=self.env(**extra),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
        return proc.returncode or 0, out.decode(), err.decode()

    async def rows(self, table: type) -> list:  # type: ignore[type-arg]
        db = Database(f"sqlite+aiosqlite:///{self.database}")
        await db.start()
        try:
            async with db.session() as session:
                return list((await session.exec(select(table))).all())
        finally:
            await db.stop()


@pytest.fixture
def wired(tmp_path: Path) -> Wired:
    base = Workspace.create(tmp_path)
    ws = Wired(base.root, base.schedules, base.templates, base.database, base.var)
    # Working hours cover now, whatever day the suite runs on: today and tomorrow (Beijing) are
    # declared working days (an admin override), and the window is the whole day.
    today = datetime.now(BJ).date()
    days = ", ".join(str(today + timedelta(days=n)) for n in range(2))
    ws.edit("calendar.yaml", "  workdays: []", f"  workdays: [{days}]")
    ws.extra = {"REMINDBOT_WORK_HOURS": "00:00-24:00", "REMINDBOT_SECRET_KEY": "dry-run-test-key"}
    return ws


def webhooks(fakes: FakePlatforms) -> tuple[dict[str, str], list[FakeRobot]]:
    """Every channel of the shipped schedules pointed at a fake robot."""
    robots = {
        "gw": fakes.wecom(), "leaders": fakes.wecom(), "ding": fakes.dingtalk(secret=SECRETS["ding"]),
        "feishu": fakes.feishu(secret=SECRETS["feishu"]), "oa": fakes.generic(secret=SECRETS["oa"]),
    }
    env = {
        "REMINDBOT_GW_WECOM_WEBHOOK": robots["gw"].url,
        "REMINDBOT_LEADERS_WECOM_WEBHOOK": robots["leaders"].url,
        "REMINDBOT_CZJ_DINGTALK_WEBHOOK": robots["ding"].url,
        "REMINDBOT_CZJ_DINGTALK_SECRET": SECRETS["ding"],
        "REMINDBOT_JYJ_FEISHU_WEBHOOK": robots["feishu"].url,
        "REMINDBOT_JYJ_FEISHU_SECRET": SECRETS["feishu"],
        "REMINDBOT_OA_WEBHOOK": robots["oa"].url,
        "REMINDBOT_OA_SECRET": SECRETS["oa"],
    }
    return env, list(robots.values())


def arrived(robots: list[FakeRobot]) -> list[str]:
    """What reached the platforms (accepted or not), as the group would read it."""
    return [r.text or r.raw.decode("utf-8", "replace") for robot in robots for r in robot.requests]


@asynccontextmanager
async def serving(ws: Wired) -> AsyncIterator[Service]:
    """``remindbot serve`` on the workspace; the fakes keep answering while we wait for it."""
    service = Service.start(ws)
    try:
        await asyncio.to_thread(service.wait_ready)
        yield service
    finally:
        service.kill()


async def until(check, what: str, limit: float = 60.0):  # type: ignore[no-untyped-def]
    """Poll an async or plain check without blocking the fakes' event loop."""
    deadline = time.monotonic() + limit
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {limit:.0f} s waiting for: {what}")
        await asyncio.sleep(0.1)


async def occurrences(ws: Wired) -> dict[int, Occurrence]:
    return {o.id: o for o in await ws.rows(Occurrence)}


def one_link(output: str) -> str:
    links = URL.findall(output)
    assert len(links) == 1, output
    return links[0]


def http(method: str, url: str, form: dict[str, str] | None = None) -> tuple[int, str]:
    data = urllib.parse.urlencode(form).encode() if form is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode("utf-8")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode("utf-8")


def at_port(link: str, service: Service) -> str:
    """The link as printed, aimed at this test's service (the base URL names another port)."""
    path = urllib.parse.urlsplit(link).path
    return f"http://127.0.0.1:{service.port}{path}"


# ---------------------------------------------------------------- the Found sequence


async def test_a_past_dry_run_then_serve_sends_no_followup_or_escalation_and_records_no_nudge(
        wired: Wired) -> None:
    code, out, err = await wired.cli("fire", "study-day", "--date", REHEARSED, "--dry-run")
    assert code == 0, err
    assert "演练" in out
    code, _, err = await wired.cli("fire", "theme-party-day", "--date", CONTROL, "--yes")  # real; no webhooks yet
    assert code == 0, err
    occs = await occurrences(wired)
    rehearsal = next(o.id for o in occs.values() if o.reminder_id == "study-day")
    control = next(o.id for o in occs.values() if o.reminder_id == "theme-party-day")

    async with FakePlatforms(clock=time.time) as fakes:
        env, robots = webhooks(fakes)
        wired.extra |= env
        async with serving(wired) as service:
            # The control's overdue follow-ups go out in the same round the rehearsal's would.
            await until(lambda: any(CONTROL_TEXT in t for t in arrived(robots)), "the control's follow-ups")

            async def drained() -> bool:
                return all(r.status != "pending" for r in await wired.rows(Outbox))

            await until(drained, "every queued message sent")
            texts = arrived(robots)
            log = service.stdout

    assert [t for t in texts if REHEARSED_TEXT in t or "每月学习日" in t] == []
    assert all(CONTROL_TEXT in t for t in texts if "催办" in t or "逾期" in t), texts
    nudges = await wired.rows(Nudge)
    assert [n for n in nudges if n.occurrence_id == rehearsal] == []
    assert any(n.occurrence_id == control for n in nudges)  # the engine did run its round
    # Nothing of the rehearsal is, or can become, sendable.
    assert {r.status for r in await wired.rows(Outbox) if r.occurrence_id == rehearsal} == {"dry_run"}
    assert "每月学习日：第" not in log


async def test_a_later_real_fire_of_the_same_due_time_is_its_own_real_occurrence_and_sends(
        wired: Wired) -> None:
    code, _, err = await wired.cli("fire", "study-day", "--date", REHEARSED, "--dry-run")
    assert code == 0, err
    async with FakePlatforms(clock=time.time) as fakes:
        env, robots = webhooks(fakes)
        code, out, err = await wired.cli("fire", "study-day", "--date", REHEARSED, "--yes", **env)
        assert code == 0, err
        assert "失败 0 条" in out
        assert len(robots[0].received) == 1 and REHEARSED_TEXT in robots[0].received[0].text
    occs = sorted((await occurrences(wired)).values(), key=lambda o: o.id)
    assert [(o.reminder_id, o.dry_run) for o in occs] == [("study-day", True), ("study-day", False)]
    code, out, err = await wired.cli("status", "study-day")
    assert code == 0, err
    assert f"记录号 {occs[1].id}）" in out and "已确认 0/5 人" in out
    assert f"记录号 {occs[0].id}）" not in out  # the rehearsal is not later: the real board alone


# ---------------------------------------------------------------- links and confirmations


async def test_a_dry_run_link_shows_a_rehearsal_page_and_confirms_nothing(wired: Wired) -> None:
    code, _, err = await wired.cli("fire", "study-day", "--date", REHEARSED, "--dry-run")
    assert code == 0, err
    (occ,) = (await occurrences(wired)).values()
    code, out, err = await wired.cli("link", str(occ.id), "王芳")  # a person by name
    assert code == 0, err
    assert "演练" in out and "不能登记确认" in out
    link = one_link(out)
    async with serving(wired) as service:
        url = at_port(link, service)
        status, page = await asyncio.to_thread(http, "GET", url)
        assert status == 200 and "演练" in page and "王芳" in page
        assert "<form" not in page
        token = url.rsplit("/", 1)[1]
        status, page = await asyncio.to_thread(http, "POST", url, {"token": token, "note": "参会 20 人"})
        assert status == 403 and "演练" in page
    code, _, err = await wired.cli("confirm", str(occ.id), "wang_fang", "--by", "chen_jing")
    assert code == 1 and "演练" in err
    assert await wired.rows(Confirmation) == []


async def test_remindbot_link_prints_a_link_that_confirms_a_real_occurrence(wired: Wired) -> None:
    code, _, err = await wired.cli("fire", "study-day", "--date", REHEARSED, "--yes")  # real, channels without webhook
    assert code == 0, err
    (occ,) = (await occurrences(wired)).values()
    code, out, err = await wired.cli("link", str(occ.id), "wang_fang")
    assert code == 0, err
    assert "演练" not in out
    link = one_link(out)
    async with serving(wired) as service:
        assert link.split("/c/")[1] not in service.stdout + service.stderr  # the service never logs it
        url = at_port(link, service)
        status, page = await asyncio.to_thread(http, "GET", url)
        assert status == 200 and "<form" in page and "王芳" in page
        status, page = await asyncio.to_thread(http, "POST", url, {"token": url.rsplit("/", 1)[1]})
        assert status == 200 and "已确认" in page
    confirmations = await wired.rows(Confirmation)
    assert [(c.occurrence_id, c.person_id, c.via) for c in confirmations] == [(occ.id, "wang_fang", "link")]
    code, out, _ = await wired.cli("link", str(occ.id), "nobody")
    assert code == 1


async def test_preview_prints_no_link_to_an_occurrence_that_does_not_exist(wired: Wired) -> None:
    code, out, err = await wired.cli("preview", "study-day", "--date", "2026-12-04", "--person", "wang_fang")
    assert code == 0, err
    assert "oa_push" in out  # the channel that carries personal links
    assert "/c/" not in out
    assert "点此确认（确认链接在真正发送时生成）" in out or "(确认链接在真正发送时生成)" in out
    assert "（（" not in out and "））" not in out
    assert await wired.rows(Occurrence) == []


# ---------------------------------------------------------------- where a rehearsal is shown


async def test_status_report_and_admin_mark_a_rehearsal_and_leave_it_out_of_the_figures(wired: Wired) -> None:
    code, _, err = await wired.cli("fire", "study-day", "--date", REHEARSED, "--dry-run")
    assert code == 0, err
    (occ,) = (await occurrences(wired)).values()

    code, out, err = await wired.cli("status", "study-day")
    assert code == 0, err
    assert "【演练】" in out and "不计入统计" in out and "已确认 0/5" not in out

    code, out, err = await wired.cli("report", "--period", "2026-11")
    assert code == 0, err
    assert "本期没有需要确认的事项" in out and "1 次演练记录" in out
    code, out, err = await wired.cli("report", "--period", "2026-11", "--format", "csv")
    assert code == 0, err
    assert out.strip().count("\n") == 0  # the header alone

    # serve runs on the real clock: a shipped reminder due in November around now (the 党小组会 of
    # 2026-11-30 15:00) would be fired for real and fill the month's figures. Only study.yaml's stay.
    for name in ("duties.yaml", "reports.yaml", "three-meetings.yaml"):
        (wired.schedules / name).unlink()
    async with serving(wired) as service:
        status, listing = await asyncio.to_thread(service.get, "/admin/occurrences", admin=True)
        assert status == 200 and "演练" in listing and "0/5" not in listing
        status, board = await asyncio.to_thread(service.get, f"/admin/occurrences/{occ.id}", admin=True)
        assert status == 200 and "演练" in board and "<h2>各单位完成情况</h2>" not in board
        status, units = await asyncio.to_thread(service.get, "/admin/units?period=2026-11", admin=True)
        assert status == 200 and "这段时间没有需要确认的提醒" in units


# ---------------------------------------------------------------- serve --dry-run


async def test_serve_dry_run_neither_sends_nor_uses_up_a_real_occurrences_follow_ups(wired: Wired) -> None:
    code, _, err = await wired.cli("fire", "theme-party-day", "--date", CONTROL, "--yes")  # real; no webhooks yet
    assert code == 0, err
    async with FakePlatforms(clock=time.time) as fakes:
        env, robots = webhooks(fakes)
        wired.extra |= env
        rehearsal = Service.start(wired, "--dry-run")
        try:
            await asyncio.to_thread(rehearsal.wait_ready)
            await asyncio.to_thread(rehearsal.wait_for_log, "演练模式")
            assert await asyncio.to_thread(rehearsal.stop) == 0, rehearsal.output()
        finally:
            rehearsal.kill()
        assert arrived(robots) == []
        assert await wired.rows(Nudge) == []  # nothing was claimed on the rehearsal's account

        # The next real run sends the follow-ups the rehearsal left alone.
        async with serving(wired):
            await until(lambda: any(CONTROL_TEXT in t and "催办" in t for t in arrived(robots)),
                        "the real run's follow-ups")
    assert await wired.rows(Nudge) != []


# ---------------------------------------------------------------- every way of confirming


@pytest.mark.parametrize("via", ["link", "chat", "card", "admin"])
async def test_no_way_of_confirming_records_anything_for_a_rehearsal(via: str, any_db: Database) -> None:
    from bot.confirming.confirmations import RehearsalError, record_confirmation
    from storage.models import Expectation

    async with any_db.session() as session:
        occ = Occurrence(reminder_id="study-day", due_at=datetime(2026, 11, 6, 1, tzinfo=UTC), title="每月学习日",
                         dry_run=True)
        session.add(occ)
        await session.commit()
        session.add(Expectation(occurrence_id=occ.id, person_id="wang_fang", person_name="王芳"))
        # The real occurrence of the same due time is a row of its own (uniqueness includes dry_run).
        session.add(Occurrence(reminder_id="study-day", due_at=occ.due_at, title="每月学习日"))
        await session.commit()
    with pytest.raises(RehearsalError, match="演练"):
        await record_confirmation(any_db, occ.id or 0, "wang_fang", via=via,  # type: ignore[arg-type]
                                  recorded_by="chen_jing" if via == "admin" else None,
                                  now=datetime.now(UTC), checked=via == "link")
    async with any_db.session() as session:
        assert (await session.exec(select(Confirmation))).all() == []
