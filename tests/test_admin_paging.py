"""The admin board and units page at a province's size: paged, filtered, small enough for a phone.

One generated occurrence owed by 20,000 secretaries in 5,000 branches (every third confirmed),
written straight into the tables; the pages are fetched over loopback HTTP with Basic auth.
"""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator
from dataclasses import astuple
from datetime import UTC, timedelta
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import insert
from test_web_admin import AUTH, PASSWORD, USER
from test_web_confirm import DEADLINE, DUE, NOW, World, add_occurrence, build_world

from bot.confirming.confirmations import BoardRow, board, to_db_time
from bot.reporting.reports import (
    UnitRow,
    board_chart,
    board_conditions,
    board_counts,
    board_figures,
    board_page_rows,
    board_total,
    board_unit_figures,
    nudge_counts,
    period_bounds,
    places,
    totals,
    unit_figures,
    unit_table,
)
from bot.reporting.unitmatch import UnitMatch, resolve
from bot.web import make_app
from storage.db import Database
from storage.models import Confirmation, Expectation, Nudge, Occurrence, Outbox

PEOPLE, PER_UNIT = 20_000, 4
MAX_PAGE_BYTES = 300_000


def unit_of(n: int) -> str:
    return f"u{n // PER_UNIT:05d}"


@pytest.fixture
async def big(db: Database, tmp_path: Path) -> World:
    world = await build_world(db, tmp_path, admin_user=USER, admin_password=PASSWORD)
    occ = await add_occurrence(db, people=(), title="全省学习日", due_at=DUE + timedelta(days=1))
    exps = [{"occurrence_id": occ, "person_id": f"p{n:05d}", "person_name": f"书记{n:05d}", "unit_id": unit_of(n),
             "unit_name": f"第{n // PER_UNIT:05d}党支部", "leader_ids": [], "followups": 0, "escalations": 0}
            for n in range(PEOPLE)]
    confs = [{"occurrence_id": occ, "person_id": f"p{n:05d}", "confirmed_at": to_db_time(NOW), "via": "link"}
             for n in range(0, PEOPLE, 3)]
    async with db.engine.begin() as conn:
        await conn.execute(insert(Expectation.__table__), exps)  # type: ignore[attr-defined]
        await conn.execute(insert(Confirmation.__table__), confs)  # type: ignore[attr-defined]
    world.occurrence_id = occ
    return world


@pytest.fixture
async def client(big: World) -> AsyncIterator[TestClient]:
    async with TestClient(TestServer(make_app(big.runtime), host="127.0.0.1")) as client:
        yield client


async def fetch(client: TestClient, path: str) -> str:
    response = await client.get(path, headers=AUTH)
    assert response.status == 200
    body = await response.read()
    assert len(body) < MAX_PAGE_BYTES, f"{path}: {len(body)} bytes"
    return body.decode()


def link(page: str, rel: str) -> str:
    found = re.search(rf'href="([^"]+)" rel="{rel}" data-page="{rel}">', page)
    assert found, f"no {rel} link"
    return html.unescape(found.group(1))


def places_of(page: str) -> list[int]:
    """The units table's places on a page (ranked units only)."""
    return [int(p) for p in re.findall(r'<td data-label="排名">(\d+)</td>', page)]


def names(page: str) -> list[str]:
    return re.findall(r"<strong>(书记\d{5})</strong>", page)


async def test_a_board_of_20000_people_comes_in_pages_that_link_to_each_other(big: World, client: TestClient) -> None:
    first = await fetch(client, f"/admin/occurrences/{big.occurrence_id}")
    assert "第 1 / 200 页，共 20000 条" in first
    assert "6667</strong> / 20000 人已确认" in first  # the figures count everyone, not the page
    assert names(first)[:2] == ["书记00000", "书记00001"] and len(names(first)) == 100

    second = await fetch(client, link(first, "next"))
    assert "第 2 / 200 页" in second and names(second)[0] == "书记00100"
    assert names(await fetch(client, link(second, "prev"))) == names(first)


async def test_the_board_filters_by_unit_and_status_and_pages_keep_the_filter(
        big: World, client: TestClient) -> None:
    unit = await fetch(client, f"/admin/occurrences/{big.occurrence_id}?unit=u00007")
    assert names(unit) == [f"书记{n:05d}" for n in range(28, 32)]
    assert "共 4 条" in unit

    confirmed = await fetch(client, f"/admin/occurrences/{big.occurrence_id}?status=confirmed")
    assert "共 6667 条" in confirmed
    assert names(confirmed)[:3] == ["书记00000", "书记00003", "书记00006"]
    assert "status=confirmed" in link(confirmed, "next")
    later = await fetch(client, link(confirmed, "next"))
    assert all(int(name[2:]) % 3 == 0 for name in names(later)) and names(later)[0] == "书记00300"

    pending = await fetch(client, f"/admin/occurrences/{big.occurrence_id}?status=pending&unit=第00007党支部")
    assert names(pending) == ["书记00028", "书记00029", "书记00031"]  # 30 confirmed (every third from 0)


