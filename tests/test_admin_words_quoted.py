"""Trial 15's wording: the platform named as configured (政务微信) and Chinese quotes around the values
an admin wrote (``remindbot confirm`` refusals ending with one 。: tests/test_cli_confirmations.py)."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from bot.config.loader import check_schedules
from bot.platforms.wecom.config import WeComChannel
from tests.fakes.platforms import FakePlatforms
from tests.test_config import GOOD_REMINDER
from tests.test_fire import ROOT, base_env, run_cli

# ---------------------------------------------------------------- the platform as configured


async def test_send_test_to_a_政务微信_channel_names_政务微信_in_its_failure(tmp_path: Path) -> None:
    async with FakePlatforms(clock=time.time) as fakes:
        robot = fakes.wecom()
        robot.fail_next(1, status=500)
        env = base_env(tmp_path) | {"REMINDBOT_GW_WECOM_WEBHOOK": robot.url}
        code, out, err = await run_cli(env, "send-test", "gw_wecom")  # 市直机关党务工作群（政务微信）
    assert code == 1, out + err
    assert "发送失败（暂时失败，稍后重试可能成功）：政务微信" in err, err
    assert "企业微信" not in out + err


def test_a_政务微信_webhook_without_key_is_named_政务微信() -> None:
    channel = WeComChannel(id="g", name="党务群", platform="wecom",
                           webhook="https://wx.gov.example.cn/cgi-bin/webhook/send?token=abc")
    assert (channel.webhook_problem() or "").startswith("政务微信机器人的 webhook 应含 key=…")


# ---------------------------------------------------------------- Chinese quotes around what the admin wrote



def messages_for(tmp_path: Path, name: str, text: str) -> list[str]:
    folder = tmp_path / "schedules"
    shutil.copytree(ROOT / "schedules", folder)
    (folder / name).write_text(text, encoding="utf-8")
    schedules, issues = check_schedules(folder, templates_dir=ROOT / "message_templates", env={})
    assert schedules is None
    return [i.message for i in issues if not i.warning]


def test_a_wrong_time_of_day_is_quoted_in_chinese_quotes(tmp_path: Path) -> None:
    [message] = messages_for(tmp_path, "extra.yaml", GOOD_REMINDER.replace('"09:00"', '"25:00"'))
    assert message == "应为一天中的时刻，写成 HH:MM，例如 \"09:00\"，而不是 “25:00”"  # the example is YAML to type


def test_an_unknown_timezone_is_quoted_in_chinese_quotes(tmp_path: Path) -> None:
    text = GOOD_REMINDER.replace('      at: "09:00"\n', '      at: "09:00"\n    timezone: Asia/Beijing\n')
    [message] = messages_for(tmp_path, "extra.yaml", text)
    assert "未知时区 “Asia/Beijing”，例如 Asia/Shanghai" in message and "'" not in message


def test_an_unknown_platform_is_quoted_in_chinese_quotes(tmp_path: Path) -> None:
    text = "channels:\n  - id: extra_ch\n    name: 测试群\n    platform: wechat\n"
    messages = messages_for(tmp_path, "extra.yaml", text)
    [message] = [m for m in messages if "wechat" in m]
    assert "而不是 “wechat”" in message and "'" not in message

