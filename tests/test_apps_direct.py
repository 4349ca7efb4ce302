"""Direct messages to leaders through the outbox, the app's lane and the fake app API on loopback.

The routing decision (:func:`bot.delivery.directs.direct_channel`) both ways; a leader's "一岗双责" brief and
an escalation as direct messages with audit rows; and end to end: a reminder fires, the secretary
replies in DingTalk, ``remindbot status`` shows it, follow-ups stop for her, and the leader's
escalation for the others arrives as a direct message at the fake DingTalk app API.
Also ``remindbot apps check`` as an admin sees it.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import uuid
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from click.testing import CliRunner
from sqlmodel import col, select
from test_followup import WORLD_YAML, Clock, bj, fire_due, make_runtime, outbox, write_world

from bot.cli import main
from bot.cli.confirmations import status
from bot.confirming.followup import FollowUps
from bot.confirming.inbound import short_code
from bot.delivery.directs import direct_channel
from bot.delivery.dispatch import Dispatcher
from bot.platforms.apps import callback_url
from bot.settings import Settings
from bot.web import make_app
from storage.models import DeliveryAttempt, Outbox
from tests.fakes import chat
from tests.fakes.apps import DINGTALK, DINGTALK_AGENT_ID, FEISHU, SLACK, WECOM, FakeAppApi
from tests.test_web_confirm import serve

ZHAO_IDS = "{id: zhao, name: 赵明, roles: [leader], unit: gw, mobile: \"13800000002\", channels: [group]}"


def world_with_apps(folder: Path, apps_yaml: str, zhao_ids: str, wang_ids: str = "") -> Settings:
    settings = write_world(folder)
    text = WORLD_YAML.replace(ZHAO_IDS, ZHAO_IDS[:-1] + f", ids: {{{zhao_ids}}}}}")
    if wang_ids:
        wang = 'unit: fgw_b1, mobile: "13800000101"'
        text = text.replace(wang + "}", wang + f", ids: {{{wang_ids}}}}}")
    assert zhao_ids in text and (not wang_ids or wang_ids in text)
    (folder / "schedules" / "world.yaml").write_text(text, encoding="utf-8")
    (folder / "schedules" / "apps.yaml").write_text(apps_yaml, encoding="utf-8")
    return settings


def wecom_apps(url: str, secret: str = WECOM["secret"]) -> str:
    return f"""apps:
  - {{id: wx, platform: wecom, corp_id: {WECOM['corp_id']}, agent_id: "{WECOM['agent_id']}", secret: {secret},
     token: cb-token, encoding_aes_key: {'k' * 43}, api_base: "{url}"}}
