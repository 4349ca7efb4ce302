"""`remindbot validate` as the admin runs it: a path that is no schedules, and the summary's counts."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from bot.cli import main

ROOT = Path(__file__).resolve().parent.parent

APP = """apps:
  - id: gw-feishu
    platform: feishu
    verification_token: v
"""


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The admin's app folder as the current folder: schedules/ copied, a README beside it."""
    shutil.copytree(ROOT / "schedules", tmp_path / "schedules")
    shutil.copy(ROOT / "README.md", tmp_path / "README.md")
    for name in ("REMINDBOT_SCHEDULES_DIR", "REMINDBOT_BASE_URL", "REMINDBOT_DRY_RUN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("REMINDBOT_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_a_readme_is_not_read_as_yaml(here: Path) -> None:
    result = CliRunner().invoke(main, ["validate", "README.md"])
    assert result.exit_code == 1
    assert ("README.md:1:1: 错误 “README.md” 不是日程文件：日程是一个文件夹（如 schedules/），"
            "或其中的 .yaml、.yml 文件，或人员、单位表格（.csv、.xlsx）") in result.output
    assert "YAML" not in result.output and "共 1 处错误" in result.output


def test_the_summary_counts_the_apps(here: Path) -> None:
    (here / "schedules" / "apps.yaml").write_text(APP, encoding="utf-8")
    result = CliRunner().invoke(main, ["validate", "schedules"])
    assert result.exit_code == 0, result.output
    assert "个频道，1 个应用。" in result.output


def test_from_the_root_folder_an_error_path_keeps_its_slash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # From "/" every path is "under" the current folder; "tmp/…/duties.yaml" read as a lost slash.
    folder = tmp_path / "t12s"
    folder.mkdir()
    (folder / "duties.yaml").write_text("reminders:\n  - id: r1\n    when:\n      once: 2026-13-08\n", encoding="utf-8")
    monkeypatch.setenv("REMINDBOT_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.chdir("/")
    result = CliRunner().invoke(main, ["validate", str(folder / "duties.yaml")])
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if ": 错误 " in line]
    assert lines and all(line.startswith(f"{folder}/duties.yaml:") for line in lines), result.output
    assert f"{folder}/duties.yaml:4:13: 错误 字段 reminders[r1].when.once" in result.output
