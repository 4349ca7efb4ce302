"""The admin area over real HTTP on loopback: closed by default, Basic auth, pages and CSV."""

from __future__ import annotations

import asyncio
import base64
import csv
import io
import re
import shutil
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from click.testing import CliRunner
from pydantic import SecretStr
from test_followup import Clock, bj, confirm, fire_due, make_runtime, write_world
from test_reports import with_webhook
from test_web_confirm import DEADLINE, NOW, World, add_occurrence, build_world

from bot.cli.confirmations import report
from bot.confirming.confirmations import record_confirmation, to_db_time
from bot.confirming.followup import FollowUps
from bot.web import make_app
from storage.db import Database
from storage.models import Nudge, Outbox

USER, PASSWORD = "gongwei", "correct horse battery 工委"
WEBHOOK = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=SECRET-WEBHOOK-KEY"


def basic(user: str, password: str) -> dict[str, str]:
    encoded = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {encoded}"}


AUTH = basic(USER, PASSWORD)
SAMPLE = Path(__file__).resolve().parent.parent / "schedules"  # the shipped example


def plain(page: str) -> str:
    """The page with the cells' phone labels (data-label) left out, to compare rows as text."""
    return re.sub(r'<td data-label="[^"]*">', "<td>", page)


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


async def test_the_sites_root_leads_to_the_admin_area(client: TestClient) -> None:
    # Trial 9: `/`, the first page a new admin opens, answered 404.
    response = await client.get("/", allow_redirects=False)
    assert response.status == 302 and response.headers["Location"] == "/admin/"
    followed = await client.get("/", headers=AUTH)
    assert followed.status == 200 and "近期提醒" in await followed.text()


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
                 "李娜", "管理员代录（工委办公室）", "逾期确认",
                 "王芳", "逾期未确认", "自 3月10日 09:00 起", "<strong>2</strong> / 3 人已确认"):
        assert text in page, text


async def test_the_occurrence_list_shows_progress_and_overdue_counts(
    world: World, client: TestClient
) -> None:
    await confirm_some(world)
    page = await (await client.get("/admin/occurrences", headers=AUTH)).text()
    assert f'href="/admin/occurrences/{world.occurrence_id}"' in page
    assert "2/3" in page and "1 人" in page
    assert "<th" in page and "记录号</th>" in page  # the number `remindbot link` and `confirm` take
    assert f'<td class="num" data-label="记录号">{world.occurrence_id}</td>' in page
    board = await (await client.get(f"/admin/occurrences/{world.occurrence_id}", headers=AUTH)).text()
    assert f"<dt>记录号</dt><dd>{world.occurrence_id} " in board


async def test_the_unit_page_ranks_this_month_by_on_time_rate_with_the_reports_words(
    world: World, client: TestClient
) -> None:
    await confirm_some(world)
    page = plain(await (await client.get("/admin/units", headers=AUTH)).text())
    assert "2025年3月" in page and "remindbot report --period 2025-03" in page
    assert page.index("第一党支部") < page.index("第二党支部")
    for words in ("按时确认", "逾期确认", "未确认", "催办次数", "按时完成率"):
        assert f"<th>{words}</th>" in page, words
    second = ("<tr><td>2</td><td>第二党支部</td><td>2</td><td>0</td><td>1</td><td>1</td><td>0</td><td>0</td>"
              "<td>0.0%</td><td>0</td></tr>")
    assert second in page
    assert "已确认 1 项，按时 1 项 · 100.0%" in page and "已确认 1 项、已过截止未确认 1 项，按时 0 项 · 0.0%" in page
    # Second branch: Li late (half the bar, after 0% on time), Wang past the deadline (the other half).
    assert '<rect class="late" x="0.0" y="0" width="50.0"' in page
    assert '<rect class="overdue" x="50.0" y="0" width="50.0"' in page
    assert "<script" not in page