async def test_the_units_page_of_5002_branches_is_paged_and_filtered(big: World, client: TestClient) -> None:
    first = await fetch(client, "/admin/units?period=2025-03")
    assert "第 1 / 51 页，共 5002 条" in first  # and the two branches of the small occurrence beside it
    second = await fetch(client, link(first, "next"))
    assert "第 2 / 51 页" in second and "period=2025-03" in link(second, "prev")
    # places continue from the first page; equal figures share a place (1, 2, 2, 4), so ties repeat
    first_places, second_places = places_of(first), places_of(second)
    assert len(first_places) == len(second_places) == 100
    assert first_places == sorted(first_places) and second_places == sorted(second_places)
    assert first_places[-1] <= second_places[0]
    assert len(set(second_places)) < len(second_places)

    one = await fetch(client, "/admin/units?period=2025-03&unit=u00042")
    assert "共 1 条" in one and "第00042党支部" in one


# ---------------------------------------------------------------- SQL counts agree with the board's rules

MIXED = 40  # people in 8 units, in every state a board shows


async def mixed_occurrence(db: Database) -> int:
    """One occurrence past its deadline: on time, late, excused, excused but confirmed anyway, missing."""
    occ = await add_occurrence(db, people=(), title="混合情况", due_at=DUE + timedelta(days=2),
                               deadline_at=DEADLINE)
    exps, confs = [], []
    for n in range(MIXED):
        state, unitless, excused = n % 5, n % 8 == 7, n % 5 in (2, 3)
        exps.append({"occurrence_id": occ, "person_id": f"m{n:03d}", "person_name": f"党员{n:03d}",
                     "unit_id": None if unitless else f"x{n % 8}", "unit_name": None if unitless else f"第{n % 8}支部",
                     "leader_ids": [], "followups": 0, "escalations": 0,
                     "excused_at": to_db_time(NOW) if excused else None,
                     "excused_by": "admin" if excused else None, "excuse_reason": "出差" if excused else None})
        if state in (0, 3):  # on time
            confs.append({"occurrence_id": occ, "person_id": f"m{n:03d}", "confirmed_at": to_db_time(NOW),
                          "via": "link"})
        if state == 1:  # after the deadline
            confs.append({"occurrence_id": occ, "person_id": f"m{n:03d}",
                          "confirmed_at": to_db_time(DEADLINE.replace(tzinfo=UTC) + timedelta(hours=5)),
                          "via": "admin"})
    # follow-up round 1 reached m004 (in a group message's mentions) and m009 (their own link's key);
    # m014's group message failed for good, and a WeCom-style body names nobody
    nudges = [{"occurrence_id": occ, "person_id": p, "kind": "followup", "number": 1, "at": to_db_time(NOW)}
              for p in ("m004", "m009", "m014")]
    messages = [("occ/followup:1/g/group#1", "sent", {"mentions": [{"person_id": "m004"}]}),
                ("occ/followup:1/oa/m009#1", "pending", {"mentions": []}),
                ("occ/followup:1/h/group#1", "dead", {"mentions": [{"person_id": "m014"}]}),
                ("occ/followup:1/w/group#1", "sent", {"msgtype": "markdown", "markdown": {"content": "m014"}})]
    outbox = [{"dedupe_key": f"{occ}{key}", "occurrence_id": occ, "stage": "followup:1", "channel_id": "g",
               "platform": "generic", "robot": "r", "body": body, "summary": "催办", "status": status,
               "attempts": 0, "next_attempt_at": to_db_time(NOW), "created_at": to_db_time(NOW)}
              for key, status, body in messages]
    async with db.engine.begin() as conn:
        await conn.execute(insert(Expectation.__table__), exps)  # type: ignore[attr-defined]
        await conn.execute(insert(Confirmation.__table__), confs)  # type: ignore[attr-defined]
        await conn.execute(insert(Nudge.__table__), nudges)  # type: ignore[attr-defined]
        await conn.execute(insert(Outbox.__table__), outbox)  # type: ignore[attr-defined]
    return occ


