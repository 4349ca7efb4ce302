"""YAML the parser refuses, as the admin sees it (terminal and admin group alike: str(issue)): in
Chinese, at file:line:column, naming what a Chinese input method typed where YAML wants ASCII."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from bot.config.loader import check_schedules
from bot.config.yamlerrors import in_words

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "schedules"
# The parser's own words: none of them may reach the admin for a problem we recognise.
PARSER_WORDS = re.compile(r"found|expected|could not|did not|not allowed|indicator|constructor|violates|tag:yaml")


def shipped_copy(tmp_path: Path) -> Path:
    """The shipped schedules/ copied under ``tmp_path``, to be spoilt by a test."""
    target = tmp_path / "schedules"
    shutil.copytree(SHIPPED, target)
    return target


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return shipped_copy(tmp_path)


def refused(folder: Path, old: str, new: str) -> str:
    """study.yaml with ``old`` replaced by ``new``: the one error the admin reads, as printed."""
    path = folder / "study.yaml"
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    schedules, issues = check_schedules(folder, env={})
    errors = [i for i in issues if not i.warning]
    assert schedules is None and len(errors) == 1, errors
    return str(errors[0])


def test_a_full_width_colon_after_a_key_is_named_where_it_is(folder: Path) -> None:
    shown = refused(folder, "    title: 每月学习日", "    title：每月学习日")
    # line 6 is the title's; column 10 the "：" itself (the parser notices only at the next line)
    assert shown.startswith("schedules/study.yaml:6:10: 错误 ")
    assert "中文冒号 “：”" in shown and "英文冒号" in shown
    assert not PARSER_WORDS.search(shown)


def test_indentation_with_full_width_spaces_is_named(folder: Path) -> None:
    shown = refused(folder, "    title: 每月学习日", "\u3000\u3000title: 每月学习日")
    assert shown.startswith("schedules/study.yaml:6:1: 错误 ")
    assert "全角空格" in shown and "冒号" not in shown
    assert not PARSER_WORDS.search(shown)


def test_a_value_in_chinese_quotes_that_breaks_the_line_is_named(folder: Path) -> None:
    shown = refused(folder, "    title: 每月学习日", "    title: “学习日: 第一期”")
    assert shown.startswith("schedules/study.yaml:6:12: 错误 ")
    assert "中文引号" in shown and "英文引号" in shown


def test_a_ragged_list_is_said_in_chinese(folder: Path) -> None:
    shown = refused(folder, "  - id: theme-party-day", "   - id: theme-party-day")
    assert shown == ("schedules/study.yaml:23:4: 错误 YAML 语法错误：列表的缩进不一致："
                     "同一列表的每一项都以 - 开头，并且 - 要上下对齐。")


def test_a_python_tag_is_refused_as_a_tag(folder: Path) -> None:
    shown = refused(folder, "    title: 每月学习日", '    title: !!python/object/apply:os.system ["ls"]')
    assert shown.startswith("schedules/study.yaml:6:12: 错误 ")
    assert "不允许使用标签 “!!python/object/apply:os.system”" in shown
    assert not PARSER_WORDS.search(shown)


def test_a_tab_is_said_once_in_chinese(folder: Path) -> None:
    shown = refused(folder, "    title: 每月学习日", "\ttitle: 每月学习日")
    assert shown == "schedules/study.yaml:6:1: 错误 YAML 语法错误：不能用 Tab 缩进，请用空格。"


def test_a_full_width_colon_inside_a_value_is_no_mistake(folder: Path) -> None:
    path = folder / "study.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace("    title: 每月学习日", "    title: 学习日：第一期", 1),
                    encoding="utf-8")
    schedules, _ = check_schedules(folder, env={})
    assert schedules is not None and schedules.reminders["study-day"].title == "学习日：第一期"


def test_an_unknown_problem_has_a_chinese_lead_and_the_parser_only_quoted() -> None:
    words = in_words("some new complaint", "while doing something")
    assert words.startswith("无法解析这里，请检查缩进、冒号和引号")
    assert "“some new complaint”" in words


def test_a_full_width_colon_or_comma_inside_braces_is_named(folder: Path) -> None:
    shown = refused(folder, "mention: {roles: [secretary]}", "mention: {roles：[secretary]}")
    assert shown.startswith("schedules/study.yaml:15:22: 错误 ") and "中文冒号 “：”" in shown
    folder_again = shipped_copy(folder.parent / "again")
    shown = refused(folder_again, "monthly: {weekday: fri, nth: 1}", "monthly: {weekday: fri，nth: 1}")
    assert shown.startswith("schedules/study.yaml:8:29: 错误 ") and "中文逗号 “，”" in shown


def test_an_unclosed_quote_is_named_where_it_opens(folder: Path) -> None:
    (folder / "broken.yaml").write_text('reminders:\n  - id: x\n    title: "每月学习日\n', encoding="utf-8")
    _, issues = check_schedules(folder, env={})
    assert [str(i) for i in issues if not i.warning] == [
        "schedules/broken.yaml:3:12: 错误 YAML 语法错误：引号没有成对（缺少结束的引号）。"]


def test_a_quote_left_open_mid_file_is_named_where_it_opens_and_where_the_parser_stopped(folder: Path) -> None:
    # The value runs on to the next quote (line 27's at: "09:00"), where the parser fails: line 9 is the fix.
    shown = refused(folder, 'at: "09:00"\n    holiday: next_workday', 'at: "09:00\n    holiday: next_workday')
    assert shown.startswith("schedules/study.yaml:9:11: 错误 YAML 语法错误：这里的引号没有在本行结束（缺少结束的引号）")
    assert "第 27 行" in shown


def test_a_value_quoted_over_several_lines_on_purpose_still_loads(folder: Path) -> None:
    path = folder / "study.yaml"
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("    title: 每月学习日", '    title: "每月\n      学习日"', 1), encoding="utf-8")
    schedules, _ = check_schedules(folder, env={})
    assert schedules is not None and schedules.reminders["study-day"].title == "每月 学习日"


def _loaded_with(folder: Path, old: str, new: str) -> tuple[object, list[str]]:
    path = folder / "study.yaml"
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    schedules, issues = check_schedules(folder, env={})
    return schedules, [str(i) for i in issues if "全角空格" in i.message]


def test_a_line_indented_with_full_width_spaces_that_still_parses_is_named(folder: Path) -> None:
    # YAML glues the line to the title above: holiday becomes part of the title, silently until now.
    schedules, named = _loaded_with(folder, "    title: 每月学习日\n",
                                    "    title: 每月学习日\n      \u3000\u3000holiday：next_workday\n")
    assert schedules is not None
    assert named == ["schedules/study.yaml:7:7: 警告 字段 reminders[study-day].title："
                     "这一行开头用了全角空格（中文输入法的空格），YAML 不把它当作缩进："
                     "这一行被接在了上一行的值后面，成了这个值的一部分；"
                     "请删掉全角空格，用半角空格（英文输入法下的空格）重新缩进。"]


def test_full_width_spaces_inside_a_quoted_or_block_text_stay_silent(folder: Path) -> None:
    schedules, named = _loaded_with(folder, "    title: 每月学习日\n",
                                    '    title: "每月\n      \u3000\u3000学习日"\n    checklist:\n      - |\n'
                                    "        \u3000\u3000各支部：\n        \u3000\u3000请按时组织学习。\n")
    assert schedules is not None and named == []


def test_a_key_indented_with_full_width_spaces_says_so(folder: Path) -> None:
    shown = refused(folder, "    title: 每月学习日\n", "    title: 每月学习日\n    \u3000\u3000template: study_day\n")
    assert shown.startswith("schedules/study.yaml:7:5: 错误 ")
    assert "开头是全角空格（中文输入法的空格）" in shown and "（本意是 “template”）" in shown


def test_an_open_quote_names_the_cause_without_the_parsers_follow_on_hint(folder: Path) -> None:
    shown = refused(folder, 'at: "09:00"\n    holiday: next_workday', 'at: "09:00\n    holiday: next_workday')
    assert shown.endswith("因此在第 27 行报错。"), shown  # not "…报错（缩进不一致或缺少 - （…））"


def test_a_required_key_indented_with_a_full_width_space_is_one_error(folder: Path) -> None:
    shown = refused(folder, "    title: 每月学习日", "    \u3000title: 每月学习日")  # refused() asserts one error
    assert "未知字段 “\u3000title”" in shown and "（本意是 “title”）" in shown, shown


def test_roles_split_by_a_chinese_comma_give_no_follow_on_confirm_error(folder: Path) -> None:
    shown = refused(folder, "mention: {roles: [secretary]}", "mention: {roles: [secretary，worker]}")
    assert "未知的角色 “secretary，worker”" in shown and "中文逗号" in shown, shown


def test_a_field_indented_one_level_too_deep_says_where_it_belongs(folder: Path) -> None:
    shown = refused(folder, 'at: "09:00"\n    holiday: next_workday', 'at: "09:00"\n      holiday: next_workday')
    assert shown.startswith("schedules/study.yaml:10:7: 错误 "), shown
    assert shown.endswith("未知字段 “holiday”：holiday 应与 when 对齐（缩进多了一级？）。"), shown


def test_a_field_indented_two_levels_too_deep_counts_them(folder: Path) -> None:
    old = 'monthly: {weekday: fri, nth: 1}   # 每月第一个星期五\n      at: "09:00"\n    holiday: next_workday'
    new = 'monthly:\n        weekday: fri\n        nth: 1\n        holiday: next_workday\n      at: "09:00"'
    shown = refused(folder, old, new)
    assert shown.endswith("holiday 应与 when 对齐（缩进多了 2 级？）。"), shown
