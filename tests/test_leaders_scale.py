"""Leaders at a province's size: the admin's list of leader pages and a leader's own page.

A generated snapshot (20,000 people, 4,000 units: one committee over 160 bureaus, each bureau
with its own leader over its branches) unpickled as every command and the service read it, and
one study day of this month owed by the 4,000 branch secretaries (every third confirmed, the
deadline passed), written straight into the tables. Pages are fetched over loopback HTTP.

What a user would notice is checked, not seconds: page sizes, rows per page, the links to the rest,
the filters, and the work behind a page (the people and units a page builds, the unit ids one
statement binds).
"""

from __future__ import annotations

import html
import pickle
import re
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import event, insert
from test_followup import Clock, bj
from test_web_admin import AUTH, PASSWORD, USER

from bot.config.models import Person, Schedules, Unit
from bot.confirming.confirmations import to_db_time
from bot.reporting import reports, unitmatch
from bot.reporting.chart import find_cjk_font
from bot.reporting.reports import period_bounds
from bot.runtime import Runtime
from bot.scheduling.occurrences import leader_url
from bot.scheduling.workdays import WorkCalendar
from bot.settings import Settings
from bot.web import leader, make_app
from storage.db import Database
from storage.models import Confirmation, Expectation, Occurrence

PEOPLE, BUREAUS, UNITS = 20_000, 160, 4_000
MAX_PAGE_BYTES = 300_000
MAX_BOUND = 2_010  # parameters of one statement: a few beside 2,000 unit ids at most
NOW = bj(2026, 11, 20, 10, 0)


def province() -> Schedules:
    """The committee ``u0000`` (led by p00000), bureaus ``u0001``–``u0160`` (each led by its own
    leader), branches ``u0161``… under them; a secretary per branch, members for the rest."""
    units = {"u0000": Unit(id="u0000", name="工委", leaders=["p00000"])}
    for i in range(1, UNITS):
        uid = f"u{i:04d}"
        units[uid] = (Unit(id=uid, name=f"局{i}", parent="u0000", leaders=[f"p{i:05d}"]) if i <= BUREAUS
                      else Unit(id=uid, name=f"支部{i}", parent=f"u{1 + i % BUREAUS:04d}"))
    people = {}
    for n in range(PEOPLE):
        pid = f"p{n:05d}"
        if n <= BUREAUS:
            person = Person(id=pid, name=f"领导{n}", roles=["leader"], unit="u0000")
        elif n < UNITS:
            person = Person(id=pid, name=f"书记{n}", roles=["secretary"], unit=f"u{n:04d}")
        else:
            branch = BUREAUS + 1 + n % (UNITS - BUREAUS - 1)
            person = Person(id=pid, name=f"党员{n}", roles=["member"], unit=f"u{branch:04d}")
        people[pid] = person
    # as the snapshot holds them: people and units are rows, each model built on its first read
    return pickle.loads(pickle.dumps(Schedules(units=units, people=people)))


@dataclass(repr=False)  # a repr would build every model (Schedules.__repr_args__): the checks count them
class Province:
    runtime: Runtime
    client: TestClient

    @property
    def schedules(self) -> Schedules:
        return self.runtime.schedules


@pytest.fixture
async def big(db: Database, tmp_path: Path) -> AsyncIterator[Province]:
    async for province_ in served(db, tmp_path):
        yield province_


@pytest.fixture
async def big_any(any_db: Database, tmp_path: Path) -> AsyncIterator[Province]:
    """The same on SQLite and on PostgreSQL (the overdue list is Core SQL)."""
    async for province_ in served(any_db, tmp_path):
        yield province_


async def served(db: Database, tmp_path: Path) -> AsyncIterator[Province]:
    settings = Settings(secret_key="test-signing-key-0123456789", var_dir=tmp_path, database_url=db.url,
                        base_url="https://dj.example.gov.cn", admin_user=USER, admin_password=PASSWORD)
    runtime = Runtime(settings=settings, db=db, schedules=province(), calendar=WorkCalendar(),
                      renderer=None, clock=Clock(NOW))  # type: ignore[arg-type]
    await owed_study_day(db)
    async with TestClient(TestServer(make_app(runtime), host="127.0.0.1")) as client:
        yield Province(runtime, client)


