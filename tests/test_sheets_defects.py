"""Spreadsheet defects a fresh-user trial found: nothing dropped silently, every cell bounded, and
messages that say what Excel did (real CSV and .xlsx files written in tmp)."""

from __future__ import annotations

import csv
import io
import tracemalloc
import zipfile
from pathlib import Path

import openpyxl
import pytest
from click.testing import CliRunner
from test_sheets import UNITS_CSV

from bot.cli import main
from bot.config.limits import Limits
from bot.config.loader import check_schedules
from bot.config.sheets import CELL_CHARS, template_csv, template_header, template_xlsx
from bot.config.worker import check_in_worker
from bot.config.yamlsource import ConfigIssue

HEADER = "标识,姓名,单位,角色,手机\n"
UNITS = UNITS_CSV.replace(",p001", ",")  # no leader: the people here are others


def folder_with(tmp_path: Path, **files: str | bytes) -> Path:
    """schedules/ with a channel and the given files (``people_csv`` is people.csv)."""
    folder = tmp_path / "schedules"
    folder.mkdir()
    (folder / "main.yaml").write_text("channels:\n  - {id: gw, name: 工委群, platform: wecom, webhook: ''}\n",
                                      encoding="utf-8")
    for name, content in files.items():
        path = folder / name.replace("_", ".", 1)
        path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return folder


def errors(issues: list[ConfigIssue]) -> list[ConfigIssue]:
    return [i for i in issues if not i.warning]


def xlsx(rows: list[list[object]], title: str | None = None) -> openpyxl.Workbook:
    book = openpyxl.Workbook()
    sheet = book.active
    if title:
        sheet.title = title
    for row in rows:
        sheet.append(row)
    return book


# ---------------------------------------------------------------- #2 CSV quotes and huge fields


def test_an_unclosed_quote_is_an_error_at_its_row_and_the_rows_after_it_are_still_read(tmp_path: Path) -> None:
    people = (HEADER + 'g1,"高明,b1,secretary,13800000021\n'
              "g2,李二,b1,secretary,13800000022\n"
              "g3,李三,b9,secretary,13800000023\n")
    folder = folder_with(tmp_path, units_csv=UNITS, people_csv=people)
    schedules, issues = check_schedules(folder)
    assert schedules is None
    quote = [i for i in issues if "引号没有闭合" in i.message]
    assert [(i.file, i.line) for i in quote] == [("schedules/people.csv", 2)]
    # g3 was not swallowed into g1's name: its own mistake is found.
    assert any(i.line == 4 and "未知的单位 “b9”" in i.message for i in issues)


def test_an_unclosed_quote_in_a_large_file_is_a_chinese_error_not_a_traceback(tmp_path: Path) -> None:
    rows = "".join(f"x{i},李{i},b1,secretary,138{i:08d}\n" for i in range(10_000))
    folder = folder_with(tmp_path, units_csv=UNITS, people_csv=HEADER + 'g1,"高明,b1,secretary,13800000021\n' + rows)
    result = CliRunner().invoke(main, ["validate", str(folder)])
    assert result.exit_code == 1
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "people.csv:2:1: 错误 引号没有闭合" in result.output
    assert "_csv.Error" not in result.output and "Traceback" not in result.output


def test_a_line_break_inside_quotes_is_an_error_naming_both_lines(tmp_path: Path) -> None:
    people = HEADER + 'g1,"高\n明",b1,secretary,13800000021\ng2,李二,b1,secretary,13800000022\n'
    folder = folder_with(tmp_path, units_csv=UNITS, people_csv=people)
    _, issues = check_schedules(folder)
    assert [i.line for i in errors(issues)] == [2]
    assert errors(issues)[0].message.startswith("第 2–3 行被读成了同一行：引号内有换行")