"""


async def attempts(runtime: object, outbox_id: int) -> list[DeliveryAttempt]:
    async with runtime.db.session() as session:  # type: ignore[attr-defined]
        stmt = select(DeliveryAttempt).where(DeliveryAttempt.outbox_id == outbox_id).order_by(col(DeliveryAttempt.id))
        return list((await session.exec(stmt)).all())


async def send_all(runtime: object, http: aiohttp.ClientSession) -> None:
    dispatcher = Dispatcher(runtime.db, runtime.settings, runtime.channel, http,  # type: ignore[attr-defined]
                            clock=runtime.clock)  # type: ignore[attr-defined]
    await dispatcher.run_once()


# ---------------------------------------------------------------- the routing decision


@pytest.mark.parametrize(("apps_yaml", "ids", "routed"), [
    ("wecom", "wecom: ZhaoMing", True),  # an app that can send, and the person's id for its platform
    ("wecom", "dingtalk: staff-zhao", False),  # no id for the app's platform
    ("wecom-no-secret", "wecom: ZhaoMing", False),  # the app only receives (no secret): group robots
    ("none", "wecom: ZhaoMing", False),  # no app at all: today's behaviour
])
async def test_a_personal_message_goes_direct_only_where_an_app_reaches_the_person(
        tmp_path: Path, apps_yaml: str, ids: str, routed: bool) -> None:
    text = {"wecom": wecom_apps("https://qyapi.weixin.qq.com"),
            "wecom-no-secret": wecom_apps("https://qyapi.weixin.qq.com").replace(f" secret: {WECOM['secret']},", ""),
            "none": ""}[apps_yaml]
    settings = world_with_apps(tmp_path, text, ids)
    runtime = await make_runtime(settings, Clock(bj(2026, 1, 8, 10, 0)))
    try:
        channel = direct_channel(runtime, runtime.schedules.people["zhao"])
        assert (channel is not None) == routed
        assert direct_channel(runtime, runtime.schedules.people["sun"]) is None  # sun has no ids at all
        if channel is not None:
            assert channel.id == "app:wx" and runtime.channel("app:wx") is channel
    finally:
        await runtime.db.stop()


# ---------------------------------------------------------------- through the outbox and the app's lane


async def test_the_leaders_duty_brief_goes_as_a_direct_message_through_the_outbox(tmp_path: Path) -> None:
    async with FakeAppApi() as api, aiohttp.ClientSession() as http:
        settings = world_with_apps(tmp_path, wecom_apps(api.url), "wecom: ZhaoMing")
        runtime = await make_runtime(settings, Clock(bj(2026, 1, 8, 10, 0)))
        try:
            await fire_due(runtime, "duties", bj(2026, 1, 8, 10, 0))
            rows = await outbox(runtime, "due")
            direct = [r for r in rows if r.channel_id == "app:wx"]
            group = [r for r in rows if r.channel_id == "group"]
            assert [r.summary for r in direct] == ["“一岗双责”党建工作提醒·赵明（私信）"]
            assert direct[0].robot == "app:wecom:wx" and direct[0].platform == "wecom_app"
            assert [r.summary for r in group] == ["“一岗双责”党建工作提醒·孙丽"]  # no id: the group, as before

            await send_all(runtime, http)
            [sent] = api.sent
            assert sent.user == "ZhaoMing" and "赵明" in sent.text
            [attempt] = await attempts(runtime, direct[0].id or 0)
            assert attempt.ok and attempt.http_status == 200
            assert api.token_fetches["wecom"] == 1
        finally:
            await runtime.db.stop()


async def test_firing_again_after_an_app_was_added_messages_nobody_twice(tmp_path: Path) -> None:
    """Found by a trial: an app added after a fire changed the personal messages' route, and firing
    the same occurrence again queued a direct message to everyone already reached in their channel."""
    settings = write_world(tmp_path)
    runtime = await make_runtime(settings, Clock(bj(2026, 11, 3, 9, 0)))
    try:
        await fire_due(runtime, "study", bj(2026, 11, 3, 9, 0))
        first = await outbox(runtime, "due")
        assert any(r.channel_id == "oa" and "王芳" in r.summary for r in first)

        world_with_apps(tmp_path, wecom_apps("https://qyapi.weixin.qq.com"), "wecom: ZhaoMing", "wecom: WangFang")
        later = await make_runtime(settings, Clock(bj(2026, 11, 3, 9, 5)), runtime.db)
        assert direct_channel(later, later.schedules.people["wang"]) is not None  # the route did change
        await fire_due(later, "study", bj(2026, 11, 3, 9, 0))
        assert await outbox(later, "due") == first  # nothing new: 王芳 was reached in oa
    finally:
        await runtime.db.stop()


async def test_a_refused_direct_message_is_retried_then_recorded_dead_with_its_reason(tmp_path: Path) -> None:
    async with FakeAppApi() as api, aiohttp.ClientSession() as http:
        settings = world_with_apps(tmp_path, wecom_apps(api.url, secret="wrong-secret-4321"), "wecom: ZhaoMing")
        runtime = await make_runtime(settings, Clock(bj(2026, 1, 8, 10, 0)))
        try:
            await fire_due(runtime, "duties", bj(2026, 1, 8, 10, 0))
            await send_all(runtime, http)
            [row] = [r for r in await outbox(runtime, "due") if r.channel_id == "app:wx"]
            async with runtime.db.session() as session:
                row = (await session.exec(select(Outbox).where(Outbox.id == row.id))).one()
            assert row.status == "dead" and row.error_kind == "config"
            assert "Secret 不正确" in (row.last_error or "") and "wrong-secret-4321" not in (row.last_error or "")
            [attempt] = await attempts(runtime, row.id or 0)
            assert not attempt.ok and "Secret" in (attempt.detail or "")
            assert not api.sent
        finally:
            await runtime.db.stop()


def dingtalk_notice_apps(url: str, agent_id: str) -> str:
    return f"""apps:
  - {{id: ding, platform: dingtalk, app_key: {DINGTALK['app_key']}, app_secret: {DINGTALK['app_secret']},
     agent_id: {agent_id}, api_base: "{url}", oapi_base: "{url}"}}
