"""Units in the admins' order everywhere (trial 12 #7): ``status``, the board (HTML and CSV, pages 1 and 2),
the units page (pages 1 and 2), ``report`` and a 通报 (``kind: report``) list units in the order the schedules
write them (YAML ``units:`` list, then a spreadsheet's rows), not by id, name or pinyin; a ranking keeps its
ranking by rate, its ties in that order.

A real fire (``remindbot fire`` as a process: the plain ``sqlite3`` writer on a SQLite file, the session
on PostgreSQL) of 124 secretaries in 124 units whose ids, names (code points, natural order) and
pinyin all sort otherwise, and whose people are listed in the reverse order (so expectation ids do
not give it either); the pages are fetched over loopback HTTP, the commands run as processes.
"""

from __future__ import annotations

import csv
import html
import io
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import text
from test_fire import base_env, run_cli
from test_followup import BJ, Clock, make_runtime
from test_web_admin import AUTH, PASSWORD, USER

from bot.confirming.confirmations import record_confirmation
from bot.settings import Settings
from bot.web import make_app
from storage.db import Database

# Written in this order by the admins. Ids: b1 第二, b2 第十, b3 第三, b4 第一; code points: 一 三 二 十;
# pinyin: 二 (er) 三 (san) 十 (shi) 一 (yi). None of them is the admins' 一 二 三 十.
NAMED = [("b4", "第一支部"), ("b1", "第二支部"), ("b3", "第三支部"), ("b2", "第十支部")]
SHEET = 120  # more units from units.csv (read after organization.yaml: files in name order), in its row order
UNITS = NAMED + [(f"g{(k * 37) % SHEET:03d}", f"机关第{(k * 53 + 7) % SHEET:03d}支部") for k in range(SHEET)]
ORDER = [name for _, name in UNITS]
ON_TIME = (10, 70)  # the admins' places of the two units whose secretary confirmed on time


def world_yaml(day: str) -> str:
    people = "\n".join(f"  - {{id: s{i:03d}, name: 书记{i:03d}, roles: [secretary], unit: {uid}}}"
                       for i, (uid, _) in reversed(list(enumerate(UNITS))))
    named = "\n".join(f"  - {{id: {uid}, name: {name}}}" for uid, name in NAMED)
    return f"""
units:
{named}
people:
{people}
channels:
  - {{id: group, name: 党务工作群, platform: generic}}
reminders:
  - id: study
    title: 每月学习日
    when: {{once: {day}, at: "09:00"}}
    recipients: {{channels: [group], mention: {{roles: [secretary]}}}}
    confirm: {{deadline: 1d}}
  - id: bulletin
    title: 组织生活情况通报
    kind: report
    when: {{once: {day}, at: "16:00"}}
    template: report
    report: {{period: current_month}}
    recipients: {{channels: [group]}}
"""


@dataclass
class World:
    env: dict[str, str]
    occurrence_id: int
    period: str  # the month of the occurrence, as --period and ?period= take it
    day: str  # its day, as --date takes it
    client: TestClient


@pytest.fixture
async def world(any_db: Database, tmp_path: Path) -> AsyncIterator[World]:
    due = (datetime.now(BJ) - timedelta(days=3)).replace(hour=9, minute=0, second=0, microsecond=0)
    folder = tmp_path / "schedules"
    folder.mkdir()
    (folder / "organization.yaml").write_text(world_yaml(f"{due:%Y-%m-%d}"), encoding="utf-8")
    (folder / "units.csv").write_text("标识,名称\n" + "".join(f"{uid},{name}\n" for uid, name in UNITS[len(NAMED):]),
                                      encoding="utf-8")
    env = base_env(tmp_path) | {"REMINDBOT_DATABASE_URL": any_db.url, "REMINDBOT_DATABASE_SCHEMA": any_db.schema or "",
                                "REMINDBOT_SCHEDULES_DIR": str(folder)}
    code, out, err = await run_cli(env, "fire", "study", "--date", f"{due:%Y-%m-%d}", "--yes")
    assert code == 0, out + err
    async with any_db.engine.connect() as conn:
        [occ] = (await conn.execute(text("SELECT id FROM occurrence WHERE reminder_id = 'study'"))).scalars().all()
    for place in ON_TIME:
        await record_confirmation(any_db, occ, f"s{place:03d}", via="link", now=due + timedelta(hours=2))
    settings = Settings(database_url=any_db.url, database_schema=any_db.schema or "", schedules_dir=folder,
                        var_dir=tmp_path / "var", secret_key="test-signing-key", admin_user=USER,
                        admin_password=PASSWORD, base_url="https://dj.example.gov.cn")
    runtime = await make_runtime(settings, Clock(datetime.now(BJ)), any_db)
    async with TestClient(TestServer(make_app(runtime), host="127.0.0.1")) as client:
        yield World(env, occ, f"{due:%Y-%m}", f"{due:%Y-%m-%d}", client)