async def test_the_unit_page_leaves_confirmations_still_within_their_deadline_grey(
    world: World, client: TestClient
) -> None:
    world.clock.now = NOW  # before the deadline: nobody has confirmed yet, nobody is overdue
    page = plain(await (await client.get("/admin/units", headers=AUTH)).text())
    assert "<td>第二党支部</td><td>2</td><td>0</td><td>0</td><td>2</td>" in page
    assert '<rect class="overdue" x="0.0" y="0" width="0.0"' in page
    assert "未确认 2（其中未到截止 2）" in page
    foot = page[page.index("<tfoot>"):page.index("</tfoot>")]
    assert re.search(r'<strong>—（\d+ 项均未到截止）</strong>', foot), foot  # not a bare —


async def test_the_unit_page_offers_the_previous_period_and_other_months_quarters_and_years(
    world: World, client: TestClient
) -> None:
    await confirm_some(world)
    page = plain(await (await client.get("/admin/units?period=2025-Q1", headers=AUTH)).text())
    assert "2025年第一季度" in page and "<td>第二党支部</td>" in page
    assert 'href="/admin/units?period=2024-Q4" rel="prev">‹ 2024年第四季度</a>' in page
    assert 'rel="next"' not in page  # the next quarter has not begun
    assert '<option value="2025-Q1" selected>2025年第一季度</option>' in page
    for option in ('value="2025-02"', 'value="2024-04"', 'value="2024"', 'value="2023"'):
        assert option in page, option
    assert 'href="/admin/units.csv?period=2025-Q1"' in page

    older = plain(await (await client.get("/admin/units?period=2024-11", headers=AUTH)).text())
    assert "这段时间没有需要确认的提醒" in older
    assert 'href="/admin/units?period=2024-12" rel="next">2024年12月 ›</a>' in older


async def test_a_period_the_page_cannot_read_is_explained_and_this_month_shown(
    world: World, client: TestClient
) -> None:
    await confirm_some(world)
    response = await client.get("/admin/units?period=last-month", headers=AUTH)
    assert response.status == 400
    page = plain(await response.text())
    assert "无法识别统计周期" in page and "2026-Q4" in page
    assert "2025年3月" in page and "<td>第一党支部</td>" in page
    csv_response = await client.get("/admin/units.csv?period=2025-13", headers=AUTH)
    assert csv_response.status == 400 and "月份应在 1–12 之间" in await csv_response.text()


async def test_the_board_chart_counts_like_the_report(world: World, client: TestClient) -> None:
    await confirm_some(world)
    async with world.db.session() as session:
        session.add(Nudge(occurrence_id=world.occurrence_id, person_id="wang", kind="followup", number=1))
        session.add(Outbox(dedupe_key="r/followup:1/party", occurrence_id=world.occurrence_id, stage="followup:1",
                           channel_id="party", platform="wecom", robot="r", status="sent",
                           body={"mentions": [{"person_id": "wang", "name": "王芳"}]}))
        await session.commit()
    page = await (await client.get(f"/admin/occurrences/{world.occurrence_id}", headers=AUTH)).text()
    chart = page[page.index('<ul class="bars">'):]
    assert chart.index("第一党支部") < chart.index("第二党支部")
    assert "已确认 1 项、已过截止未确认 1 项，按时 0 项 · 0.0%" in chart
    assert "第二党支部：应确认 2，按时确认 0，逾期确认 1，未确认 1（其中未到截止 0），催办次数 1" in chart
    assert "未确认（已过截止）" in chart and "逾期后确认" not in page  # one term: 逾期确认 (trial 10 #3)


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
    assert by_name["李娜"][5] == "逾期确认" and by_name["李娜"][9] == "工委办公室"
    assert by_name["王芳"][5] == "逾期未确认" and by_name["王芳"][10].startswith("2025年3月10日")