"""


@pytest.mark.parametrize("agent_id", [DINGTALK_AGENT_ID, "1000"])
async def test_a_dingtalk_work_notification_goes_through_the_outbox_or_is_recorded_dead_with_its_reason(
        tmp_path: Path, agent_id: str) -> None:
    async with FakeAppApi() as api, aiohttp.ClientSession() as http:
        settings = world_with_apps(tmp_path, dingtalk_notice_apps(api.url, agent_id), "dingtalk: staff-zhao")
        runtime = await make_runtime(settings, Clock(bj(2026, 1, 8, 10, 0)))
        try:
            await fire_due(runtime, "duties", bj(2026, 1, 8, 10, 0))
            [row] = [r for r in await outbox(runtime, "due") if r.channel_id == "app:ding"]
            assert row.robot == "app:dingtalk:ding" and row.body["agent_id"] == int(agent_id)
            await send_all(runtime, http)
            async with runtime.db.session() as session:
                row = (await session.exec(select(Outbox).where(Outbox.id == row.id))).one()
            [attempt] = await attempts(runtime, row.id or 0)
            assert api.token_fetches["dingtalk-notice"] == 1
            if agent_id == DINGTALK_AGENT_ID:
                [sent] = api.sent
                assert (sent.platform, sent.user) == ("dingtalk-notice", "staff-zhao") and "赵明" in sent.text
                assert row.status == "sent" and attempt.ok and attempt.http_status == 200
            else:  # the platform's 88: a configuration error, told once, never retried
                assert not api.sent
                assert row.status == "dead" and row.error_kind == "config" and "88" in (row.last_error or "")
                assert not attempt.ok and DINGTALK["app_secret"] not in (row.last_error or "")
        finally:
            await runtime.db.stop()


# ---------------------------------------------------------------- end to end


async def test_a_chat_reply_confirms_one_and_the_leaders_escalation_for_the_others_arrives_as_a_direct_message(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_DING_SECRET", DINGTALK["app_secret"])
    answers: list[dict[str, object]] = []

    async def session_webhook(request: web.Request) -> web.Response:
        answers.append(await request.json())
        return web.json_response({"errcode": 0, "errmsg": "ok"})

    fake = web.Application()
    fake.router.add_post("/session", session_webhook)
    async with serve(fake) as fake_url, FakeAppApi() as api, aiohttp.ClientSession() as http:
        apps_yaml = f"""apps:
  - id: ding-app
    platform: dingtalk
    app_key: {DINGTALK['app_key']}
    app_secret: ${{TEST_DING_SECRET}}
    robot_code: {DINGTALK['robot_code']}
    api_base: "{api.url}"
