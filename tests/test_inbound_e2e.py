"""End to end on loopback: a reminder fires with its reply code, the secretary replies in DingTalk,
``remindbot status`` shows the chat confirmation with its note, and follow-ups stop for her.

Also the ``apps:`` section as an admin meets it: ``${VAR}`` secrets, errors with file:line in Chinese.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from click.testing import CliRunner
from test_followup import WORLD_YAML, Clock, bj, fire_due, make_runtime, outbox, write_world

from bot.cli.confirmations import status
from bot.config.loader import load_schedules
from bot.config.yamlsource import ConfigError
from bot.confirming.followup import FollowUps
from bot.confirming.inbound import short_code
from bot.platforms.apps import callback_url
from bot.platforms.dingtalk.config import DingTalkApp
from bot.settings import Settings
from bot.web import make_app
from tests.fakes import chat
from tests.test_web_confirm import serve

APPS_YAML = """
apps:
  - id: ding-app
    platform: dingtalk
    app_secret: ${TEST_DING_SECRET}
"""
SECRET = "e2e-ding-app-secret"


def inbound_world(folder: Path, fake: str) -> Path:
    text = WORLD_YAML.replace(
        "{id: wang, name: 王芳, roles: [secretary], unit: fgw_b1, mobile: \"13800000101\"}",
        "{id: wang, name: 王芳, roles: [secretary], unit: fgw_b1, mobile: \"13800000101\",\n"
        "     ids: {dingtalk: staff-wang}}",
    ).replace(
        "recipients: {channels: [group, oa], mention: {roles: [secretary]}}",
        "recipients: {channels: [group, ding], mention: {roles: [secretary]}}",
    ).replace(
        "  - {id: oa, name: 协同办公待办, platform: generic, personal_links: true}",
        "  - {id: oa, name: 协同办公待办, platform: generic, personal_links: true}\n"
        f"  - {{id: ding, name: 钉钉党务群, platform: dingtalk, webhook: \"{fake}/robot/send?access_token=t\"}}",
    )
    assert "staff-wang" in text and "[group, ding]" in text and "钉钉党务群" in text
    write_world(folder)
    (folder / "schedules" / "world.yaml").write_text(text, encoding="utf-8")
    (folder / "schedules" / "apps.yaml").write_text(APPS_YAML, encoding="utf-8")
    return folder


async def test_a_chat_reply_is_recorded_shown_by_status_and_stops_the_follow_ups(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_DING_SECRET", SECRET)
    answers: list[dict[str, object]] = []

    async def session_webhook(request: web.Request) -> web.Response:
        answers.append(await request.json())
        return web.json_response({"errcode": 0, "errmsg": "ok"})

    fake = web.Application()
    fake.router.add_post("/session", session_webhook)
    async with serve(fake) as fake_url:
        inbound_world(tmp_path, fake_url)
        settings = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'remindbot.db'}",
                            schedules_dir=tmp_path / "schedules", var_dir=tmp_path / "var",
                            secret_key="e2e-signing-key-0123456789", base_url="https://dj.example.gov.cn")
        clock = Clock(bj(2026, 11, 3, 9, 0))
        runtime = await make_runtime(settings, clock)
        try:
            app = runtime.schedules.apps["ding-app"]
            assert isinstance(app, DingTalkApp) and app.app_secret.get_secret_value() == SECRET
            occ = await fire_due(runtime, "study", bj(2026, 11, 3, 9, 0))
            code = short_code(occ)
            ding = [r for r in await outbox(runtime, "due") if r.channel_id == "ding"]
            group = [r for r in await outbox(runtime, "due") if r.channel_id == "group"]
            assert ding and f"回复“确认 {code}”" in json.dumps([r.body for r in ding], ensure_ascii=False)
            assert code not in json.dumps([r.body for r in group], ensure_ascii=False)  # no app: no code

            clock.now = bj(2026, 11, 3, 11, 0)
            async with serve(make_app(runtime)) as base, aiohttp.ClientSession() as http:
                url = callback_url(base, app)
                assert url == f"{base}/callback/dingtalk/ding-app"
                ts = str(int(clock.now.timestamp() * 1000))
                body = chat.dingtalk_message("staff-wang", f"已完成 {code} 参加23人", uuid.uuid4().hex,
                                             f"{fake_url}/session", nick="王芳")
                async with http.post(url, json=body, headers={"timestamp": ts, "sign": chat.dingtalk_sign(SECRET, ts)}
                                     ) as resp:
                    assert resp.status == 200
            [answer] = answers
            assert "已登记 王芳" in answer["text"]["content"] and "每月学习日" in answer["text"]["content"]  # type: ignore[index]

            env = {"REMINDBOT_DATABASE_URL": settings.database_url,
                   "REMINDBOT_SCHEDULES_DIR": str(settings.schedules_dir),
                   "REMINDBOT_VAR_DIR": str(settings.var_dir), "REMINDBOT_SECRET_KEY": "e2e-signing-key-0123456789",
                   "TEST_DING_SECRET": SECRET}
            result = await asyncio.to_thread(CliRunner().invoke, status, ["study"], env=env, catch_exceptions=False)
            assert result.exit_code == 0, result.output
            wang = next(line for line in result.output.splitlines() if "王芳" in line)
            assert "群内回复" in wang and "参加23人" in wang

            assert await FollowUps(runtime).run_once(bj(2026, 11, 4, 9, 0)) > 0
            followups = json.dumps([r.body for r in await outbox(runtime, "followup:1")], ensure_ascii=False)
            assert "刘洋" in followups and "王芳" not in followups
        finally:
            await runtime.db.stop()


# ---------------------------------------------------------------- the apps section


def test_app_secrets_come_from_the_environment(tmp_path: Path) -> None:
    write_world(tmp_path)
    (tmp_path / "schedules" / "apps.yaml").write_text(APPS_YAML, encoding="utf-8")
    schedules = load_schedules(tmp_path / "schedules", env={"TEST_DING_SECRET": "from-env"})
    assert schedules.apps["ding-app"].app_secret.get_secret_value() == "from-env"
    with pytest.raises(ConfigError) as exc:
        load_schedules(tmp_path / "schedules", env={})
    assert "TEST_DING_SECRET" in str(exc.value) and "apps.yaml:5" in str(exc.value)


def test_app_errors_name_file_and_line_in_chinese_without_showing_secrets(tmp_path: Path) -> None:
    write_world(tmp_path)
    (tmp_path / "schedules" / "apps.yaml").write_text("""apps:
  - id: wx
    platform: wecom
    token: tok
    encoding_aes_key: short-secret-key
  - id: ding
    platform: dingtalk
    mode: stream
    app_secret: s
  - id: fs
    platform: feishu
    verification_token: v
    answer_channel: nope
  - id: sl
    platform: slak
  - id: wx2
    platform: wecom
    token: tok
    encoding_aes_key: kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR
""", encoding="utf-8")
    with pytest.raises(ConfigError) as exc:
        load_schedules(tmp_path / "schedules")
    text = str(exc.value)
    assert "apps.yaml:5" in text and "EncodingAESKey 应为 43 个字符" in text
    assert "apps.yaml:16" in text and "需要填写 corp_id" in text  # an app needs its corp id
    assert "stream 模式需要填写 app_key" in text
    assert "apps.yaml:13" in text and "未知的频道 “nope”" in text
    assert "apps.yaml:15" in text
    assert "short-secret-key" not in text


def test_two_people_with_the_same_platform_id_are_refused(tmp_path: Path) -> None:
    write_world(tmp_path)
    (tmp_path / "schedules" / "more.yaml").write_text("""people:
  - {id: a1, name: 甲, ids: {wecom: SameId}}
  - {id: a2, name: 乙, ids: {wecom: SameId}}
""", encoding="utf-8")
    with pytest.raises(ConfigError) as exc:
        load_schedules(tmp_path / "schedules")
    assert "more.yaml:3" in str(exc.value) and "与人员 “a1” 重复" in str(exc.value)
