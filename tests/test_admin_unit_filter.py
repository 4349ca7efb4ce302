"""The unit filter of the board and the units page: a unit with its sub-units, exact before partial.

Bureaus 局1 … 局12 with two branches each, and 局99 with 300 branches (its ids go to the database
as one array or JSON list); one occurrence owed by a person in every branch. Every test runs on
SQLite and on PostgreSQL.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from test_web_admin import AUTH, PASSWORD, USER
from test_web_confirm import DUE, World, add_occurrence, build_world

from bot.config.models import Schedules, Unit
from bot.reporting.reports import UnitRow, places, rank
from bot.reporting.unitmatch import natural_key, resolve
from bot.web import make_app
from storage.db import Database

BUREAUS = [*range(1, 13), 99]
ROOT = Path(__file__).resolve().parent.parent


def branches(bureau: int) -> int:
    return 300 if bureau == 99 else 2


def province() -> Schedules:
    units = [Unit(id="root", name="工委")]
    for b in BUREAUS:
        units.append(Unit(id=f"u{b}", name=f"局{b}", parent="root"))
        units += [Unit(id=f"u{b}b{k}", name=f"局{b}第{k}支部", parent=f"u{b}") for k in range(branches(b))]
    return Schedules(units={u.id: u for u in units})


@pytest.fixture
async def world(any_db: Database, tmp_path: Path) -> World:
    world = await build_world(any_db, tmp_path, admin_user=USER, admin_password=PASSWORD)
    world.runtime.schedules = province()
    people = tuple((f"p{b}_{k}", f"书记{b}_{k}", f"u{b}b{k}", f"局{b}第{k}支部")
                   for b in BUREAUS for k in range(branches(b)))
    world.occurrence_id = await add_occurrence(any_db, people=people, title="全省学习日",
                                               due_at=DUE + timedelta(days=1))
    return world


@pytest.fixture
async def client(world: World) -> AsyncIterator[TestClient]:
    async with TestClient(TestServer(make_app(world.runtime), host="127.0.0.1")) as client:
        yield client


async def fetch(client: TestClient, path: str) -> str:
    response = await client.get(path, headers=AUTH)
    assert response.status == 200
    return await response.text()


def people(page: str) -> set[str]:
    return set(re.findall(r"<strong>书记(\d+)_\d+</strong>", page))


def units_shown(page: str) -> list[str]:
    return re.findall(r'<td data-label="单位">(局[^<]*)</td>', page)


async def test_a_bureau_on_the_board_brings_its_branches_and_not_its_namesakes(world: World,
                                                                             client: TestClient) -> None:
    board = f"/admin/occurrences/{world.occurrence_id}"
    by_name = await fetch(client, f"{board}?unit=局1")
    assert people(by_name) == {"1"} and "共 2 条" in by_name  # not 局10, 局11, 局12
    assert "按 局1 及其 2 个下级单位筛选" in by_name
    assert people(await fetch(client, f"{board}?unit=u1")) == {"1"}  # its id, exactly
    assert people(await fetch(client, f"{board}?unit=u1b1")) == {"1"}
    assert "共 1 条" in await fetch(client, f"{board}?unit=u1b1")
    many = await fetch(client, f"{board}?unit=局99")  # 300 branches: one array, not 300 parameters
    assert "共 300 条" in many and people(many) == {"99"}
    everyone = await fetch(client, f"{board}?unit=工委")
    assert f"共 {sum(branches(b) for b in BUREAUS)} 条" in everyone


async def test_part_of_a_name_offers_the_units_it_found(world: World, client: TestClient) -> None:
    page = await fetch(client, f"/admin/occurrences/{world.occurrence_id}?unit=第1支部")
    assert "没有名称正好是“第1支部”的单位" in page
    assert 'unit=u1b1">局1第1支部</a>' in page and 'unit=u10b1">局10第1支部</a>' in page
    assert people(page) == {str(b) for b in BUREAUS}


async def test_a_mistyped_unit_id_offers_the_ids_meant_as_the_command_line_does(world: World,
                                                                                client: TestClient) -> None:
    """Trial 10 #8: the web filter gave no hint where ``report --unit`` did."""
    board = f"/admin/occurrences/{world.occurrence_id}"
    page = await fetch(client, f"{board}?unit=u1b9")
    assert "名单中没有名称或编号为“u1b9”的单位，是不是" in page
    assert f'href="{board}?unit=u1b0">“u1b0”</a> 或 <a href="{board}?unit=u1b1">“u1b1”</a>？' in page