"""
        settings = world_with_apps(tmp_path, apps_yaml, "dingtalk: staff-zhao", "dingtalk: staff-wang")
        clock = Clock(bj(2026, 11, 3, 9, 0))
        runtime = await make_runtime(settings, clock)
        try:
            occ = await fire_due(runtime, "study", bj(2026, 11, 3, 9, 0))
            code = short_code(occ)
            clock.now = bj(2026, 11, 3, 11, 0)
            async with serve(make_app(runtime)) as base:
                ts = str(int(clock.now.timestamp() * 1000))
                body = chat.dingtalk_message("staff-wang", f"已完成 {code} 参加23人", uuid.uuid4().hex,
                                             f"{fake_url}/session", nick="王芳")
                async with http.post(callback_url(base, runtime.schedules.apps["ding-app"]), json=body,
                                     headers={"timestamp": ts, "sign": chat.dingtalk_sign(DINGTALK["app_secret"], ts)}
                                     ) as resp:
                    assert resp.status == 200
            assert "已登记 王芳" in answers[0]["text"]["content"]  # type: ignore[index]

            env = {"REMINDBOT_DATABASE_URL": settings.database_url,
                   "REMINDBOT_SCHEDULES_DIR": str(settings.schedules_dir),
                   "REMINDBOT_VAR_DIR": str(settings.var_dir), "REMINDBOT_SECRET_KEY": settings.signing_key,
                   "TEST_DING_SECRET": DINGTALK["app_secret"]}
            result = await asyncio.to_thread(CliRunner().invoke, status, ["study"], env=env, catch_exceptions=False)
            assert result.exit_code == 0, result.output
            wang = next(line for line in result.output.splitlines() if "王芳" in line)
            assert "群内回复" in wang and "参加23人" in wang

            engine = FollowUps(runtime)
            assert await engine.run_once(bj(2026, 11, 4, 9, 0)) > 0
            followups = json.dumps([r.body for r in await outbox(runtime, "followup:1")], ensure_ascii=False)
            assert "刘洋" in followups and "王芳" not in followups

            assert await engine.run_once(bj(2026, 11, 6, 9, 0)) > 0  # the deadline: leaders are told
            escalations = await outbox(runtime, "escalation:1")
            assert {r.channel_id for r in escalations} == {"app:ding-app", "group"}  # sun has no DingTalk id
            clock.now = bj(2026, 11, 6, 9, 0)
            await send_all(runtime, http)
            [to_zhao] = [s for s in api.sent if "逾期" in s.text or "刘洋" in s.text]
            assert to_zhao.platform == "dingtalk" and to_zhao.user == "staff-zhao"
            assert "刘洋" in to_zhao.text and "王芳" not in to_zhao.text
            assert api.token_fetches["dingtalk"] == 1
            # Her own confirmation link went to her directly, not to the group (where all could use it).
            [to_wang] = [s for s in api.sent if s.user == "staff-wang"]
            assert f"{settings.base_url}/c/" in to_wang.text
            [row] = [r for r in escalations if r.channel_id == "app:ding-app"]
            [attempt] = await attempts(runtime, row.id or 0)
            assert attempt.ok
        finally:
            await runtime.db.stop()


# ---------------------------------------------------------------- remindbot apps check


async def test_apps_check_reports_each_app_in_plain_words_with_its_callback_url(tmp_path: Path) -> None:
    async with FakeAppApi() as api:
        apps_yaml = wecom_apps(api.url) + f"""  - {{id: sl, platform: slack, signing_secret: sig-secret-1,
     bot_token: xoxb-wrong-token-5555, api_base: "{api.url}"}}
  - {{id: ding, platform: dingtalk, mode: stream, app_key: k, app_secret: ding-secret-7777}}
  - {{id: notice, platform: dingtalk, mode: stream, app_key: {DINGTALK['app_key']},
     app_secret: {DINGTALK['app_secret']}, agent_id: {DINGTALK_AGENT_ID}, api_base: "{api.url}",
     oapi_base: "{api.url}"}}
