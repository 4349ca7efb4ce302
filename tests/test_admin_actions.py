"""Admin actions over real HTTP on loopback: each one, its audit row, and every refusal.

The world is the follow-up tests' (two organs, three secretaries, two leaders); the study day
fires for real on Tuesday 3 November 2026, deadline Friday 09:00. Two admins log in with
argon2-hashed passwords from ``REMINDBOT_ADMINS``; a fake generic robot stands for a group chat.
"""

from __future__ import annotations

import base64
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr
from sqlmodel import col, select
from test_followup import Clock, bj, fire_due, make_runtime, mentioned, nudges, outbox, write_world

from bot.admins import AdminConfigError, hash_password, parse_admins
from bot.confirming.confirmations import record_confirmation, to_db_time
from bot.confirming.followup import FollowUps
from bot.delivery.dispatch import Dispatcher
from bot.platforms.base import Message
from bot.platforms.registry import platform_for
from bot.reporting.reports import unit_figures
from bot.runtime import Runtime
from bot.web import make_app
from storage.db import Database
from storage.models import AdminAction, Confirmation, Expectation, Outbox
from tests.fakes.platforms import FakePlatforms, FakeRobot

PASSWORDS = {"陈明": "chen-ming-admin-pass", "李华": "li-hua-admin-password"}
ADMINS = ",".join(f"{name}:{hash_password(pw)}" for name, pw in PASSWORDS.items())


def auth(name: str = "陈明", password: str | None = None) -> dict[str, str]:
    raw = f"{name}:{PASSWORDS.get(name, '') if password is None else password}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


@dataclass
class Site:
    runtime: Runtime
    clock: Clock
    client: TestClient
    occ: int
    robot: FakeRobot

    async def page(self, path: str, name: str = "陈明") -> str:
        response = await self.client.get(path, headers=auth(name))
        assert response.status == 200, await response.text()
        return await response.text()

    async def token(self, path: str, name: str = "陈明") -> str:
        found = re.search(r'name="csrf" value="([^"]+)"', await self.page(path, name))
        assert found, "the page has no action form"
        return found[1]

    async def post(self, path: str, data: dict[str, str], *, page: str | None = None, name: str = "陈明",
                   headers: dict[str, str] | None = None, token: str | None = None) -> aiohttp.ClientResponse:
        if token is None:
            token = await self.token(page or f"/admin/occurrences/{self.occ}", name)
        return await self.client.post(path, data={"csrf": token, **data}, headers={**auth(name), **(headers or {})},
                                      allow_redirects=False)

    async def audit(self) -> list[AdminAction]:
        async with self.runtime.db.session() as session:
            return list((await session.exec(select(AdminAction).order_by(col(AdminAction.id)))).all())

    async def expectation(self, person: str) -> Expectation:
        async with self.runtime.db.session() as session:
            return (await session.exec(select(Expectation).where(
                Expectation.occurrence_id == self.occ, Expectation.person_id == person))).one()


@pytest.fixture
async def site(any_db: Database, tmp_path: Path) -> AsyncIterator[Site]:
    """The same world on a SQLite file and on PostgreSQL (its own schema)."""
    settings = write_world(tmp_path)
    settings.admins = SecretStr(ADMINS)
    clock = Clock(bj(2026, 11, 3, 10, 0))
    runtime = await make_runtime(settings, clock, any_db)
    async with FakePlatforms() as fakes:
        robot = fakes.generic("party-robot")
        runtime.schedules.channels["fake"] = robot.channel("fake", name="党建联络群")
        occ = await fire_due(runtime, "study", bj(2026, 11, 3, 9, 0))
        async with TestClient(TestServer(make_app(runtime), host="127.0.0.1")) as client:
            yield Site(runtime, clock, client, occ, robot)


async def dead_message(site: Site, *, status: str = "dead", occ: int | None = None) -> int:
    channel = site.runtime.schedules.channels["fake"]
    body = platform_for(channel).build(channel, Message(title="每月学习日", markdown="请于本周五前完成学习。"))[0]
    async with site.runtime.db.session() as session:
        row = Outbox(dedupe_key=f"occ{occ or site.occ}/due/fake/{status}", occurrence_id=occ or site.occ, stage="due",
                     channel_id="fake", platform="generic", robot="r:old-webhook", body=body,
                     summary="每月学习日·当天提醒", status=status, attempts=8, error_kind="config",
                     last_error="webhook 已失效", next_attempt_at=to_db_time(site.clock.now))
        session.add(row)
        await session.commit()
        assert row.id is not None
        return row.id