async def page(world: World, path: str) -> str:
    response = await world.client.get(path, headers=AUTH)
    assert response.status == 200, path
    return (await response.read()).decode()


def next_link(body: str) -> str:
    found = re.search(r'href="([^"]+)" rel="next" data-page="next">', body)
    assert found, "no next page"
    return html.unescape(found.group(1))


def ranked(order: list[str]) -> list[str]:
    """The ranking: the units confirmed on time first, then the rest; each part in the admins' order."""
    ahead = [ORDER[p] for p in ON_TIME]
    return ahead + [name for name in order if name not in ahead]


async def test_status_lists_units_in_the_admins_order(world: World) -> None:
    code, out, err = await run_cli(world.env, "status", "study", "--all")
    assert code == 0, out + err
    shown = [name for line in out.splitlines() for name in re.findall(r"第[一二三十]支部|机关第\d{3}支部", line)]
    owing = [name for name in ORDER if name not in ranked(ORDER)[:2]]
    assert shown == owing + [ORDER[p] for p in ON_TIME]  # who owes first, then who confirmed: each in that order


async def test_report_ranks_by_rate_with_ties_in_the_admins_order(world: World) -> None:
    code, out, err = await run_cli(world.env, "report", "--period", world.period, "--format", "csv")
    assert code == 0, out + err
    rows = [row for row in csv.reader(io.StringIO(out)) if row and row[1] in ORDER]
    assert [row[1] for row in rows] == ranked(ORDER)
    assert [row[0] for row in rows[:3]] == ["1", "1", "3"]  # equal figures still share a place


async def test_the_circulated_report_names_its_units_by_rate_with_ties_in_the_admins_order(
        world: World, any_db: Database) -> None:
    code, out, err = await run_cli(world.env, "fire", "bulletin", "--date", f"{world.day}", "--yes")
    assert code == 0, out + err
    async with any_db.engine.connect() as conn:
        bodies = (await conn.execute(text("SELECT body FROM outbox WHERE stage = 'due' AND occurrence_id <> :study"
                                          " ORDER BY id"), {"study": world.occurrence_id})).scalars().all()
    said = "".join((json.loads(body) if isinstance(body, str) else body)["markdown"] for body in bodies)
    named = re.findall(r"第[一二三十]支部|机关第\d{3}支部", said)
    whole = ranked(ORDER)
    assert named == whole[:6] + whole[-14:]  # 20 named: the best third, then those behind, in ranking order


async def test_the_board_and_its_csv_list_units_in_the_admins_order_across_pages(world: World) -> None:
    first = await page(world, f"/admin/occurrences/{world.occurrence_id}")
    second = await page(world, next_link(first))
    cells = re.compile(r'<td data-label="单位"><div>([^<]+)</div></td>')
    assert cells.findall(first) + cells.findall(second) == ORDER
    assert len(cells.findall(first)) == 100

    filtered = await page(world, f"/admin/occurrences/{world.occurrence_id}?status=pending")
    pending = cells.findall(filtered) + cells.findall(await page(world, next_link(filtered)))
    assert pending == [name for name in ORDER if name not in ranked(ORDER)[:2]]

    response = await world.client.get(f"/admin/occurrences/{world.occurrence_id}/board.csv", headers=AUTH)
    rows = list(csv.reader(io.StringIO((await response.read()).decode("utf-8-sig"))))
    assert [row[4] for row in rows[1:]] == ORDER


async def test_the_units_page_ranks_ties_in_the_admins_order_across_pages(world: World) -> None:
    first = await page(world, f"/admin/units?period={world.period}")
    second = await page(world, next_link(first))
    cells = re.compile(r'<td data-label="单位">([^<]+)</td>')
    assert cells.findall(first) + cells.findall(second) == ranked(ORDER)

    response = await world.client.get(f"/admin/units.csv?period={world.period}", headers=AUTH)
    rows = list(csv.reader(io.StringIO((await response.read()).decode("utf-8-sig"))))
    assert [row[1] for row in rows[1:] if row[1] in ORDER] == ranked(ORDER)


async def test_rows_fired_before_the_order_was_kept_keep_their_old_order(world: World, any_db: Database) -> None:
    async with any_db.engine.begin() as conn:
        await conn.execute(text("UPDATE expectation SET unit_order = NULL"))
    first = await page(world, f"/admin/occurrences/{world.occurrence_id}")
    second = await page(world, next_link(first))
    cells = re.compile(r'<td data-label="单位"><div>([^<]+)</div></td>')
    by_id = [name for _, name in sorted(UNITS)]
    assert cells.findall(first) + cells.findall(second) == by_id  # unit id, then as fired: as before
    units = await page(world, f"/admin/units?period={world.period}")
    units += await page(world, next_link(units))
    shown = re.findall(r'<td data-label="单位">([^<]+)</td>', units)
    assert shown[2:] == sorted(name for name in ORDER if name not in shown[:2])  # then by name, as before