"""
        settings = world_with_apps(tmp_path, apps_yaml, "wecom: ZhaoMing")
        env = {"REMINDBOT_SCHEDULES_DIR": str(settings.schedules_dir), "REMINDBOT_BASE_URL": "https://dj.example.gov.cn",
               "REMINDBOT_VAR_DIR": str(settings.var_dir)}
        result = await asyncio.to_thread(CliRunner().invoke, main, ["apps", "check"], env=env)
    out = result.output
    assert result.exit_code == 1, out  # one app failed
    assert "回调地址：https://dj.example.gov.cn/callback/wecom/wx" in out
    assert "回调地址：https://dj.example.gov.cn/callback/slack/sl" in out
    assert "无需填写（Stream 模式" in out
    assert "访问令牌：成功" in out and "Slack 不认这个 Bot Token（invalid_auth）" in out
    assert "私信：未启用" in out  # the stream app has neither robot_code nor agent_id
    assert "可以发私信（钉钉工作通知）" in out  # an app with only agent_id sends work notifications
    for secret in (WECOM["secret"], "xoxb-wrong-token-5555", "sig-secret-1", "ding-secret-7777", SLACK["bot_token"]):
        assert secret not in out


async def test_apps_check_under_a_local_base_url_warns_that_the_platform_cannot_call_back(tmp_path: Path) -> None:
    """Trial 10 #14: ``回调地址：http://127.0.0.1:8080/callback/…`` was printed as if it could be pasted."""
    async with FakeAppApi() as api:
        stream = "  - {id: ding, platform: dingtalk, mode: stream, app_key: k, app_secret: s}\n"
        apps_yaml = wecom_apps(api.url) + stream
        settings = world_with_apps(tmp_path, apps_yaml, "wecom: ZhaoMing")
        env = {"REMINDBOT_SCHEDULES_DIR": str(settings.schedules_dir), "REMINDBOT_VAR_DIR": str(settings.var_dir),
               "REMINDBOT_BASE_URL": None, "PORT": None}
        local = await asyncio.to_thread(CliRunner().invoke, main, ["apps", "check"], env=env)
        env["REMINDBOT_BASE_URL"] = "https://dj.example.gov.cn"
        public = await asyncio.to_thread(CliRunner().invoke, main, ["apps", "check"], env=env)
    assert "回调地址：http://127.0.0.1:8080/callback/wecom/wx" in local.output
    assert ("警告：按本命令的环境，REMINDBOT_BASE_URL 是本机地址 http://127.0.0.1:8080（未设置时的默认值）："
            "平台访问不到上面 wx 的回调地址") in local.output  # not the Stream app: it needs none
    assert "警告" not in public.output and "回调地址：https://dj.example.gov.cn/callback/wecom/wx" in public.output


async def test_a_feishu_reply_is_answered_by_a_direct_message_from_the_app(tmp_path: Path) -> None:
    async with FakeAppApi() as api, aiohttp.ClientSession() as http:
        apps_yaml = f"""apps:
  - {{id: fs, platform: feishu, app_id: {FEISHU['app_id']}, app_secret: {FEISHU['app_secret']},
     verification_token: vt-feishu, api_base: "{api.url}"}}
"""
        settings = world_with_apps(tmp_path, apps_yaml, "feishu: ou_zhao", "feishu: ou_wang")
        clock = Clock(bj(2026, 11, 3, 9, 0))
        runtime = await make_runtime(settings, clock)
        try:
            occ = await fire_due(runtime, "study", bj(2026, 11, 3, 9, 0))
            clock.now = bj(2026, 11, 3, 10, 0)
            event = chat.feishu_message_event("vt-feishu", "ou_wang", f"收到 {short_code(occ)}", uuid.uuid4().hex,
                                             created_ms=str(int(clock.now.timestamp() * 1000)))
            async with serve(make_app(runtime)) as base:
                async with http.post(f"{base}/callback/feishu/fs", json=event) as resp:
                    assert resp.status == 200
            await send_all(runtime, http)
            answers = [s for s in api.sent if s.user == "ou_wang" and "已登记" in s.text]
            assert len(answers) == 1 and "王芳" in answers[0].text  # no answer_channel needed
        finally:
            await runtime.db.stop()


