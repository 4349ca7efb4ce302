"""Values a Chinese input method spoils (the file parses, the value is wrong): the error names the
character to retype, at the value's file:line:column."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_yaml_errors import refused, shipped_copy

from bot.config.loader import check_schedules


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return shipped_copy(tmp_path)


def test_notices_split_by_a_chinese_comma_say_so_and_show_the_list_meant(folder: Path) -> None:
    shown = refused(folder, "notices: [3d, 1d]", "notices: [3d，1d]")
    assert shown.startswith("schedules/study.yaml:11:15: 错误 字段 reminders[study-day].notices[0]：")
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
    assert shown.startswith("schedules/study.yaml:7:16: 错误 字段 reminders[study-day].checklist：")
    assert "应为列表，而不是 “原文学习，交流研讨”：各项之间用了中文逗号 “，”" in shown
    assert "写成 [原文学习, 交流研讨]（或每项一行，以 - 开头）" in shown


def test_roles_split_by_a_chinese_comma_are_one_error_showing_the_list_meant(folder: Path) -> None:
    # The unknown-role check used to read the whole text as one role and add a second error.
    shown = refused(folder, "mention: {roles: [secretary]}", "mention: {roles: secretary，worker}")
    assert shown.startswith("schedules/study.yaml:15:24: 错误 字段 reminders[study-day].recipients.mention.roles：")
    assert "中文逗号 “，”" in shown and "英文逗号" in shown and "写成 [secretary, worker]" in shown


def test_a_persons_roles_split_by_a_chinese_comma_are_one_error(folder: Path) -> None:
    path = folder / "organization.yaml"
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("roles: [admin, worker]", "roles: admin，worker", 1), encoding="utf-8")
    schedules, issues = check_schedules(folder, env={})
    errors = [str(i) for i in issues if not i.warning]
    assert schedules is None and len(errors) == 1, errors
    assert errors[0].startswith("schedules/organization.yaml:69:12: 错误 字段 people[chen_jing].roles：")
    assert "写成 [admin, worker]" in errors[0]


@pytest.mark.parametrize(("written", "name"),
                         [("［3d, 1d］", "全角方括号 “［］”"), ("｛3d, 1d｝", "全角花括号 “｛｝”")])
def test_full_width_brackets_are_named_like_the_comma_and_colon(folder: Path, written: str, name: str) -> None:
    shown = refused(folder, "notices: [3d, 1d]", f"notices: {written}")
    assert f"而不是 “{written}”（用了{name}，请改成英文" in shown, shown
