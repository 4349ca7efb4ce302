"""`remindbot fire` of another day's occurrence, as the admin and the groups see it (trial 10 #5).

The command reads the system clock, so the days fired are found relative to today from the shipped
study day (the first Friday of each month, deadline five working days later)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import sys
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from test_fire import ROOT, base_env

from bot.config.loader import load_schedules
from bot.scheduling.timing import due_times
from bot.scheduling.workdays import WorkCalendar

BJ = ZoneInfo("Asia/Shanghai")


def study_days(start: datetime, end: datetime) -> list[date]:
    """The shipped study day's dates in [start, end)."""
    schedules = load_schedules(ROOT / "schedules", templates_dir=ROOT / "message_templates", env={})
    reminder = schedules.reminders["study-day"]
    return [d.due_at.date() for d in due_times(reminder, WorkCalendar(schedules.calendar), start, end)]


def past_day() -> str:
    """A study day whose confirmation deadline has passed, as ``--date`` takes it."""
    now = datetime.now(BJ)
    return f"{study_days(now - timedelta(days=70), now - timedelta(days=12))[-1]:%Y-%m-%d}"


async def fire(env: dict[str, str], *args: str, answer: str = "") -> tuple[int, str, str]:
    """``remindbot fire`` as a process, ``answer`` typed at its question (none: end of input)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "fire", *args, cwd=ROOT, env=env, stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(answer.encode()), timeout=60)
    return proc.returncode or 0, out.decode(), err.decode()


def group_texts(tmp_path: Path) -> list[str]:
    """What the secretaries' WeCom group would read (a record-only channel keeps the bodies)."""
    with sqlite3.connect(tmp_path / "bot.db") as db:
        rows = db.execute("select body from outbox where channel_id = 'gw_wecom'").fetchall()
    return [json.loads(body)["markdown"]["content"] for (body,) in rows]


def occurrences(tmp_path: Path) -> int:
    with sqlite3.connect(tmp_path / "bot.db") as db:
        return db.execute("select count(*) from occurrence").fetchone()[0]


async def test_a_past_day_whose_deadline_passed_is_asked_about_and_then_sent_as_补发(tmp_path: Path) -> None:
    day = date.fromisoformat(past_day())
    env = base_env(tmp_path)

    code, out, err = await fire(env, "study-day", "--date", f"{day:%Y-%m-%d}")  # no answer: not sent
    assert code == 1
    assert "确认截止时间" in err and "已过" in err and "应确认的 5 人会立即全部记为逾期未确认" in err
    assert "--yes" in err and "新排队" not in out
    assert occurrences(tmp_path) == 0

    code, out, err = await fire(env, "study-day", "--date", f"{day:%Y-%m-%d}", answer="n\n")
    assert code == 1 and "未发送" in err and occurrences(tmp_path) == 0

    code, out, err = await fire(env, "study-day", "--date", f"{day:%Y-%m-%d}", answer="y\n")
    assert code == 0, err
    assert "新排队 8 条消息" in out
    [text] = group_texts(tmp_path)
    assert f"**补发**：本条原定 {day.month}月{day.day}日 09:00 发送，由管理员手动补发。" in text
    assert "服务中断" not in text

    # Fired already: firing again changes no one's state, so it is not asked again.
    code, out, err = await fire(env, "study-day", "--date", f"{day:%Y-%m-%d}")
    assert code == 0 and "不会重复发送" in out and "已过" not in err


async def test_yes_fires_a_past_deadline_without_asking(tmp_path: Path) -> None:
    code, out, err = await fire(base_env(tmp_path), "study-day", "--date", past_day(), "--yes")
    assert code == 0, err
    assert "新排队 8 条消息" in out and "仍要发送吗" not in err


async def test_a_future_day_is_sent_without_asking_and_says_提前发送_with_its_time(tmp_path: Path) -> None:
    now = datetime.now(BJ)
    day = study_days(now + timedelta(days=1), now + timedelta(days=70))[0]
    code, out, err = await fire(base_env(tmp_path), "study-day", "--date", f"{day:%Y-%m-%d}")
    assert code == 0, err
    assert "已提前发出：届时不再发送预告和当天提醒。" in out  # trial 12 #3
    [text] = group_texts(tmp_path)
    assert f"**提前发送**：本条原定 {day.month}月{day.day}日 09:00 发送，由管理员提前发出。" in text


async def test_a_rehearsal_of_a_past_day_is_not_asked_about(tmp_path: Path) -> None:
    code, out, err = await fire(base_env(tmp_path), "study-day", "--date", past_day(), "--dry-run")
    assert code == 0, err
    assert "演练" in out and "仍要发送吗" not in err


async def test_a_future_day_fired_records_who_fired_it_and_upcoming_names_them(tmp_path: Path) -> None:
    """Who fired an occurrence ahead is recorded (the OS user; the one who ran ``sudo`` when there is
    one, a control character dropped, so a log line cannot be forged) by the command's own sqlite3
    writer, and ``upcoming`` names them beside when."""
    now = datetime.now(BJ)
    day = study_days(now + timedelta(days=1), now + timedelta(days=70))[0]
    env = {**base_env(tmp_path), "SUDO_USER": "wang\nli", "USER": "root", "LOGNAME": "root"}
    code, _, err = await fire(env, "study-day", "--date", f"{day:%Y-%m-%d}")
    assert code == 0, err
    with sqlite3.connect(tmp_path / "bot.db") as db:
        [(fired_at, fired_by)] = db.execute("select fired_at, fired_by from occurrence").fetchall()
    assert fired_by == "wangli" and fired_at is not None

    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "upcoming", "--reminder", "study-day", "--days", "80", cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    shown, problems = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode == 0, problems.decode()
    [line] = [x for x in shown.decode().splitlines() if "提前发出" in x]
    assert "由 wangli 在命令行提前发出，届时不再发送预告和当天提醒" in line and f"{day.month}月{day.day}日" in line