def test_a_cell_past_the_csv_field_limit_is_an_error_at_its_row(tmp_path: Path) -> None:
    people = HEADER + "g1," + "高" * 200_000 + ",b1,secretary,13800000021\ng2,李二,b1,secretary,13800000022\n"
    folder = folder_with(tmp_path, units_csv=UNITS, people_csv=people)
    schedules, issues = check_schedules(folder)
    assert schedules is None
    assert [(i.line, i.message) for i in errors(issues)] == [(2, f"有一格超过 {CELL_CHARS} 个字符，未读取这一行")]


async def test_a_reload_names_the_file_and_row_of_a_broken_csv(tmp_path: Path) -> None:
    folder = folder_with(tmp_path, units_csv=UNITS, people_csv=HEADER + 'g1,"高明,b1,secretary,13800000021\n')
    schedules, issues = await check_in_worker(folder, templates_dir=None, limits=Limits(), timeout=60)
    assert schedules is None
    assert [(i.file, i.line) for i in errors(issues)] == [("schedules/people.csv", 2)]


async def test_a_crash_in_the_checker_is_a_chinese_error_naming_the_folder_not_its_absolute_path(
        tmp_path: Path) -> None:
    folder = folder_with(tmp_path)
    broken = Limits(file_bytes="x")  # type: ignore[arg-type]  # makes the child's check raise
    schedules, issues = await check_in_worker(folder, templates_dir=None, limits=broken, timeout=60)
    assert schedules is None
    assert [(i.file, i.line) for i in issues] == [("schedules", 1)]
    assert "检查日程配置时出错（TypeError）" in issues[0].message and str(tmp_path) not in str(issues[0])
    _, issues = await check_in_worker(folder, templates_dir=None, limits=Limits(), timeout=0.001)
    assert [i.file for i in issues] == ["schedules"]


# ---------------------------------------------------------------- #3 .xlsx: nothing ignored silently


def test_people_on_two_sheets_are_refused_naming_the_sheets(tmp_path: Path) -> None:
    book = xlsx([["标识", "姓名"], ["g1", "甲"]], title="一支部")
    second = book.create_sheet("二支部")
    second.append(["标识", "姓名"])
    second.append(["g2", "乙"])
    folder = folder_with(tmp_path)
    book.save(folder / "people.xlsx")
    _, issues = check_schedules(folder)
    assert any("“一支部”、“二支部”" in i.message and "只能读取一个" in i.message for i in errors(issues))


def test_an_instruction_sheet_first_is_skipped_with_a_warning_and_the_people_sheet_read(tmp_path: Path) -> None:
    book = xlsx([["请在“人员”工作表中填写"]], title="说明")
    people = book.create_sheet("人员")
    people.append(["标识", "姓名", "角色"])
    people.append(["g2", "乙", "secretary"])
    folder = folder_with(tmp_path)
    book.save(folder / "people.xlsx")
    schedules, issues = check_schedules(folder)
    assert schedules is not None and schedules.people["g2"].name == "乙"
    assert any(i.warning and "只读取了工作表 “人员”" in i.message and "“说明”" in i.message for i in issues)


def test_no_sheet_with_a_header_is_an_error_naming_every_sheet(tmp_path: Path) -> None:
    book = xlsx([["说明"]], title="说明")
    book.create_sheet("数据").append(["编号x", "名字"])
    folder = folder_with(tmp_path)
    book.save(folder / "people.xlsx")
    _, issues = check_schedules(folder)
    assert any("“说明”、“数据”" in i.message for i in errors(issues))


def test_a_vertically_merged_unit_applies_to_every_row_of_the_range(tmp_path: Path) -> None:
    book = xlsx([["标识", "姓名", "单位"], ["g1", "甲", "b1"], ["g2", "乙", None], ["g3", "丙", None],
                 ["g4", "丁", "gw"]])
    book.active.merge_cells("C2:C4")
    folder = folder_with(tmp_path, units_csv=UNITS)
    book.save(folder / "people.xlsx")
    schedules, issues = check_schedules(folder)
    assert errors(issues) == [] and schedules is not None
    assert [schedules.people[p].unit for p in ("g1", "g2", "g3", "g4")] == ["b1", "b1", "b1", "gw"]


