"""The admin area over real HTTP on loopback: closed by default, Basic auth, pages and CSV."""

from __future__ import annotations

import base64
import csv
import io
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from test_web_confirm import DEADLINE, NOW, World, add_occurrence, build_world

from bot.confirmations import record_confirmation, to_db_time
from bot.web import make_app
from storage.db import Database
from storage.models import Outbox

USER, PASSWORD = "gongwei", "correct horse battery 工委"
WEBHOOK = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=SECRET-WEBHOOK-KEY"


def basic(user: str, password: str) -> dict[str, str]:
    encoded = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {encoded}"}


AUTH = basic(USER, PASSWORD)


@pytest.fixture
async def world(db: Database, tmp_path: Path) -> World:
    return await build_world(db, tmp_path, admin_user=USER, admin_password=PASSWORD)


@pytest.fixture
async def client(world: World) -> AsyncIterator[TestClient]:
    async with TestClient(TestServer(make_app(world.runtime), host="127.0.0.1")) as client:
        yield client


async def confirm_some(world: World) -> None:
    """Zhang by link on time, Li by an admin after the deadline; Wang never, so overdue."""
    occ = world.occurrence_id
    await record_confirmation(world.db, occ, "zhang", via="link", note="参加 23 人", now=NOW)
    late = DEADLINE.replace(tzinfo=UTC) + timedelta(hours=2)
    await record_confirmation(world.db, occ, "li", via="admin", recorded_by="工委办公室", now=late)
    world.clock.now = late + timedelta(days=1)


# ---------------------------------------------------------------- access


@pytest.mark.parametrize("missing", ["admin_user", "admin_password"])
async def test_admin_area_is_closed_until_user_and_password_are_both_set(
    db: Database, tmp_path: Path, missing: str
) -> None:
    configured = {"admin_user": USER, "admin_password": PASSWORD, missing: ""}
    world = await build_world(db, tmp_path, **configured)
    async with TestClient(TestServer(make_app(world.runtime), host="127.0.0.1")) as client:
        for path in ("/admin/", "/admin/occurrences", f"/admin/occurrences/{world.occurrence_id}"):
            response = await client.get(path, headers=AUTH)
            assert response.status == 403
            page = await response.text()
            assert "管理后台未开启" in page and "REMINDBOT_ADMIN_PASSWORD" in page
            assert "张伟" not in page


async def test_admin_pages_ask_for_a_login_without_credentials(client: TestClient) -> None:
    response = await client.get("/admin/occurrences")
    assert response.status == 401
    assert response.headers["WWW-Authenticate"].startswith("Basic ")


@pytest.mark.parametrize("user,password", [
    (USER, "wrong"), ("someone", PASSWORD), (USER, ""), (USER, PASSWORD + "x"),
])
async def test_wrong_credentials_are_refused(client: TestClient, user: str, password: str) -> None:
    response = await client.get("/admin/occurrences", headers=basic(user, password))
    assert response.status == 401
    assert "张伟" not in await response.text()


async def test_a_garbled_authorization_header_is_refused(client: TestClient) -> None:
    for header in ("Basic !!!", "Bearer abc", "Basic " + base64.b64encode(b"nocolon").decode()):
        assert (await client.get("/admin/", headers={"Authorization": header})).status == 401


# ---------------------------------------------------------------- pages


async def test_the_board_shows_who_confirmed_when_how_and_who_is_overdue(
    world: World, client: TestClient
) -> None:
    await confirm_some(world)
    response = await client.get(f"/admin/occurrences/{world.occurrence_id}", headers=AUTH)
    assert response.status == 200
    page = await response.text()
    for text in ("每月学习日", "张伟", "链接", "参加 23 人", "3月7日 10:00",
                 "李娜", "管理员代录", "工委办公室 代录", "逾期后确认",
                 "王芳", "逾期未确认", "自 3月10日 09:00 起", "<strong>2</strong> / 3 人已确认"):
        assert text in page, text


async def test_the_occurrence_list_shows_progress_and_overdue_counts(
    world: World, client: TestClient
) -> None:
    await confirm_some(world)
    page = await (await client.get("/admin/occurrences", headers=AUTH)).text()
    assert f'href="/admin/occurrences/{world.occurrence_id}"' in page
    assert "2/3" in page and "1 人" in page


async def test_the_unit_chart_ranks_lagging_units_first_with_bar_widths(
    world: World, client: TestClient
) -> None:
    await confirm_some(world)
    page = await (await client.get("/admin/units?days=90", headers=AUTH)).text()
    assert page.index("第二党支部") < page.index("第一党支部")
    assert "1/2 · 50%" in page and "1/1 · 100%" in page
    # Second branch: Li late (50% of the bar, after 0% on time), Wang overdue (the other half).
    assert '<rect class="late" x="0.0" y="0" width="50.0"' in page
    assert '<rect class="overdue" x="50.0" y="0" width="50.0"' in page
    assert "<script" not in page