async def owed_study_day(db: Database) -> None:
    """This month's study day, owed by every branch's secretary; every third confirmed; deadline passed."""
    due, deadline = bj(2026, 11, 3, 9, 0), bj(2026, 11, 6, 9, 0)
    async with db.engine.begin() as conn:
        [occ] = (await conn.execute(insert(Occurrence.__table__).returning(Occurrence.__table__.c.id), [  # type: ignore[attr-defined]
            {"reminder_id": "study", "due_at": to_db_time(due), "title": "每月学习日", "kind": "reminder",
             "deadline_at": to_db_time(deadline), "provisional": False, "created_at": to_db_time(due),
             "fired_at": to_db_time(due), "dry_run": False}])).scalars().all()
        branches = range(BUREAUS + 1, UNITS)
        await conn.execute(insert(Expectation.__table__), [  # type: ignore[attr-defined]
            {"occurrence_id": occ, "person_id": f"p{n:05d}", "person_name": f"书记{n}", "unit_id": f"u{n:04d}",
             "unit_name": f"支部{n}", "leader_ids": [], "followups": 0, "escalations": 0} for n in branches])
        await conn.execute(insert(Confirmation.__table__), [  # type: ignore[attr-defined]
            {"occurrence_id": occ, "person_id": f"p{n:05d}", "confirmed_at": to_db_time(deadline - timedelta(days=1)),
             "via": "link"} for n in branches if n % 3 == 0])


async def fetch(client: TestClient, path: str, **headers: str) -> str:
    response = await client.get(path, headers=headers)
    assert response.status == 200, (path, response.status)
    body = await response.read()
    assert len(body) < MAX_PAGE_BYTES, f"{path}: {len(body):,} bytes"
    return body.decode()


def next_link(page: str) -> str | None:
    found = re.search(r'href="([^"]+)" rel="next" data-page="next"', page)
    return html.unescape(found[1]) if found else None