def test_data_beyond_the_header_is_an_error_naming_the_cell(tmp_path: Path) -> None:
    book = xlsx([["标识", "姓名", None, "角色"], ["g1", "甲", "备注", "secretary", None, None, "x"]])
    folder = folder_with(tmp_path)
    book.save(folder / "people.xlsx")
    _, issues = check_schedules(folder)
    found = {(i.line, i.column, i.message[:8]) for i in errors(issues)}
    assert found == {(2, 3, "C 列没有列名，"), (2, 7, "G 列没有列名，")}


def test_a_comma_inside_an_unquoted_csv_cell_is_one_error_at_its_row_saying_so(tmp_path: Path) -> None:
    # Trial 7: `g2,=HYPERLINK("http://x","点我"),b1,…` shifted every later cell right: four errors
    # (an unknown unit "点我)", a mobile "secretary", …), none at the cause, which came last.
    people = (HEADER + "g1,李一,b1,secretary,13800000021\n"
              'g2,=HYPERLINK("http://evil.example","点我"),b1,secretary,13800000022\n'
              "g3,王三,b1,secretary,13800000023\n")
    folder = folder_with(tmp_path, units_csv=UNITS, people_csv=people)
    schedules, issues = check_schedules(folder)
    assert schedules is None
    found = errors(issues)
    assert [(i.line, i.column) for i in found] == [(3, 1)], found
    assert "有 6 格，但第一行只有 5 个列名" in found[0].message and "逗号" in found[0].message
    assert "未读取" in found[0].message


@pytest.mark.parametrize("name", ["people.xls", "people.ods", "units.numbers", "人员备份.et"])
def test_a_spreadsheet_format_that_cannot_be_read_is_skipped_with_a_warning_saying_how_to_save_it(
        tmp_path: Path, name: str) -> None:
    # Trial 10: often a backup left beside the real file; it refused the whole folder (every reload).
    folder = folder_with(tmp_path, people_csv="标识,姓名\nwang_fang,王芳\n", units_csv="标识,名称\ngw,工委\n")
    (folder / name).write_bytes(b"\xd0\xcf\x11\xe0 not read")
    schedules, issues = check_schedules(folder)
    assert schedules is not None and errors(issues) == []
    [warning] = [str(i) for i in issues if i.warning]
    suffix = name.rpartition(".")[2]
    assert warning == (f"schedules/{name}:1:1: 警告 未读取 {name}：无法读取 .{suffix} 格式的表格，已跳过这个文件"
                       "（其余文件照常生效）。若要使用其中的人员或单位，请用 Excel 或 WPS 打开，"
                       "另存为 .xlsx（Excel 工作簿）或 CSV UTF-8（逗号分隔）；若是旧的备份，请把它移出日程文件夹。")


@pytest.mark.parametrize(("name", "word"), [("people.xls", "人员"), ("units.ods", "单位")])
def test_an_unreadable_spreadsheet_that_is_the_only_list_is_an_error_not_skipped(
        tmp_path: Path, name: str, word: str) -> None:
    # Skipping it would leave schedules with nobody in them: the last good ones must keep running.
    folder = folder_with(tmp_path)
    (folder / name).write_bytes(b"\xd0\xcf\x11\xe0 the real list, saved as .xls")
    schedules, issues = check_schedules(folder)
    assert schedules is None
    assert [str(i) for i in errors(issues)] == [
        f"schedules/{name}:1:1: 错误 无法读取 {name}（.{name.rpartition('.')[2]} 格式），而日程中没有其他{word}："
        "请用 Excel 或 WPS 打开，另存为 .xlsx（Excel 工作簿）或 CSV UTF-8（逗号分隔）。"]


