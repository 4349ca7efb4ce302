"""Values that are well-formed but not what the admin meant: refused with the fix, or warned about."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_yaml_errors import shipped_copy

from bot.config.loader import check_schedules
from bot.config.yamlsource import ConfigIssue


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return shipped_copy(tmp_path)


def check_edited(folder: Path, *edits: tuple[str, str]) -> tuple[bool, list[ConfigIssue]]:
    """study.yaml with each (old, new) replaced: (valid?, the issues of study.yaml)."""
    path = folder / "study.yaml"
    text = path.read_text(encoding="utf-8")
    for old, new in edits:
        assert old in text
        text = text.replace(old, new, 1)
    path.write_text(text, encoding="utf-8")
    schedules, issues = check_schedules(folder, env={})
    return schedules is not None, [i for i in issues if i.file.endswith("study.yaml")]


def test_a_deadline_without_a_unit_is_refused_with_both_meanings(folder: Path) -> None:
    valid, issues = check_edited(folder, ("deadline: 3wd", "deadline: 5"))
    assert not valid
    assert [str(i) for i in issues] == [
        "schedules/study.yaml:17:17: 错误 字段 reminders[study-day].confirm.deadline："
        "时长 5 缺少单位：写成 5d（天）或 5wd（工作日）。"]


def test_notices_without_units_are_refused_too(folder: Path) -> None:
    valid, issues = check_edited(folder, ("notices: [3d, 1d]", "notices: [3, 1d]"))
    assert not valid and "写成 3d（天）或 3wd（工作日）" in issues[0].message


def test_a_zero_deadline_with_ten_minute_follow_ups_is_warned_about_both(folder: Path) -> None:
    valid, issues = check_edited(folder, ("deadline: 3wd", "deadline: 0d"), ("remind_every: 1d", "remind_every: 10m"))
    assert valid  # still runs: both are warnings
    shown = [str(i) for i in issues if i.warning]
    assert shown == [
        "schedules/study.yaml:17:17: 警告 字段 reminders[study-day].confirm.deadline："
        "截止时长为 0：提醒一发出，所有人就已逾期，立即告知领导，并且每 10分钟 催办一次；"
        "请写留给大家的时间，例如 3d（3天）或 3wd（3个工作日）。",
        "schedules/study.yaml:18:21: 警告 字段 reminders[study-day].confirm.remind_every："
        "每 10分钟 催办一次：未确认的人在工作时间内每 10分钟 就收到一条催办，过于频繁；通常写 1d（每天一次）。",
    ]


def test_the_shipped_deadlines_and_follow_ups_raise_no_warning(folder: Path) -> None:
    valid, issues = check_edited(folder)
    assert valid and not [i for i in issues if "催办" in i.message or "截止" in i.message]