async def test_a_chat_notes_escape_and_override_characters_never_reach_board_csv(
    world: World, client: TestClient
) -> None:
    await record_confirmation(world.db, world.occurrence_id, "zhang", via="chat",
                              note="\x1b[31m红\u202e字\x9b", now=NOW)
    raw = await (await client.get(f"/admin/occurrences/{world.occurrence_id}/board.csv",
                                  headers=AUTH)).read()
    text = raw.decode("utf-8-sig")
    assert "\x1b" not in text and "\u202e" not in text and "\x9b" not in text
    rows = list(csv.reader(io.StringIO(text)))
    assert {r[2]: r for r in rows[1:]}["张伟"][8] == "[31m红字"


async def test_a_note_stored_before_the_cleaning_is_shown_clean_on_the_board_csv_and_own_page(
    world: World, client: TestClient
) -> None:
    """Trial 12: notes written before control characters were cleaned at the door were shown raw."""
    from storage.models import Confirmation

    async with world.db.session() as session:  # as an older version stored it: not through clean_note
        session.add(Confirmation(occurrence_id=world.occurrence_id, person_id="zhang", via="chat",
                                 note="\x1b[31m参加\u202e 23 人\x9b\r\n", confirmed_at=to_db_time(NOW)))
        await session.commit()
    board = await (await client.get(f"/admin/occurrences/{world.occurrence_id}", headers=AUTH)).text()
    raw = await (await client.get(f"/admin/occurrences/{world.occurrence_id}/board.csv", headers=AUTH)).read()
    own = await (await client.get(f"/c/{world.token('zhang')}")).text()
    for shown in (board, raw.decode("utf-8-sig"), own):
        assert "\x1b" not in shown and "\u202e" not in shown and "\x9b" not in shown
        assert "[31m参加 23 人" in shown
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    assert {r[2]: r for r in rows[1:]}["张伟"][8] == "[31m参加 23 人"


async def test_a_note_that_looks_like_a_formula_is_defused_in_csv(
    world: World, client: TestClient
) -> None:
    await record_confirmation(world.db, world.occurrence_id, "zhang", via="link",
                              note="=HYPERLINK(\"http://x\")", now=NOW)
    raw = await (await client.get(f"/admin/occurrences/{world.occurrence_id}/board.csv",
                                  headers=AUTH)).read()
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    assert {r[2]: r for r in rows[1:]}["张伟"][8] == "'=HYPERLINK(\"http://x\")"


async def test_unit_csv_has_the_columns_of_the_report_and_opens_in_excel(
    world: World, client: TestClient
) -> None:
    await confirm_some(world)
    response = await client.get("/admin/units.csv?period=2025-03", headers=AUTH)
    assert 'filename="units-2025-03.csv"' in response.headers["Content-Disposition"]
    raw = await response.read()
    assert raw.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    assert rows == [["排名", "单位", "应确认", "按时确认", "逾期确认", "未确认", "其中未到截止", "催办次数",
                     "按时完成率", "请假等免于确认"],
                    ["1", "第一党支部", "1", "1", "0", "0", "0", "0", "100.0%", "0"],
                    ["2", "第二党支部", "2", "0", "1", "1", "0", "0", "0.0%", "0"]]


async def test_a_unit_name_that_looks_like_a_formula_is_defused_in_the_unit_csv(
    world: World, client: TestClient
) -> None:
    await add_occurrence(world.db, due_at=datetime(2025, 3, 14, 1),
                         people=(("zhang", "张伟", "evil", "=HYPERLINK(\"http://x\")"),))
    raw = await (await client.get("/admin/units.csv?period=2025-03", headers=AUTH)).read()
    units = [r[1] for r in csv.reader(io.StringIO(raw.decode("utf-8-sig")))]
    assert "'=HYPERLINK(\"http://x\")" in units


