"""The templates folder is outside input too: a pipe named like a template is never opened (opening
one waits for a writer), and a template file over its bound is refused unread, naming it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _validate(tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REMINDBOT_")}
    env.update({"REMINDBOT_VAR_DIR": str(tmp_path / "var"), "REMINDBOT_SCHEDULES_DIR": str(tmp_path / "schedules"),
                "REMINDBOT_TEMPLATES_DIR": str(tmp_path / "message_templates"), "PYTHONPATH": str(ROOT)})
    return subprocess.run([sys.executable, "-m", "bot", "validate"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=60)


def _copies(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "schedules", tmp_path / "schedules")
    return Path(shutil.copytree(ROOT / "message_templates", tmp_path / "message_templates"))


def test_a_pipe_named_like_a_template_is_not_opened(tmp_path: Path) -> None:
    os.mkfifo(_copies(tmp_path) / "zz.md.j2")
    done = _validate(tmp_path)  # main waited here for a writer that never comes (subprocess timeout)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "配置无误" in done.stdout


def test_a_template_over_its_bound_is_refused_unread_naming_it(tmp_path: Path) -> None:
    study_day = _copies(tmp_path) / "study_day.md.j2"
    study_day.write_text(study_day.read_text(encoding="utf-8") + "{# " + "x" * 2_000_000 + " #}\n", encoding="utf-8")
    done = _validate(tmp_path)
    assert done.returncode == 1
    assert "模板文件 study_day.md.j2 过大（1.9 MB），超过上限 1 MB，未读取" in done.stdout + done.stderr


def test_a_template_that_is_missing_or_a_pipe_is_named_in_the_configured_folder(tmp_path: Path) -> None:
    templates = _copies(tmp_path)
    os.mkfifo(templates / "study_day.md.j2.new")
    (templates / "study_day.md.j2").unlink()
    os.rename(templates / "study_day.md.j2.new", templates / "study_day.md.j2")
    (templates / "theme_day.md.j2").unlink()
    said = (done := _validate(tmp_path)).stdout + done.stderr
    assert done.returncode == 1
    assert f"模板文件 “{templates / 'study_day.md.j2'}” 不是普通文件（命名管道、设备或失效的链接），未读取" in said
    assert f"找不到模板文件 “{templates / 'theme_day.md.j2'}”" in said
    assert "message_templates/theme_day" not in said.replace(str(templates), "")