def test_app_sending_credentials_are_validated_with_file_and_line_in_chinese(tmp_path: Path) -> None:
    from bot.config.loader import load_schedules
    from bot.config.yamlsource import ConfigError

    write_world(tmp_path)
    (tmp_path / "schedules" / "apps.yaml").write_text("""apps:
  - id: wx
    platform: wecom
    corp_id: ww1
    secret: app-secret-value-1
    token: t
    encoding_aes_key: kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR
  - id: fs
    platform: feishu
    verification_token: v
    app_secret: feishu-secret-value-2
  - id: sl
    platform: slack
    signing_secret: s
    api_base: slack.com
""", encoding="utf-8")
    with pytest.raises(ConfigError) as exc:
        load_schedules(tmp_path / "schedules")
    text = str(exc.value)
    assert "apps.yaml:2" in text and "还需要填写 agent_id" in text
    assert "apps.yaml:8" in text and "还需要填写 app_id" in text
    assert "apps.yaml:15" in text and "api_base 应为以 https:// 开头" in text
    assert "app-secret-value-1" not in text and "feishu-secret-value-2" not in text


@pytest.mark.parametrize("kind", ["wecom", "dingtalk-notice"])  # both carry the token in the URL
async def test_no_secret_or_access_token_appears_in_logs_or_delivery_records(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, kind: str) -> None:
    caplog.set_level("DEBUG")
    async with FakeAppApi() as api, aiohttp.ClientSession() as http:
        if kind == "wecom":
            settings = world_with_apps(tmp_path, wecom_apps(api.url), "wecom: ZhaoMing")
            secret, token_path = WECOM["secret"], "/cgi-bin/gettoken"
        else:
            settings = world_with_apps(tmp_path, dingtalk_notice_apps(api.url, DINGTALK_AGENT_ID),
                                       "dingtalk: staff-zhao")
            secret, token_path = DINGTALK["app_secret"], "/gettoken"
        runtime = await make_runtime(settings, Clock(bj(2026, 1, 8, 10, 0)))
        try:
            await fire_due(runtime, "duties", bj(2026, 1, 8, 10, 0))
            await send_all(runtime, http)
            api.revoke_tokens()  # the next send meets "invalid token", refreshes and goes again
            runtime.schedules.reminders["duties"].title = "“一岗双责”第二次"
            await fire_due(runtime, "duties", bj(2026, 4, 8, 10, 0))
            await send_all(runtime, http)
            assert len(api.sent) == 2 and sum(api.token_fetches.values()) == 2
            async with runtime.db.session() as session:
                rows = (await session.exec(select(Outbox))).all()
                tries = (await session.exec(select(DeliveryAttempt))).all()
            stored = json.dumps([(r.body, r.last_error) for r in rows] + [t.detail for t in tries], ensure_ascii=False)
            issued = [p[2]["access_token"] for p in api.requests if p[0] == token_path]
            assert len(issued) == 2
            for hidden in (secret, *issued):
                assert hidden not in caplog.text and hidden not in stored
        finally:
            await runtime.db.stop()


