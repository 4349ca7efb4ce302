"""A leader and a secretary on their phones: the leader's own page, calendar links, the report chart.

Same machinery as ``test_browser.py`` (real app on loopback; the ``browser`` fixture of
``conftest.py``, Debian's Chromium; screenshots to ``REMINDBOT_SCREENSHOTS_DIR`` or a temporary
folder, never to tracked files during the suite: ``tests/browserhelp.py``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import icalendar
import pytest
from pydantic import SecretStr
from test_followup import Clock, bj, confirm, fire_due, make_runtime, write_world
from test_web_confirm import serve

from bot.reporting.chart import find_cjk_font
from bot.runtime import Runtime
from bot.scheduling.occurrences import leader_url
from bot.web import make_app
from tests.browserhelp import OVERFLOW, PHONE, SHOTS

pytestmark = pytest.mark.browser
USER, PASSWORD = "gongwei", "browser-test-password"


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[Runtime, str]]:
    """The test world on 20 November 2026 with two months of study days, served for real."""
    runtime = await make_runtime(write_world(tmp_path), Clock(bj(2026, 11, 20, 10, 0)))
    runtime.settings.admin_user, runtime.settings.admin_password = USER, SecretStr(PASSWORD)
    october = await fire_due(runtime, "study", bj(2026, 10, 13, 9, 0))
    for who, day in (("wang", 13), ("wu", 14), ("liu", 19)):
        await confirm(runtime, october, who, bj(2026, 10, day, 10, 0))
    first = await fire_due(runtime, "study", bj(2026, 11, 3, 9, 0))
    await confirm(runtime, first, "wang", bj(2026, 11, 3, 10, 0))
    await confirm(runtime, first, "liu", bj(2026, 11, 5, 16, 0))
    await fire_due(runtime, "study", bj(2026, 11, 17, 9, 0))  # deadline 20 Nov 09:00: all three overdue
    try:
        async with serve(make_app(runtime)) as url:
            runtime.settings.base_url = url
            yield runtime, url
    finally:
        await runtime.db.stop()


async def test_a_leader_reads_their_units_on_a_phone_and_no_other_leaders(
    browser: Any, served: tuple[Runtime, str]
) -> None:
    runtime, url = served
    context = await browser.new_context(**PHONE)
    page = await context.new_page()
    link = leader_url(runtime, "zhao")
    response = await page.goto(link)
    assert response is not None and response.status == 200
    await page.get_by_role("heading", name="逾期未确认").wait_for()
    text = await page.inner_text("main")
    assert "发改委第一党支部" in text and "发改委第二党支部" in text and "教育局" not in text
    assert "王芳" in text and "刘洋" in text and "吴敏" not in text  # overdue since 20 November
    assert await page.locator("svg.trend rect").count() == 6
    measured = await page.evaluate(OVERFLOW)
    assert measured["page"] <= 390 and not measured["wide"] and not measured["tables"], measured
    await page.screenshot(path=str(SHOTS / "leader.png"), full_page=True)

    # Changing the link: another leader's id under this signature, or any altered character.
    token = link.rsplit("/l/", 1)[1]
    other = leader_url(runtime, "sun").rsplit("/l/", 1)[1]
    for changed in (other.split(".")[0] + token[token.index("."):], token[:-1] + ("A" if token[-1] != "A" else "B")):
        response = await page.goto(f"{url}/l/{changed}")
        assert response is not None and response.status == 403
        body = await page.inner_text("body")
        assert "链接" in body and "教育局" not in body and "吴敏" not in body
    await context.close()


async def test_an_admin_hands_out_calendar_links_that_a_phone_calendar_can_read(
    browser: Any, served: tuple[Runtime, str]
) -> None:
    runtime, url = served
    runtime.clock.now = bj(2026, 11, 18, 10, 0)  # type: ignore[attr-defined]  # 17 November's still open
    context = await browser.new_context(**PHONE, http_credentials={"username": USER, "password": PASSWORD})
    page = await context.new_page()
    await page.goto(f"{url}/admin/upcoming")
    row = page.locator("table.feeds tr", has_text="王芳")
    href = await row.locator("a.feed-link").get_attribute("href")
    assert href is not None and href.startswith(f"{url}/ical/") and href.endswith(".ics")
    anonymous = await browser.new_context(**PHONE)  # the subscriber has no admin login
    response = await anonymous.request.get(href)
    assert response.status == 200 and response.headers["content-type"].startswith("text/calendar")
    events = icalendar.Calendar.from_ical(await response.body()).walk("VEVENT")
    assert events and all(str(e["summary"]).startswith("每月学习日") for e in events)
    [open_one] = [e for e in events if "url" in e]  # the open study day, with her own confirm link
    assert open_one.decoded("dtstart") == bj(2026, 11, 17, 9, 0) and "/c/" in str(open_one["url"])
    await anonymous.close()
    await context.close()


@pytest.mark.skipif(find_cjk_font() is None, reason="no CJK font installed (fonts-noto-cjk)")
async def test_the_units_page_offers_the_report_chart_as_a_picture(
    browser: Any, served: tuple[Runtime, str]
) -> None:
    _, url = served
    context = await browser.new_context(**PHONE, http_credentials={"username": USER, "password": PASSWORD})
    page = await context.new_page()
    await page.goto(f"{url}/admin/units?period=2026-11")
    href = await page.get_by_role("link", name="下载图片（PNG）").get_attribute("href")
    response = await context.request.get(url + str(href))
    assert response.status == 200 and response.headers["content-type"] == "image/png"
    png = await response.body()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) <= 2 * 1024 * 1024
    (SHOTS / "report-chart.png").write_bytes(png)
    await context.close()