def test_a_supported_spreadsheet_that_is_broken_is_still_an_error(tmp_path: Path) -> None:
    folder = folder_with(tmp_path)
    (folder / "people.xlsx").write_bytes(b"\xd0\xcf\x11\xe0 an .xls renamed")
    schedules, issues = check_schedules(folder)
    assert schedules is None
    assert [str(i) for i in errors(issues)] == [
        "schedules/people.xlsx:A1: 错误 无法读取 Excel 文件（BadZipFile）：请用 Excel 另存为 .xlsx。"]


def test_a_formula_without_its_saved_value_is_an_error_asking_to_save_in_excel(tmp_path: Path) -> None:
    book = xlsx([["标识", "姓名"], ["g1", '="甲"&"乙"']])
    folder = folder_with(tmp_path)
    book.save(folder / "people.xlsx")  # openpyxl saves formulas without values, as a generator would
    _, issues = check_schedules(folder)
    assert [i.message.startswith("单元格 B2 是公式，但文件中没有保存计算结果") for i in errors(issues)] == [True]
    assert [(i.line, i.column) for i in errors(issues)] == [(2, 2)]  # at B2, the cell it names


def test_a_formula_without_its_value_leaves_its_row_out_and_the_file_s_other_errors_are_still_said(
        tmp_path: Path) -> None:
    # Trial 7: the formula error was the only one shown; the row-3 unknown unit appeared only once
    # the formula's row was deleted, a second round trip for the admin.
    book = xlsx([["标识", "姓名", "单位"], ["g1", "李一", "b1"], ["g2", "李二", "b9"], ["g3", "=A1", "b1"]])
    folder = folder_with(tmp_path, units_csv=UNITS)
    book.save(folder / "people.xlsx")
    _, issues = check_schedules(folder)
    found = sorted((i.line, i.column, i.message[:10]) for i in errors(issues))
    assert found == [(3, 3, "未知的单位 “b9”"), (4, 2, "单元格 B4 是公式")], found


def test_an_excel_file_s_errors_name_cells_as_excel_does_and_a_csv_s_rows_and_columns(tmp_path: Path) -> None:
    # Trial 12: ".xlsx:4:2: 错误 单元格 B4 是公式" named one cell two ways; in Excel it is B4 throughout.
    book = xlsx([["标识", "姓名", "单位", "姓名"], ["g1", "李一", "b1"], ["g2", "李二", "b9"], ["g3", "=A1", "b1"]])
    folder = folder_with(tmp_path, units_csv=UNITS, people_csv="标识,姓名,单位\ng4,李四,b9\n")
    book.save(folder / "people2.xlsx")
    _, issues = check_schedules(folder)
    shown = sorted(str(i) for i in errors(issues))
    assert shown == ["schedules/people.csv:2:3: 错误 列 “单位”：未知的单位 “b9”。",
                     "schedules/people2.xlsx:B4: 错误 单元格 B4 是公式，但文件中没有保存计算结果（文件由程序生成、"
                     "未在 Excel 中保存过）：请用 Excel 或 WPS 打开后保存一次，或把这些格“选择性粘贴为数值”。",
                     "schedules/people2.xlsx:C3: 错误 列 “单位”：未知的单位 “b9”。",
                     "schedules/people2.xlsx:D1: 错误 列 “姓名” 重复，已在 B 列出现。"], shown


# ---------------------------------------------------------------- #6 bounded cells, no control characters


