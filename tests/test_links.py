"""Links to the service under a base URL only this machine opens: said at ``serve``'s start and by ``validate``
(trial 9: personal confirmation links went out as http://127.0.0.1:8080/c/… to a real webhook, silently)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from click.testing import CliRunner

from bot.cli import main
from bot.config.loader import load_schedules
from bot.config.models import Schedules
from bot.links import base_url_warning, linking_targets, local_only
from bot.service import log_admin_area
from bot.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
OA = "https://oa.example.invalid/push/secret-path-0042"
GW = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=gw-secret-key-0043"


def shipped(**env: str) -> Schedules:
    return load_schedules(ROOT / "schedules", templates_dir=ROOT / "message_templates", env=env)


@pytest.mark.parametrize("url,local", [
    ("http://127.0.0.1:8080", True), ("http://localhost:8080", True), ("http://LOCALHOST.", True),
    ("http://127.0.1.1", True), ("http://[::1]:8080", True), ("http://0.0.0.0:8080", True),
    ("http://app.localhost", True), ("", True),
    ("https://dj.example.gov.cn", False), ("http://10.1.2.3:8080", False), ("http://192.168.1.5", False),
])
def test_a_base_url_is_local_only_for_loopback_names_and_addresses(url: str, local: bool) -> None:
    assert local_only(url) is local


def test_channels_with_personal_links_or_a_report_are_named_only_when_they_really_send() -> None:
    assert linking_targets(shipped()) == []  # every channel records only: nothing goes out
    assert linking_targets(shipped(REMINDBOT_OA_WEBHOOK=OA)) == ["机关协同办公平台待办推送"]  # personal_links
    # The monthly 通报 goes to this group: its chart and ranking link to the service.
    assert linking_targets(shipped(REMINDBOT_GW_WECOM_WEBHOOK=GW)) == ["市直机关党务工作群（政务微信）"]
    assert linking_targets(shipped(REMINDBOT_JYJ_FEISHU_WEBHOOK="https://open.feishu.cn/open-apis/bot/v2/hook/x")) == []


def test_the_warning_names_the_channels_and_the_setting_never_a_webhook(tmp_path: Path) -> None:
    schedules = shipped(REMINDBOT_OA_WEBHOOK=OA, REMINDBOT_GW_WECOM_WEBHOOK=GW)
    warning = base_url_warning(Settings(base_url="", port=8080, var_dir=tmp_path), schedules)
    assert warning == ("REMINDBOT_BASE_URL 是本机地址 http://127.0.0.1:8080（未设置时的默认值），但发往 "
                       "市直机关党务工作群（政务微信）、机关协同办公平台待办推送 的消息带有指向本服务的链接"
                       "（个人确认链接、领导页面、通报图表等），收到的人打不开。"
                       "请把 REMINDBOT_BASE_URL 设为大家能访问的地址（建议 https:// 开头）后重启服务。")
    localhost = base_url_warning(Settings(base_url="http://localhost:9000/", var_dir=tmp_path), schedules)
    assert localhost is not None and "是本机地址 http://localhost:9000，" in localhost
    assert base_url_warning(Settings(base_url="https://dj.example.gov.cn", var_dir=tmp_path), schedules) is None
    assert base_url_warning(Settings(base_url="", dry_run=True, var_dir=tmp_path), schedules) is None  # nothing is sent
    assert base_url_warning(Settings(base_url="", var_dir=tmp_path), shipped()) is None  # every channel records only


def test_validate_warns_as_this_commands_view(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("REMINDBOT_BASE_URL", "PORT", "REMINDBOT_DRY_RUN", "REMINDBOT_SCHEDULES_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("REMINDBOT_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("REMINDBOT_OA_WEBHOOK", OA)
    result = CliRunner().invoke(main, ["validate"])
    assert result.exit_code == 0, result.output
    assert ("警告：按本命令的环境，REMINDBOT_BASE_URL 是本机地址 http://127.0.0.1:8080（未设置时的默认值），"
            "但发往 机关协同办公平台待办推送 的消息带有指向本服务的链接") in result.output
    assert "配置无误" in result.output and OA not in result.output and "secret-path" not in result.output
    monkeypatch.setenv("REMINDBOT_BASE_URL", "https://dj.example.gov.cn")
    quiet = CliRunner().invoke(main, ["validate"])
    assert quiet.exit_code == 0 and "REMINDBOT_BASE_URL" not in quiet.output


def test_the_start_says_where_the_admin_area_is_and_how_to_open_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bot.service")
    log_admin_area(Settings(base_url="https://dj.example.gov.cn", admin_user="", admin_password="", admins="",
                            var_dir=tmp_path))
    log_admin_area(Settings(base_url="https://dj.example.gov.cn", admin_user="gongwei",
                            admin_password="long-enough-password", var_dir=tmp_path))
    closed, opened = (r.getMessage() for r in caplog.records if r.name == "bot.service")
    assert closed == ("管理页面：https://dj.example.gov.cn/admin/（未开启：设置 REMINDBOT_ADMINS（多个管理员），"
                      "或 REMINDBOT_ADMIN_USER 和 REMINDBOT_ADMIN_PASSWORD，重启服务后开启）")
    assert opened == "管理页面：https://dj.example.gov.cn/admin/"
    assert "long-enough-password" not in caplog.text
