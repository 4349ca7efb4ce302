"""A person's role that no reminder selects but that is a typo of one that is (`roles: [secretry]`):
`validate` warns at the person, since otherwise the person silently drops out of every reminder."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from bot.cli import main
from bot.config.loader import check_schedules

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("REMINDBOT_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("REMINDBOT_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}")
    monkeypatch.chdir(tmp_path)  # issues are printed relative to the admin's folder
    shutil.copytree(ROOT / "schedules", tmp_path / "schedules")
    return tmp_path / "schedules"


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def line_of(path: Path, text: str) -> int:
    return next(n for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if text in line)


def warnings_of(folder: Path) -> list[str]:
    _, issues = check_schedules(folder, env={})
    return [f"{i.file}:{i.line}:{i.column}: {i.message}" for i in issues if i.warning]


def test_a_mistyped_role_in_yaml_is_a_warning_at_the_person_naming_the_role_meant(folder: Path) -> None:
    org = folder / "organization.yaml"
    edit(org, "roles: [secretary]", "roles: [secretry]")
    result = CliRunner().invoke(main, ["validate", str(folder)])
    assert result.exit_code == 0, result.output  # a warning: the schedules still load
    at = line_of(org, "secretry")
    assert (f"schedules/organization.yaml:{at}:13: 警告 字段 people[wang_fang].roles[0]："
            "角色 “secretry” 没有任何提醒使用，是不是 “secretary”？") in result.output
    assert "配置无误" in result.output


def test_a_mistyped_role_cell_is_one_warning_at_its_first_cell_counting_the_people(folder: Path) -> None:
    (folder / "people-extra.csv").write_text(
        "标识,姓名,单位,角色\n"
        "x1,张三,fgw_b1,\"worker, secretry\"\n"
        "x2,李四,fgw_b1,secretry\n"
        "x3,王五,fgw_b1,amdin\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["validate", "schedules"])  # given relative: shown relative
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if "没有任何提醒使用" in line]
    assert lines == [
        "schedules/people-extra.csv:2:4: 警告 列 “角色”：角色 “secretry” 没有任何提醒使用（2 人具有此角色），"
        "是不是 “secretary”？",
        # admin is selected by the service itself (--by, the admin pages), not by a reminder
        "schedules/people-extra.csv:4:4: 警告 列 “角色”：角色 “amdin” 没有任何提醒使用，是不是 “admin”？",
    ]


def test_roles_for_later_use_that_are_close_to_no_selected_role_stay_silent(folder: Path) -> None:
    (folder / "people-extra.csv").write_text(
        "标识,姓名,单位,角色\n"
        "x1,张三,fgw_b1,deputy_secretary\n"  # like secretary, but another word: a label for later
        "x2,李四,fgw_b1,组织委员\n", encoding="utf-8")
    assert not [w for w in warnings_of(folder) if "没有任何提醒使用" in w]


def test_a_role_selected_only_by_a_reminder_that_failed_validation_is_not_called_unused(folder: Path) -> None:
    (folder / "extra.yaml").write_text(
        "reminders:\n"
        "  - id: extra\n"
        "    titel: 测试\n"  # the typo fails the reminder; its selector still means the role
        "    when: {monthly: {day: 5}, at: '09:00'}\n"
        "    recipients: {channels: [gw_wecom], mention: {roles: [secretaries]}}\n", encoding="utf-8")
    (folder / "people-extra.csv").write_text("标识,姓名,单位,角色\nx1,张三,fgw_b1,secretaries\n", encoding="utf-8")
    _, issues = check_schedules(folder, env={})
    assert not [i for i in issues if "没有任何提醒使用" in i.message]
    assert any("titel" in i.message for i in issues if not i.warning)