def test_long_names_and_control_characters_are_refused_with_the_field(tmp_path: Path) -> None:
    book = xlsx([["标识", "姓名", "职务"], ["g1", "高" * 65, "书记"], ["g2", "高\n明", "书记"],
                 ["g4", "李四", "书" * 900]])  # (XML, hence openpyxl, cannot hold a NUL)
    folder = folder_with(tmp_path, people_csv="标识,姓名\ng3,高\x00明\ng5,高\x1b明\n")
    book.save(folder / "people2.xlsx")
    _, issues = check_schedules(folder)
    found = {(i.file[10:], i.line, i.column, i.field, i.message.split("（")[0]) for i in errors(issues)}
    assert found == {("people2.xlsx", 2, 2, "people[0].name", "过长：65 个字符，上限 64"),
                     ("people2.xlsx", 3, 2, "people[1].name", "含有换行符"),
                     ("people2.xlsx", 4, 3, "people[2].title", "过长：900 个字符，上限 64"),
                     ("people.csv", 2, 2, "people[0].name", "含有空字符"),
                     ("people.csv", 3, 2, "people[1].name", "含有控制字符 U+001B")}


def _bomb(path: Path, megabytes: int) -> None:
    """A small .xlsx whose one name cell expands to ``megabytes`` MB when unzipped."""
    plain = io.BytesIO()
    xlsx([["标识", "姓名"], ["g1", "PLACEHOLDER"]]).save(plain)
    with zipfile.ZipFile(plain) as source, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as out:
        for info in source.infolist():
            data = source.read(info.filename)
            if b"PLACEHOLDER" not in data:
                out.writestr(info, data)
                continue
            before, after = data.split(b"PLACEHOLDER")
            with out.open(info.filename, "w") as part:
                part.write(before)
                for _ in range(megabytes):
                    part.write(b"a" * (1 << 20))
                part.write(after)


def test_a_small_xlsx_hiding_a_huge_cell_is_refused_without_reading_the_cell(tmp_path: Path) -> None:
    folder = folder_with(tmp_path)
    _bomb(folder / "people.xlsx", 40)
    assert (folder / "people.xlsx").stat().st_size < 200_000
    tracemalloc.start()
    try:
        schedules, issues = check_schedules(folder)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert schedules is None
    assert [(i.line, i.column) for i in errors(issues)] == [(2, 2)]
    assert errors(issues)[0].message.startswith(f"单元格 B2 超过 {CELL_CHARS} 个字符（开头是 “aaaa")
    assert peak < 20 * 1024 * 1024, peak


# ---------------------------------------------------------------- #10 messages that point at the cause


def test_a_missing_name_points_at_the_name_column(tmp_path: Path) -> None:
    folder = folder_with(tmp_path, people_csv="标识,姓名,角色\np1,张伟,secretary\np2,,secretary\n")
    _, issues = check_schedules(folder)
    assert [(i.line, i.column, i.field, i.message) for i in errors(issues)] == [
        (3, 2, "people[1].name", "缺少必填字段")]


def test_a_duplicate_id_is_reported_even_when_the_first_row_has_another_error(tmp_path: Path) -> None:
    folder = folder_with(tmp_path, people_csv="标识,姓名,手机\np1,张伟,12x\np1,李四,13800000001\n")
    _, issues = check_schedules(folder)
    found = {(i.line, i.message) for i in errors(issues)}
    # In the same file, its line alone: no second path written otherwise than the issue's own (trial 7).
    assert (3, "标识 “p1” 重复，已在本文件第 2 行定义") in found
    assert any(line == 2 and "手机号" in message for line, message in found)


def test_a_unit_name_where_its_id_belongs_gets_a_hint(tmp_path: Path) -> None:
    folder = folder_with(tmp_path, units_csv=UNITS,
                         people_csv="标识,姓名,单位\np1,张伟,第一党支部\n")
    _, issues = check_schedules(folder)
    assert [i.message for i in errors(issues)] == ["未知的单位 “第一党支部”：这是单位 b1 的名称，请填写单位标识 “b1”"]


@pytest.mark.parametrize("written", ["姓 名", "姓\u3000名", "*姓名", " 姓名（必填）"])
def test_header_words_with_spaces_or_required_marks_are_understood(tmp_path: Path, written: str) -> None:
    folder = folder_with(tmp_path, people_csv=f"标识,{written},角色\np1,张伟,secretary\n")
    schedules, issues = check_schedules(folder)
    assert errors(issues) == [] and schedules is not None and schedules.people["p1"].name == "张伟"


