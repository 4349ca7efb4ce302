"""The personal confirmation link over real HTTP on loopback, and recording confirmations.

The helpers at the top (``World``, ``build_world``) build a small organisation with one study
day occurrence; the admin and browser tests import them too.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import sqlite3
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlmodel import select

from bot.config.models import Confirm, Person, Recipients, Reminder, Schedules, Selector, Unit, When
from bot.confirming.confirmations import NotExpectedError, board, record_confirmation, to_db_time
from bot.confirming.tokens import make_token
from bot.metrics import CONFIRMATIONS
from bot.reporting.reports import board_figures
from bot.runtime import Runtime
from bot.scheduling.workdays import WorkCalendar
from bot.settings import Settings
from bot.web import RedactingAccessLogger, make_app
from storage.db import Database
from storage.models import Confirmation, Expectation, Occurrence

# Friday 7 March 2025, 09:00 in Beijing; the deadline is three days later.
DUE = datetime(2025, 3, 7, 1, 0)
DEADLINE = datetime(2025, 3, 10, 1, 0)
NOW = datetime(2025, 3, 7, 2, 0, tzinfo=UTC)
SECRET_KEY = "test-signing-key-0123456789"


@dataclass
class Clock:
    now: datetime = NOW

    def __call__(self) -> datetime:
        return self.now


def schedules() -> Schedules:
    units = [
        Unit(id="org", name="市直机关工委"),
        Unit(id="b1", name="第一党支部", parent="org", leaders=["leader"]),
        Unit(id="b2", name="第二党支部", parent="org", leaders=["leader"]),
    ]
    people = [
        Person(id="leader", name="赵书记", roles=["leader"], unit="org"),
        Person(id="zhang", name="张伟", roles=["secretary"], unit="b1"),
        Person(id="li", name="李娜", roles=["secretary"], unit="b2"),
        Person(id="wang", name="王芳", roles=["worker"], unit="b2"),
        Person(id="outsider", name="刘强", roles=["worker"], unit="b1"),
    ]
    study = Reminder(
        id="study-day",
        title="每月学习日",
        when=When(monthly={"weekday": "fri", "nth": 1}, at="09:00"),
        recipients=Recipients(channels=["party"], mention=Selector(roles=["secretary"])),
        confirm=Confirm(deadline="3d"),
    )
    return Schedules(
        units={u.id: u for u in units},
        people={p.id: p for p in people},
        reminders={study.id: study},
    )


@dataclass
class World:
    runtime: Runtime
    clock: Clock
    occurrence_id: int
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def db(self) -> Database:
        return self.runtime.db

    def token(self, person_id: str, occurrence_id: int | None = None, **kwargs: Any) -> str:
        occ = self.occurrence_id if occurrence_id is None else occurrence_id
        kwargs.setdefault("now", self.clock.now)
        return make_token(SECRET_KEY, occ, person_id, **kwargs)

    async def confirmations(self) -> list[Confirmation]:
        async with self.db.session() as session:
            return list((await session.exec(select(Confirmation))).all())


async def add_occurrence(
    db: Database,
    *,
    title: str = "每月学习日",
    reminder_id: str = "study-day",
    due_at: datetime = DUE,
    deadline_at: datetime | None = DEADLINE,
    people: tuple[tuple[str, str, str, str], ...] = (
        ("zhang", "张伟", "b1", "第一党支部"),
        ("li", "李娜", "b2", "第二党支部"),
        ("wang", "王芳", "b2", "第二党支部"),
    ),
    original_date: date | None = None,
    provisional: bool = False,
) -> int:
    """An occurrence and its expectations, written straight into the tables."""
    async with db.session() as session:
        occ = Occurrence(reminder_id=reminder_id, due_at=to_db_time(due_at), title=title,
                         deadline_at=to_db_time(deadline_at) if deadline_at else None,
                         original_date=original_date, provisional=provisional,
                         fired_at=to_db_time(due_at), created_at=to_db_time(due_at))
        session.add(occ)
        await session.flush()
        for person_id, name, unit_id, unit_name in people:
            session.add(Expectation(occurrence_id=occ.id, person_id=person_id, person_name=name,
                                    unit_id=unit_id, unit_name=unit_name, leader_ids=["leader"]))
        await session.commit()
        assert occ.id is not None
        return occ.id


async def build_world(db: Database, tmp_path: Path, **settings: Any) -> World:
    settings.setdefault("base_url", "https://dangjian.example.gov.cn")
    config = Settings(secret_key=SECRET_KEY, var_dir=tmp_path, database_url=db.url, **settings)
    clock = Clock()
    runtime = Runtime(settings=config, db=db, schedules=schedules(), calendar=WorkCalendar(),
                      renderer=None, clock=clock)  # type: ignore[arg-type]
    return World(runtime=runtime, clock=clock, occurrence_id=await add_occurrence(db))


@pytest.fixture
async def world(any_db: Database, tmp_path: Path) -> World:
    """Every page test runs on SQLite and on PostgreSQL (the hot path is Core SQL per dialect)."""
    return await build_world(any_db, tmp_path)


@pytest.fixture
async def client(world: World) -> AsyncIterator[TestClient]:
    async with TestClient(TestServer(make_app(world.runtime), host="127.0.0.1")) as client:
        yield client


@asynccontextmanager
async def serve(app: web.Application, **runner_options: Any) -> AsyncIterator[str]:
    """Serve the app for real on a free loopback port, with the runner ``serve`` uses (its answers to
    errors outside the handlers are part of what a client sees); yields its base URL."""
    from bot.web.app import SafeAppRunner

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    runner = SafeAppRunner(app, **runner_options)
    await runner.setup()
    try:
        await web.SockSite(runner, sock).start()
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        await runner.cleanup()


async def post(client: TestClient, token: str, note: str = "", **headers: str) -> Any:
    return await client.post(f"/c/{token}", data={"token": token, "note": note}, headers=headers)


# ---------------------------------------------------------------- opening and confirming


async def test_opening_the_link_shows_the_page_and_records_nothing(
    world: World, client: TestClient
) -> None:
    token = world.token("zhang")
    for _ in range(3):  # chat apps fetch links on their own to build previews
        response = await client.get(f"/c/{token}")
        assert response.status == 200
    page = await response.text()
    for text in ("每月学习日", "张伟", "第一党支部", "2025年3月7日（星期五）09:00",
                 "2025年3月10日（星期一）09:00", "确认已完成", "备注"):
        assert text in page
    assert await world.confirmations() == []


async def test_a_moved_occurrence_names_the_holiday_it_was_moved_off_as_upcoming_does(
    world: World, client: TestClient
) -> None:
    holiday = await add_occurrence(world.db, due_at=datetime(2027, 1, 4, 1, 0), deadline_at=None,
                                   original_date=date(2027, 1, 1))
    weekend = await add_occurrence(world.db, due_at=datetime(2027, 1, 11, 1, 0), deadline_at=None,
                                   original_date=date(2027, 1, 10))
    page = await (await client.get(f"/c/{world.token('zhang', holiday)}")).text()
    assert "原定 2027年1月1日（星期五），遇元旦调整" in page and "节假日" not in page
    page = await (await client.get(f"/c/{world.token('zhang', weekend)}")).text()
    assert "原定 2027年1月10日（星期日），遇非工作日调整" in page


async def test_confirm_pages_are_not_cached_and_leak_no_referrer(
    world: World, client: TestClient
) -> None:
    response = await client.get(f"/c/{world.token('zhang')}")
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    csp = response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "unsafe-inline" not in csp
    assert "<script" not in await response.text()


async def test_pressing_confirm_records_the_confirmation_with_its_note(
    world: World, client: TestClient
) -> None:
    response = await post(client, world.token("zhang"), note="参加人数 23 人")
    page = await response.text()
    assert response.status == 200
    assert "已确认，谢谢" in page and "2025年3月7日（星期五）10:00" in page
    [row] = await world.confirmations()
    assert (row.person_id, row.via, row.note) == ("zhang", "link", "参加人数 23 人")
    assert row.confirmed_at == to_db_time(NOW)


async def test_confirming_twice_is_harmless_and_the_first_confirmation_stands(
    world: World, client: TestClient
) -> None:
    token = world.token("zhang")
    await post(client, token, note="第一次")
    world.clock.now = NOW + timedelta(hours=3)
    again = await post(client, token, note="第二次")
    assert again.status == 200
    assert "已于 2025年3月7日（星期五）10:00 确认" in await again.text()
    [row] = await world.confirmations()
    assert row.note == "第一次" and row.confirmed_at == to_db_time(NOW)
    reopened = await (await client.get(f"/c/{token}")).text()
    assert "已于 2025年3月7日（星期五）10:00 确认" in reopened and "确认已完成" not in reopened


async def test_a_late_confirmation_is_still_taken_and_the_page_says_it_is_late(
    world: World, client: TestClient
) -> None:
    world.clock.now = DEADLINE.replace(tzinfo=UTC) + timedelta(hours=1)
    token = world.token("li", now=NOW)
    assert "已逾期" in await (await client.get(f"/c/{token}")).text()
    response = await post(client, token)
    assert response.status == 200
    assert [c.person_id for c in await world.confirmations()] == ["li"]
    # trial 10 #7: the page said only 已确认，谢谢; it says how it was recorded, and the deadline
    said = "截止时间为 2025年3月10日（星期一）09:00，本次确认已记录为逾期确认。"
    page = await response.text()
    assert "已确认（逾期确认），谢谢" in page and said in page
    again = await (await client.get(f"/c/{token}")).text()
    assert "确认（逾期确认）</h1>" in again and said in again


async def test_a_confirmation_in_time_is_not_called_late(world: World, client: TestClient) -> None:
    page = await (await post(client, world.token("wang"))).text()
    assert "已确认，谢谢" in page and "逾期确认" not in page


async def test_a_note_that_is_not_utf8_is_refused_in_chinese_and_records_nothing(
    world: World, client: TestClient
) -> None:
    """Trial 10 #9: ``note=%ff%fe`` was stored as “��”."""
    token = world.token("zhang")
    response = await client.post(f"/c/{token}", data=f"token={token}&note=%E5%8F%82%E5%8A%A0%ff%fe".encode(),
                                 headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status == 400
    assert "不是有效的 UTF-8 编码" in await response.text() and "本次提交未登记任何内容" in await response.text()
    assert await world.confirmations() == []
    fine = await client.post(f"/c/{token}", data=f"token={token}&note=%E5%8F%82%E5%8A%A0+23%E4%BA%BA".encode(),
                             headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert fine.status == 200
    assert [c.note for c in await world.confirmations()] == ["参加 23人"]


async def test_a_multipart_note_that_is_not_utf8_is_refused_in_the_same_chinese_words(
    world: World, client: TestClient
) -> None:
    """A multipart form's text field with bytes that are not UTF-8 got the generic 400 page."""
    token = world.token("zhang")

    def multipart(note: bytes) -> bytes:
        return (b'--zz\r\nContent-Disposition: form-data; name="token"\r\n\r\n' + token.encode()
                + b'\r\n--zz\r\nContent-Disposition: form-data; name="note"\r\n\r\n' + note + b"\r\n--zz--\r\n")

    headers = {"Content-Type": "multipart/form-data; boundary=zz"}
    response = await client.post(f"/c/{token}", data=multipart(b"\xe5\x8f\x82\xff\xfe"), headers=headers)
    assert response.status == 400
    text = await response.text()
    assert "不是有效的 UTF-8 编码" in text and "本次提交未登记任何内容" in text
    assert await world.confirmations() == []
    fine = await client.post(f"/c/{token}", data=multipart("参加 23人".encode()), headers=headers)
    assert fine.status == 200
    assert [c.note for c in await world.confirmations()] == ["参加 23人"]


async def test_racing_presses_of_one_link_record_one_confirmation_and_count_it_once(
    world: World, client: TestClient
) -> None:
    token = world.token("wang")
    before = CONFIRMATIONS.labels("link")._value.get()
    pages = await asyncio.gather(*(post(client, token, note=f"第{i}次") for i in range(8)))
    texts = [await p.text() for p in pages]
    assert all(p.status == 200 for p in pages)
    assert sum("已确认，谢谢" in t for t in texts) == 1  # one was recorded; the others see it stand
    assert all("已于 2025年3月7日（星期五）10:00 确认" in t for t in texts if "已确认，谢谢" not in t)
    assert [c.person_id for c in await world.confirmations()] == ["wang"]
    assert CONFIRMATIONS.labels("link")._value.get() == before + 1


# ---------------------------------------------------------------- refusals


async def test_a_token_signed_with_another_key_is_refused(world: World, client: TestClient) -> None:
    forged = make_token("not-the-server-key", world.occurrence_id, "zhang")
    for response in (await client.get(f"/c/{forged}"), await post(client, forged)):
        assert response.status == 403
        assert "链接无效" in await response.text()
    assert await world.confirmations() == []


@pytest.mark.parametrize("number", [2**31, 10**20])
async def test_a_signed_link_to_a_record_number_beyond_the_database_is_a_chinese_400(
        world: World, client: TestClient, number: int) -> None:
    """Only the key's holder could sign one, but it must not reach the driver (trial 10 #1)."""
    token = world.token("zhang", occurrence_id=number)
    for response in (await client.get(f"/c/{token}"), await post(client, token)):
        assert response.status == 400 and "链接无效" in await response.text()
    assert await world.confirmations() == []


def one_changed(text: str) -> str:
    """The text with its middle character replaced (not the last: base64's spare bits)."""
    i = len(text) // 2
    return text[:i] + ("A" if text[i] != "A" else "B") + text[i + 1:]


async def test_a_token_with_one_character_changed_is_refused(world: World, client: TestClient) -> None:
    token = world.token("zhang")
    payload, stamp, signature = token.split(".")
    for altered in (f"{one_changed(payload)}.{stamp}.{signature}",
                    f"{payload}.{stamp}.{one_changed(signature)}"):
        assert altered != token
        response = await post(client, altered)
        assert response.status in (400, 403)
        assert "链接无效" in await response.text()
    assert await world.confirmations() == []


async def test_one_persons_signature_cannot_carry_another_persons_name(
    world: World, client: TestClient
) -> None:
    zhang = world.token("zhang")
    li = world.token("li")
    swapped = ".".join([li.split(".")[0], *zhang.split(".")[1:]])
    assert (await post(client, swapped)).status == 403
    assert await world.confirmations() == []


async def test_a_persons_link_confirms_for_that_person_only(world: World, client: TestClient) -> None:
    zhang = world.token("zhang")
    response = await client.post(f"/c/{zhang}", data={"token": zhang, "person": "li", "note": ""})
    assert response.status == 200
    assert [c.person_id for c in await world.confirmations()] == ["zhang"]
    # Li's token sent to Zhang's address is not Zhang's confirmation, nor Li's.
    li = world.token("li")
    mixed = await client.post(f"/c/{world.token('wang')}", data={"token": li, "note": ""})
    assert mixed.status == 400
    assert [c.person_id for c in await world.confirmations()] == ["zhang"]


async def test_an_expired_link_is_refused_with_410(world: World, client: TestClient) -> None:
    token = world.token("zhang")
    world.clock.now = NOW + timedelta(days=world.runtime.settings.link_ttl_days, seconds=1)
    for response in (await client.get(f"/c/{token}"), await post(client, token)):
        assert response.status == 410
        assert "已过期" in await response.text()
    assert await world.confirmations() == []


async def test_a_link_with_its_own_earlier_expiry_dies_then(world: World, client: TestClient) -> None:
    token = world.token("zhang", expires_at=NOW + timedelta(hours=2))
    assert (await client.get(f"/c/{token}")).status == 200
    world.clock.now = NOW + timedelta(hours=2)
    assert (await post(client, token)).status == 410
    assert await world.confirmations() == []


async def test_someone_not_expected_to_confirm_is_refused(world: World, client: TestClient) -> None:
    token = world.token("outsider")
    for response in (await client.get(f"/c/{token}"), await post(client, token)):
        assert response.status == 403
        assert "不在本次提醒的确认名单中" in await response.text()
    assert await world.confirmations() == []


async def test_a_link_to_an_occurrence_that_does_not_exist_is_refused(
    world: World, client: TestClient
) -> None:
    response = await post(client, world.token("zhang", occurrence_id=9999))
    assert response.status == 404
    assert await world.confirmations() == []


async def test_a_rehearsals_link_confirms_nothing(world: World, client: TestClient) -> None:
    async with world.db.session() as session:
        occ = await session.get(Occurrence, world.occurrence_id)
        assert occ is not None
        occ.dry_run = True
        await session.commit()
    response = await post(client, world.token("zhang"), note="演练")
    assert response.status == 403 and "演练链接，不能确认" in await response.text()
    assert await world.confirmations() == []


async def test_a_form_whose_token_differs_from_the_links_confirms_nothing(
    world: World, client: TestClient
) -> None:
    token = world.token("zhang")
    response = await client.post(f"/c/{token}", data={"token": world.token("li"), "note": ""})
    assert response.status == 400 and "提交的内容与链接不符" in await response.text()
    response = await client.post(f"/c/{token}", data={"note": ""})
    assert response.status == 400
    assert await world.confirmations() == []


async def test_a_garbled_link_is_refused_as_malformed(world: World, client: TestClient) -> None:
    response = await client.get("/c/not-a-token")
    assert response.status == 400
    assert "链接无效" in await response.text()


async def test_a_form_posted_from_another_site_is_refused(world: World, client: TestClient) -> None:
    token = world.token("zhang")
    assert (await post(client, token, Origin="https://evil.example")).status == 403
    assert (await post(client, token, Referer="https://evil.example/x")).status == 403
    assert await world.confirmations() == []
    ok = await post(client, token, Origin="https://dangjian.example.gov.cn")
    assert ok.status == 200
    assert len(await world.confirmations()) == 1


async def test_a_note_that_is_too_long_is_refused_and_kept_for_editing(
    world: World, client: TestClient
) -> None:
    response = await post(client, world.token("zhang"), note="很" * 201)
    assert response.status == 400
    page = await response.text()
    assert "备注最多 200 个字" in page and "很" * 201 in page
    assert await world.confirmations() == []


async def test_the_too_long_note_refusal_ends_with_one_full_stop_as_the_cli_s_does(
    world: World, client: TestClient
) -> None:
    page = await (await post(client, world.token("zhang"), note="很" * 300)).text()
    assert '<p class="alert" role="alert">备注最多 200 个字，现在有 300 个字。</p>' in page

async def test_a_notes_control_and_bidi_characters_are_dropped_and_the_rest_is_kept(
    world: World, client: TestClient
) -> None:
    response = await post(client, world.token("zhang"), note="a\x00b\x1b[31mred\u202e反\u2066x\u2069\x85\n第二行\t完")
    assert response.status == 200
    [row] = await world.confirmations()
    assert row.note == "ab[31mred反x\n第二行\t完"  # not cut at the NUL; newline and tab kept


async def test_a_note_cannot_inject_markup_into_the_page(world: World, client: TestClient) -> None:
    token = world.token("zhang")
    await post(client, token, note="<script>alert(1)</script>")
    page = await (await client.get(f"/c/{token}")).text()
    assert "<script>" not in page and "&lt;script&gt;" in page


# ---------------------------------------------------------------- health and logs


async def test_health_check_reports_the_database_reachable(world: World, client: TestClient) -> None:
    for loop in ("scheduler", "dispatcher"):  # no loops run here: stamp them as the service's would
        world.runtime.ticks[loop] = world.clock()
    response = await client.get("/healthz")
    assert response.status == 200
    body = await response.json()
    assert body["status"] == "ok" and body["database"] == "ok"


async def test_health_check_fails_while_the_loops_have_not_run(client: TestClient) -> None:
    response = await client.get("/healthz")
    assert response.status == 503
    body = await response.json()
    assert body["checks"]["dispatcher"]["message"] == "未运行" and body["checks"]["schema"]["ok"]


async def test_access_log_lines_never_contain_the_token(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    token = world.token("zhang")
    with caplog.at_level(logging.INFO, logger="aiohttp.access"):
        async with serve(make_app(world.runtime), access_log_class=RedactingAccessLogger) as url:
            async with aiohttp.ClientSession() as session:
                async with session.get(f"{url}/c/{token}") as response:
                    assert response.status == 200
    lines = [r.getMessage() for r in caplog.records if r.name == "aiohttp.access"]
    assert any("GET /c/***" in line for line in lines)
    assert not any(token in line for line in lines)


# ---------------------------------------------------------------- recording (SQLite and PostgreSQL)


async def test_racing_confirmations_record_exactly_one(any_db: Database) -> None:
    occ = await add_occurrence(any_db)
    results = await asyncio.gather(*(
        record_confirmation(any_db, occ, "zhang", via="chat", note=f"第{i}次", now=NOW)
        for i in range(5)
    ))
    assert sum(created for created, _ in results) == 1
    assert len({row.id for _, row in results}) == 1


async def test_recording_for_someone_not_expected_raises(any_db: Database) -> None:
    occ = await add_occurrence(any_db)
    with pytest.raises(NotExpectedError):
        await record_confirmation(any_db, occ, "outsider", via="admin", recorded_by="admin", now=NOW)


async def test_the_board_shows_who_confirmed_how_and_who_is_overdue(any_db: Database) -> None:
    occ = await add_occurrence(any_db)
    await record_confirmation(any_db, occ, "zhang", via="link", note="23 人", now=NOW)
    late = DEADLINE.replace(tzinfo=UTC) + timedelta(hours=2)
    await record_confirmation(any_db, occ, "li", via="admin", recorded_by="工委办公室", now=late)
    result = await board(any_db, occ, now=late + timedelta(hours=1))
    rows = {r.person_id: r for r in result.rows}
    assert (rows["zhang"].via_label, rows["zhang"].note, rows["zhang"].late) == ("链接", "23 人", False)
    assert (rows["li"].via_label, rows["li"].recorded_by, rows["li"].late) == (
        "管理员代录", "工委办公室", True)
    assert rows["wang"].overdue_since == DEADLINE.replace(tzinfo=UTC)
    assert (result.confirmed, result.expected) == (2, 3)
    figures = {f.unit_id: f for f in board_figures(result, {}, late + timedelta(hours=1))}
    assert (figures["b1"].expected, figures["b1"].on_time) == (1, 1)
    assert (figures["b2"].expected, figures["b2"].late, figures["b2"].missing, figures["b2"].pending) == (2, 1, 1, 0)


class _Recording:
    """A ``sqlite3`` connection that notes each statement run on it, and its commits and rollbacks."""

    def __init__(self, conn: sqlite3.Connection, seen: list[str], before_insert: Any = None) -> None:
        self.conn, self.seen, self.before_insert = conn, seen, before_insert

    def execute(self, sql: str, args: Any = ()) -> sqlite3.Cursor:
        self.seen.append(sql)
        if sql.startswith("INSERT") and self.before_insert is not None:
            self.before_insert(self.conn)
        return self.conn.execute(sql, args)

    def commit(self) -> None:
        self.seen.append("COMMIT")
        self.conn.commit()

    def rollback(self) -> None:
        self.seen.append("ROLLBACK")
        self.conn.rollback()


@contextmanager
def hand_overs(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[list[str], list[str]]]:
    """What is handed to aiosqlite's threads while the block runs (functions' names), and the SQL
    that :func:`bot.confirming.confirmations._sqlite_confirm` runs there."""
    import aiosqlite.core

    calls: list[str] = []
    sql: list[str] = []
    run = aiosqlite.core.Connection._execute

    async def noting(self: Any, fn: Any, *args: Any, **kwargs: Any) -> Any:
        name = getattr(fn, "__name__", repr(fn))
        calls.append(name)
        if name == "_sqlite_confirm":
            args = (_Recording(args[0], sql), *args[1:])
        return await run(self, fn, *args, **kwargs)

    monkeypatch.setattr(aiosqlite.core.Connection, "_execute", noting)
    yield calls, sql


async def test_a_confirmation_costs_one_query_and_one_insert(world: World, client: TestClient,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.test_bulk_fire import statements

    token = world.token("zhang")
    with statements(world.db) as sent, hand_overs(monkeypatch) as (calls, sql):
        response = await post(client, token, note="参加 23 人")
    assert response.status == 200 and "已确认，谢谢" in await response.text()
    work = [s.split()[0].upper() for s in sent if s.split()[0].upper() in ("SELECT", "INSERT", "UPDATE", "WITH")]
    if world.db.is_sqlite:  # the query, the insert and the commit in one hand-over to the driver's thread
        assert work == []
        assert [s.split()[0] for s in sql] == ["SELECT", "INSERT", "COMMIT"]
        assert "ON CONFLICT" in sql[1]
        # and the pool's reset of the connection given back (a no-op: nothing is left open)
        assert calls == ["_sqlite_confirm", "rollback"]
    else:  # PostgreSQL: the same query and insert, as one statement (confirm_once)
        assert work == ["WITH"]
        assert "INSERT INTO confirmation" in sent[-1] and "ON CONFLICT" in sent[-1]


async def test_opening_the_page_on_sqlite_is_one_query_in_one_hand_over(
        db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    world = await build_world(db, tmp_path)
    async with TestClient(TestServer(make_app(world.runtime), host="127.0.0.1")) as client:
        with hand_overs(monkeypatch) as (calls, sql):
            response = await client.get(f"/c/{world.token('zhang')}")
        page = await response.text()
    assert response.status == 200 and "确认已完成" in page
    assert calls == ["_sqlite_confirm", "rollback"] and [s.split()[0] for s in sql] == ["SELECT"]


async def test_the_sqlite_hand_over_reads_what_the_engine_reads(db: Database, tmp_path: Path) -> None:
    """The view built from the driver's raw row (SQLAlchemy's processors applied) equals the engine's."""
    from bot.confirming.actions import confirm_for, excuse
    from bot.confirming.confirmations import confirm_on_sqlite, link_view

    world = await build_world(db, tmp_path)
    moved = await add_occurrence(db, title="移后", due_at=datetime(2027, 1, 4, 1, 0), deadline_at=None,
                                 original_date=date(2027, 1, 1), provisional=True)
    await record_confirmation(db, world.occurrence_id, "zhang", via="link", note="23 人", now=NOW)
    await confirm_for(world.runtime, moved, "li", admin="张管理", note="电话告知", now=NOW)
    await excuse(world.runtime, world.occurrence_id, "wang", admin="张管理", reason="出差：赴省里开会", now=NOW)
    cases = [(occ, person) for occ in (world.occurrence_id, moved, 999)
             for person in ("zhang", "li", "wang", "outsider")]
    for occurrence_id, person_id in cases:
        async with db.engine.connect() as conn:
            expected = await link_view(conn, occurrence_id, person_id)
        async with db.engine.connect() as conn:
            found = await confirm_on_sqlite(conn, occurrence_id, person_id, via="link", note=None, now=NOW,
                                            record=False)
        assert found == (expected, None), (occurrence_id, person_id)
    assert expected is None and found is not None  # the last case: no such occurrence


async def test_on_sqlite_a_confirmation_made_between_the_read_and_the_insert_stands(
        db: Database, tmp_path: Path) -> None:
    """Another process confirms after this one read no confirmation: the insert makes nothing, and the
    view is read again in the same hand-over, so the page shows the confirmation that stands."""
    from bot.confirming.confirmations import _sqlite_confirm, _sqlite_plan

    world = await build_world(db, tmp_path)
    plan = _sqlite_plan(db.engine.dialect)
    values = {"occurrence_id": world.occurrence_id, "person_id": "zhang", "confirmed_at": to_db_time(NOW),
              "via": "link", "note": "链接"}

    def other_process_confirms(conn: sqlite3.Connection) -> None:
        other = sqlite3.connect(db.engine.url.database)
        other.execute("INSERT INTO confirmation (occurrence_id, person_id, confirmed_at, via, note) "
                      "VALUES (?, 'zhang', '2025-03-07 01:30:00.000000', 'chat', '群里')", (world.occurrence_id,))
        other.commit()
        other.close()

    seen: list[str] = []
    conn = sqlite3.connect(db.engine.url.database)
    try:
        raw, made = _sqlite_confirm(_Recording(conn, seen, other_process_confirms), plan,  # type: ignore[arg-type]
                                    plan.view.args(values), plan.insert.args(values))
    finally:
        conn.close()
    assert made is None and [s.split()[0] for s in seen] == ["SELECT", "INSERT", "SELECT", "COMMIT"]
    row = plan.row._make(plan.view.row(raw))
    assert (row.via, row.note, row.confirmed_at) == ("chat", "群里", datetime(2025, 3, 7, 1, 30, tzinfo=UTC))
    assert [(c.via, c.note) for c in await world.confirmations()] == [("chat", "群里")]


async def test_on_sqlite_a_failed_insert_records_nothing_and_says_so(
        db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """The database refusing the write (locked past the busy timeout, disk full) is rolled back and
    logged, and the person sees the error page, not a confirmation."""
    from bot.confirming import confirmations

    world = await build_world(db, tmp_path)
    run = confirmations._sqlite_confirm

    def locked(conn: sqlite3.Connection, *args: Any) -> Any:
        def fail(_: sqlite3.Connection) -> None:
            raise sqlite3.OperationalError("database is locked")

        return run(_Recording(conn, [], fail), *args)  # type: ignore[arg-type]

    monkeypatch.setattr(confirmations, "_sqlite_confirm", locked)
    async with TestClient(TestServer(make_app(world.runtime), host="127.0.0.1")) as client:
        with caplog.at_level(logging.ERROR):
            response = await post(client, world.token("zhang"), note="23 人")
        page = await response.text()
    assert response.status == 500 and "已确认" not in page
    assert any("database is locked" in (r.exc_text or "") or (r.exc_info and "locked" in str(r.exc_info[1]))
               for r in caplog.records)
    assert await world.confirmations() == []


async def test_a_confirmation_recorded_on_someones_behalf_shows_on_their_own_page(
        world: World, client: TestClient) -> None:
    """Found by a trial: the page answered 500 once an admin had recorded the person's confirmation."""
    from bot.confirming.actions import confirm_for

    await confirm_for(world.runtime, world.occurrence_id, "zhang", admin="张管理", note="电话告知已完成",
                      now=world.clock())
    response = await client.get(f"/c/{world.token('zhang')}")
    page = await response.text()
    assert response.status == 200, page
    assert "管理员代录" in page and "（张管理）" in page and "电话告知已完成" in page
    assert "确认已完成" not in page  # nothing left to press


async def test_an_excused_persons_page_says_so_instead_of_asking_to_confirm(
        world: World, client: TestClient) -> None:
    from bot.confirming.actions import excuse

    await excuse(world.runtime, world.occurrence_id, "li", admin="张管理", reason="出差：赴省里开会",
                 now=world.clock())
    page = await (await client.get(f"/c/{world.token('li')}")).text()
    assert "已登记免于确认" in page and "出差：赴省里开会" in page and "请确认以下事项" not in page
    other = await (await client.get(f"/c/{world.token('zhang')}")).text()
    assert "免于确认" not in other and "请确认以下事项" in other


async def test_a_burst_of_confirmations_on_sqlite_keeps_to_the_pools_kept_connections(
        db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A burst of presses opened an overflow connection (a thread, the pragmas) per request beyond
    the pool's five, and closed it on its return; now at most four pages use a connection at once."""
    import aiosqlite.core

    from bot.web.confirm import SQLITE_SLOTS

    world = await build_world(db, tmp_path)
    people = [(f"p{n}", f"人员{n}", "b1", "第一党支部") for n in range(32)]
    occurrence_id = await add_occurrence(db, title="学习", due_at=datetime(2025, 3, 6, 1, 0), people=tuple(people))
    opened: list[object] = []
    start = aiosqlite.core.Connection.__init__

    def noting(self: Any, *args: Any, **kwargs: Any) -> None:
        opened.append(self)
        start(self, *args, **kwargs)

    monkeypatch.setattr(aiosqlite.core.Connection, "__init__", noting)
    async with TestClient(TestServer(make_app(world.runtime), host="127.0.0.1")) as client:
        tokens = [world.token(person_id, occurrence_id) for person_id, *_ in people]
        pages = await asyncio.gather(*(post(client, token, note="到") for token in tokens))
        texts = [await page.text() for page in pages]
    assert all(page.status == 200 for page in pages) and all("已确认，谢谢" in text for text in texts)
    assert SQLITE_SLOTS < db.engine.pool.size() and len(opened) <= SQLITE_SLOTS  # type: ignore[attr-defined]
    assert len([c for c in await world.confirmations() if c.occurrence_id == occurrence_id]) == 32
