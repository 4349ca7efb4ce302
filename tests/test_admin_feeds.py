"""The admin home's calendar feeds at a province's size: a search and a bounded list, not every link."""

from __future__ import annotations

import re
from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer
from test_web_admin import AUTH, PASSWORD, USER
from test_web_confirm import build_world

from bot.config.models import Person, Schedules, Unit
from bot.web import make_app
from bot.web.ical import FEEDS_SHOWN
from storage.db import Database

PEOPLE, UNITS = 20_000, 4_000
MAX_PAGE_BYTES = 300_000


def province() -> Schedules:
    units = [Unit(id=f"u{i:05d}", name=f"局{i}") for i in range(UNITS)]
    people = [Person(id=f"p{i:06d}", name=f"人员{i}", unit=f"u{i % UNITS:05d}") for i in range(PEOPLE)]
    return Schedules(units={u.id: u for u in units}, people={p.id: p for p in people})


async def test_the_admin_home_lists_a_bounded_number_of_feeds_and_finds_the_others(db: Database,
                                                                                   tmp_path: Path) -> None:
    world = await build_world(db, tmp_path, admin_user=USER, admin_password=PASSWORD)
    world.runtime.schedules = province()
    async with TestClient(TestServer(make_app(world.runtime), host="127.0.0.1")) as client:
        for path in ("/admin/", "/admin/upcoming"):
            response = await client.get(path, headers=AUTH)
            body = await response.read()
            assert response.status == 200 and len(body) < MAX_PAGE_BYTES, (path, len(body))
            page = body.decode()
            assert page.count('class="feed-link"') == FEEDS_SHOWN
            assert f"共 {PEOPLE} 人、{UNITS} 个单位" in page and "请输入姓名、单位名称或编号查找" in page

        async def found(query: str) -> list[str]:
            response = await client.get("/admin/upcoming", params={"feed": query}, headers=AUTH)
            assert response.status == 200
            return re.findall(r'<td data-label="名称">([^ <]+) <span', await response.text())

        assert (await found("人员12345"))[0] == "人员12345"  # exact first, then 人员123450…
        assert await found("p012345") == ["人员12345"]
        assert await found("P012345") == ["人员12345"]  # ids whatever their case
        assert (await found("U00007"))[0] == "局7"
        assert (await found("局7"))[:2] == ["局7", "局70"] and len(await found("局7")) == FEEDS_SHOWN
        assert await found("无此人") == []