async def test_an_apps_direct_messages_share_one_lane_paced_by_the_platforms_per_app_limit(tmp_path: Path) -> None:
    from bot.delivery.compose import mention_for, queue_message

    async with FakeAppApi() as api, aiohttp.ClientSession() as http:
        apps_yaml = f"""apps:
  - {{id: sl, platform: slack, signing_secret: s, bot_token: {SLACK['bot_token']}, api_base: "{api.url}"}}
"""
        settings = world_with_apps(tmp_path, apps_yaml, "slack: UZHAO")
        runtime = await make_runtime(settings, Clock(bj(2026, 1, 8, 10, 0)))
        try:
            channel = direct_channel(runtime, runtime.schedules.people["zhao"])
            assert channel is not None
            async with runtime.db.session() as session:
                for i in range(3):
                    await queue_message(session, runtime.renderer, channel=channel, template="test",
                                        title=f"第{i}条", context={"stage": "test"},
                                        mentions=[mention_for(runtime.schedules.people["zhao"])],
                                        dedupe_key=f"k{i}", occurrence_id=None, stage="test", summary=f"第{i}条",
                                        now=runtime.clock())
                await session.commit()
            assert {r.robot for r in await outbox(runtime, "test")} == {"app:slack:sl"}
            await send_all(runtime, http)
            times = [s.at for s in api.sent]
            assert len(times) == 3 and [s.body["channel"] for s in api.sent] == ["UZHAO"] * 3
            # Slack's chat.postMessage: about one a second per app lane; the three went one after another.
            assert all(b - a >= 0.9 for a, b in itertools.pairwise(times))
        finally:
            await runtime.db.stop()


async def test_apps_check_says_in_chinese_which_host_could_not_be_reached(tmp_path: Path) -> None:
    import socket

    with socket.socket() as sock:  # a loopback port nobody listens on: the connection is refused
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings = world_with_apps(tmp_path, wecom_apps(f"http://127.0.0.1:{port}/cgi-bin?corpsecret=x"), "wecom: ZhaoMing")
    env = {"REMINDBOT_SCHEDULES_DIR": str(settings.schedules_dir), "REMINDBOT_BASE_URL": "https://dj.example.gov.cn",
           "REMINDBOT_VAR_DIR": str(settings.var_dir)}
    result = await asyncio.to_thread(CliRunner().invoke, main, ["apps", "check"], env=env)
    out = result.output
    assert result.exit_code == 1, out
    assert "访问令牌：失败" in out and "无法连接到 127.0.0.1" in out and "请检查网络" in out
    assert "Error" not in out and "corpsecret" not in out and f":{port}" not in out
    assert WECOM["secret"] not in out


async def test_apps_check_says_a_wrong_api_host_is_not_the_platforms_api(tmp_path: Path) -> None:
    """A 404 HTML page (a wrong private-deployment host) is the address's fault, not the credentials'."""

    async def not_found(request: web.Request) -> web.Response:
        return web.Response(status=404, text="<html><body>404 Not Found</body></html>", content_type="text/html")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", not_found)
    async with serve(app) as base:
        apps_yaml = wecom_apps(base) + f"""  - {{id: fs, platform: feishu, app_id: {FEISHU['app_id']},
     app_secret: {FEISHU['app_secret']}, verification_token: vt-feishu, api_base: "{base}"}}
  - {{id: notice, platform: dingtalk, mode: stream, app_key: {DINGTALK['app_key']},
     app_secret: {DINGTALK['app_secret']}, agent_id: {DINGTALK_AGENT_ID}, api_base: "{base}",
     oapi_base: "{base}"}}
"""
        settings = world_with_apps(tmp_path, apps_yaml, "wecom: ZhaoMing")
        env = {"REMINDBOT_SCHEDULES_DIR": str(settings.schedules_dir), "REMINDBOT_BASE_URL": "https://dj.example.gov.cn",
               "REMINDBOT_VAR_DIR": str(settings.var_dir)}
        result = await asyncio.to_thread(CliRunner().invoke, main, ["apps", "check"], env=env)
    out = result.output
    assert result.exit_code == 1, out
    for platform, field in (("企业微信", "api_base"), ("飞书", "api_base"), ("钉钉", "oapi_base")):
        assert f"127.0.0.1 找不到该地址（HTTP 404）：这不是{platform}开放平台的接口地址，请检查 {field}" in out, out
    assert "拒绝了" not in out and "-2（）" not in out  # the credentials are not blamed
    for secret in (WECOM["secret"], FEISHU["app_secret"], DINGTALK["app_secret"], "corpsecret", "appsecret"):
        assert secret not in out