def test_a_misspelt_header_gets_a_suggestion(tmp_path: Path) -> None:
    folder = folder_with(tmp_path, people_csv="标识,姓名,手机号吗\np1,张伟,13800000001\n")
    _, issues = check_schedules(folder)
    assert [i.message for i in errors(issues)] == ["未知的列 “手机号吗”，是不是 “手机”？"]


@pytest.mark.parametrize("header", ["电话", "联系电话", "手机号码", "电话号码"])
def test_common_words_for_the_mobile_column_are_understood(tmp_path: Path, header: str) -> None:
    folder = folder_with(tmp_path, people_csv=f"标识,姓名,{header}\np1,张伟,13800000001\n")
    schedules, issues = check_schedules(folder)
    assert errors(issues) == [] and schedules is not None and schedules.people["p1"].mobile == "13800000001"


def test_scientific_notation_says_excel_changed_the_number(tmp_path: Path) -> None:
    folder = folder_with(tmp_path, people_csv="标识,姓名,手机,钉钉\np1,张伟,1.38E+10,\np2,李四,,3.04E+08\n")
    _, issues = check_schedules(folder)
    found = {(i.line, i.field): i.message for i in errors(issues)}
    assert "Excel 把长数字改成的科学计数法" in found[(2, "people[0].mobile")]
    assert "Excel 把长数字改成的科学计数法" in found[(3, "people[1].ids.dingtalk")]


def test_a_numeric_platform_id_in_excel_warns_that_leading_zeros_may_be_lost(tmp_path: Path) -> None:
    book = xlsx([["标识", "姓名", "钉钉"], ["p1", "张伟", 304050607], ["p2", "李四", "0304050608"]])
    folder = folder_with(tmp_path)
    book.save(folder / "people.xlsx")
    schedules, issues = check_schedules(folder)
    assert schedules is not None and schedules.people["p2"].ids.dingtalk == "0304050608"
    assert [(i.line, i.field, "开头的 0 已经丢失" in i.message) for i in issues if i.warning] == [
        (2, "people[0].ids.dingtalk", True)]


def test_the_csv_template_has_no_cell_excel_would_turn_into_a_number() -> None:
    rows = list(csv.reader(io.StringIO(template_csv("people").decode("utf-8-sig"))))
    for row in rows[1:]:
        for cell in row:
            assert not (cell.isdigit() and (len(cell) > 10 or cell.startswith("0"))), cell
    assert '="0304050607"' in rows[2] and '="13900000001"' in rows[1]


# ---------------------------------------------------------------- #9 grouped, bounded output; #11 words


def test_the_same_error_on_many_rows_is_one_issue_listing_the_rows(tmp_path: Path) -> None:
    rows = "".join(f"p{i},人员{i},局X\n" for i in range(25))
    folder = folder_with(tmp_path, units_csv=UNITS, people_csv="标识,姓名,单位\n" + rows)
    _, issues = check_schedules(folder)
    assert [(i.line, i.message) for i in errors(issues)] == [
        (2, "未知的单位 “局X”：第 2、3、4、5、6、7、8、9、10、11…… 行，共 25 行")]


def test_validate_prints_a_bounded_number_of_lines(tmp_path: Path) -> None:
    rows = "".join(f"p{i},人员{i},局{i}\n" for i in range(500))
    folder = folder_with(tmp_path, units_csv=UNITS, people_csv="标识,姓名,单位\n" + rows)
    result = CliRunner().invoke(main, ["validate", str(folder)])
    assert result.exit_code == 1
    assert len(result.output.splitlines()) < 210
    assert "另有 300 处问题未列出（其中 300 处错误）" in result.output and "共 500 处错误" in result.output