async def test_board_and_unit_figures_counted_in_sql_agree_with_the_full_board(any_db: Database,
                                                                                tmp_path: Path) -> None:
    """The paged board's counts, filters and chart, and the units page's figures, are the full board's."""
    world = await build_world(any_db, tmp_path, admin_user=USER, admin_password=PASSWORD)
    occ_id = await mixed_occurrence(any_db)
    later = DEADLINE.replace(tzinfo=UTC) + timedelta(days=1)  # the deadline has passed
    full = await board(any_db, occ_id, later)
    async with any_db.session() as session:
        occ = await session.get(Occurrence, occ_id)
        assert occ is not None
        counts = await board_counts(session, occ, later)
        dialect = (await session.connection()).dialect.name
        for status in ("", "pending", "overdue", "confirmed", "late", "excused"):
            for unit in ("", "x3", "第5支部", "支部"):
                conditions = board_conditions(dialect, occ, later, unit, status)
                wanted = [r.person_id for r in full.rows if _matches(r, unit, status)]
                got = await board_page_rows(session, occ, later, conditions, 0, 1000)
                assert sorted(r.person_id for r in got) == sorted(wanted), (status, unit)
                assert await board_total(session, occ, conditions) == len(wanted)
                if not unit:  # a status alone is counted by the board's one pass, not by board_total
                    assert counts.matching(status) == len(wanted), status
        units, by_sql = await board_unit_figures(session, occ, later)
        # the board page's one pass gives the same figures as board_counts' own query, and the chart
        for last in (None, 3, 1000):
            chart = await board_chart(session, occ, later, last=last)
            assert (chart.counts, chart.units) == (counts, units), last
            assert chart.rows == (by_sql if last is None else by_sql[-last:]), last
        before = DEADLINE.replace(tzinfo=UTC) - timedelta(hours=1)  # nobody overdue yet
        chart = await board_chart(session, occ, before, last=3)
        assert chart.counts == await board_counts(session, occ, before)
        assert (chart.counts.overdue, chart.counts.matching("overdue"), chart.counts.matching("late")) == (0, 0, 8)
        for status in ("", "pending", "overdue", "confirmed", "late", "excused"):
            conditions = board_conditions(dialect, occ, before, "", status)
            assert chart.counts.matching(status) == await board_total(session, occ, conditions), status
        assert (units, by_sql[-3:]) == (len(by_sql), (await board_unit_figures(session, occ, later, last=3))[1])
        nudges = await nudge_counts(session, [occ_id])
    assert nudges == {(occ_id, "m004"): 1, (occ_id, "m009"): 1}
    assert (counts.expected, counts.confirmed, counts.excused, counts.overdue) == (
        full.expected, full.confirmed, len(full.excused), len(full.overdue)) == (40, 24, 8, 8)
    assert by_sql == board_figures(full, nudges, later)
    assert sum(r.nudges for r in by_sql) == 2
    period = period_bounds("2025-03", later)
    units = await unit_figures(world.runtime, period.start, period.end, now=later)
    mine = {r.unit_id: r for r in units}
    for row in board_figures(full, nudges, later):  # the other occurrence's people add to x-less units only
        assert mine[row.unit_id] == row
    for status in ("", "behind", "pending", "done"):  # the units page, ranked and paged in SQL
        for unit in ("", "x3", "支部", "未分配", "市直机关工委", "第一党支部"):
            match = resolve(world.runtime.schedules, unit)
            kept = [(place, r) for place, r in zip(places(units), units, strict=True)
                    if _unit_kept(r, match, status)]
            table = await unit_table(world.runtime, period.start, period.end, now=later, unit=unit, status=status,
                                     page_of=lambda n: (0, 1000))
            assert (table.units, table.matched) == (len(units), len(kept)), (status, unit)
            assert table.rows == kept and table.total == totals(r for _, r in kept), (status, unit)
            second = await unit_table(world.runtime, period.start, period.end, now=later, unit=unit, status=status,
                                      page_of=lambda n: (2, 3))
            assert second.rows == kept[2:5]
            # the page asked for read in one statement when page_of agrees with the guess, else read
            # again where page_of says (a page past the end shows the last); the same rows and sums
            last = max(0, (len(kept) - 1) // 3 * 3)
            for guess in ((3, 3), (99, 3)):
                third = await unit_table(world.runtime, period.start, period.end, now=later, unit=unit,
                                         status=status, guess=guess,
                                         page_of=lambda n: (3, 3) if n > 3 else (max(0, (n - 1) // 3 * 3), 3))
                want = kept[3:6] if len(kept) > 3 else kept[last:last + 3]
                assert (third.units, third.matched, third.total) == (table.units, table.matched, table.total), guess
                assert third.rows == want, (status, unit, guess)


def _matches(row: BoardRow, unit: str, status: str) -> bool:
    if unit and unit != row.unit_id and unit not in (row.unit_name or ""):
        return False
    return {"": True, "pending": not row.confirmed and not row.excused, "overdue": row.overdue_since is not None,
            "confirmed": row.confirmed and not row.late, "late": row.late,
            "excused": row.excused and not row.confirmed}[status]


def _unit_kept(row: UnitRow, match: UnitMatch, status: str) -> bool:
    if not match.keeps(row.unit_id, row.unit):
        return False
    return {"": True, "behind": row.missing - row.pending > 0, "pending": row.missing > 0,
            "done": row.missing == 0}[status]


NATURAL = ("局10", "局2", "局1", "局02", "局09", "局11", "局3", "局12", "第二支部", "局2")  # 局2 twice: two ids


async def test_unit_pages_keep_the_full_rankings_places_and_natural_order_on_every_page(
        any_db: Database, tmp_path: Path) -> None:
    """The units page's places (equal figures share one: 1, 2, 2, 4; nothing due yet: none) and its order
    (局2 before 局10, then by id) are the whole ranking's on every page and under every filter, and the
    kept units' sums, 催办次数 included, are theirs alone: as Python ranks :func:`unit_figures`."""
    world = await build_world(any_db, tmp_path, admin_user=USER, admin_password=PASSWORD)
    await mixed_occurrence(any_db)  # 8 branches and the unitless, every state, 催办 reaching two people
    later = DEADLINE.replace(tzinfo=UTC) + timedelta(days=1)
    # 10 units of 1 to 3 people each, one or none confirmed: ties in rate and missing, names sorting naturally
    people = tuple((f"n{i}-{k}", f"成员{i}{k}", f"n{i}", name) for i, name in enumerate(NATURAL)
                   for k in range(1 + i % 3))
    occ = await add_occurrence(any_db, people=people, title="自然排序", due_at=DUE + timedelta(days=3))
    # two units whose only confirmations are not due yet: no place, listed among those with a rate of 0
    await add_occurrence(any_db, people=(("w1", "王一", "w1", "局20"), ("w2", "王二", "w2", "局4")),
                         title="尚未截止", due_at=DUE + timedelta(days=4), deadline_at=later + timedelta(days=9))
    confs = [{"occurrence_id": occ, "person_id": f"n{i}-0", "confirmed_at": to_db_time(NOW), "via": "link"}
             for i in range(len(NATURAL)) if i % 2 == 0]
    async with any_db.engine.begin() as conn:
        await conn.execute(insert(Confirmation.__table__), confs)  # type: ignore[attr-defined]
    period = period_bounds("2025-03", later)
    units = await unit_figures(world.runtime, period.start, period.end, now=later)
    ranked = list(zip(places(units), units, strict=True))
    assert [r.unit for _, r in ranked if r.unit in ("局2", "局12", "局02")] == ["局02", "局2", "局2", "局12"]
    assert [p for p, r in ranked if r.unit in ("局20", "局4")] == [0, 0]
    assert len({p for p, _ in ranked if p}) < len([p for p, _ in ranked if p])  # ties share places
    for status in ("", "behind", "pending", "done"):
        for unit in ("", "局2", "支部", "x3"):
            match = resolve(world.runtime.schedules, unit)
            kept = [(p, r) for p, r in ranked if _unit_kept(r, match, status)]
            for window in ((0, 1000), (0, 4), (4, 4), (5, 3), (max(len(kept) - 1, 0), 2)):
                table = await unit_table(world.runtime, period.start, period.end, now=later, unit=unit,
                                         status=status, page_of=lambda n, w=window: w, guess=window)
                start, size = window
                assert (table.units, table.matched) == (len(ranked), len(kept)), (status, unit)
                assert table.rows == kept[start:start + size], (status, unit, window)
                assert table.total == totals(r for _, r in kept), (status, unit)
                # integers, as the page prints them (a PostgreSQL numeric would print 100.00 for 100.0)
                assert {type(v) for _, r in table.rows for v in astuple(r)[2:]} <= {int}, (status, unit)
    async with any_db.session() as session:
        occurrence = await session.get(Occurrence, occ)
        assert occurrence is not None
        full = board_figures(await board(any_db, occ, later), {}, later)
        for last in (None, 1, 4, 100):
            chart = await board_chart(session, occurrence, later, last=last)
            assert chart.units == len(NATURAL) and chart.rows == (full if last is None else full[-last:]), last
