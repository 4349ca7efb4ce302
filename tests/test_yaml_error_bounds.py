"""A malformed schedules file of a few hundred KB is explained in Chinese within seconds, not minutes.

The words for a YAML syntax error look around the problem for what a Chinese input method typed
(bot/config/ime.py) and for a quote left open (bot/config/yamlerrors.py). On a long line of unclosed
brackets, or a file of many quoted values over two lines, those searches used to take time growing
with the square of the length: ``remindbot validate`` (and ``serve``'s start) ran for minutes. Each
file below is checked by ``remindbot validate`` in a subprocess that must finish well within
VALIDATE_BOUND_SECONDS (a generous bound: the check takes about a second, it took minutes before).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from servehelp import Workspace

from bot.config.ime import line_mistake
from bot.config.limits import Limits
from bot.config.worker import check_in_worker

VALIDATE_BOUND_SECONDS = 20.0
RUN = 400_000  # characters of brackets on one line: a few hundred KB, well under the 4 MB file limit
HEAD = "reminders:\n  - id: broken\n"
# A line indented less than the list above it: the parser stops there (line of HEAD + the lines before).
BAD_INDENT = "   title: 缩进不对\n"


def validate(workspace: Workspace, name: str, text: str) -> str:
    """``remindbot validate`` on the shipped schedules plus ``name`` holding ``text``: what it prints.
    Raises subprocess.TimeoutExpired (the test fails) when it runs past the bound."""
    (workspace.schedules / name).write_text(text, encoding="utf-8")
    result = subprocess.run([sys.executable, "-m", "bot", "validate", str(workspace.schedules)],
                            env=workspace.env(), capture_output=True, text=True,
                            timeout=VALIDATE_BOUND_SECONDS, check=False)
    assert result.returncode == 1, result.stdout[-2000:] + result.stderr[-2000:]
    errors = [line for line in result.stdout.splitlines() if ": 错误 " in line]
    assert len(errors) == 1, errors
    return errors[0].removeprefix(f"{workspace.root}/")  # schedules/hostile.yaml:…


@pytest.mark.parametrize("run", ["{" * RUN, "{[" * (RUN // 2)], ids=["braces", "brackets-and-braces"])
def test_a_long_line_of_unclosed_brackets_is_explained_at_the_line_the_parser_stopped(
        workspace: Workspace, run: str) -> None:
    # In a plain value brackets are text: the parser stops only at the badly indented line below.
    shown = validate(workspace, "hostile.yaml", HEAD + f"    note: x{run}\n" + BAD_INDENT)
    assert shown.startswith("schedules/hostile.yaml:4:4: 错误 YAML 语法错误："), shown[:300]
    assert "缩进" in shown and "中文" not in shown, shown[:300]


def test_a_long_line_of_unfinished_flow_entries_is_explained_at_its_first_colon(workspace: Workspace) -> None:
    shown = validate(workspace, "hostile.yaml", HEAD + f"    note: x{'[a, {b: ' * (RUN // 8)}\n")
    assert shown.startswith("schedules/hostile.yaml:3:18: 错误 YAML 语法错误：这里不能出现冒号"), shown[:300]


def test_many_long_lines_of_brackets_above_the_problem_are_explained_at_its_line(workspace: Workspace) -> None:
    lines = "".join(f"    note{i}: x{'[{' * (RUN // 8)}\n" for i in range(4))
    shown = validate(workspace, "hostile.yaml", HEAD + lines + BAD_INDENT)
    assert shown.startswith("schedules/hostile.yaml:7:4: 错误 YAML 语法错误："), shown[:300]


def test_a_full_width_comma_at_the_end_of_a_huge_bracket_line_is_named_at_its_column(workspace: Workspace) -> None:
    line = f"    notices: [x{'{[' * (RUN // 2)}，\n"
    shown = validate(workspace, "hostile.yaml", HEAD + line)
    column = line.index("，") + 1
    assert shown.startswith(f"schedules/hostile.yaml:3:{column}: 错误 YAML 语法错误："), shown[:300]
    assert "中文逗号 “，”" in shown and "英文逗号 “,”" in shown


def test_many_quoted_values_over_two_lines_and_one_left_open_are_explained_at_the_open_quote(
        workspace: Workspace) -> None:
    # About 1 MB of values each quoted over two lines (legal YAML), then one quote never closed.
    values = "".join(f'  - id: "r{i}\n      x"\n' for i in range(45_000))
    text = "reminders:\n" + values + '  - id: "open\n    title: y\n'
    shown = validate(workspace, "hostile.yaml", text)
    opened = text.count("\n", 0, text.index('"open')) + 1
    assert shown.startswith(f"schedules/hostile.yaml:{opened}:9: 错误 YAML 语法错误：引号没有成对"), shown[:300]


def test_a_small_full_width_colon_in_braces_is_still_named_where_it_is(workspace: Workspace) -> None:
    study = workspace.schedules / "study.yaml"
    text = study.read_text(encoding="utf-8")
    assert "mention: {roles: [secretary]}" in text
    study.write_text(text.replace("mention: {roles: [secretary]}", "mention: {roles：[secretary]}", 1),
                     encoding="utf-8")
    shown = validate(workspace, "other.yaml", "reminders: []\n")
    assert shown.startswith("schedules/study.yaml:15:22: 错误 YAML 语法错误：键后面用了中文冒号 “：”"), shown


PERSON = """\
  - id: p{i}
    name: 人员{i}
    roles: [secretary]
    unit: fgw_b1
    mobile: "138{i:08d}"
    channels: [gw_wecom]