def test_validate_help_names_the_spreadsheets() -> None:
    result = CliRunner().invoke(main, ["validate", "--help"])
    assert ".csv" in result.output and ".xlsx" in result.output and "（YAML）" not in result.output


def test_the_entries_limit_counts_yaml_entries_and_the_sheet_limit_spreadsheet_rows(tmp_path: Path) -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    row = next(line for line in readme.splitlines() if line.startswith("| `REMINDBOT_MAX_SCHEDULE_ENTRIES`"))
    assert "YAML" in row and "REMINDBOT_MAX_SHEET_ROWS" in row
    rows = "".join(f"p{i},人员{i}\n" for i in range(10))
    folder = folder_with(tmp_path, people_csv="标识,姓名\n" + rows)
    schedules, _ = check_schedules(folder, limits=Limits(entries=5))
    assert schedules is not None and schedules.size("people") == 10  # as documented
    _, issues = check_schedules(folder, limits=Limits(sheet_rows=5))
    assert any("REMINDBOT_MAX_SHEET_ROWS" in i.message for i in issues)


def test_a_loop_of_parents_in_a_spreadsheet_is_said_in_the_sheet_s_words(tmp_path: Path) -> None:
    # Trial 7: "字段 units[1].parent：…（请改正其中一个单位的 parent）" in a file whose column is 上级单位.
    folder = folder_with(tmp_path, units_csv="标识,名称,上级单位\nb1,甲,b2\nb2,乙,b1\n")
    _, issues = check_schedules(folder)
    [loop] = [str(i) for i in errors(issues)]
    assert "列 “上级单位”：上级单位形成了循环" in loop and "请改正其中一个单位的上级单位）" in loop, loop
    assert "parent" not in loop


def test_errors_name_the_column_as_the_admin_s_header_wrote_it(tmp_path: Path) -> None:
    # Trial 10: a header 手机号码 (an accepted word for the mobile) got errors about a column “手机”,
    # which the admin's sheet does not have; a DingTalk column headed 钉钉账号 likewise.
    people = ("标识,姓名,单位,*手机号码,钉钉\n"
              "p1,张三,b1,12x,\n"
              "p2,李四,b9,13800000002,=\"1.38E+10\"\n")
    folder = folder_with(tmp_path, units_csv=UNITS, people_csv=people)
    result = CliRunner().invoke(main, ["validate", str(folder)])
    assert result.exit_code == 1
    assert "/people.csv:2:4: 错误 列 “*手机号码”：应为 11 位手机号（如 13800000000），现在是 “12x”" in result.output
    assert "/people.csv:3:3: 错误 列 “单位”：未知的单位 “b9”" in result.output
    assert "/people.csv:3:5: 错误 列 “钉钉”：" in result.output
    assert "“手机”" not in result.output


def test_a_loop_of_parents_names_the_parent_column_as_headed(tmp_path: Path) -> None:
    folder = folder_with(tmp_path, units_csv="标识,名称,上级\nb1,甲,b2\nb2,乙,b1\n")
    _, issues = check_schedules(folder)
    [loop] = [str(i) for i in errors(issues)]
    assert "列 “上级”：上级单位形成了循环" in loop and "请改正其中一个单位的上级）" in loop, loop