async def test_apps_check_names_the_host_when_a_wrong_api_host_answers_a_5xx_page(tmp_path: Path) -> None:
    """``python3 -m http.server`` answers a POST with 501 HTML: still a retry, but the host and setting are named."""

    async def unsupported(request: web.Request) -> web.Response:
        return web.Response(status=501, text="<html><body>Error code: 501</body></html>", content_type="text/html")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", unsupported)
    async with serve(app) as base:
        apps_yaml = f"""apps:
  - {{id: fs, platform: feishu, app_id: {FEISHU['app_id']},
     app_secret: {FEISHU['app_secret']}, verification_token: vt-feishu, api_base: "{base}"}}
  - {{id: sl, platform: slack, signing_secret: sig-secret-1, bot_token: {SLACK['bot_token']}, api_base: "{base}"}}
"""
        settings = world_with_apps(tmp_path, apps_yaml, "feishu: ou_zhao")
        env = {"REMINDBOT_SCHEDULES_DIR": str(settings.schedules_dir), "REMINDBOT_BASE_URL": "https://dj.example.gov.cn",
               "REMINDBOT_VAR_DIR": str(settings.var_dir)}
        result = await asyncio.to_thread(CliRunner().invoke, main, ["apps", "check"], env=env)
    out = result.output
    assert result.exit_code == 1, out
    for platform in ("飞书", "Slack"):
        assert ("127.0.0.1 返回了服务器错误（HTTP 501），答复不是接口数据；"
                f"如果一直如此，请检查 api_base 是否为{platform}开放平台的接口地址") in out, out
    assert "暂时无法" not in out and "拒绝了" not in out and "不认这个" not in out
    for secret in (FEISHU["app_secret"], SLACK["bot_token"], "sig-secret-1"):
        assert secret not in out


async def test_removing_an_app_kills_its_queued_direct_messages_loudly_naming_the_app(tmp_path: Path) -> None:
    """An app removed from the schedules while its direct messages wait: the reload names the app and what
    becomes of them; each message is recorded dead with a Chinese reason naming the app (the outbox page,
    the admin digest) and counted in ``remindbot_messages_total{outcome="dead"}``."""
    from bot.metrics import REGISTRY
    from bot.watch import removals

    settings = world_with_apps(tmp_path, wecom_apps("https://qyapi.weixin.qq.com"), "wecom: ZhaoMing")
    runtime = await make_runtime(settings, Clock(bj(2026, 1, 8, 10, 0)))
    try:
        await fire_due(runtime, "duties", bj(2026, 1, 8, 10, 0))
        [queued] = [r for r in await outbox(runtime, "due") if r.channel_id == "app:wx"]
        (tmp_path / "schedules" / "apps.yaml").write_text("apps: []\n", encoding="utf-8")
        later = await make_runtime(settings, Clock(bj(2026, 1, 8, 10, 1)), runtime.db)
        said = removals(runtime.schedules, later.schedules, tmp_path / "schedules")
        assert said[0] == "schedules/apps.yaml 变为空，移除了 1 个应用", said
        assert said[1].startswith("移除了 1 个应用：") and "（wx）" in said[1] and "私信不再发送" in said[1], said
        labels = {"platform": "wecom_app", "outcome": "dead"}
        before = REGISTRY.get_sample_value("remindbot_messages_total", labels) or 0.0

        async with aiohttp.ClientSession() as http:
            await send_all(later, http)

        async with runtime.db.session() as session:
            row = (await session.exec(select(Outbox).where(Outbox.id == queued.id))).one()
        assert row.status == "dead" and row.error_kind == "config"
        assert row.last_error == "应用“wx”已从日程配置中移除（或已不能发送私信），这条私信未发出"
        assert REGISTRY.get_sample_value("remindbot_messages_total", labels) == before + 1
    finally:
        await runtime.db.stop()
