"""Schedules files as an admin's folder may really hold them: a huge file is refused by its size before
it is read (validate and the service's reload alike), a named pipe or a device (also behind a symlink)
is an error naming it, never skipped unsaid nor waited on, and a symlink to a file is read but named
as it sits in the folder."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RUN_SECONDS = 60  # a pipe waited on would hang: the run is killed and the test fails
PEAK_KB = 150 * 1024  # a check of the shipped folder peaks near 50 MB; a 100 MB file read whole, over 200 MB
BIG_BYTES = 100_000_000

BAD_REMINDER = "reminders:\n  - id: linked\n    title: 1\n"

# Runs a command, then prints the peak memory (KB) of it and its children: this process's only child.
PEAK = ("import resource, subprocess, sys\n"
        "done = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
        "print(done.returncode); print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
        "sys.stdout.write(done.stdout + done.stderr)\n")

# The service's reload check (bot/config/worker.py) from a parent doing nothing else.
RELOAD = ("import asyncio, json, resource, sys\n"
          "from pathlib import Path\n"
          "from bot.config.limits import Limits\n"
          "from bot.config.worker import check_in_worker\n"
          "folder, cache = Path(sys.argv[1]), Path(sys.argv[2])\n"
          "schedules, issues = asyncio.run(check_in_worker(folder, templates_dir=None, limits=Limits(),\n"
          "                                                timeout=50, cache_dir=cache))\n"
          "print(json.dumps({'ok': schedules is not None, 'issues': [str(i) for i in issues],\n"
          "                  'peak': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))\n")


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """The shipped schedules, copied (they pass validate)."""
    shutil.copytree(ROOT / "schedules", tmp_path / "schedules")
    return tmp_path / "schedules"


def env(tmp_path: Path, **extra: str) -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if not k.startswith("REMINDBOT_")}
    out.update(PYTHONPATH=str(ROOT), REMINDBOT_VAR_DIR=str(tmp_path / "var"), **extra)
    return out


def validate(folder: Path, **extra: str) -> tuple[int, int, str]:
    """``remindbot validate folder`` run from the folder's parent: (exit code, peak memory in KB, output)."""
    done = subprocess.run([sys.executable, "-c", PEAK, sys.executable, "-m", "bot", "validate", folder.name],
                          cwd=folder.parent, env=env(folder.parent, **extra), capture_output=True, text=True,
                          timeout=RUN_SECONDS, check=True)
    code, peak, output = done.stdout.split("\n", 2)
    return int(code), int(peak), output


def reload_check(folder: Path) -> dict[str, object]:
    done = subprocess.run([sys.executable, "-c", RELOAD, str(folder), str(folder.parent / "var" / "cache")],
                          cwd=folder.parent, env=env(folder.parent), capture_output=True, text=True,
                          timeout=RUN_SECONDS, check=True)
    found: dict[str, object] = json.loads(done.stdout)
    return found


def big_file(path: Path) -> None:
    """100 MB of one letter, no newline: what a new-user trial put in the folder."""
    block = b"x" * (1 << 20)
    with path.open("wb") as out:
        for _ in range(BIG_BYTES // len(block)):
            out.write(block)
        out.write(block[: BIG_BYTES % len(block)])


@pytest.mark.parametrize("cache", ["true", "false"])
def test_validate_refuses_a_100_mb_file_by_its_size_without_reading_it(folder: Path, cache: str) -> None:
    big_file(folder / "big.yaml")

    code, peak, output = validate(folder, REMINDBOT_SCHEDULES_CACHE=cache)

    assert code == 1, output
    assert "schedules/big.yaml:1:1: 错误 文件过大（95.4 MB），超过上限 4.0 MB" in output
    assert peak < PEAK_KB, f"validate peaked at {peak // 1024} MB"


def test_the_reload_check_refuses_a_100_mb_file_without_reading_it(folder: Path) -> None:
    reload_check(folder)  # the snapshot cache filled, as a running service has it
    big_file(folder / "big.yaml")

    found = reload_check(folder)

    assert found["ok"] is False
    assert any(i.startswith("schedules/big.yaml:1:1: 错误 文件过大（95.4 MB）") for i in found["issues"]), found  # type: ignore[attr-defined]
    assert found["peak"] < PEAK_KB, f"the reload's check peaked at {found['peak'] // 1024} MB"  # type: ignore[operator]


@pytest.mark.parametrize(("name", "place"), [("x.yaml", "1:1"), ("people.csv", "1:1"), ("units.xlsx", "A1")])
def test_a_named_pipe_is_an_error_naming_it_and_never_waited_on(folder: Path, name: str, place: str) -> None:
    os.mkfifo(folder / name)

    code, _, output = validate(folder)

    assert code == 1, output
    assert f"schedules/{name}:{place}: 错误 不是普通文件（命名管道），未读取" in output
    assert "请把它移出日程文件夹" in output


def test_a_symlink_to_a_device_is_an_error_naming_the_link(folder: Path) -> None:
    (folder / "zero.yaml").symlink_to("/dev/zero")

    code, _, output = validate(folder)

    assert code == 1, output
    assert "schedules/zero.yaml:1:1: 错误 不是普通文件（字符设备，是指向 “/dev/zero” 的链接），未读取" in output


def test_a_broken_symlink_is_an_error_naming_it(folder: Path) -> None:
    (folder / "gone.yaml").symlink_to("moved-away.yaml")

    code, _, output = validate(folder)

    assert code == 1, output
    assert "schedules/gone.yaml:1:1: 错误 是一个链接，但它指向的 “moved-away.yaml” 不存在，未读取" in output


def test_the_reload_check_refuses_a_pipe_and_a_device_at_once(folder: Path) -> None:
    os.mkfifo(folder / "x.yaml")
    (folder / "zero.yaml").symlink_to("/dev/zero")

    found = reload_check(folder)

    assert found["ok"] is False
    assert "schedules/x.yaml:1:1: 错误 不是普通文件（命名管道），未读取" in " ".join(found["issues"])  # type: ignore[arg-type]
    assert "schedules/zero.yaml:1:1: 错误 不是普通文件（字符设备" in " ".join(found["issues"])  # type: ignore[arg-type]


def test_a_symlink_to_a_file_outside_the_folder_is_read_and_named_as_the_link(folder: Path) -> None:
    outside = folder.parent / "shared"
    outside.mkdir()
    (outside / "team.yaml").write_text(BAD_REMINDER, encoding="utf-8")
    (folder / "team.yaml").symlink_to(outside / "team.yaml")

    code, _, output = validate(folder)

    assert code == 1, output
    assert "schedules/team.yaml:3:12: 错误 字段 reminders[linked].title：应为文本" in output
    assert "shared" not in output


def test_a_symlink_to_a_file_inside_the_folder_is_named_as_the_link(folder: Path) -> None:
    (folder / "drafts").mkdir()
    (folder / "drafts" / "team-v2.txt").write_text(BAD_REMINDER, encoding="utf-8")
    (folder / "team.yaml").symlink_to("drafts/team-v2.txt")

    code, _, output = validate(folder)

    assert code == 1, output
    assert "schedules/team.yaml:3:12: 错误 字段 reminders[linked].title：应为文本" in output
    assert "team-v2" not in output