@pytest.mark.parametrize(("name", "kind", "suffix"), [("people", "units", ".csv"), ("units", "people", ".xlsx")])
def test_a_template_of_the_other_kind_is_one_error_that_says_so(tmp_path: Path, name: str, kind: str,
                                                                suffix: str) -> None:
    # Trial 10: the units template saved as people.csv gave four errors about unknown columns, out of order.
    template = template_csv(kind) if suffix == ".csv" else template_xlsx(kind)
    folder = folder_with(tmp_path, **{f"{name}_{suffix[1:]}": template})
    result = CliRunner().invoke(main, ["validate", str(folder)])
    assert result.exit_code == 1
    words = {"people": "人员", "units": "单位"}
    [line] = [line for line in result.output.splitlines() if ": 错误 " in line]
    at = "A1" if suffix == ".xlsx" else "1:1"
    assert line.endswith(f"/{name}{suffix}:{at}: 错误 “{name}{suffix}” 的第一行（{'、'.join(template_header(kind))}）"
                         f"是{words[kind]}表的列名，但文件名表示这是{words[name]}表："
                         f"若这是{words[kind]}表，请把文件改名为 {kind}{suffix}（或以“{words[kind]}”开头）；"
                         f"若要填{words[name]}，请用{words[name]}模板"
                         f"（管理页面的 /admin/templates/{name}.xlsx）。"), line
    assert "共 1 处错误" in result.output


def test_a_sheet_whose_header_fits_both_kinds_is_read_as_its_name_says(tmp_path: Path) -> None:
    folder = folder_with(tmp_path, units_csv=UNITS, people_csv="id,name,unit\np1,张三,b1\n")
    schedules, issues = check_schedules(folder)
    assert errors(issues) == [] and schedules is not None and schedules.people["p1"].unit == "b1"


def test_errors_are_listed_in_file_and_row_order_with_a_file_that_failed_first(tmp_path: Path) -> None:
    folder = folder_with(tmp_path, units_csv=UNITS, people_csv="姓名,备注x,角色\n张三,,secretary\n")
    (folder / "aa.yaml").write_text("units:\n  - {id: lone, name: 孤, leaders: 7}\n"
                                    "  - {id: lone2, name: 孤二, leaders: 8}\n", encoding="utf-8")
    _, issues = check_schedules(folder)
    assert [(i.file.rpartition("/")[2], i.line, i.column) for i in errors(issues)] == [
        ("people.csv", 1, 1), ("people.csv", 1, 2), ("aa.yaml", 2, 34), ("aa.yaml", 3, 36)], \
        [str(i) for i in issues]


def test_a_misheaded_people_sheet_beside_an_instructions_sheet_gets_the_single_sheet_errors(
        tmp_path: Path) -> None:
    """Trial 10: the header's own mistakes, not 'no sheet has a header', when one sheet plainly holds the people."""
    header = ["序号", "姓名", "单位", "角色", "手机", "钉钉号"]
    row = [1, "甲", "gw", "secretary", "13800000000", "d1"]
    (tmp_path / "alone").mkdir()
    (tmp_path / "beside").mkdir()
    alone = folder_with(tmp_path / "alone")
    xlsx([header, row], title="人员").save(alone / "people.xlsx")
    book = xlsx([header, row], title="人员")
    book.create_sheet("说明").append(["填写说明：标识为英文字母和数字"])
    beside = folder_with(tmp_path / "beside")
    book.save(beside / "people.xlsx")
    said_alone = [str(i) for i in errors(check_schedules(alone)[1])]
    said_beside = [str(i) for i in errors(check_schedules(beside)[1])]
    assert said_beside == said_alone
    assert any("未知的列 “序号”，是不是 “标识”？" in s for s in said_beside)
    assert any("缺少必需的列：标识" in s for s in said_beside)
    assert any("未知的列 “钉钉号”，是不是 “钉钉”？" in s for s in said_beside)
    assert not any("没有找到列名" in s for s in said_beside)


def test_a_duplicate_id_first_in_an_excel_file_names_its_cell(tmp_path: Path) -> None:
    folder = folder_with(tmp_path, people_csv="标识,姓名\ng1,李一二\n")
    xlsx([["姓名", "标识"], ["李一", "g1"]]).save(folder / "people-a.xlsx")  # read first: it is first seen there
    _, issues = check_schedules(folder)
    assert [i.message for i in errors(issues)] == ["标识 “g1” 重复，已在 schedules/people-a.xlsx:B2 定义"]
