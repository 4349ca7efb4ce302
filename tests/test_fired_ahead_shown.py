"""An occurrence fired ahead (``remindbot fire --date``) says so from that moment, in one wording.

Before the fix, ``remindbot status``, ``/admin/occurrences`` and ``/admin/occurrences/<n>`` showed only
the occurrence's time until a skipped stage's original time had passed; ``upcoming`` said
“由 root（命令行）提前发出”, the admin 近期提醒 page “由 root（命令行）发出”, the boards “已由 root 提前发出
（命令行）”. Now each says “已于 <when> 由 root 在命令行提前发出” (no name on rows that recorded none).
The real CLI on a SQLite file; in-process with the tests' clock on SQLite and PostgreSQL, the admin
pages over loopback HTTP.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from test_cli_fire import fire, study_days
from test_fire import ROOT, base_env

from bot.cli.status import _status
from bot.web import make_app
from storage import reads
from storage.db import Database
from tests.test_fired_early import fire_early, fire_early_by
from tests.test_fired_early_names import AUTH, runtime_on
from tests.test_scheduler import BJ

FIRED = "已于 2026年11月30日（星期一）20:00"  # when the tests' admin fires Friday's study day


async def cli(env: dict[str, str], *args: str) -> str:
    """``remindbot <args>`` as a process; its output (it must succeed)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", *args, cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode == 0, err.decode()
    return out.decode()


async def test_status_says_at_once_that_a_day_fired_ahead_went_out_in_upcoming_s_words(tmp_path: Path) -> None:
    now = datetime.now(BJ)
    day = study_days(now + timedelta(days=1), now + timedelta(days=70))[0]
    env = {**base_env(tmp_path), "SUDO_USER": "wangli"}
    code, _, err = await fire(env, "study-day", "--date", f"{day:%Y-%m-%d}")
    assert code == 0, err
    with sqlite3.connect(tmp_path / "bot.db") as db:
        [(fired_at,)] = db.execute("select fired_at from occurrence").fetchall()
    local = reads.moment(fired_at).astimezone(BJ)  # type: ignore[union-attr]
    ahead = (re.escape(f"已于 {local.year}年{local.month}月{local.day}日")
             + r"（星期.）\d\d:\d\d 由 wangli 在命令行提前发出")

    status = await cli(env, "status", "study-day")
    assert re.search(f"\n这次提醒{ahead}，届时不再发送预告和当天提醒。\n", status), status
    assert f"提醒时间：{day.year}年{day.month}月{day.day}日" in status

    upcoming = await cli(env, "upcoming", "--reminder", "study-day", "--days", "80")
    assert re.search(f"{ahead}，届时不再发送预告和当天提醒", upcoming), upcoming
    assert "（命令行）" not in status + upcoming


@pytest.mark.parametrize(("who", "ahead"), [("zhangsan", f"{FIRED} 由 zhangsan 在命令行提前发出"),
                                            (None, f"{FIRED} 提前发出")])
async def test_the_occurrence_pages_and_status_say_it_went_out_ahead_before_any_stage_is_skipped(
        any_db: Database, tmp_path: Path, who: str | None, ahead: str) -> None:
    runtime = runtime_on(any_db, tmp_path)
    occurrence_id = await (fire_early_by(runtime, who) if who else fire_early(runtime))  # Monday evening

    async with reads.engine_reader(any_db.engine) as reader:
        status = await _status(runtime, reader, "study-day", "", None, None, False)
    assert "提醒时间：2026年12月4日（星期五）09:00" in status
    assert f"\n这次提醒{ahead}，届时不再发送预告和当天提醒。\n" in status, status

    async with TestClient(TestServer(make_app(runtime), host="127.0.0.1")) as client:
        listing = await (await client.get("/admin/occurrences", headers=AUTH)).text()
        board = await (await client.get(f"/admin/occurrences/{occurrence_id}", headers=AUTH)).text()
        coming = await (await client.get("/admin/upcoming", headers=AUTH)).text()
    assert f'<span class="tag ok">已提前发出</span> <span class="muted small">{ahead}</span>' in listing, listing
    assert (f'<dt>发送</dt><dd><span class="tag ok">已提前发出</span> 这次提醒{ahead}，届时不再发送预告和当天提醒</dd>'
            in board)
    assert f"{ahead}，届时不再发送预告和当天提醒" in coming
    if who is None:
        assert "命令行" not in listing + board + coming + status


async def test_a_day_fired_on_its_time_is_not_said_to_have_gone_out_ahead(any_db: Database, tmp_path: Path) -> None:
    from bot.scheduling.reconcile import Reconciler
    from tests.test_scheduler import STUDY_DAY, clock

    runtime = runtime_on(any_db, tmp_path)
    clock(runtime).now = STUDY_DAY
    await Reconciler(runtime).run_pass()
    async with reads.engine_reader(any_db.engine) as reader:
        status = await _status(runtime, reader, "study-day", "", None, None, False)
    assert "提醒时间：2026年12月4日（星期五）09:00" in status and "提前发出" not in status
