"""Calendar feeds: RFC 5545 read back by two independent parsers, dates as `remindbot upcoming` says."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path

import icalendar
import pytest
import vobject
from aiohttp.test_utils import TestClient, TestServer
from test_fire import base_env, run_cli
from test_followup import BJ, Clock, bj, fire_due, make_runtime, write_world

from bot.confirming import actions
from bot.confirming.tokens import make_token, make_view_token, read_token
from bot.delivery.compose import when_text
from bot.runtime import Runtime
from bot.web import make_app
from bot.web.ical import feed_links, feed_url

FROM = "2026-11-04"


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[tuple[Runtime, Path, int]]:
    """The test world on 4 November 2026: the study day of 3 November fired, Wang still owes it."""
    runtime = await make_runtime(write_world(tmp_path), Clock(bj(2026, 11, 4, 8, 0)))
    try:
        occ = await fire_due(runtime, "study", bj(2026, 11, 3, 9, 0))
        yield runtime, tmp_path, occ
    finally:
        await runtime.db.stop()


async def fetch(runtime: Runtime, url: str) -> tuple[int, str, bytes]:
    path = url.removeprefix(runtime.settings.base_url)
    async with TestClient(TestServer(make_app(runtime), host="127.0.0.1")) as client:
        response = await client.get(path)
        return response.status, response.content_type, await response.read()


async def upcoming_times(folder: Path, reminder: str) -> list[tuple[str, bool]]:
    """(time, provisional) rows of `remindbot upcoming` for one reminder, from FROM, 400 days."""
    env = base_env(folder) | {"REMINDBOT_SCHEDULES_DIR": str(folder / "schedules")}
    code, out, err = await run_cli(env, "upcoming", "--reminder", reminder, "--no-notices", "--from", FROM,
                                   "--days", "400")
    assert code == 0, err
    rows = []
    for line in out.splitlines():
        if m := re.match(r"\s*(\d{4}年\d{1,2}月\d{1,2}日（星期.）\d\d:\d\d)", line):
            rows.append((m[1], "临时" in line))
    return rows


async def test_a_secretarys_feed_parses_back_twice_and_matches_upcoming(world: tuple[Runtime, Path, int]) -> None:
    runtime, folder, occ = world
    status, kind, body = await fetch(runtime, feed_url(runtime, "person", "wang"))
    assert status == 200 and kind == "text/calendar"
    assert body.startswith(b"BEGIN:VCALENDAR\r\n") and b"VERSION:2.0" in body and b"BEGIN:VTIMEZONE" in body

    cal = icalendar.Calendar.from_ical(body)
    events = [e for e in cal.walk("VEVENT")]
    assert {str(e["summary"]).removesuffix("（临时）") for e in events} == {"每月学习日"}
    starts = [e.decoded("dtstart") for e in events]
    assert len({str(e["uid"]) for e in events}) == len(events)

    # A second, independent parser reads the same events and times.
    parsed = vobject.readOne(body.decode("utf-8"))
    other = sorted(v.dtstart.value for v in parsed.vevent_list)
    assert other == sorted(starts)

    # The open occurrence of 3 November (deadline 6 November) is there, with Wang's own confirm link.
    [open_one] = [e for e in events if e.decoded("dtstart") == bj(2026, 11, 3, 9, 0)]
    link = str(open_one["url"])
    assert read_token(runtime.link_key, link.rsplit("/c/", 1)[1], 86400 * 14, now=runtime.clock()) == (occ, "wang")
    assert "确认截止：2026年11月6日（星期五）09:00" in str(open_one["description"])

    # Every coming date is where `remindbot upcoming` puts it, after holiday moves; 临时 alike.
    expected = await upcoming_times(folder, "study")
    coming = sorted((e.decoded("dtstart"), "临时" in str(e["summary"])) for e in events
                    if e.decoded("dtstart") >= datetime(2026, 11, 4, tzinfo=BJ))
    assert [(when_text(start, BJ), provisional) for start, provisional in coming] == expected
    assert any(p for _, p in expected), "the window reaches a year without announced holidays"
    for e in events:
        assert e["dtstart"].params["TZID"] == "Asia/Shanghai"
        assert e.decoded("dtend") - e.decoded("dtstart") == timedelta(hours=1)


async def test_a_unit_feed_holds_what_concerns_its_people_and_no_confirm_link(
    world: tuple[Runtime, Path, int],
) -> None:
    runtime, _, _ = world
    status, _, body = await fetch(runtime, feed_url(runtime, "unit", "jyj"))
    assert status == 200
    events = list(icalendar.Calendar.from_ical(body).walk("VEVENT"))
    assert events and {str(e["summary"]).removesuffix("（临时）") for e in events} == {"每月学习日"}
    assert all("url" not in e for e in events)
    assert "教育局" in str(icalendar.Calendar.from_ical(body)["x-wr-calname"])

    _, _, leader_feed = await fetch(runtime, feed_url(runtime, "person", "zhao"))
    leader_events = icalendar.Calendar.from_ical(leader_feed).walk("VEVENT")
    titles = {str(e["summary"]).removesuffix("（临时）") for e in leader_events}
    assert titles == {"“一岗双责”党建工作提醒"}


async def test_feed_links_refuse_forged_expired_and_other_purpose_tokens_in_chinese(
    world: tuple[Runtime, Path, int],
) -> None:
    runtime, _, occ = world
    good = feed_url(runtime, "person", "wang")
    token = good.rsplit("/", 1)[1].removesuffix(".ics")
    base = runtime.settings.base_url
    cases = {
        f"{base}/ical/{token[:-2]}xx.ics": 403,  # altered signature
        f"{base}/ical/{make_view_token(runtime.link_key, 'leader', ['wang'])}.ics": 403,  # a leader page token
        f"{base}/ical/{make_token(runtime.link_key, occ, 'wang')}.ics": 403,  # a confirmation token
        f"{base}/ical/{make_view_token('another-key', 'ical-person', ['wang'])}.ics": 403,
        f"{base}/ical/nonsense.ics": 400,
    }
    for url, status in cases.items():
        got, kind, body = await fetch(runtime, url)
        assert (got, kind) == (status, "text/html"), url
        assert "链接" in body.decode()
    runtime.clock.now += timedelta(days=runtime.settings.feed_ttl_days + 1)  # type: ignore[attr-defined]
    got, _, body = await fetch(runtime, good)
    assert got == 410 and "过期" in body.decode()


async def test_the_admin_upcoming_page_lists_every_persons_feed_link(world: tuple[Runtime, Path, int]) -> None:
    runtime, _, _ = world
    links = feed_links(runtime)
    assert {link["id"] for link in links if link["kind"] == "个人"} == set(runtime.schedules.people)
    assert all(link["url"].startswith("https://dj.example.gov.cn/ical/") for link in links)


async def test_a_feed_offers_the_confirm_link_only_while_it_is_still_owed(world: tuple[Runtime, Path, int]) -> None:
    """Confirmed on their behalf, or excused: the event stays, its confirm link goes."""
    runtime, _, occ = world

    async def link_of(person: str) -> str | None:
        _, _, body = await fetch(runtime, feed_url(runtime, "person", person))
        [event] = [e for e in icalendar.Calendar.from_ical(body).walk("VEVENT")
                   if e.decoded("dtstart") == bj(2026, 11, 3, 9, 0)]
        assert "确认链接" in str(event["description"]) or "url" not in event
        return str(event["url"]) if "url" in event else None

    assert await link_of("wang") is not None and await link_of("liu") is not None
    await actions.confirm_for(runtime, occ, "wang", admin="chen", note="电话告知", now=runtime.clock())
    await actions.excuse(runtime, occ, "liu", admin="chen", reason="请假：赴党校学习", now=runtime.clock())
    assert await link_of("wang") is None
    assert await link_of("liu") is None

    async def description_of(person: str) -> str:
        _, _, body = await fetch(runtime, feed_url(runtime, "person", person))
        [event] = [e for e in icalendar.Calendar.from_ical(body).walk("VEVENT")
                   if e.decoded("dtstart") == bj(2026, 11, 3, 9, 0)]
        return str(event["description"])

    # and its text says where they stand, not "confirm once the reminder is sent" (found by a trial)
    assert "已确认" in await description_of("wang") and "提醒发出后" not in await description_of("wang")
    assert "免于确认" in await description_of("liu") and "提醒发出后" not in await description_of("liu")