async def test_the_unit_csv_is_what_remindbot_report_writes_for_the_same_period(tmp_path: Path) -> None:
    """Follow-ups, late and missing confirmations through the real pipeline; then both readings."""
    settings = with_webhook(write_world(tmp_path)).model_copy(
        update={"admin_user": USER, "admin_password": SecretStr(PASSWORD)})
    runtime = await make_runtime(settings, Clock(bj(2026, 12, 2, 9, 0)))
    try:
        first = await fire_due(runtime, "study", bj(2026, 11, 3, 9, 0))  # deadline 6 Nov 09:00
        await confirm(runtime, first, "wang", bj(2026, 11, 3, 10, 0))
        await FollowUps(runtime).run_once(bj(2026, 11, 4, 9, 0))
        await confirm(runtime, first, "liu", bj(2026, 11, 9, 10, 0))
        async with TestClient(TestServer(make_app(runtime), host="127.0.0.1")) as client:
            page = plain(await (await client.get("/admin/units?period=2026-11", headers=AUTH)).text())
            raw = await (await client.get("/admin/units.csv?period=2026-11", headers=AUTH)).read()
    finally:
        await runtime.db.stop()
    env = {"REMINDBOT_DATABASE_URL": settings.database_url, "REMINDBOT_SCHEDULES_DIR": str(settings.schedules_dir),
           "REMINDBOT_VAR_DIR": str(settings.var_dir), "REMINDBOT_SECRET_KEY": settings.signing_key}
    # The command runs its own event loop, so it gets a thread of its own.
    cli = await asyncio.to_thread(CliRunner().invoke, report, ["--period", "2026-11", "--format", "csv"],
                                  env=env, catch_exceptions=False)
    assert cli.exit_code == 0, cli.output
    assert cli.stdout_bytes == raw  # the same bytes, byte-order mark included (Excel on Chinese Windows)
    from_cli = list(csv.reader(io.StringIO(cli.stdout_bytes.decode("utf-8-sig"))))
    from_web = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    assert from_web == from_cli
    assert from_web[1:] == [["1", "发改委第一党支部", "1", "1", "0", "0", "0", "0", "100.0%", "0"],
                            ["2", "发改委第二党支部", "1", "0", "1", "0", "0", "1", "0.0%", "0"],
                            ["3", "教育局第一党支部", "1", "0", "0", "1", "0", "1", "0.0%", "0"]]
    for row in from_cli[1:]:
        assert "<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" in page


async def test_an_unknown_occurrence_is_a_404_page(client: TestClient) -> None:
    response = await client.get("/admin/occurrences/4242", headers=AUTH)
    assert response.status == 404
    assert "没有这条记录" in await response.text()


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
    # A row with nothing to say leaves its cell empty, so the phone layout hides its 说明 label (trial 9).
    assert '<td data-label="说明"><span class="tag">已调整</span> 原定 2025年10月3日' in page
    assert not re.search(r'<td data-label="说明">\s+</td>', page)


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
    assert "SECRET-WEBHOOK-KEY" not in page and "key=***" in page  # masked the same way everywhere


async def test_the_board_of_a_moved_occurrence_names_the_holiday(world: World, client: TestClient) -> None:
    occ = await add_occurrence(world.db, due_at=datetime(2027, 1, 4, 1, 0), deadline_at=None,
                               original_date=date(2027, 1, 1))
    page = await (await client.get(f"/admin/occurrences/{occ}", headers=AUTH)).text()
    assert "原定 2027年1月1日（星期五），遇元旦调整" in page


async def test_admin_pages_carry_security_headers(world: World, client: TestClient) -> None:
    await add_occurrence(world.db, title="三会一课", reminder_id="meetings",
                         due_at=datetime(2025, 3, 3, 1), deadline_at=None,
                         original_date=date(2025, 3, 1))
    response = await client.get("/admin/occurrences", headers=AUTH)
    assert "三会一课" in await response.text() and "无需确认" in await response.text()
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cache-Control"] == "no-store"
    assert "script-src" not in response.headers["Content-Security-Policy"]