"""


def test_an_unknown_id_of_60_kb_among_thousands_of_people_is_refused_without_a_guess(workspace: Workspace) -> None:
    # Beyond 2,000 candidates only one-typo neighbours are looked up: none can be 60,000 characters long.
    people = "people:\n" + "".join(PERSON.format(i=i) for i in range(2_500))
    unit = "units:\n  - id: hostile\n    name: 很长的领导\n    parent: gw\n    leaders: [" + "p" * 60_000 + "]\n"
    shown = validate(workspace, "many.yaml", people + unit)
    line = (people + unit).count("\n")  # the last line's, 1-based
    assert shown.startswith(f"schedules/many.yaml:{line}:15: 错误 字段 units[hostile].leaders[0]：未知的人员 “ppp"), \
        shown[:300]
    assert "是不是" not in shown
    assert "p" * 80 + "…”" in shown and len(shown) < 1_000, len(shown)  # named, not printed whole


def test_of_two_keys_with_a_full_width_colon_in_braces_the_first_is_named() -> None:
    assert line_mistake("    x: {a：1, b：2}") == (9, "键后面用了中文冒号 “：”，YAML 不认：请改成英文冒号和空格 “: ”")


# ---------------------------------------------------------------- a reload's check that times out


def slow_people_file(path: Path) -> float:
    """A people file of 3.2 MB, one person with 1.6 million roles: seconds to read (each role is a YAML
    node), under the default 4 MB limit but over 3/4 of it. Returns its size in MB."""
    path.write_text("people:\n  - id: p0\n    name: 甲\n    unit: fgw_b1\n    roles: [" + "a," * 1_600_000 + "a]\n",
                    encoding="utf-8")
    return path.stat().st_size / 1024 / 1024


async def test_a_reload_that_times_out_names_the_file_and_says_too_large_only_near_the_limit(
        workspace: Workspace) -> None:
    size = slow_people_file(workspace.schedules / "people.yaml")
    # The child starts and reads the shipped files in under a second, then spends some 4 s on
    # people.yaml: at 3.5 s it is reading that file, with room either side for a loaded machine
    # (which slows both).
    _, issues = await check_in_worker(workspace.schedules, templates_dir=None, limits=Limits(), timeout=3.5)
    assert [str(i) for i in issues] == [
        f"schedules/people.yaml:1:1: 错误 检查这个文件超过 3.5 秒仍未完成，已放弃：文件过大（{size:.1f} MB，"
        "接近上限 4.0 MB），请拆分或精简文件（检查时限可用 REMINDBOT_RELOAD_TIMEOUT_SECONDS 调整）。"]

    roomy = Limits(file_bytes=16 * 1024 * 1024)
    _, issues = await check_in_worker(workspace.schedules, templates_dir=None, limits=roomy, timeout=3.5)
    assert [str(i) for i in issues] == [
        f"schedules/people.yaml:1:1: 错误 检查这个文件超过 3.5 秒仍未完成，已放弃（文件 {size:.1f} MB，"
        "未接近上限 16.0 MB）：请检查其中是否有异常的内容，如极长的一行、大量未成对的括号或引号，"
        "可运行 remindbot validate 查看（检查时限可用 REMINDBOT_RELOAD_TIMEOUT_SECONDS 调整）。"]