# ---------------------------------------------------------------- admins


def test_admins_are_read_from_name_hash_pairs_and_a_clear_password_is_refused() -> None:
    admins = parse_admins(ADMINS)
    assert list(admins) == ["陈明", "李华"] and all(h.startswith("$argon2id$") for h in admins.values())
    with pytest.raises(AdminConfigError, match="不是 argon2 哈希") as refused:
        parse_admins("陈明:my-clear-password")
    assert "my-clear-password" not in str(refused.value)


def test_serve_refuses_an_admins_entry_that_is_not_a_hash() -> None:
    from bot.settings import Settings

    assert "不是 argon2 哈希" in (Settings(admins=SecretStr("陈明:clear-text-password")).admin_password_problem() or "")
    assert Settings(admins=SecretStr(ADMINS)).admin_password_problem() is None


async def test_no_password_reaches_the_logs(site: Site, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG")
    await site.client.get("/admin/", headers=auth("陈明", "a-wrong-password-typed"))
    await site.post(f"/admin/occurrences/{site.occ}/excuse", {"person": "liu", "kind": "出差", "reason": "学习"})
    assert "管理员 陈明" in caplog.text
    for secret in (*PASSWORDS.values(), "a-wrong-password-typed", "$argon2"):
        assert secret not in caplog.text


async def test_each_admin_logs_in_with_their_own_password_only(site: Site) -> None:
    assert (await site.client.get("/admin/", headers=auth("李华"))).status == 200
    assert (await site.client.get("/admin/", headers=auth("李华", PASSWORDS["陈明"]))).status == 401
    assert (await site.client.get("/admin/", headers=auth("王五", PASSWORDS["陈明"]))).status == 401


# ---------------------------------------------------------------- each action


async def test_an_admin_records_a_confirmation_on_someones_behalf_and_the_board_shows_who_and_why(
        site: Site) -> None:
    response = await site.post(f"/admin/occurrences/{site.occ}/confirm",
                               {"person": "liu", "note": "电话告知，参会 12 人"})
    assert response.status == 303
    board = await site.page(response.headers["Location"])
    assert "已代为登记：刘洋 已完成" in board  # the notice of what was done
    [row] = await site.audit()
    assert (row.admin, row.action, row.person_id, row.reason) == ("陈明", "confirm", "liu", "电话告知，参会 12 人")
    async with site.runtime.db.session() as session:
        conf = (await session.exec(select(Confirmation).where(Confirmation.person_id == "liu"))).one()
    assert (conf.via, conf.recorded_by, conf.note) == ("admin", "陈明", "电话告知，参会 12 人")
    audit = board[board.index('id="actions"'):]
    assert "陈明" in audit and "代为登记" in audit and "刘洋" in audit and "电话告知，参会 12 人" in audit
    # The excuse form's button says what it does for every kind (出差, 因公外出…), not only 请假.
    assert "<button type=\"submit\">登记免于确认</button>" in board and "登记请假" not in board


async def test_an_excused_person_gets_no_follow_ups_or_escalations_and_is_counted_apart(site: Site) -> None:
    response = await site.post(f"/admin/occurrences/{site.occ}/excuse",
                               {"person": "wu", "kind": "出差", "reason": "赴省委党校学习"}, name="李华")
    assert response.status == 303
    exp = await site.expectation("wu")
    assert (exp.excused_by, exp.excuse_reason) == ("李华", "出差：赴省委党校学习")
    assert exp.next_followup_at is None and exp.next_escalation_at is None
    engine = FollowUps(site.runtime)
    for day in (4, 5, 6, 9):  # follow-ups every day, escalation from Friday's deadline on
        await engine.run_once(bj(2026, 11, day, 9, 0))
    assert {p for p, _, _ in await nudges(site.runtime)} == {"wang", "liu"}
    assert all("wu" not in mentioned(r) for r in await outbox(site.runtime, "followup"))
    assert all("吴敏" not in r.body["markdown"] for r in await outbox(site.runtime, "escalation"))
    assert await outbox(site.runtime, "escalation")  # the others were escalated
    figures = {r.unit_id: r for r in await unit_figures(site.runtime, bj(2026, 11, 1), bj(2026, 12, 1),
                                                        now=bj(2026, 11, 9, 9))}
    assert (figures["jyj_b1"].excused, figures["jyj_b1"].expected, figures["jyj_b1"].missing) == (1, 0, 0)
    assert figures["fgw_b1"].missing == 1 and figures["fgw_b1"].excused == 0
    site.clock.now = bj(2026, 11, 9, 10)
    board = await site.page(f"/admin/occurrences/{site.occ}")
    assert "1 人请假等免于确认" in board and "出差：赴省委党校学习（李华 登记）" in board
    assert "2 人逾期未确认" in board  # Wang and Liu; Wu is not late
    listing = await site.page("/admin/occurrences")  # the list counts as the board does
    assert "0/2" in listing and "另 1 人免于确认" in listing and "0/3" not in listing
    # trial 10 #3: the board's filter has 免于确认 and says 逾期确认, as `remindbot status --status` does
    options = re.findall(r'<option value="(\w*)"[^>]*>([^<]+)</option>', board)
    assert ("late", "逾期确认") in options and ("excused", "免于确认") in options and "逾期后确认" not in board
    excused = await site.page(f"/admin/occurrences/{site.occ}?status=excused")
    owing = await site.page(f"/admin/occurrences/{site.occ}?status=pending")
    assert "吴敏" in _rows_of(excused) and "王芳" not in _rows_of(excused)
    assert "吴敏" not in _rows_of(owing) and "王芳" in _rows_of(owing)  # 未确认: who still owes, as the CLI's


async def test_someone_excused_who_confirmed_anyway_reads_as_confirmed_with_a_note(site: Site) -> None:
    excuse = {"person": "wu", "kind": "出差", "reason": "赴省委党校学习"}
    assert (await site.post(f"/admin/occurrences/{site.occ}/excuse", excuse)).status == 303
    await record_confirmation(site.runtime.db, site.occ, "wu", via="link", now=site.clock.now)
    board = await site.page(f"/admin/occurrences/{site.occ}")
    rows = _rows_of(board)
    wu = rows[rows.index("吴敏"):]
    wu = re.sub(r"\s+", " ", wu[:wu.index("</tr>")])
    assert '<span class="tag ok">已确认</span>' in wu and "免于确认</span>" not in wu
    assert "此前已登记免于确认（出差：赴省委党校学习），仍确认了" in wu
    assert "1</strong> / 3 人已确认" in board and "人请假等免于确认" not in board


def _rows_of(page: str) -> str:
    """The board's table body (the people listed), without the forms and the chart."""
    body = page[page.index("<tbody"):]
    return body[:body.index("</tbody>")]


async def test_follow_up_now_goes_at_once_within_working_hours(site: Site) -> None:
    await record_confirmation(site.runtime.db, site.occ, "wang", via="link", now=site.clock.now)
    response = await site.post(f"/admin/occurrences/{site.occ}/followup", {"reason": "书记会前提醒"})
    assert response.status == 303
    rows = await outbox(site.runtime, "followup:1")
    assert rows and all(set(mentioned(r)) <= {"liu", "wu"} for r in rows)
    [row] = await site.audit()
    assert row.action == "followup_now" and row.reason == "书记会前提醒" and "已催办 2 人" in (row.detail or "")


async def test_follow_up_now_outside_working_hours_says_when_it_will_go(site: Site) -> None:
    site.clock.now = bj(2026, 11, 7, 20, 0)  # Saturday evening
    response = await site.post(f"/admin/occurrences/{site.occ}/followup", {})
    board = await site.page(response.headers["Location"])
    assert "现在不在工作时间，催办将于 2026年11月9日（星期一）09:00 发给 3 人" in board
    assert await outbox(site.runtime, "followup") == []
    assert await FollowUps(site.runtime).run_once(bj(2026, 11, 9, 9, 0)) > 0  # Monday morning it goes


async def test_a_dead_message_is_queued_again_and_sent_after_the_channel_was_fixed(site: Site) -> None:
    outbox_id = await dead_message(site)
    response = await site.post(f"/admin/outbox/{outbox_id}/resend", {"reason": "已更换 webhook"}, page="/admin/outbox")
    assert response.status == 303
    async with site.runtime.db.session() as session:
        row = await session.get(Outbox, outbox_id)
    assert row is not None and (row.status, row.attempts) == ("pending", 0)
    async with aiohttp.ClientSession() as http:
        dispatcher = Dispatcher(site.runtime.db, site.runtime.settings, site.runtime.channel, http,
                                clock=site.runtime.clock, admin_channel=lambda: None)
        await dispatcher.run_once(max_retry_wait=0)
    assert ["请于本周五前完成学习。" in t for t in site.robot.texts()] == [True]
    page = await site.page(response.headers["Location"])
    audit = page[page.index('id="actions"'):]
    assert "陈明" in audit and "重新发送" in audit and "已更换 webhook" in audit


async def test_send_test_reaches_the_channel_and_the_outcome_is_recorded(site: Site) -> None:
    response = await site.post("/admin/send-test", {"channel": "fake", "reason": "换群后检查"}, page="/admin/outbox")
    assert response.status == 303
    assert len(site.robot.received) == 1
    [row] = await site.audit()
    assert (row.action, row.channel_id, row.admin, row.reason) == ("send_test", "fake", "陈明", "换群后检查")
    assert "发送成功" in (row.detail or "")
    site.robot.revoke()
    await site.post("/admin/send-test", {"channel": "fake"}, page="/admin/outbox")
    assert "发送失败" in ((await site.audit())[-1].detail or "")


# ---------------------------------------------------------------- refusals


def _actions(site: Site, outbox_id: int) -> list[tuple[str, dict[str, str]]]:
    occ = f"/admin/occurrences/{site.occ}"
    return [(f"{occ}/confirm", {"person": "liu"}), (f"{occ}/excuse", {"person": "liu", "reason": "出差"}),
            (f"{occ}/followup", {}), (f"/admin/outbox/{outbox_id}/resend", {}),
            ("/admin/send-test", {"channel": "fake"})]


async def test_an_action_without_a_valid_csrf_token_or_from_another_site_is_refused_and_records_nothing(
        site: Site) -> None:
    outbox_id = await dead_message(site)
    good = await site.token(f"/admin/occurrences/{site.occ}")
    others = await site.token(f"/admin/occurrences/{site.occ}", name="李华")
    for path, data in _actions(site, outbox_id):
        for token, headers in (("", {}), ("1700000000.forged", {}), ("².forged", {}), (others, {}),
                               (good, {"Origin": "https://evil.example"}), (good, {"Sec-Fetch-Site": "cross-site"}),
                               (good, {"Origin": "null"}), (good, {"Origin": "null", "Sec-Fetch-Site": "same-site"})):
            response = await site.post(path, data, token=token, headers=headers)
            assert response.status == 403, (path, token, headers)
            assert "操作被拒绝" in await response.text()
        response = await site.client.post(path, data={"csrf": good, **data})  # no login at all
        assert response.status == 401
    assert await site.audit() == []
    assert (await site.expectation("liu")).excused_at is None
    assert await outbox(site.runtime, "followup") == [] and site.robot.requests == []
    async with site.runtime.db.session() as session:
        assert (await session.get(Outbox, outbox_id)).status == "dead"  # type: ignore[union-attr]
        assert (await session.exec(select(Confirmation))).all() == []


async def test_a_rehearsal_refuses_every_action_that_would_make_it_real(site: Site) -> None:
    site.runtime.settings.dry_run = True
    rehearsal = await fire_due(site.runtime, "study", bj(2026, 12, 1, 9, 0))
    site.runtime.settings.dry_run = False
    occ = f"/admin/occurrences/{rehearsal}"
    for path, data in ((f"{occ}/confirm", {"person": "liu"}), (f"{occ}/excuse", {"person": "liu", "reason": "出差"}),
                       (f"{occ}/followup", {})):
        response = await site.post(path, data)
        assert response.status == 409 and "演练记录" in await response.text()
    dry = await dead_message(site, status="dry_run", occ=rehearsal)
    response = await site.post(f"/admin/outbox/{dry}/resend", {}, page="/admin/outbox")
    assert response.status == 409 and "演练消息" in await response.text()
    assert await site.audit() == []


@pytest.mark.parametrize("path,data,words", [
    ("confirm", {"person": "zhao"}, "不在"),
    ("excuse", {"person": "liu", "kind": "出差", "reason": ""}, "请写明原因"),
    ("excuse", {"person": "liu", "kind": "出差", "reason": " \n\t "}, "请写明原因"),
    ("excuse", {"person": "liu", "kind": "旅游", "reason": "去三亚"}, "类别“旅游”不在可选范围内"),
    ("excuse", {"person": "liu", "reason": "去三亚"}, "不在可选范围内"),
    ("excuse", {"person": "wang", "kind": "出差", "reason": "学习"}, "已经确认"),
    ("confirm", {"person": "wang"}, "确认过"),
])
async def test_refusals_are_in_chinese_and_record_nothing(site: Site, path: str, data: dict[str, str],
                                                        words: str) -> None:
    await record_confirmation(site.runtime.db, site.occ, "wang", via="link", now=site.clock.now)
    response = await site.post(f"/admin/occurrences/{site.occ}/{path}", data)
    assert response.status in (400, 404, 409)
    assert words in await response.text()
    assert await site.audit() == []


@pytest.mark.parametrize("path,data,said", [
    ("confirm", {"person": "zhao"}, "的确认名单中"),
    ("excuse", {"person": "liu", "kind": "旅游", "reason": "去三亚"}, "不在可选范围内"),
])
async def test_a_refusal_page_ends_its_sentence_with_one_full_stop_as_the_cli_does(
        site: Site, path: str, data: dict[str, str], said: str) -> None:
    # The pages showed "此人不在 “…” 的确认名单中" with no 。 where the CLI printed one.
    response = await site.post(f"/admin/occurrences/{site.occ}/{path}", data)
    shown = re.search(r"<p>([^<]*)</p>", await response.text())
    assert shown and said in shown.group(1), shown
    assert shown.group(1).endswith("。") and not shown.group(1).endswith("。。"), shown.group(1)

async def test_a_message_that_is_not_dead_cannot_be_sent_again(site: Site) -> None:
    pending = await dead_message(site, status="sent")
    response = await site.post(f"/admin/outbox/{pending}/resend", {}, page="/admin/outbox")
    assert response.status == 409 and "只记录（未配置 webhook）的消息可以重新发送" in await response.text()
    assert await site.audit() == []


async def test_the_outbox_page_says_why_there_is_no_test_send_when_no_channel_has_a_webhook(site: Site) -> None:
    page: Any = await site.page("/admin/outbox")
    assert 'id="form-send-test"' in page and "无法发送测试消息" not in page
    channels = site.runtime.schedules.channels
    for channel_id in [c.id for c in channels.values() if not c.dry_run]:
        del channels[channel_id]
    page = await site.page("/admin/outbox")
    assert 'id="form-send-test"' not in page
    assert "没有配置 webhook 的频道，无法发送测试消息；填写 webhook 后这里会出现发送测试" in page


async def test_a_rehearsal_offers_no_test_send_and_refuses_one_posted_anyway(site: Site) -> None:
    # Trial 13: `serve --dry-run`'s 发送测试消息 reached the group for real; a rehearsal never sends.
    token = await site.token("/admin/outbox")
    async with site.runtime.db.session() as session:
        queued = len((await session.exec(select(Outbox))).all())
    site.runtime.settings.dry_run = True
    page = await site.page("/admin/outbox")
    assert 'id="form-send-test"' not in page
    assert ("演练模式下不发送测试消息：测试消息会真正发到群里，而演练从不真正发送。"
            "去掉 --dry-run（或 REMINDBOT_DRY_RUN）重启服务后再试") in page
    response = await site.post("/admin/send-test", {"channel": "fake"}, token=token)
    assert response.status == 409 and "演练模式下不发送测试消息" in await response.text()
    assert site.robot.requests == [] and await site.audit() == []
    async with site.runtime.db.session() as session:
        assert len((await session.exec(select(Outbox))).all()) == queued


async def test_the_rehearsal_refusal_of_a_test_send_ends_with_one_full_stop_on_the_page_and_the_409(
        site: Site) -> None:
    # The 409 page said "…重启服务后再试" with no full stop while the outbox page added one.
    token = await site.token("/admin/outbox")
    site.runtime.settings.dry_run = True
    page = await site.page("/admin/outbox")
    shown = re.search(r'id="no-test-rehearsal">([^<]*)</p>', page)
    assert shown and shown.group(1).endswith("重启服务后再试。") and not shown.group(1).endswith("。。")
    for accept in ("text/html", "application/json"):
        response = await site.post("/admin/send-test", {"channel": "fake"}, token=token, headers={"Accept": accept})
        body = await response.text()
        assert response.status == 409 and "重启服务后再试。<" in body and "。。" not in body


async def test_the_board_of_a_rehearsal_offers_no_action_forms(site: Site) -> None:
    site.runtime.settings.dry_run = True
    rehearsal = await fire_due(site.runtime, "study", bj(2026, 12, 1, 9, 0))
    site.runtime.settings.dry_run = False
    page: Any = await site.page(f"/admin/occurrences/{rehearsal}")
    assert "代为登记</button>" not in page and "登记免于确认" not in page


async def test_a_valid_post_to_a_record_that_does_not_exist_is_a_404_saying_so(site: Site) -> None:
    excuse = {"person": "liu", "kind": "出差", "reason": "学习"}
    for action, data in (("confirm", {"person": "liu"}), ("excuse", excuse), ("followup", {})):
        response = await site.post(f"/admin/occurrences/987654/{action}", data)
        text = await response.text()
        assert response.status == 404 and "没有这条记录" in text and "操作被拒绝" not in text, action
    board = await site.client.get("/admin/occurrences/987654", headers=auth())
    assert board.status == 404 and "没有这条记录" in await board.text()
    response = await site.post("/admin/outbox/987654/resend", {}, page="/admin/outbox")
    assert response.status == 404 and "没有这条" in await response.text()
    assert await site.audit() == []


@pytest.mark.parametrize("number", ["2147483648", "999999999999999999"])  # int4's max + 1; 18 digits
async def test_a_record_number_too_large_for_the_database_is_the_same_404(site: Site, number: str) -> None:
    """Trial 10 #1: such a number reached the driver (SQLite: OverflowError; PostgreSQL: out of range
    for type integer) and the admin got a 500."""
    excuse = {"person": "liu", "kind": "出差", "reason": "学习"}
    for action, data in (("confirm", {"person": "liu"}), ("excuse", excuse), ("followup", {})):
        response = await site.post(f"/admin/occurrences/{number}/{action}", data)
        text = await response.text()
        assert response.status == 404 and f"找不到记录号为 {number} 的提醒记录" in text, (action, text[:300])
    for path in (f"/admin/occurrences/{number}", f"/admin/occurrences/{number}/board.csv"):
        board = await site.client.get(path, headers=auth())
        assert board.status == 404 and "没有这条记录" in await board.text(), path
    response = await site.post(f"/admin/outbox/{number}/resend", {}, page="/admin/outbox")
    assert response.status == 404 and f"找不到编号为 {number} 的消息" in await response.text()
    for query in (f"?page={number}", "?page=" + "9" * 5000, "?page=²"):
        page = await site.client.get(f"/admin/outbox{query}", headers=auth())
        assert page.status == 200, query
    board = await site.client.get(f"/admin/occurrences/{site.occ}?page=" + "9" * 5000, headers=auth())
    assert board.status == 200
    assert await site.audit() == []


async def test_a_confirmation_recorded_by_an_admin_says_代录_once_on_the_board(site: Site) -> None:
    await site.post(f"/admin/occurrences/{site.occ}/confirm", {"person": "liu", "note": "电话告知"})
    board = await site.page(f"/admin/occurrences/{site.occ}")
    row = board[board.index("刘洋"):]
    row = row[:row.index("</tr>")]
    assert row.count("代录") == 1 and "管理员代录（陈明）" in row


async def test_a_real_messages_recorded_without_a_webhook_are_not_called_rehearsals_nor_resent_while_it_lacks_one(
        site: Site) -> None:
    async with aiohttp.ClientSession() as http:  # the study day's messages to channels without a webhook
        dispatcher = Dispatcher(site.runtime.db, site.runtime.settings, site.runtime.channel, http,
                                clock=site.runtime.clock, admin_channel=lambda: None)
        await dispatcher.run_once(max_retry_wait=0)
    recorded = [r for r in await outbox(site.runtime, "due") if r.status == "dry_run"]
    assert recorded
    page = await site.page("/admin/outbox")
    stats = page[page.index('class="card stats"'):]
    stats = stats[:stats.index("</section>")]
    assert "未配置 webhook（只记录）" in stats and "演练" not in stats
    # trial 12: no 重新发送 while the channel has no webhook (it would only be recorded again); why instead
    assert "/resend" not in page and page.count("该频道未配置 Webhook，仅记录") == len(recorded)
    # trial 10 #2: the number `remindbot resend <消息编号>` takes is on each row
    shown = re.findall(r"消息编号 (\d+)", page)
    assert sorted(map(int, shown)) == sorted(r.id for r in recorded)
    forged = await site.post(f"/admin/outbox/{recorded[0].id}/resend", {"reason": "先排队"}, page="/admin/outbox")
    assert forged.status == 409 and "未配置 Webhook，仅记录" in await forged.text()
    assert await site.audit() == []
    async with site.runtime.db.session() as session:
        assert (await session.get(Outbox, recorded[0].id)).status == "dry_run"  # type: ignore[union-attr]

    channels = site.runtime.schedules.channels  # the webhook is filled in: now it may be sent again
    channel_id = recorded[0].channel_id
    channels[channel_id] = channels[channel_id].model_copy(update={"webhook": SecretStr("https://hook.example/x")})
    page = await site.page("/admin/outbox")
    assert f'action="/admin/outbox/{recorded[0].id}/resend"' in page
    response = await site.post(f"/admin/outbox/{recorded[0].id}/resend", {"reason": "已填"}, page="/admin/outbox")
    assert response.status == 303
    async with site.runtime.db.session() as session:
        assert (await session.get(Outbox, recorded[0].id)).status == "pending"  # type: ignore[union-attr]


async def test_a_failed_message_whose_channel_lost_its_webhook_offers_no_resend_and_says_why(site: Site) -> None:
    dead = await dead_message(site)
    assert f'action="/admin/outbox/{dead}/resend"' in await site.page("/admin/outbox")
    channels = site.runtime.schedules.channels
    channels["fake"] = channels["fake"].model_copy(update={"webhook": None})
    page = await site.page("/admin/outbox")
    assert "/resend" not in page and "该频道现在未配置 Webhook；填写 webhook 后可重新发送" in page


async def test_outbox_rows_of_two_occurrences_of_one_reminder_say_which_occurrence_they_belong_to(
        site: Site) -> None:
    later = await fire_due(site.runtime, "study", bj(2026, 12, 1, 9, 0))
    page = await site.page("/admin/outbox")
    rows = re.findall(r"<tr[^>]*>.*?</tr>", page, flags=re.S)
    for occ, day in ((site.occ, "2026年11月3日（星期二）09:00"), (later, "2026年12月1日（星期二）09:00")):
        mine = [row for row in rows if f"（记录号 {occ}）" in row]
        assert mine and all(day in row for row in mine), (occ, rows)
        assert f'href="/admin/occurrences/{occ}"' in mine[0]


async def test_the_leaders_page_lists_each_leaders_own_link_behind_the_login(site: Site) -> None:
    assert (await site.client.get("/admin/leaders")).status == 401
    page = await site.page("/admin/leaders")
    assert "赵明" in page and "孙丽" in page and "王芳" not in page
    assert 'href="/admin/leaders"' in page  # reachable from the admin navigation
    links = re.findall(r'class="leader-link" href="([^"]+)"', page)
    assert len(links) == 2
    path = links[0].removeprefix(site.runtime.settings.base_url)
    leader = await site.client.get(path)
    text = await leader.text()
    assert leader.status == 200 and "赵明同志分管单位" in text and "教育局第一党支部" not in text