async def test_the_unit_total_row_has_one_cell_under_each_header(world: World, client: TestClient) -> None:
    await confirm_some(world)
    page = await (await client.get("/admin/units", headers=AUTH)).text()
    headers = re.findall(r"<th>(.*?)</th>", page[page.index("<table class=\"list units\">"):])
    foot = page[page.index("<tfoot>"):page.index("</tfoot>")]
    cells = re.findall(r"<td(?: data-label=\"(.*?)\")?>(.*?)</td>", foot)
    assert len(cells) == len(headers) == 10
    # Each total sits under its own header: 未确认 1 (Wang, overdue), of which 0 still within the deadline.
    by_header = {label: value for label, value in cells if label}
    assert by_header["单位"] == "<strong>合计</strong>"
    assert by_header["未确认"] == "<strong>1</strong>" and by_header["其中未到截止"] == "<strong>0</strong>"
    assert by_header["按时完成率"].endswith("%</strong>")


async def test_confirmations_not_yet_due_are_told_apart_in_words_not_counted_as_a_contradiction(
    world: World, client: TestClient
) -> None:
    world.clock.now = NOW  # before the deadline
    await record_confirmation(world.db, world.occurrence_id, "zhang", via="link", now=NOW)
    page = await (await client.get("/admin/units", headers=AUTH)).text()
    chart = page[page.index('<ul class="bars">'):]
    # Zhang confirmed on time before the deadline: counted as 已确认, never said to be past a deadline.
    assert "已确认 1 项，按时 1 项 · 100.0%" in chart and "已到截止" not in chart and "已过截止未确认" not in chart
    assert "尚无已确认或已过截止的事项" in chart and "另有 2 项未确认、未到截止，不计入" in chart  # Li and Wang
    assert not re.search(r"按时 \d+/\d+", chart)


async def test_the_admin_who_recorded_a_confirmation_is_shown_by_name_on_the_board_and_in_its_csv(
    world: World, client: TestClient
) -> None:
    await record_confirmation(world.db, world.occurrence_id, "li", via="admin", recorded_by="zhang", now=NOW)
    page = await (await client.get(f"/admin/occurrences/{world.occurrence_id}", headers=AUTH)).text()
    assert "管理员代录（张伟）" in page and "zhang" not in page.split("<main")[1].split("<form")[0]
    raw = await (await client.get(f"/admin/occurrences/{world.occurrence_id}/board.csv", headers=AUTH)).read()
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    assert {r[2]: r for r in rows[1:]}["李娜"][9] == "张伟"


async def test_outbox_page_shows_rehearsal_messages_apart_from_channels_without_a_webhook(
    world: World, client: TestClient
) -> None:
    from bot.platforms.wecom.config import WeComChannel

    quiet = WeComChannel(id="quiet", name="未接通群", platform="wecom", format="text")
    assert quiet.dry_run
    world.runtime.schedules.channels["quiet"] = quiet
    async with world.db.session() as session:
        for channel_id, summary in (("party", "演练的当天提醒"), ("quiet", "只记录的当天提醒")):
            session.add(Outbox(
                dedupe_key=f"x/due/{channel_id}", occurrence_id=None, stage="due", channel_id=channel_id,
                platform="wecom", robot="r", body={}, summary=summary, status="dry_run",
                attempts=1 if channel_id == "quiet" else 0,  # admin notices pass the dispatcher once
                next_attempt_at=to_db_time(NOW), created_at=to_db_time(NOW),
            ))
        await session.commit()
    page = await (await client.get("/admin/outbox", headers=AUTH)).text()
    # the real messages only recorded (resendable) come before the rehearsals' (trial 9)
    unsent, _, rest = page.partition("未配置 webhook 的频道（只记录）")
    unconfigured, _, rehearsed = rest.partition("演练记录的消息")
    assert "演练的当天提醒" not in unsent and "只记录的当天提醒" not in unsent
    assert "演练的当天提醒" in rehearsed and "只记录的当天提醒" not in rehearsed
    assert "只记录的当天提醒" in unconfigured and "未配置 webhook（只记录）" in unconfigured
    assert "演练的当天提醒" not in unconfigured
    # nothing was sent, so no attempt count, whichever path recorded it (trial 12: 1 次 beside 0 次)
    assert "已尝试" not in unconfigured and "已尝试" not in rehearsed
    stats = page[page.index('class="card stats"'):page.index("</section>")]  # one of each, each called so
    assert "演练（未发送）</span>" in stats and "未配置 webhook（只记录）</span>" in stats


