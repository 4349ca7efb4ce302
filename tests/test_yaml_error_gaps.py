"""YAML mistakes a new-user trial found worded wrongly or in English: a file read as one text because of
full-width colons, an unfinished bracket list holding a full-width comma, libyaml's own nesting bound,
and text after a closing quote. Each is said in Chinese at the character to change (file:line:column)."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_yaml_errors import PARSER_WORDS, refused, shipped_copy

from bot.config.loader import check_schedules


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return shipped_copy(tmp_path)


def the_error(folder: Path, name: str, text: str) -> str:
    """The one error the admin reads for the shipped schedules plus ``name`` holding ``text``."""
    (folder / name).write_text(text, encoding="utf-8")
    schedules, issues = check_schedules(folder, env={})
    errors = [str(i) for i in issues if not i.warning]
    assert schedules is None and len(errors) == 1, errors
    return errors[0]


def test_a_file_read_as_one_text_because_of_full_width_colons_names_the_first_one(folder: Path) -> None:
    shown = the_error(folder, "units.yaml", "units：\n  - id： x\n")
    assert shown.startswith("schedules/units.yaml:1:6: 错误 "), shown
    assert "中文冒号 “：”" in shown and "顶层应为映射" not in shown


@pytest.mark.parametrize(("old", "new", "column"), [
    ("notices: [3d, 1d]", "notices: [3d，1d", 17),
    ("title: 每月学习日", "title: [a，a，a，a", 14),
], ids=["notices", "title"])
def test_an_unfinished_bracket_list_names_the_full_width_comma_in_it(folder: Path, old: str, new: str,
                                                                      column: int) -> None:
    shown = refused(folder, old, new)
    line = 11 if old.startswith("notices") else 6
    assert shown.startswith(f"schedules/study.yaml:{line}:{column}: 错误 YAML 语法错误：方括号列表没有写完"), shown
    assert "中文逗号 “，”" in shown and "英文逗号 “,”" in shown and "以 ] 结束" in shown


def test_brackets_nested_past_the_parsers_own_bound_are_worded_as_our_nesting_limit(folder: Path) -> None:
    shown = the_error(folder, "deep.yaml", "{[" * 200_000 + "\n")
    assert shown.startswith("schedules/deep.yaml:1:"), shown[:200]
    assert "嵌套超过 64 层，请检查缩进或括号" in shown and not PARSER_WORDS.search(shown), shown[:300]
    assert "exceeded" not in shown


DEEP = "schedules/deep.yaml:1:65: 错误 YAML 语法错误：嵌套超过 64 层，请检查缩进或括号。"


@pytest.mark.parametrize("levels", [40, 100, 600, 200_000])
def test_nesting_too_deep_is_one_syntax_error_at_the_65th_level_however_deep(folder: Path, levels: int) -> None:
    # Trial 17: under 500 pairs our scan said “1:65 嵌套超过…” (no lead-in); past libyaml's own bound
    # (1,000 levels) the parser's column (1:1001) with the lead-in. One mistake, one wording, one place.
    assert the_error(folder, "deep.yaml", "{[" * levels + "\n") == DEEP


def test_nesting_too_deep_under_a_key_is_named_where_its_65th_level_opens(folder: Path) -> None:
    text = "units:\n  - id: x\n    name: " + "[" * 2_000 + "\n"
    shown = the_error(folder, "deep.yaml", text)
    # units (1), its list (2), the item's mapping (3): the 62nd bracket opens level 65, at column 11 + 61
    assert shown == "schedules/deep.yaml:3:72: 错误 YAML 语法错误：嵌套超过 64 层，请检查缩进或括号。", shown


def test_text_after_a_closing_quote_is_named_as_such(folder: Path) -> None:
    shown = refused(folder, "title: 每月学习日", 'title: "a"a"a')
    assert shown.startswith("schedules/study.yaml:6:15: 错误 YAML 语法错误：引号结束后同一行还有别的内容"), shown
    assert "缩进" not in shown
