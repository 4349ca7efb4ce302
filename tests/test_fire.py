"""Firing the shipped schedules end to end: `remindbot preview` and `remindbot fire` against fake platforms."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import time
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import select

from bot.config.loader import load_schedules
from bot.delivery.render import Renderer
from bot.runtime import Runtime
from bot.scheduling.occurrences import fire
from bot.scheduling.timing import Fire, due_times
from bot.scheduling.workdays import WorkCalendar
from bot.settings import Settings
from storage.db import Database
from storage.models import Expectation, Occurrence, Outbox
from tests.fakes.platforms import FakePlatforms

ROOT = Path(__file__).resolve().parent.parent
BJ = ZoneInfo("Asia/Shanghai")
SECRETS = {"ding": "SEC-ding-secret-0001", "feishu": "feishu-secret-0002", "oa": "oa-signing-secret-0003"}


async def run_cli(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", *args, cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    return proc.returncode or 0, out.decode(), err.decode()


def base_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REMINDBOT_")}
    env.update({
        "REMINDBOT_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}",
        "REMINDBOT_VAR_DIR": str(tmp_path / "var"),
        "REMINDBOT_SECRET_KEY": "test-signing-key",
        "REMINDBOT_BASE_URL": "https://dj.example.gov.cn",
    })
    return env


async def test_fire_sends_the_study_day_to_every_platform_once(tmp_path: Path) -> None:
    async with FakePlatforms(clock=time.time) as fakes:
        wecom = fakes.wecom()
        leaders = fakes.wecom()
        ding = fakes.dingtalk(secret=SECRETS["ding"])
        feishu = fakes.feishu(secret=SECRETS["feishu"])
        oa = fakes.generic(secret=SECRETS["oa"])
        env = base_env(tmp_path) | {
            "REMINDBOT_GW_WECOM_WEBHOOK": wecom.url,
            "REMINDBOT_LEADERS_WECOM_WEBHOOK": leaders.url,
            "REMINDBOT_CZJ_DINGTALK_WEBHOOK": ding.url,
            "REMINDBOT_CZJ_DINGTALK_SECRET": SECRETS["ding"],
            "REMINDBOT_JYJ_FEISHU_WEBHOOK": feishu.url,
            "REMINDBOT_JYJ_FEISHU_SECRET": SECRETS["feishu"],
            "REMINDBOT_OA_WEBHOOK": oa.url,
            "REMINDBOT_OA_SECRET": SECRETS["oa"],
        }
        code, out, err = await run_cli(env, "fire", "study-day", "--date", "2026-12-04")
        assert code == 0, err
        assert "成功" in out and "失败 0 条" in out
        # Trial 9: the number link, confirm and excuse take is said, as `fire --dry-run` says its own.
        db = Database(env["REMINDBOT_DATABASE_URL"])
        await db.start()
        async with db.session() as session:
            [occurrence] = (await session.exec(select(Occurrence))).all()
        await db.stop()
        assert f"条消息。记录号 {occurrence.id}（用于 remindbot link、confirm、excuse）。" in out

        # One group message per group chat, mentioning that group's secretaries.
        assert len(wecom.received) == 1
        assert wecom.received[0].notified >= {"WangFang", "LiuYang"}
        assert "每月学习日" in wecom.received[0].text
        assert len(ding.received) >= 1 and "13800000103" in ding.received[0].notified
        assert len(feishu.received) == 1
        # The OA gateway allows personal links: one message per secretary, each with their own link.
        links = [r.json["button"]["url"] for r in oa.received]
        assert len(links) == 5 and len(set(links)) == 5
        assert all(link.startswith("https://dj.example.gov.cn/c/") for link in links)
        assert leaders.received == []

        # Firing the same occurrence again sends nothing more.
        code, out, _ = await run_cli(env, "fire", "study-day", "--date", "2026-12-04")
        assert code == 0 and "不会重复发送" in out
        assert len(wecom.received) == 1 and len(oa.received) == 5

        for secret in [*SECRETS.values(), wecom.url.split("key=")[-1]]:
            assert secret not in out and secret not in err


async def test_preview_prints_platform_bodies_with_webhooks_masked(tmp_path: Path) -> None:
    key = "0123456789abcdef-secret-key"
    env = base_env(tmp_path) | {
        "REMINDBOT_GW_WECOM_WEBHOOK": f"https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key={key}",
    }
    code, out, err = await run_cli(env, "preview", "study-day", "--date", "2026-12-04", "--person", "wang_fang")
    assert code == 0, err
    assert '"msgtype": "markdown"' in out
    assert "<@WangFang>" in out
    assert key not in out and "key=***" in out
    # A channel without a webhook is record-only, not a rehearsal (演练 means --dry-run only).
    code, out, err = await run_cli(base_env(tmp_path), "preview", "study-day", "--date", "2026-12-04")
    assert code == 0, err
    # Said as this command's view: the service's environment may hold the webhook (trial 9).
    assert "→ 未配置 webhook（按本命令的环境，只记录、不发送）" in out and "演练" not in out + err
    # The preview writes nothing: no occurrence exists afterwards.
    db = Database(env["REMINDBOT_DATABASE_URL"])
    await db.start()
    async with db.session() as session:
        assert (await session.exec(select(Occurrence))).all() == []
    await db.stop()


async def test_preview_takes_a_persons_name_as_link_confirm_and_excuse_do(tmp_path: Path) -> None:
    # Trial 9: `--person 王芳` was refused (没有标识为 “王芳” 的人员) while `link 3 王芳` took it.
    by_id = await run_cli(base_env(tmp_path), "preview", "study-day", "--date", "2026-12-04", "--person", "wang_fang")
    by_name = await run_cli(base_env(tmp_path), "preview", "study-day", "--date", "2026-12-04", "--person", "王芳")
    assert by_id[0] == by_name[0] == 0, by_name[2]
    assert by_name[1] == by_id[1] and "王芳" in by_name[1]
    code, _, err = await run_cli(base_env(tmp_path), "preview", "study-day", "--date", "2026-12-04",
                                   "--person", "张三")
    assert code == 1 and "找不到人员 “张三”：请写日程配置中的人员标识或姓名" in err


async def test_preview_on_a_day_without_the_reminder_says_when_it_is(tmp_path: Path) -> None:
    code, _, err = await run_cli(base_env(tmp_path), "preview", "study-day", "--date", "2026-12-03")
    assert code == 1
    assert "没有提醒" in err and "2026年12月4日" in err


@pytest.fixture
async def runtime(tmp_path: Path) -> Runtime:
    settings = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}", var_dir=tmp_path / "var",
                        secret_key="k")
    schedules = load_schedules(ROOT / "schedules", templates_dir=ROOT / "message_templates", env={})
    db = Database(settings.database_url)
    await db.start()
    rt = Runtime(settings=settings, db=db, schedules=schedules, calendar=WorkCalendar(schedules.calendar),
                 renderer=Renderer(ROOT / "message_templates"),
                 clock=lambda: datetime(2026, 12, 4, 9, 0, tzinfo=BJ))
    yield rt
    await db.stop()


def study_day_fire(rt: Runtime, day: date) -> Fire:
    reminder = rt.schedules.reminders["study-day"]
    start = datetime.combine(day, datetime.min.time(), tzinfo=BJ)
    due = due_times(reminder, rt.calendar, start, start.replace(hour=23))[0]
    return Fire("study-day", "due", due.due_at, due, None)


async def test_firing_twice_creates_one_occurrence_and_one_set_of_messages(runtime: Runtime) -> None:
    f = study_day_fire(runtime, date(2026, 12, 4))
    first = await fire(runtime, f)
    again = await fire(runtime, f)
    assert first.occurrence_id == again.occurrence_id
    assert first.queued > 0 and again.queued == 0
    async with runtime.db.session() as session:
        assert len((await session.exec(select(Occurrence))).all()) == 1
        assert len((await session.exec(select(Outbox))).all()) == first.queued


async def test_expected_confirmers_are_fixed_when_the_reminder_fires(runtime: Runtime) -> None:
    f = study_day_fire(runtime, date(2026, 12, 4))
    result = await fire(runtime, f)
    # A later edit (a secretary leaves) does not rewrite who owed this occurrence's confirmation.
    del runtime.schedules.people["zheng_tao"]
    await fire(runtime, f)
    async with runtime.db.session() as session:
        rows = (await session.exec(select(Expectation).where(Expectation.occurrence_id == result.occurrence_id))).all()
    assert {r.person_id for r in rows} == {"wang_fang", "liu_yang", "zhou_hua", "wu_min", "zheng_tao"}
    by_person = {r.person_id: r for r in rows}
    assert by_person["wang_fang"].unit_name == "市发展改革委机关第一党支部"
    assert by_person["wang_fang"].leader_ids == ["zhao_ming"]
    occ_deadline = (await _occurrence(runtime, result.occurrence_id)).deadline_at
    # 3 working days after Friday 2026-12-04, at the end of the working day.
    assert occ_deadline.astimezone(BJ) == datetime(2026, 12, 9, 18, 0, tzinfo=BJ)


async def _occurrence(rt: Runtime, occ_id: int) -> Occurrence:
    async with rt.db.session() as session:
        return (await session.exec(select(Occurrence).where(Occurrence.id == occ_id))).one()


async def test_group_chats_never_carry_personal_links(runtime: Runtime) -> None:
    await fire(runtime, study_day_fire(runtime, date(2026, 12, 4)))
    async with runtime.db.session() as session:
        rows = (await session.exec(select(Outbox))).all()
    for row in rows:
        channel = runtime.schedules.channels[row.channel_id]
        has_link = "/c/" in str(row.body)
        assert has_link == channel.personal_links, row.channel_id


async def test_a_notice_mentions_the_coming_day_and_records_no_expectations(runtime: Runtime) -> None:
    reminder = runtime.schedules.reminders["study-day"]
    start = datetime(2026, 11, 30, tzinfo=BJ)
    from bot.scheduling.timing import fires

    notice = next(f for f in fires(reminder, runtime.calendar, start, datetime(2026, 12, 4, tzinfo=BJ))
                  if f.stage == "notice:3d")
    await fire(runtime, notice)
    async with runtime.db.session() as session:
        assert (await session.exec(select(Expectation))).all() == []
        body = str((await session.exec(select(Outbox).where(Outbox.channel_id == "gw_wecom"))).first().body)
    assert "【预告】" in body and "3天后" in body


async def test_send_test_reports_success_and_the_platform_answer_in_plain_words(tmp_path: Path) -> None:
    async with FakePlatforms(clock=time.time) as fakes:
        good = fakes.dingtalk(secret=SECRETS["ding"])
        env = base_env(tmp_path) | {
            "REMINDBOT_CZJ_DINGTALK_WEBHOOK": good.url,
            "REMINDBOT_CZJ_DINGTALK_SECRET": SECRETS["ding"],
        }
        code, out, err = await run_cli(env, "send-test", "czj_dingtalk")
        assert code == 0, err
        assert "发送成功" in out and len(good.received) == 1
        assert "测试消息" in good.received[0].text

        env["REMINDBOT_CZJ_DINGTALK_SECRET"] = "SEC-not-the-robots-secret"
        code, out, err = await run_cli(env, "send-test", "czj_dingtalk")
        assert code == 1
        assert "加签密钥不匹配" in err and "310000" in err
        assert "SEC-not-the-robots-secret" not in out + err
        assert good.url.split("access_token=")[-1] not in out + err


async def test_send_test_in_rehearsal_mode_is_refused_and_sends_nothing(tmp_path: Path) -> None:
    # Trial 13: `REMINDBOT_DRY_RUN=true remindbot send-test` sent for real, saying nothing of rehearsal mode.
    async with FakePlatforms(clock=time.time) as fakes:
        good = fakes.dingtalk(secret=SECRETS["ding"])
        env = base_env(tmp_path) | {"REMINDBOT_CZJ_DINGTALK_WEBHOOK": good.url,
                                    "REMINDBOT_CZJ_DINGTALK_SECRET": SECRETS["ding"], "REMINDBOT_DRY_RUN": "true"}
        code, out, err = await run_cli(env, "send-test", "czj_dingtalk")
        assert code == 1 and good.requests == []
        assert "演练模式（REMINDBOT_DRY_RUN）下不发送测试消息" in err
        assert err.rstrip().endswith("去掉 REMINDBOT_DRY_RUN（或设为 false）后再试。") and "。。" not in err
        assert "发送成功" not in out + err


async def test_send_test_to_an_unknown_channel_names_the_one_meant(tmp_path: Path) -> None:
    code, _, err = await run_cli(base_env(tmp_path), "send-test", "gw_wecon")
    assert code == 1 and "没有标识为 “gw_wecon” 的频道，是不是 “gw_wecom”？可用的有：admin_wecom、gw_wecom" in err


async def test_send_test_to_a_channel_without_webhook_says_it_is_record_only(tmp_path: Path) -> None:
    code, _, err = await run_cli(base_env(tmp_path), "send-test", "gw_wecom")
    assert code == 1 and "没有配置 webhook（只记录、不发送）" in err and "演练" not in err
    assert "请设置环境变量 REMINDBOT_GW_WECOM_WEBHOOK（schedules/channels.yaml:20 的 webhook 引用了它）" in err


async def test_send_test_without_a_variable_names_the_line_to_edit(tmp_path: Path) -> None:
    folder = tmp_path / "schedules"
    shutil.copytree(ROOT / "schedules", folder)
    channels = (folder / "channels.yaml").read_text(encoding="utf-8")
    (folder / "channels.yaml").write_text(
        channels.replace("webhook: ${REMINDBOT_GW_WECOM_WEBHOOK:-}", 'webhook: ""'), encoding="utf-8")
    env = base_env(tmp_path) | {"REMINDBOT_SCHEDULES_DIR": str(folder)}
    code, _, err = await run_cli(env, "send-test", "gw_wecom")
    assert code == 1 and f"请在 {folder / 'channels.yaml'}:20 填写该频道的 webhook 后再试。" in err
    (folder / "channels.yaml").write_text(channels.replace("    webhook: ${REMINDBOT_GW_WECOM_WEBHOOK:-}\n", ""),
                                          encoding="utf-8")
    code, _, err = await run_cli(env, "send-test", "gw_wecom")
    assert code == 1 and f"请在 {folder / 'channels.yaml'}:17 为该频道加上 webhook 后再试。" in err


async def test_a_dry_run_never_uses_up_the_real_send(tmp_path: Path) -> None:
    async with FakePlatforms(clock=time.time) as fakes:
        wecom = fakes.wecom()
        env = base_env(tmp_path)
        code, out, err = await run_cli(env, "fire", "study-day", "--date", "2026-12-04", "--dry-run")
        assert code == 0, err
        assert "演练" in out and wecom.received == []
        assert "/c/***" in err + out and "/c/Wz" not in err + out  # tokens are credentials: masked

        env["REMINDBOT_GW_WECOM_WEBHOOK"] = wecom.url
        code, out, err = await run_cli(env, "fire", "study-day", "--date", "2026-12-04")
        assert code == 0, err
        assert len(wecom.received) == 1


async def test_links_from_a_reset_database_never_confirm_the_new_one(tmp_path: Path) -> None:
    from bot.confirming.tokens import TokenError, make_token, read_token
    from bot.service import open_runtime

    def settings(name: str) -> Settings:
        return Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / name}", var_dir=tmp_path / "var",
                        secret_key="the-same-secret-key")

    async with open_runtime(settings("old.db")) as old:
        token = make_token(old.link_key, 1, "wang_fang")
        assert read_token(old.link_key, token, 86400) == (1, "wang_fang")
    async with open_runtime(settings("new.db")) as new:  # deleted and recreated, same secret key
        with pytest.raises(TokenError) as refused:
            read_token(new.link_key, token, 86400)
        assert refused.value.reason == "forged"
