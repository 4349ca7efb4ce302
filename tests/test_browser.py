"""A person in headless Chromium: confirming on a phone, reading the admin pages.

The app runs for real (``web.AppRunner`` on a free 127.0.0.1 port); Playwright drives Debian's
Chromium. Screenshots go to a temporary folder (``make screenshots`` points
``REMINDBOT_SCREENSHOTS_DIR`` at docs/screenshots/ to refresh the docs' copies; the test suite
never rewrites tracked files). Skipped when Chromium is missing, unless
``REMINDBOT_REQUIRE_BROWSER=1`` says a browser run is required.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from test_web_confirm import DEADLINE, World, add_occurrence, build_world, serve

from bot.config.models import Confirm, Recipients, Reminder, Selector, When
from bot.confirming.confirmations import record_confirmation
from bot.web import make_app
from storage.db import Database
from tests.browserhelp import OVERFLOW, PHONE, SHOTS

pytestmark = pytest.mark.browser

USER, PASSWORD = "gongwei", "browser-test-password"


@pytest.fixture
async def served(db: Database, tmp_path: Path) -> AsyncIterator[tuple[World, str]]:
    world = await build_world(db, tmp_path, admin_user=USER, admin_password=PASSWORD)
    async with serve(make_app(world.runtime)) as url:
        world.runtime.settings.base_url = url
        yield world, url


async def test_a_secretary_confirms_on_a_phone_with_a_note(
    browser: Any, served: tuple[World, str]
) -> None:
    world, url = served
    context = await browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True,
                                        has_touch=True, device_scale_factor=2, locale="zh-CN")
    page = await context.new_page()
    link = f"{url}/c/{world.token('zhang')}"
    response = await page.goto(link)
    assert response is not None and response.status == 200
    await page.get_by_text("确认已完成").wait_for()
    await page.screenshot(path=str(SHOTS / "confirm.png"), full_page=True)
    assert await world.confirmations() == []

    await page.get_by_label("备注（选填）").fill("参加人数 23 人，缺席 2 人（出差）")
    await page.get_by_role("button", name="确认已完成").click()
    await page.get_by_text("已确认，谢谢").wait_for()
    assert "2025年3月7日（星期五）10:00" in await page.content()
    await page.screenshot(path=str(SHOTS / "confirmed.png"), full_page=True)

    [row] = await world.confirmations()
    assert (row.person_id, row.via, row.note) == ("zhang", "link", "参加人数 23 人，缺席 2 人（出差）")

    await page.goto(link)  # opening the link again shows the first confirmation, no form
    await page.get_by_text("已于 2025年3月7日（星期五）10:00 确认").wait_for()
    assert await page.get_by_role("button", name="确认已完成").count() == 0
    await context.close()


CARD_OVERFLOW = """() => [...document.querySelectorAll('main .card')].flatMap(card => {
  const edge = card.getBoundingClientRect().right;
  return [...card.querySelectorAll('*')].filter(e => e.getBoundingClientRect().right > edge + 0.5)
    .map(e => e.tagName + '.' + e.className + ': ' + e.textContent.trim().slice(0, 30));
})"""


async def test_a_moved_date_occurrence_stays_inside_its_card_on_a_phone(
    browser: Any, served: tuple[World, str]
) -> None:
    world, url = served
    occ = await add_occurrence(
        world.db, title="关于开展学习贯彻党的二十届四中全会精神专题学习暨主题党日活动的通知",
        due_at=datetime(2027, 1, 11, 1, 0), deadline_at=datetime(2027, 1, 26, 9, 0),
        original_date=date(2027, 1, 10), provisional=True,
        people=(("zhang", "张伟", "b1", "中共某某市发展和改革委员会机关第一党支部（综合业务科室联合支部）"),))
    context = await browser.new_context(**PHONE)
    page = await context.new_page()
    response = await page.goto(f"{url}/c/{world.token('zhang', occ)}")
    assert response is not None and response.status == 200
    await page.get_by_text("原定 2027年1月10日（星期日），遇非工作日调整").wait_for()
    await page.screenshot(path=str(SHOTS / "confirm-moved.png"), full_page=True)
    assert await page.evaluate(CARD_OVERFLOW) == []
    measured = await page.evaluate(OVERFLOW)
    assert measured["page"] <= measured["width"] and measured["wide"] == [], measured
    await context.close()


async def _fill_the_organisation(world: World) -> None:
    """More branches, people and confirmations, so the admin pages look like real use."""
    people = (
        ("zhang", "张伟", "b1", "第一党支部"), ("li", "李娜", "b2", "第二党支部"),
        ("wang", "王芳", "b2", "第二党支部"), ("zhao", "赵磊", "b3", "第三党支部"),
        ("sun", "孙静", "b4", "机关后勤党支部"), ("zhou", "周强", "b5", "离退休干部党支部"),
    )
    committee = await add_occurrence(
        world.db, title="支部委员会会议（三会一课）", reminder_id="branch-committee",
        due_at=datetime(2025, 3, 10, 1), deadline_at=datetime(2025, 3, 14, 10), people=people)
    await add_occurrence(world.db, title="主题党日", reminder_id="party-day",
                         due_at=datetime(2025, 2, 21, 1), deadline_at=None, people=())
    confirmations = (
        (committee, "zhang", "link", "到会 7 人", None, datetime(2025, 3, 10, 3)),
        (committee, "li", "chat", None, None, datetime(2025, 3, 11, 2, 30)),
        (committee, "zhao", "card", "已完成", None, datetime(2025, 3, 12, 6)),
        (committee, "zhou", "admin", "电话确认", "工委办公室 陈明", datetime(2025, 3, 17, 1)),
        (world.occurrence_id, "zhang", "link", "参加 23 人", None, datetime(2025, 3, 7, 2)),
        (world.occurrence_id, "wang", "chat", None, None, datetime(2025, 3, 8, 1)),
    )
    for occ, person, via, note, by, at in confirmations:
        await record_confirmation(world.db, occ, person, via=via, note=note, recorded_by=by,
                                  now=at.replace(tzinfo=UTC))
    world.extra["committee"] = committee
    world.runtime.schedules.reminders.update({
        "branch-committee": Reminder(
            id="branch-committee", title="支部委员会会议（三会一课）",
            when=When(monthly={"day": 10}, at="09:00"),
            recipients=Recipients(channels=["party"], mention=Selector(roles=["secretary"])),
            confirm=Confirm(deadline="4wd")),
        "party-lecture": Reminder(
            id="party-lecture", title="党课", holiday="skip",
            when=When(quarterly={"month": 1, "day": 1}, at="14:30"),
            recipients=Recipients(channels=["party"])),
    })


async def test_an_admin_reads_the_board_the_unit_chart_and_what_is_coming(
    browser: Any, served: tuple[World, str]
) -> None:
    world, url = served
    await _fill_the_organisation(world)
    world.clock.now = DEADLINE.replace(tzinfo=UTC) + timedelta(days=7)
    context = await browser.new_context(
        viewport={"width": 1100, "height": 760}, locale="zh-CN",
        http_credentials={"username": USER, "password": PASSWORD})
    page = await context.new_page()

    await page.goto(f"{url}/admin/occurrences/{world.extra['committee']}")
    await page.get_by_role("heading", name="确认名单").wait_for()
    for text in ("赵磊", "卡片按钮", "管理员代录", "孙静", "逾期未确认"):
        assert await page.get_by_text(text).first.is_visible(), text
    await page.screenshot(path=str(SHOTS / "admin-board.png"), full_page=True)

    await page.goto(f"{url}/admin/units?period=2025-03")
    assert await page.locator("svg.bar").count() == 5
    await page.screenshot(path=str(SHOTS / "admin-units.png"), full_page=True)

    world.clock.now = datetime(2025, 9, 20, tzinfo=UTC)
    await page.goto(f"{url}/admin/upcoming")
    await page.get_by_text("原定 2025年10月3日（星期五）").first.wait_for()
    await page.screenshot(path=str(SHOTS / "admin-upcoming.png"), full_page=True)

    await context.close()


async def test_the_board_reads_well_on_a_phone(browser: Any, served: tuple[World, str]) -> None:
    world, url = served
    await _fill_the_organisation(world)
    world.clock.now = datetime(2025, 3, 20, tzinfo=UTC)
    context = await browser.new_context(
        viewport={"width": 390, "height": 844}, is_mobile=True, device_scale_factor=2,
        http_credentials={"username": USER, "password": PASSWORD})
    page = await context.new_page()
    await page.goto(f"{url}/admin/occurrences/{world.extra['committee']}")
    # No sideways scrolling: the table turns into one card per person.
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390
    await page.screenshot(path=str(SHOTS / "admin-board-phone.png"), full_page=True)
    await context.close()



async def test_the_units_filter_comes_before_the_chart_on_a_phone(browser: Any, served: tuple[World, str]) -> None:
    """Found by a trial: a page of 100 units' bars came first, the filter 11,300 px down."""
    world, url = served
    await _fill_the_organisation(world)
    world.clock.now = DEADLINE.replace(tzinfo=UTC) + timedelta(days=7)
    context = await browser.new_context(
        viewport={"width": 390, "height": 844}, is_mobile=True, device_scale_factor=2,
        http_credentials={"username": USER, "password": PASSWORD})
    page = await context.new_page()
    await page.goto(f"{url}/admin/units?period=2025-03")
    unit = await page.locator("input#unit").bounding_box()
    chart = await page.locator("svg.bar").first.bounding_box()
    assert unit is not None and chart is not None
    assert unit["y"] + unit["height"] < min(chart["y"], 844), (unit, chart)  # on the first screen
    await context.close()


