"""Values a Chinese input method spoils (the file parses, the value is wrong): the error names the
character to retype, at the value's file:line:column."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_yaml_errors import refused, shipped_copy


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return shipped_copy(tmp_path)


def test_notices_split_by_a_chinese_comma_say_so_and_show_the_list_meant(folder: Path) -> None:
    shown = refused(folder, "notices: [3d, 1d]", "notices: [3d，1d]")
    assert shown.startswith("schedules/study.yaml:11:15: 错误 字段 reminders[0].notices[0]：")
    assert "中文逗号 “，”" in shown and "英文逗号 “,”" in shown and "[3d, 1d]" in shown


def test_a_time_in_chinese_quotes_says_so(folder: Path) -> None:
    shown = refused(folder, 'at: "09:00"', "at: “09:00”")
    assert shown.startswith("schedules/study.yaml:9:11: ")
    assert "而不是 “09:00”（用了中文引号 “”，请改成英文引号 \"\"）" in shown


def test_a_duration_in_chinese_quotes_says_so(folder: Path) -> None:
    shown = refused(folder, "deadline: 3wd", "deadline: “3wd”")
    assert "无法识别的时长 “3wd”（用了中文引号 “”" in shown


def test_channels_split_by_a_chinese_comma_say_so(folder: Path) -> None:
    shown = refused(folder, "channels: [gw_wecom, czj_dingtalk,", "channels: [gw_wecom，czj_dingtalk,")
    assert "未知的频道 “gw_wecom，czj_dingtalk”（用了中文逗号 “，”，请改成英文逗号 “,”）" in shown


def test_a_list_written_with_a_chinese_comma_and_no_brackets_says_so(folder: Path) -> None:
    shown = refused(folder, "    title: 每月学习日\n", "    title: 每月学习日\n    checklist: 原文学习，交流研讨\n")
    assert shown.startswith("schedules/study.yaml:7:16: 错误 字段 reminders[0].checklist：")
    assert "应为列表（每项以 - 开头），而不是 原文学习，交流研讨（用了中文逗号 “，”，请改成英文逗号 “,”）" in shown
