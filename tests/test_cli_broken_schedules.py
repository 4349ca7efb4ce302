"""A broken schedules folder with no last good schedules to fall back on: every command, ``preview``
included, prints the errors with the paths ``validate`` prints (absolute for an absolute folder) and
exits 1, never a traceback."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("args", [("preview", "study-day"), ("status",), ("report",), ("link", "1", "王芳")],
                         ids=lambda a: a[0])
def test_a_command_on_a_broken_folder_with_no_last_good_names_the_error_as_validate_does(
        tmp_path: Path, args: tuple[str, ...]) -> None:
    folder = Path(shutil.copytree(ROOT / "schedules", tmp_path / "s"))
    with (folder / "study.yaml").open("a", encoding="utf-8") as f:
        f.write("bogus_key: [1\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("REMINDBOT_")}
    env.update({"REMINDBOT_VAR_DIR": str(tmp_path / "var"), "REMINDBOT_SCHEDULES_DIR": str(folder),
                "PYTHONPATH": str(ROOT)})
    done = subprocess.run([sys.executable, "-m", "bot", *args], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    assert done.stderr.startswith(f"{folder / 'study.yaml'}:"), done.stderr  # absolute, as validate prints it
    assert "日程配置有 1 处错误，请修改后再试。" in done.stderr
