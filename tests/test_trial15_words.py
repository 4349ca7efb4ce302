"""Trial 15's wording: the platform named as configured (政务微信), Chinese quotes around quoted values,
and ``remindbot confirm`` refusals ending with exactly one 。."""

from __future__ import annotations

import time
from pathlib import Path

from bot.platforms.wecom.config import WeComChannel
from tests.fakes.platforms import FakePlatforms
from tests.test_fire import base_env, run_cli

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