PHONE_PAGES = ("/admin/upcoming", "/admin/occurrences", "/admin/outbox", "/admin/units?period=2025-03",
               "/admin/occurrences/{committee}", "/admin/leaders")
# Every element's right edge within the viewport, and every table within its card (a card that
# scrolls sideways hides the overflow from the page's own width, so both are measured).
@pytest.mark.parametrize("path", PHONE_PAGES)
async def test_every_admin_table_turns_into_cards_on_a_phone(
    browser: Any, served: tuple[World, str], path: str
) -> None:
    from storage.models import Outbox

    world, url = served
    await _fill_the_organisation(world)
    async with world.db.session() as session:
        session.add(Outbox(
            dedupe_key="c/due/party#1", occurrence_id=world.extra["committee"], stage="due", channel_id="party",
            platform="wecom", robot="r1", body={}, summary="支部委员会会议（三会一课）当天提醒·市直机关第一党支部",
            status="dead", attempts=6, error_kind="config",
            last_error="企业微信拒绝：invalid webhook url, hint: [1700000000093000], from ip: 127.0.0.1, more info at "
                       "https://open.work.weixin.qq.com/devtool/query?e=93000"))
        await session.commit()
    world.clock.now = datetime(2025, 3, 20, tzinfo=UTC)
    context = await browser.new_context(
        viewport={"width": 390, "height": 844}, is_mobile=True, device_scale_factor=2,
        http_credentials={"username": USER, "password": PASSWORD})
    page = await context.new_page()
    response = await page.goto(url + path.format(committee=world.extra["committee"]))
    assert response is not None and response.status == 200
    assert await page.locator("table.list tbody tr").count() > 0
    measured = await page.evaluate(OVERFLOW)
    assert measured["page"] <= 390, measured
    assert not measured["wide"] and not measured["tables"] and not measured["cards"], measured
    # Cards, not columns: the header row is hidden and each cell is labelled by its header.
    assert not await page.locator("table.list thead").first.is_visible()
    first = page.locator("table.list tbody td[data-label]").first
    label = await first.evaluate("e => getComputedStyle(e, '::before').content")
    assert label.strip('"') == await first.get_attribute("data-label")
    # A title keeps a readable width instead of one character per line.
    narrowest = await page.evaluate(
        "() => Math.min(...[...document.querySelectorAll('table.list tbody td:not(:empty)')]"
        ".map(td => td.getBoundingClientRect().width))")
    assert narrowest > 250
    await context.close()