@contextmanager
def statements(db: Database) -> Iterator[list[int]]:
    """The number of parameters bound by each statement run meanwhile."""
    bound: list[int] = []

    def count(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        bound.append(len(parameters) if isinstance(parameters, list | tuple | dict) else 0)

    event.listen(db.engine.sync_engine, "before_cursor_execute", count)
    try:
        yield bound
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", count)


# ---------------------------------------------------------------- the admin's list of leader pages


async def test_the_leaders_page_of_161_leaders_comes_in_pages_and_builds_only_its_rows(big: Province) -> None:
    page = await fetch(big.client, "/admin/leaders", **AUTH)
    links = re.findall(r'class="leader-link" href="([^"]+)"', page)
    assert len(links) == 100 and "共 161 位" in page
    assert "领导0 " in page and "工委" in page and "含下级单位共 4,000 个" in page
    # people × units before: every person and unit built (and compared) for one page of leaders
    assert len(big.schedules.people.built) <= 100 + 5, len(big.schedules.people.built)
    assert len(big.schedules.units.built) <= 100 + 5, len(big.schedules.units.built)
    second = await fetch(big.client, str(next_link(page)), **AUTH)
    rest = re.findall(r'class="leader-link" href="([^"]+)"', second)
    assert len(rest) == 61 and next_link(second) is None and "领导160 " in second
    # each link opens that leader's own page
    leader = await fetch(big.client, rest[-1].removeprefix(big.runtime.settings.base_url))
    assert "领导160同志" in leader and "局160" in leader


async def test_the_leaders_page_finds_a_leader_by_name_or_by_a_unit_they_oversee(big: Province) -> None:
    by_name = await fetch(big.client, "/admin/leaders?name=领导12", **AUTH)
    found = re.findall(r"<td data-label=\"领导\">([^<]+) <span", by_name)
    assert found == ["领导12", *(f"领导{n}" for n in range(120, 130))]
    # a branch: its bureau's leader and the committee's; 局1 is 局1 alone, not 局10–局19
    for unit, leaders in (("支部200", ["领导0", "领导41"]), ("u0200", ["领导0", "领导41"]),
                          ("局1", ["领导0", "领导1"])):
        page = await fetch(big.client, f"/admin/leaders?unit={unit}", **AUTH)
        assert re.findall(r"<td data-label=\"领导\">([^<]+) <span", page) == leaders, unit
    none = await fetch(big.client, "/admin/leaders?name=没有这个人", **AUTH)
    assert "没有符合筛选条件的领导" in none


# ---------------------------------------------------------------- a leader's own page


async def test_the_committee_leaders_page_summarises_4000_units_and_pages_its_lists(big_any: Province) -> None:
    big = big_any
    path = leader_url(big.runtime, "p00000").removeprefix(big.runtime.settings.base_url)
    with statements(big.runtime.db) as bound:
        page = await fetch(big.client, path)
    assert max(bound) <= MAX_BOUND, max(bound)  # no statement binds the 4,000 unit ids
    head = page[:page.index("<h2")]
    assert "分管单位：工委（含下级单位共 4,000 个）" in head and "支部200" not in head
    text = re.sub(r"<[^>]+>", "", page)
    # this month's figures first: a page of units, the total of all 3,839 branches
    assert page.count('<td data-label="单位">') == 10 + 1 and "共 3,839 个单位" in text
    expected, confirmed = UNITS - BUREAUS - 1, len([n for n in range(BUREAUS + 1, UNITS) if n % 3 == 0])
    assert re.search(rf'data-label="应确认">{expected}</td><td data-label="按时">{confirmed}</td>', page)
    # the overdue: 20 of them, longest overdue first, with the way to the rest
    late = page[page.index('id="late"'):]
    assert late.count("<li>") == 20 and f"共 {expected - confirmed:,} 项" in late
    more = next_link(late)
    assert more is not None and more.endswith("#late")
    second = await fetch(big.client, more)
    late_two = second[second.index('id="late"'):]
    names = set(re.findall(r"<strong>(书记\d+)</strong>", late))
    assert late_two.count("<li>") == 20 and not names & set(re.findall(r"<strong>(书记\d+)</strong>", late_two))


def branches_of(bureau: int) -> list[int]:
    return [i for i in range(BUREAUS + 1, UNITS) if 1 + i % BUREAUS == bureau]


async def test_a_leader_finds_one_of_their_units_and_a_bureau_leader_reads_only_their_own(big: Province) -> None:
    path = leader_url(big.runtime, "p00000").removeprefix(big.runtime.settings.base_url)
    found = await fetch(big.client, f"{path}?unit=支部200")
    assert re.findall(r'<td data-label="单位">([^<]+)</td>', found) == ["支部200"]
    assert '<td data-label="应确认">1</td>' in found.split("<tfoot>")[1]  # 合计: the unit found
    bureau = await fetch(big.client, f"{path}?unit=局40")  # a bureau: its branches
    shown = {int(n) for n in re.findall(r'<td data-label="单位">支部(\d+)</td>', bureau)}
    assert shown and shown <= set(branches_of(40))
    own = leader_url(big.runtime, "p00040").removeprefix(big.runtime.settings.base_url)
    page = await fetch(big.client, own)
    head = page[:page.index("<h2")]
    assert f"分管单位：局40（含下级单位共 {len(branches_of(40)) + 1} 个）" in head
    shown = {int(n) for n in re.findall(r'<td data-label="单位">支部(\d+)</td>', page)}
    assert len(shown) == 10 and shown <= set(branches_of(40))  # 24 branches: a page of 10, then the rest
    none = await fetch(big.client, f"{own}?unit=支部201")  # another bureau's branch: not theirs
    # said as a unit the leader does not oversee, not as one of theirs with nothing due
    assert "“支部201”不在您分管的单位中" in none and "没有“支部201”" not in none
    partial = await fetch(big.client, f"{own}?unit=支部")  # part of the names of all 24 branches
    assert f"没有名称正好是“支部”的单位，按名称含“支部”的 {len(branches_of(40))} 个单位筛选" in partial
    assert "不在您分管的单位中" not in partial
    picks = re.findall(r'<a href="([^"]*unit=[^"]*)">(支部\d+)</a>', partial)  # one of them, by a link
    assert len(picks) == min(len(branches_of(40)), 20)
    one = await fetch(big.client, picks[0][0].replace("&amp;", "&"))
    assert re.findall(r'<td data-label="单位">([^<]+)</td>', one) == [picks[0][1]]
    exact = await fetch(big.client, f"{path}?unit=支部200")
    assert "没有名称正好是" not in exact


async def test_a_leaders_units_are_ranked_by_the_database_as_the_reports_rank_them(
        big_any: Province, monkeypatch: pytest.MonkeyPatch) -> None:
    """The committee's 3,839 units and a bureau's 24, page by page, in :func:`reports.rank`'s order
    (ties by name, 支部2 before 支部10), with the trend's last bar over every unit of the leader's
    whatever ``?unit=`` keeps; no Python ranking of the leader's units (before: all 3,839 ranked per view)."""
    big = big_any
    period = period_bounds("2026-11", NOW)
    ranked: list[int] = []
    original = reports.rank

    def counting(rows: Any) -> list[reports.UnitRow]:
        out = original(rows)
        ranked.append(len(out))
        return out

    for leader_id, pages in (("p00000", (1, 2, 384)), ("p00040", (1, 3))):
        unit_ids = big.schedules.unit_ids_overseen_by(leader_id)
        expected = [r.unit for r in await reports.unit_figures(big.runtime, period.start, period.end,
                                                               unit_ids=unit_ids, now=NOW) if r.unit_id in unit_ids]
        path = leader_url(big.runtime, leader_id).removeprefix(big.runtime.settings.base_url)
        monkeypatch.setattr(reports, "rank", counting)
        for number in pages:
            page = await fetch(big.client, f"{path}?page={number}")
            shown = re.findall(r'<td data-label="单位">([^<]+)</td>', page)
            last = min(number, -(-len(expected) // 10))  # a page past the end shows the last
            assert shown == expected[(last - 1) * 10:last * 10], (leader_id, number)
        whole = re.search(r"11月 ([^\"]+)\"", page)
        assert whole is not None
        found = await fetch(big.client, f"{path}?unit={expected[0]}")
        assert re.findall(r'<td data-label="单位">([^<]+)</td>', found) == [expected[0]]
        assert f"11月 {whole[1]}\"" in found  # the trend: every unit of the leader's, not the one found
        monkeypatch.undo()
    assert not ranked or max(ranked) <= 10, ranked


async def test_a_province_report_ranks_3839_units_from_their_rows_without_building_a_unit(big: Province) -> None:
    """``remindbot report``'s figures for every unit (its table, its CSV, a 通报's ranking): each row
    is named as it fired, so none of the snapshot's units is built (before: one model per row,
    ~0.1 s of a 20,000-unit report's CPU), and the ranking and the table are as before."""
    period = period_bounds("2026-11", NOW)
    rows = await reports.unit_figures(big.runtime, period.start, period.end, now=NOW)
    assert len(rows) == UNITS - BUREAUS - 1
    assert not big.schedules.units.built, len(big.schedules.units.built)
    # every third branch confirmed on time (100%), ranked first in natural order; the rest 0%
    assert [r.unit for r in rows[:3]] == ["支部162", "支部165", "支部168"]
    assert (rows[0].expected, rows[0].on_time, rows[0].missing) == (1, 1, 0)
    assert rows[-1].unit == "支部3998" and (rows[-1].on_time, rows[-1].missing) == (0, 1)
    text = reports.format_rows(rows, "table", title="统计").splitlines()
    assert len(text) == 2 + 2 + len(rows)
    assert text[4].split() == ["1", "支部162", "1", "1", "0", "0", "0", "0", "100.0%", "0"]
    behind = str(sum(1 for r in rows if r.on_time) + 1)  # every 0% unit shares the place after the 100% ones
    assert text[-1].split() == [behind, "支部3998", "1", "0", "0", "1", "0", "0", "0.0%", "0"]
    by_parent = await reports.unit_figures(big.runtime, period.start, period.end, now=NOW, by_parent=True)
    assert len(by_parent) == BUREAUS and sum(r.expected for r in by_parent) == len(rows)


# ---------------------------------------------------------------- the units page's picture


@pytest.mark.skipif(find_cjk_font() is None, reason="no CJK font installed (fonts-noto-cjk)")
async def test_the_units_picture_of_3839_units_is_one_page_of_them(big: Province) -> None:
    # before: all 3,839 bars in one figure (minutes and gigabytes of drawing, then too large to send)
    response = await big.client.get("/admin/units.png?period=2026-11", headers=AUTH)
    assert response.status == 200 and response.content_type == "image/png"
    first = await response.read()
    assert first.startswith(b"\x89PNG") and len(first) < 2 * 1024 * 1024
    later = await big.client.get("/admin/units.png?period=2026-11&page=39", headers=AUTH)  # the last, 39 units
    assert later.status == 200 and len(await later.read()) < len(first)


@pytest.mark.parametrize("keep", ["every other branch", "all but 100 branches"])
@pytest.mark.parametrize("inline", [True, False], ids=["ids inline", "ids as one array"])
async def test_overdue_rows_are_the_same_however_the_units_are_bound(big_any: Province, keep: str, inline: bool,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Thousands of unit ids bound one by one, or as one parameter (an array, a JSON list): the same page."""
    big = big_any
    monkeypatch.setattr(unitmatch, "INLINE_IDS", 10_000 if inline else 200)
    branches = list(range(BUREAUS + 1, UNITS))
    wanted = branches[::2] if keep == "every other branch" else branches[100:]
    owed = [n for n in wanted if n % 3]  # every third confirmed
    for start in (0, 700):
        counted: list[int] = []

        def page(total: int, start: int = start, counted: list[int] = counted) -> tuple[int, int]:
            counted.append(total)
            return start, 20

        with statements(big.runtime.db) as bound:
            rows = await leader.overdue(big.runtime, {f"u{n:04d}" for n in wanted}, NOW, page)
        assert counted == [len(owed)] and (inline or max(bound) <= 10)
        assert [r["person"] for r in rows] == [f"书记{n}" for n in owed[start:start + 20]]