async def test_links_that_only_open_on_this_machine_are_shown_on_every_admin_page_until_fixed(
    world: World, client: TestClient
) -> None:
    from bot.platforms.generic.config import GenericChannel
    from bot.service import refresh_warnings

    runtime = world.runtime
    runtime.schedules.channels["oa"] = GenericChannel(
        id="oa", name="待办推送", platform="generic", webhook="https://oa.example.invalid/push/key-77",
        personal_links=True)
    runtime.settings = runtime.settings.model_copy(update={"base_url": "http://127.0.0.1:8080"})
    refresh_warnings(runtime)  # as at start and after each reload
    for path in ("/admin/upcoming", "/admin/outbox"):
        page = await (await client.get(path, headers=AUTH)).text()
        assert "注意：</strong>REMINDBOT_BASE_URL 是本机地址 http://127.0.0.1:8080" in page and "待办推送" in page
        assert "key-77" not in page
    metrics = await (await client.get("/metrics")).text()
    assert 'remindbot_config_warnings{kind="base_url"} 1.0' in metrics  # trial 10: counted too

    runtime.settings = runtime.settings.model_copy(update={"base_url": "https://dj.example.gov.cn"})
    refresh_warnings(runtime)
    page = await (await client.get("/admin/upcoming", headers=AUTH)).text()
    assert "REMINDBOT_BASE_URL 是本机地址" not in page
    metrics = await (await client.get("/metrics")).text()
    assert 'remindbot_config_warnings{kind="base_url"} 0.0' in metrics


async def test_holidays_only_provisional_in_the_year_ahead_are_shown_under_notice_and_counted(
    world: World, client: TestClient
) -> None:
    from bot.service import refresh_warnings

    runtime = world.runtime
    runtime.clock = lambda: datetime(2040, 3, 1, tzinfo=UTC)  # beyond any announced calendar
    refresh_warnings(runtime)  # as at start and after each reload
    page = await (await client.get("/admin/upcoming", headers=AUTH)).text()
    assert "注意：</strong>2040、2041 年的法定节假日安排尚未收录" in page
    assert 'remindbot_config_warnings{kind="holidays"} 1.0' in await (await client.get("/metrics")).text()

    runtime.clock = lambda: datetime(2025, 1, 1, tzinfo=UTC)  # announced: 2025 (and this checkout's 2026)
    refresh_warnings(runtime)
    assert "法定节假日安排尚未收录" not in await (await client.get("/admin/upcoming", headers=AUTH)).text()
    assert 'remindbot_config_warnings{kind="holidays"} 0.0' in await (await client.get("/metrics")).text()


async def test_the_note_over_messages_only_recorded_follows_the_channels_current_webhooks(
    world: World, client: TestClient
) -> None:
    """Trial 10 #5: the page kept saying 这些频道没有填写 webhook over old records once the webhook was set."""
    from bot.platforms.wecom.config import WeComChannel

    channels = world.runtime.schedules.channels
    channels["quiet"] = WeComChannel(id="quiet", name="未接通群", platform="wecom", format="text")
    async with world.db.session() as session:
        session.add(Outbox(
            dedupe_key="q/due/quiet", occurrence_id=world.occurrence_id, stage="due", channel_id="quiet",
            platform="wecom", robot="r", body={}, summary="只记录的当天提醒", status="dry_run",
            next_attempt_at=to_db_time(NOW), created_at=to_db_time(NOW),
        ))
        await session.commit()
    page = await (await client.get("/admin/outbox", headers=AUTH)).text()
    assert "未接通群（quiet） 现在仍没有填写 webhook" in page and "现已填写 webhook" not in page
    channels["quiet"] = WeComChannel(id="quiet", name="未接通群", platform="wecom", format="text", webhook=WEBHOOK)
    page = await (await client.get("/admin/outbox", headers=AUTH)).text()
    assert "只记录的当天提醒" in page  # the old record stays, and can be sent again
    assert "现已填写 webhook" in page and "没有填写 webhook，消息只记录" not in page


