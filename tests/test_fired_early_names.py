"""Stages not sent because their occurrence went out ahead (``remindbot fire --date``) name who fired it.

``remindbot status``, ``remindbot report`` and the admin board of the occurrence say
“已于 <when> 由 zhangsan 在命令行提前发出” (``occurrence.fired_by``, since 0009), as the admin upcoming page
does; rows fired before 0009 (no name) keep “已于 <when> 提前发出”. On SQLite and PostgreSQL, in-process with the
tests' clock (as tests/test_fired_early.py), the admin board over loopback HTTP.
"""

from __future__ import annotations

import base64
import shutil
from datetime import datetime
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr

from bot.cli.confirmations import _report, fire_outcomes_text
from bot.config.loader import load_schedules
from bot.delivery.render import Renderer
from bot.runtime import Runtime
from bot.scheduling.reconcile import Reconciler
from bot.scheduling.workdays import WorkCalendar
from bot.settings import Settings
from bot.web import make_app
from storage.db import Database
from tests.test_fired_early import fire_early, fire_early_by
from tests.test_scheduler import BJ, ROOT, STUDY_DAY, Clock, clock

USER, PASSWORD = "gongwei", "correct horse battery 工委"
AUTH = {"Authorization": "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()}
DAY_LINE = "每月学习日（当天提醒）原定 2026年12月4日（星期五）09:00：这次提醒{ahead}，此项未再发送"


def runtime_on(db: Database, tmp_path: Path) -> Runtime:
    """The shipped schedules on ``db``, the admin area open, the evening the admin fires Friday ahead."""
    templates = tmp_path / "message_templates"
    shutil.copytree(ROOT / "message_templates", templates)
    schedules = load_schedules(ROOT / "schedules", templates_dir=templates, env={})
    settings = Settings(var_dir=tmp_path, secret_key="k", templates_dir=templates, database_url=db.url,
                        admin_user=USER, admin_password=SecretStr(PASSWORD))
    return Runtime(settings=settings, db=db, schedules=schedules, calendar=WorkCalendar(schedules.calendar),
                   renderer=Renderer(templates), clock=Clock(datetime(2026, 11, 30, 20, 0, tzinfo=BJ)))


async def fired_ahead_and_skipped(runtime: Runtime, who: str | None) -> int:
    """Friday's study day fired on Monday evening (by ``who``, or by a version that recorded no one), then
    the service's passes at the 3-day and 1-day notices and on the day: each stage skipped. The occurrence's id."""
    reconciler = Reconciler(runtime)
    await reconciler.run_pass()  # the service's first pass, before the admin fires
    occurrence_id = await (fire_early_by(runtime, who) if who else fire_early(runtime))
    for now in (datetime(2026, 12, 1, 9, 0, tzinfo=BJ), datetime(2026, 12, 3, 9, 0, tzinfo=BJ), STUDY_DAY):
        clock(runtime).now = now
        await reconciler.run_pass()
    return occurrence_id


@pytest.mark.parametrize(("who", "ahead"), [
    ("zhangsan", "已于 2026年11月30日（星期一）20:00 由 zhangsan 在命令行提前发出"),
    (None, "已于 2026年11月30日（星期一）20:00 提前发出")])
async def test_status_report_and_the_admin_board_name_who_fired_it_ahead(
        any_db: Database, tmp_path: Path, who: str | None, ahead: str) -> None:
    runtime = runtime_on(any_db, tmp_path)
    occurrence_id = await fired_ahead_and_skipped(runtime, who)
    line = DAY_LINE.format(ahead=ahead)

    status = await fire_outcomes_text(runtime, clock(runtime).now, "study-day")
    assert "已提前发出、届时未再发送的提醒（最近 30 天）：3 项" in status, status
    assert f"  {line}" in status
    assert "提前3天通知）原定 2026年12月1日（星期二）09:00：这次提醒" + ahead in status
    assert "未能按时发出" not in status  # nothing missed or late

    report, _ = await _report(runtime, "2026-12", "table", (), (), False)
    assert "本期有 3 项提醒因已提前发出而届时未再发送：" in report and f"- {line}" in report, report

    async with TestClient(TestServer(make_app(runtime), host="127.0.0.1")) as client:
        response = await client.get(f"/admin/occurrences/{occurrence_id}", headers=AUTH)
        page = await response.text()
    assert response.status == 200, page
    assert f'<dt>发送</dt><dd><span class="tag ok">已提前发出</span> {line}</dd>' in page
    if who is None:
        assert "命令行" not in page