async def test_the_units_page_filters_a_bureau_with_its_branches(world: World, client: TestClient) -> None:
    page = await fetch(client, "/admin/units?period=2025-03&unit=局1")
    assert sorted(units_shown(page)) == ["局1第0支部", "局1第1支部"]
    page = await fetch(client, "/admin/units?period=2025-03&unit=局99")
    assert "共 300 条" in page


async def test_units_sort_naturally_and_equal_figures_share_a_place(world: World, client: TestClient) -> None:
    bureaus = tuple((f"h{b}", f"局长{b}", f"u{b}", f"局{b}") for b in BUREAUS)
    await add_occurrence(world.db, people=bureaus, due_at=DUE + timedelta(days=40), deadline_at=None)
    page = await fetch(client, "/admin/units?period=2025-04")
    shown = units_shown(page)
    assert shown == [f"局{b}" for b in BUREAUS]  # 局2 after 局1, not after 局12
    ranks = re.findall(r'<td data-label="排名">([^<]*)</td>', page)
    assert set(ranks) == {"—"}, ranks  # no deadline, nobody confirmed: nothing due yet, no place


def test_natural_key_and_places() -> None:
    assert sorted(["局10", "局2", "局1", "局02", "局09"], key=natural_key) == ["局1", "局02", "局2", "局09", "局10"]
    rows = rank([UnitRow("a", "局10", 2, 1, 0, 1), UnitRow("b", "局2", 2, 1, 0, 1), UnitRow("c", "局3", 2, 2),
                 UnitRow("d", "局4", 1, 0, 0, 1, pending=1), UnitRow("e", "局5", 2, 0, 0, 2)])
    assert [r.unit for r in rows] == ["局3", "局2", "局10", "局4", "局5"]
    assert places(rows) == [1, 2, 2, 0, 4]  # 局4: nothing due yet, no place


def test_resolve_prefers_an_id_then_an_exact_name() -> None:
    s = province()
    assert resolve(s, "局1").matched == (("u1", "局1"),) and not resolve(s, "局1").partial
    assert resolve(s, "u1").ids == {"u1", "u1b0", "u1b1"}
    partial = resolve(s, "第1支部")
    assert partial.partial and len(partial.matched) == len(BUREAUS)
    assert resolve(s, "不存在").snapshot_partial and not resolve(s, "不存在").ids


async def test_the_shipped_fgw_brings_its_two_branches_on_the_board_and_the_units_page(
        any_db: Database, tmp_path: Path) -> None:
    """Found by a trial: ?unit=fgw showed no rows, its people being in fgw_b1 and fgw_b2."""
    from bot.config.loader import load_schedules

    root = ROOT
    world = await build_world(any_db, tmp_path, admin_user=USER, admin_password=PASSWORD)
    world.runtime.schedules = load_schedules(root / "schedules", templates_dir=root / "message_templates")
    names = {u.id: u.name for u in world.runtime.schedules.units.values()}
    people = (("wang", "王芳", "fgw_b1", names["fgw_b1"]), ("liu", "刘洋", "fgw_b2", names["fgw_b2"]),
              ("wu", "吴敏", "jyj_b1", names["jyj_b1"]))
    occ = await add_occurrence(any_db, people=people, due_at=DUE + timedelta(days=1))
    async with TestClient(TestServer(make_app(world.runtime), host="127.0.0.1")) as client:
        for query in ("fgw", names["fgw"]):
            board = await fetch(client, f"/admin/occurrences/{occ}?unit={query}")
            assert "王芳" in board and "刘洋" in board and "吴敏" not in board and "共 2 条" in board, query
            units = await fetch(client, f"/admin/units?period=2025-03&unit={query}")
            shown = re.findall(r'<td data-label="单位">([^<]*)</td>', units)
            assert sorted(shown) == sorted([names["fgw_b1"], names["fgw_b2"]]), (query, shown)