async def test_upcoming_marks_an_occurrence_fired_ahead_of_its_day(
    world: World, client: TestClient, db: Database
) -> None:
    """Trial 12 #3: after `fire --date` ahead of the day, the page no longer lists it as still to come."""
    from storage.models import Occurrence

    world.clock.now = datetime(2025, 9, 20, 0, 0, tzinfo=UTC)
    [study] = [r for r in world.runtime.schedules.reminders.values() if r.title == "每月学习日"]
    page = await (await client.get("/admin/upcoming", headers=AUTH)).text()
    assert "已提前发出" not in page
    async with db.session() as session:
        session.add(Occurrence(reminder_id=study.id, due_at=datetime(2025, 10, 9, 1, 0, tzinfo=UTC),
                               title=study.title, fired_at=datetime(2025, 9, 19, 12, 0, tzinfo=UTC)))
        await session.commit()
    page = await (await client.get("/admin/upcoming", headers=AUTH)).text()
    assert '<span class="tag ok">已提前发出</span> 已于 2025年9月19日' in page
    assert "届时不再发送预告和当天提醒" in page


async def test_a_one_off_date_that_passes_while_the_folder_is_unchanged_is_warned_of_on_the_admin_pages(
    world: World, client: TestClient, tmp_path: Path
) -> None:
    # The warning was the one the folder's check found: shown only after the next edit of the folder.
    from bot.config.snapshot import check_cached

    folder = tmp_path / "schedules"
    shutil.copytree(SAMPLE, folder)  # once: 2027-03-08
    world.clock.now = datetime(2027, 3, 7, 12, tzinfo=UTC)
    checked, _ = check_cached(folder, cache_dir=tmp_path / "cache", env={}, now=world.clock.now)
    assert checked is not None
    world.runtime.schedules.dated = checked.dated  # as a reload applies them
    page = await (await client.get("/admin/upcoming", headers=AUTH)).text()
    assert "已过" not in page
    world.clock.now = datetime(2027, 3, 10, 1, tzinfo=UTC)  # nothing checked or reloaded since
    page = await (await client.get("/admin/upcoming", headers=AUTH)).text()
    warned = "警告 字段 reminders[spot-check-2027q1].when.once：日期 2027-03-08 已过（今天是 2027-03-10）"
    assert "注意：</strong>" in page and warned in page


async def test_upcoming_names_who_fired_an_occurrence_ahead(world: World, client: TestClient, db: Database) -> None:
    """Since 0009 the row records who fired it (``remindbot fire``: the OS user): the page names them."""
    from storage.models import Occurrence

    world.clock.now = datetime(2025, 9, 20, 0, 0, tzinfo=UTC)
    [study] = [r for r in world.runtime.schedules.reminders.values() if r.title == "每月学习日"]
    async with db.session() as session:
        session.add(Occurrence(reminder_id=study.id, due_at=datetime(2025, 10, 9, 1, 0, tzinfo=UTC),
                               title=study.title, fired_at=datetime(2025, 9, 19, 12, 0, tzinfo=UTC),
                               fired_by="zhangsan"))
        await session.commit()
    page = await (await client.get("/admin/upcoming", headers=AUTH)).text()
    assert "已于 2025年9月19日（星期五）20:00 由 zhangsan 在命令行提前发出，届时不再发送预告和当天提醒" in page