async def test_board_csv_opens_in_excel_with_chinese_intact(world: World, client: TestClient) -> None:
    await confirm_some(world)
    response = await client.get(f"/admin/occurrences/{world.occurrence_id}/board.csv", headers=AUTH)
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/csv")
    assert "attachment" in response.headers["Content-Disposition"]
    raw = await response.read()
    assert raw.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    assert rows[0][:6] == ["提醒", "时间", "姓名", "人员标识", "单位", "状态"]
    by_name = {r[2]: r for r in rows[1:]}
    assert by_name["张伟"][5:9] == ["已确认", "2025年3月7日（星期五）10:00", "链接", "参加 23 人"]
    assert by_name["李娜"][5] == "逾期后确认" and by_name["李娜"][9] == "工委办公室"
    assert by_name["王芳"][5] == "逾期未确认" and by_name["王芳"][10].startswith("2025年3月10日")


async def test_a_note_that_looks_like_a_formula_is_defused_in_csv(
    world: World, client: TestClient
) -> None:
    await record_confirmation(world.db, world.occurrence_id, "zhang", via="link",
                              note="=HYPERLINK(\"http://x\")", now=NOW)
    raw = await (await client.get(f"/admin/occurrences/{world.occurrence_id}/board.csv",
                                  headers=AUTH)).read()
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    assert {r[2]: r for r in rows[1:]}["张伟"][8] == "'=HYPERLINK(\"http://x\")"


async def test_unit_csv_gives_each_units_figures(world: World, client: TestClient) -> None:
    await confirm_some(world)
    raw = await (await client.get("/admin/units.csv?days=90", headers=AUTH)).read()
    assert raw.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    assert rows[0] == ["单位", "单位标识", "应确认", "已确认", "按时确认", "逾期未确认", "完成率", "按时率"]
    assert rows[1] == ["第二党支部", "b2", "2", "1", "0", "1", "50.0%", "0.0%"]
    assert rows[2] == ["第一党支部", "b1", "1", "1", "1", "0", "100.0%", "100.0%"]


async def test_an_unknown_occurrence_is_a_404_page(client: TestClient) -> None:
    response = await client.get("/admin/occurrences/4242", headers=AUTH)
    assert response.status == 404
    assert "页面不存在" in await response.text()


async def test_upcoming_lists_the_next_sixty_days_after_holiday_moves(
    world: World, client: TestClient
) -> None:
    # 1 October 2025 is National Day: the first-Friday study day (3 October) moves to the
    # next working day, Thursday 9 October (11 October, a Saturday, is a make-up working day
    # but comes later).
    world.clock.now = datetime(2025, 9, 20, 0, 0, tzinfo=UTC)
    page = await (await client.get("/admin/upcoming", headers=AUTH)).text()
    assert "每月学习日" in page
    assert "2025年10月9日（星期四）09:00" in page
    assert "原定 2025年10月3日（星期五）" in page
    assert "2025年11月7日（星期五）09:00" in page


async def test_upcoming_marks_dates_beyond_the_official_calendar_as_provisional(
    world: World, client: TestClient
) -> None:
    _first, last = world.runtime.calendar.package_range
    world.clock.now = datetime(last + 1, 3, 1, tzinfo=UTC)
    page = await (await client.get("/admin/upcoming", headers=AUTH)).text()
    assert '<span class="tag warn"' in page and "临时" in page


async def test_outbox_page_shows_dead_messages_without_any_webhook(
    world: World, client: TestClient
) -> None:
    async with world.db.session() as session:
        session.add(Outbox(
            dedupe_key="1/due/party#1", occurrence_id=world.occurrence_id, stage="due",
            channel_id="party", platform="wecom", robot="abc123", body={"text": WEBHOOK},
            summary="每月学习日 当天提醒", status="dead", attempts=6,
            last_error=f"企业微信拒绝：invalid webhook url {WEBHOOK}", error_kind="config",
            next_attempt_at=to_db_time(NOW), created_at=to_db_time(NOW),
        ))
        await session.commit()
    page = await (await client.get("/admin/outbox", headers=AUTH)).text()
    assert "发送失败" in page and "每月学习日 当天提醒" in page and "已尝试 6 次" in page
    assert "企业微信拒绝" in page
    assert "SECRET-WEBHOOK-KEY" not in page and "key=" not in page


async def test_admin_pages_carry_security_headers(world: World, client: TestClient) -> None:
    await add_occurrence(world.db, title="三会一课", reminder_id="meetings",
                         due_at=datetime(2025, 3, 3, 1), deadline_at=None,
                         original_date=date(2025, 3, 1))
    response = await client.get("/admin/occurrences", headers=AUTH)
    assert "三会一课" in await response.text() and "无需确认" in await response.text()
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cache-Control"] == "no-store"
    assert "script-src" not in response.headers["Content-Security-Policy"]