async def test_the_unit_chart_opened_on_its_own_shows_in_the_browsers_image_viewer_without_csp_errors(
    browser: Any, served: tuple[World, str]
) -> None:
    """Trial 10 #4: the pages' ``style-src 'self'`` sent with the PNG blocked Chromium's own image
    viewer styles (console errors; the image at the top left on black instead of centred)."""
    world, url = served
    await _fill_the_organisation(world)
    context = await browser.new_context(viewport={"width": 1100, "height": 760}, locale="zh-CN",
                                        http_credentials={"username": USER, "password": PASSWORD})
    page = await context.new_page()
    console: list[str] = []
    page.on("console", lambda msg: console.append(f"{msg.type}: {msg.text}"))
    response = await page.goto(f"{url}/admin/units.png?period=2025-03")
    assert response is not None and response.status == 200
    assert response.headers["content-type"] == "image/png"
    box = await page.locator("img").bounding_box()
    await page.screenshot(path=str(SHOTS / "units-png-viewer.png"))
    assert box is not None and box["x"] > 0 and box["y"] > 0, box  # centred by the viewer's own style
    assert not [line for line in console if "Content Security Policy" in line], console
    await context.close()


async def test_the_closed_admin_page_shows_the_whole_setting_on_a_phone(
    browser: Any, db: Database, tmp_path: Path
) -> None:
    """Trial 10 #6: ``REMINDBOT_ADMINS=名字:密码哈希,名字2:密…`` was cut at 390 px (no admin configured)."""
    world = await build_world(db, tmp_path)
    async with serve(make_app(world.runtime)) as url:
        context = await browser.new_context(**PHONE)
        page = await context.new_page()
        response = await page.goto(f"{url}/admin/")
        assert response is not None and response.status == 403
        await page.screenshot(path=str(SHOTS / "admin-closed-phone.png"), full_page=True)
        clipped = await page.evaluate("""() => [...document.querySelectorAll('pre')]
            .filter(p => p.scrollWidth > p.clientWidth + 0.5).map(p => p.textContent)""")
        assert clipped == []
        assert "名字2:密码哈希2" in await page.locator("pre").first.inner_text()
        layout = await page.evaluate(OVERFLOW)
        assert layout["page"] <= layout["width"] and layout["wide"] == [], layout
        await context.close()
