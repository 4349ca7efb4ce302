"""Values that are well-formed but not what the admin meant: refused with the fix, or warned about."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bot.config.loader import check_schedules
from bot.config.yamlsource import ConfigIssue

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "schedules"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    target = tmp_path / "schedules"
    shutil.copytree(SHIPPED, target)
    return target


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
        "schedules/study.yaml:17:17: 错误 字段 reminders[0].confirm.deadline："
        "时长 5 缺少单位：写成 5d（天）或 5wd（工作日）"]


def test_notices_without_units_are_refused_too(folder: Path) -> None:
    valid, issues = check_edited(folder, ("notices: [3d, 1d]", "notices: [3, 1d]"))
    assert not valid and "写成 3d（天）或 3wd（工作日）" in issues[0].message
