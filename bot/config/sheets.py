"""People and units from spreadsheets (.csv, .xlsx) in the schedules folder.

At a city's or province's scale people come from the member-management system's export, not from
YAML. A file whose name starts with ``people`` (or 人员) holds people, ``units`` (or 单位) units; the
first row names the columns, in Chinese or English (``bot/config/columns.py``).

A sheet becomes a :class:`~bot.config.yamlsource.YamlDoc` like a YAML file: ``data`` is
``{"people": [row dicts]}`` and ``tree`` a node tree whose marks are the sheet's row (line) and
column, built lazily row by row, so the loader's validation, cross-checks and messages (file, row,
column, field, in Chinese) are the very same as for YAML. Every cell is text: an id or a mobile
number with a leading zero stays as written.

Nothing is dropped silently: a CSV quote left open is an error at its row and the rows after it are
read on; an .xlsx's sheets, merged cells, cells without a header and formulas without a saved value
are each read as the admin sees them or refused with a word; .xls/.ods files (often a backup left
beside the real file) are skipped with a warning naming them, the rest of the folder applied. Every
cell is bounded (:data:`CELL_CHARS`, :data:`FIELD_CHARS`) and control characters are refused.
"""

from __future__ import annotations

import csv
import difflib
import io
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import yaml

from bot.config.columns import SECTIONS
from bot.config.issues import UNREADABLE_SHEET_SUFFIXES
from bot.config.limits import Limits, sheet_rows_message, sheet_size_message
from bot.config.sourcefile import NotRead, read_source, regular_stat
from bot.config.yamlsource import ConfigIssue, YamlDoc, guess_encoding
from bot.platforms.registry import PERSON_ID_FIELDS

SHEET_SUFFIXES = (".csv", ".xlsx", *UNREADABLE_SHEET_SUFFIXES)  # the latter refused by read_sheet
_STR, _SEQ, _MAP = "tag:yaml.org,2002:str", "tag:yaml.org,2002:seq", "tag:yaml.org,2002:map"
PLATFORM_FIELDS = tuple(PERSON_ID_FIELDS)  # a person's ids, one column each (people[].ids)
LIST_FIELDS = ("roles", "channels", "leaders")
_SPLIT = re.compile(r"[,，;；、\s]+")

_PREFIXES = {"people": ("people", "人员"), "units": ("units", "单位")}
REQUIRED = ("id", "name")


def is_sheet(path: Path) -> bool:
    return path.suffix.lower() in SHEET_SUFFIXES


def section_of(path: Path) -> str | None:
    """``people`` or ``units`` from the file name, None when it names neither."""
    stem = path.stem.lower()
    for section, prefixes in _PREFIXES.items():
        if stem.startswith(prefixes):
            return section
    return None


# ------------------------------------------------------------------ the lazy node tree


def _mark(label: str, row: int, column: int) -> yaml.Mark:
    """A mark at a 1-based sheet row and column (yaml marks are 0-based)."""
    return yaml.Mark(label, 0, row - 1, column - 1, None, None)


@dataclass
class _Layout:
    """Where each field sits: its 1-based column, and the 1-based sheet row of each data row; and
    each field's heading as the sheet's first row writes it (手机号码, *姓名)."""

    label: str
    columns: dict[str, int]
    rows: list[int]
    headings: dict[str, str] = dataclass_field(default_factory=dict)


class _RowNodes(Sequence[yaml.Node]):
    """The sequence node's items, each row's mapping node made when it is first looked at."""

    def __init__(self, data: list[dict[str, Any]], layout: _Layout) -> None:
        self.data, self.layout = data, layout
        self._made: dict[int, yaml.Node] = {}

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> yaml.Node:  # type: ignore[override]
        if index < 0:
            index += len(self.data)
        if index not in self._made:
            self._made[index] = self._node(index)
        return self._made[index]

    def __iter__(self) -> Iterator[yaml.Node]:
        return (self[i] for i in range(len(self.data)))

    def _node(self, index: int) -> yaml.Node:
        lay, row = self.layout, self.layout.rows[index]
        pairs: list[tuple[yaml.Node, yaml.Node]] = []
        for key, value in self.data[index].items():
            if isinstance(value, dict):  # ids: the platforms' columns
                column = min((lay.columns.get(p, 1) for p in value), default=1)
            else:
                column = lay.columns.get(key, 1)
            key_node = yaml.ScalarNode(_STR, key, _mark(lay.label, row, column), _mark(lay.label, row, column))
            pairs.append((key_node, self._value(value, row, column)))
        return yaml.MappingNode(_MAP, pairs, _mark(lay.label, row, 1), _mark(lay.label, row, 1))

    def _value(self, value: Any, row: int, column: int) -> yaml.Node:
        mark = _mark(self.layout.label, row, column)
        if isinstance(value, list):
            return yaml.SequenceNode(_SEQ, [yaml.ScalarNode(_STR, v, mark, mark) for v in value], mark, mark)
        if isinstance(value, dict):
            pairs = []
            for key, item in value.items():
                at = _mark(self.layout.label, row, self.layout.columns.get(key, column))
                pairs.append((yaml.ScalarNode(_STR, key, at, at), yaml.ScalarNode(_STR, item, at, at)))
            return yaml.MappingNode(_MAP, pairs, mark, mark)
        return yaml.ScalarNode(_STR, str(value), mark, mark)


class _LazySequence(yaml.SequenceNode):
    pass


def sheet_location(doc: YamlDoc, index: int, field: str) -> tuple[int, int]:
    """1-based row and column of a field of a sheet's ``index``-th entry, without building its node."""
    rows = doc.tree.value[0][1].value
    assert isinstance(rows, _RowNodes)
    return rows.layout.rows[index], rows.layout.columns.get(field, 1)


def sheet_headings(doc: YamlDoc) -> dict[str, str]:
    """Each column's field -> its heading as the sheet's first row writes it (``mobile``: 手机号码)."""
    rows = doc.tree.value[0][1].value
    assert isinstance(rows, _RowNodes)
    return rows.layout.headings


def _tree(section: str, data: list[dict[str, Any]], layout: _Layout) -> yaml.MappingNode:
    start = _mark(layout.label, 1, 1)
    items = _LazySequence(_SEQ, _RowNodes(data, layout), _mark(layout.label, 2, 1), start)
    key = yaml.ScalarNode(_STR, section, start, start)
    return yaml.MappingNode(_MAP, [(key, items)], start, start)


# ------------------------------------------------------------------ reading

# Bounds on one cell, checked while reading (characters). WeCom caps a member's name and userid at
# 64 characters; a title, an id or a platform id longer than that is a paste gone wrong. Every
# other cell (lists of roles, channels, leaders) is bounded too. No cell is held whole far past its
# bound: a CSV cell stops at the csv module's field limit (131,072 characters, an error at its row),
# and an .xlsx is scanned before openpyxl reads it (_scan_xlsx).
CELL_CHARS = 1000
FIELD_CHARS: dict[str, int] = {"id": 64, "name": 64, "title": 64, "mobile": 20,
                               **{name: 64 for name in PLATFORM_FIELDS}}
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_CONTROL_NAMES = {"\n": "换行符", "\r": "回车符", "\t": "制表符", "\x00": "空字符（NUL）"}
_SCIENTIFIC = re.compile(r"^[+-]?\d+(\.\d+)?[eE][+]?\d+$")
_NO_NUMBERS: frozenset[int] = frozenset()
_QUOTE_ERRORS_SHOWN = 20  # a CSV with more broken quotes than this is not read further
_Row = tuple[int, list[str], frozenset[int]]  # 1-based sheet row, cells as text, columns that held numbers


def excel_number_hint(value: str) -> str:
    """Why a value such as 1.38E+10 is wrong, when a spreadsheet turned a long number into one; else ""."""
    if not _SCIENTIFIC.match(value.strip()):
        return ""
    return ("（这是 Excel 把长数字改成的科学计数法，原来的数字已经丢失；"
            "请把这一列设为“文本”格式后重新填写，或从原始数据重新导出）")


def read_sheet(path: Path, label: str, issues: list[ConfigIssue], limits: Limits,
               rows_left: int) -> YamlDoc | None:
    """One spreadsheet as a doc, or None (with issues) when it cannot be used.

    ``rows_left``: data rows still allowed across all sheets (``limits.sheet_rows`` minus earlier files).
    """
    if path.suffix.lower() in UNREADABLE_SHEET_SUFFIXES:  # often a backup left there: skipped, not refused
        issues.append(ConfigIssue(label, 1, 1, "", unreadable_sheet_message(path), warning=True))
        return None
    section = section_of(path)
    if section is None:
        issues.append(ConfigIssue(label, 1, 1, "", "表格文件名应以 people（或“人员”）或 units（或“单位”）开头，"
                                                   "以便知道它列的是人员还是单位"))
        return None
    try:  # looked at before it is read: a pipe or device is never opened, an oversized file never read
        size = regular_stat(path).st_size
    except NotRead as exc:
        issues.append(ConfigIssue(label, 1, 1, "", str(exc)))
        return None
    if size > limits.sheet_bytes:
        issues.append(ConfigIssue(label, 1, 1, "", sheet_size_message(size, limits)))
        return None
    reading = _Reading(label, section, issues)
    try:
        rows = _xlsx_rows(path, reading) if path.suffix.lower() == ".xlsx" else _csv_rows(path, reading, limits)
        if rows is None:
            return None
        return _build(path, reading, rows, limits, rows_left)
    except Exception as exc:  # a reader's bug or a malformed file: an error naming the row, never a crash
        issues.append(ConfigIssue(label, reading.row, 1, "", f"读取第 {reading.row} 行时出错（{type(exc).__name__}），"
                                  "从这里起未检查；请用 Excel 另存为 .xlsx 或 CSV UTF-8 后再试"))
        return None


def unreadable_sheet_message(path: Path) -> str:
    """Why a spreadsheet of a format the loader does not read (.xls, .ods…) was left out, and what to do."""
    return (f"未读取 {path.name}：无法读取 {path.suffix} 格式的表格，已跳过这个文件（其余文件照常生效）。"
            "若要使用其中的人员或单位，请用 Excel 或 WPS 打开，另存为 .xlsx（Excel 工作簿）或 CSV UTF-8（逗号分隔）；"
            "若是旧的备份，请把它移出日程文件夹")


@dataclass
class _Reading:
    """One file being read: where its issues go, and the sheet row being read (for an unexpected failure)."""

    label: str
    section: str
    issues: list[ConfigIssue]
    row: int = 1
    letters: bool = False  # name cells as Excel does (C7) in messages
    plain: bool = False  # the whole text holds nothing a row must be looked at for (see _CAREFUL)
    # .xlsx: sheet rows holding a formula saved without its value, by worksheet part (already said)
    formula_rows: dict[str, set[int]] = dataclass_field(default_factory=dict)

    def error(self, row: int, column: int, field: str, message: str, warning: bool = False) -> None:
        self.issues.append(ConfigIssue(self.label, row, column, field, message, warning))

    def column(self, column: int) -> str:
        """A column as the admin sees it: “H 列” in Excel, “第 8 列” in a CSV (``column`` 1-based)."""
        if self.letters:
            from openpyxl.utils import get_column_letter

            return f"{get_column_letter(column)} 列"
        return f"第 {column} 列"


def _build(path: Path, reading: _Reading, rows: Iterator[_Row], limits: Limits, rows_left: int) -> YamlDoc | None:
    label, section = reading.label, reading.section
    header = next(rows, None)
    if header is None:
        reading.error(1, 1, "", "表格是空的：第一行应为列名（例如 标识、姓名）")
        return None
    if (other := _other_kind(header[1], section)) is not None:
        reading.error(1, 1, "", _other_kind_message(path, header[1], section, other))
        return None
    columns = _columns(header[1], SECTIONS[section], reading)
    if columns is None:
        return None
    unnamed = [col for col, word in enumerate(header[1]) if not _header_word(word)]
    data: list[dict[str, Any]] = []
    numbers: list[int] = []
    for number, cells, numeric in rows:
        reading.row = number
        if not any(cells):
            continue  # blank lines between blocks are common in exports
        if len(data) >= rows_left:
            reading.error(number, 1, f"{section}[{len(data)}]", sheet_rows_message(limits))
            return None
        if not reading.letters and _overflowing(cells, header[1]):
            _say_overflowing(cells, header[1], number, reading)
            continue  # one error at its root: the row's cells mean nothing as placed
        if unnamed or len(cells) > len(header[1]):
            _beyond(cells, header[1], unnamed, number, reading)
        data.append(_entry(cells, columns, numeric, number, len(data), reading))
        numbers.append(number)
    headings = {field: _heading_shown(header[1][col]) for field, col in columns.items()}
    layout = _Layout(label, {field: col + 1 for field, col in columns.items()}, numbers, headings)
    return YamlDoc(path, label, _tree(section, data, layout), {section: data}, sheet=True)


def _header_word(raw: str) -> str:
    """A header cell as compared: no BOM, no spaces (full-width too), no required-marks (*姓名, 姓名（必填）)."""
    word = "".join(raw.replace("\ufeff", "").split())
    word = word.strip("*＊")
    for mark in ("（必填）", "(必填)", "（选填）", "(选填)"):
        word = word.removesuffix(mark)
    return word.lower()


def _heading_shown(raw: str) -> str:
    """A header cell as the admin wrote it, for messages (no BOM, no surrounding spaces)."""
    return raw.strip().lstrip("\ufeff")


_KIND_WORDS = {"people": "人员", "units": "单位"}


def _other_kind(header: list[str], section: str) -> str | None:
    """The other section (``units`` for a people file) when the header is that section's and not
    this one's: every heading one of its columns, its required ones there, and some heading this
    section does not know (the units template saved as people.csv). None otherwise."""
    words = [w for w in map(_header_word, header) if w]
    for other, known in SECTIONS.items():
        if other == section:
            continue
        theirs = {w.lower(): field for field, names in known.items() for w in names}
        ours = {w.lower() for names in SECTIONS[section].values() for w in names}
        if words and all(w in theirs for w in words) and any(w not in ours for w in words) \
                and all(f in {theirs[w] for w in words} for f in REQUIRED):
            return other
    return None


def _other_kind_message(path: Path, header: list[str], section: str, other: str) -> str:
    """One error for a sheet of the other kind: what its header is, and the two ways out."""
    shown = "、".join(_heading_shown(raw) for raw in header if _header_word(raw))
    mine, theirs = _KIND_WORDS[section], _KIND_WORDS[other]
    return (f"“{path.name}” 的第一行（{shown}）是{theirs}表的列名，但文件名表示这是{mine}表："
            f"若这是{theirs}表，请把文件改名为 {other}{path.suffix.lower()}（或以“{theirs}”开头）；"
            f"若要填{mine}，请用{mine}模板（管理页面的 /admin/templates/{section}.xlsx）")


def _columns(header: list[str], known: dict[str, tuple[str, ...]], reading: _Reading) -> dict[str, int] | None:
    """Field -> 0-based column; unknown and repeated columns are errors, a missing id or name too."""
    words = {w.lower(): field for field, names in known.items() for w in names}
    columns: dict[str, int] = {}
    for col, raw in enumerate(header):
        name = _header_word(raw)
        if not name:
            continue
        field = words.get(name)
        shown = _heading_shown(raw)
        if field is None:
            hint = difflib.get_close_matches(name, list(words), n=1, cutoff=0.5)
            if hint:
                first = next(names[0] for names in known.values() if hint[0] in (n.lower() for n in names))
                reading.error(1, col + 1, "", f"未知的列 “{shown}”，是不是 “{first}”？")
            else:
                allowed = "、".join(names[0] for names in known.values())
                reading.error(1, col + 1, "", f"未知的列 “{shown}”（可用的列：{allowed}）")
        elif field in columns:
            reading.error(1, col + 1, "", f"列 “{shown}” 重复，已在{' ' if reading.letters else ''}"
                                        f"{reading.column(columns[field] + 1)}出现")
        else:
            columns[field] = col
    missing = [known[f][0] for f in REQUIRED if f not in columns]
    if missing:
        reading.error(1, 1, "", f"缺少必需的列：{'、'.join(missing)}（第一行应为列名）")
        return None
    return columns


def _overflowing(cells: list[str], header: list[str]) -> bool:
    """A CSV row with data past its last column name: almost always a comma inside a cell that is
    not quoted (a name, an address), which shifts every later cell one column to the right; each
    shifted cell would then be an error of its own, none at the cause."""
    return len(cells) > len(header) and any(cell.strip() for cell in cells[len(header):])


def _say_overflowing(cells: list[str], header: list[str], row: int, reading: _Reading) -> None:
    reading.error(row, 1, "", f"这一行有 {len(cells)} 格，但第一行只有 {len(header)} 个列名：可能某一格的内容里有"
                              "英文逗号（,），把后面的格都挤到了右边。"
                              "请用英文双引号把这一格括起来（如 \"张三,李四\"），或删去多余的逗号；这一行未读取")


def _beyond(cells: list[str], header: list[str], unnamed: list[int], row: int, reading: _Reading) -> None:
    """Cells holding data under no column name (``unnamed``: the header's empty cells, 0-based, and
    every column past it): an error at the cell, for what they meant is unknown."""
    extra = range(len(header), len(cells)) if len(cells) > len(header) else range(0)
    for col in [*unnamed, *extra]:
        if col < len(cells) and cells[col].strip():
            reading.error(row, col + 1, "", f"{reading.column(col + 1)}没有列名，这一格的内容不会被读取；"
                                            "请删去它，或在第一行写上列名")


def _short(value: str, chars: int = 20) -> str:
    flat = _CONTROL.sub(" ", value)
    return flat if len(flat) <= chars else flat[:chars] + "…"


_SHORTEST_BOUND = min(FIELD_CHARS.values())
_CAREFUL = re.compile(r'[\x00-\x1f\x7f-\x9f\u2028\u2029]|="|[eE]\+')  # a control char, ="…", 1.38E+10
_CONTROL_TEXT = re.compile(r"[\x00-\x09\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029]")  # line ends aside


def _entry(cells: list[str], columns: dict[str, int], numeric: frozenset[int], row: int, index: int,
           reading: _Reading) -> dict[str, Any]:
    """Row ``row`` (the section's ``index``-th entry) as the entry's dict."""
    entry: dict[str, Any] = {}
    ids: dict[str, str] = {}
    # One look at the whole row decides whether its cells need the checks one by one (rarely).
    careful = numeric or max(map(len, cells)) > _SHORTEST_BOUND \
        or (not reading.plain and _CAREFUL.search(",".join(cells)) is not None)
    at = f"{reading.section}[{index}]" if careful else ""
    for field, col in columns.items():
        value = cells[col].strip() if col < len(cells) else ""
        if not value:
            continue
        if careful:
            value = _checked(_unwrapped(value), field, col, row, _field_path(at, field), reading)
            if col in numeric and (field == "id" or field in PLATFORM_FIELDS):
                reading.error(row, col + 1, _field_path(at, field), "这一格在 Excel 中是数字格式：若原来以 0 开头，"
                              "开头的 0 已经丢失；请把这一列设为“文本”格式后重新填写", warning=True)
        if field in LIST_FIELDS:
            entry[field] = [v for v in _SPLIT.split(value) if v]
        elif field in PLATFORM_FIELDS:
            ids[field] = value
        else:
            entry[field] = value
    if ids:
        entry["ids"] = ids
    return entry


def _field_path(at: str, field: str) -> str:
    """The field as the loader names it: people[3].name, people[3].ids.dingtalk."""
    return f"{at}.ids.{field}" if field in PLATFORM_FIELDS else f"{at}.{field}"


def _checked(value: str, field: str, col: int, row: int, at: str, reading: _Reading) -> str:
    """The value within its bound and without control characters; an error for each, value cut to fit."""
    found = _CONTROL.search(value)
    if found:
        what = _CONTROL_NAMES.get(found.group(), f"控制字符 U+{ord(found.group()):04X}")
        line_break = found.group() in "\r\n\u2028\u2029"
        why = "表格的一格里只能有一行文字" if line_break else "请删去它（多是从别处复制时带入的）"
        reading.error(row, col + 1, at, f"含有{what}（“{_short(value)}”）：{why}")
        value = _CONTROL.sub("", value)
    bound = FIELD_CHARS.get(field, CELL_CHARS)
    if len(value) > bound:
        reading.error(row, col + 1, at, f"过长：{len(value)} 个字符，上限 {bound}（“{_short(value)}”）")
        value = value[:bound]
    if field in PLATFORM_FIELDS and excel_number_hint(value):
        reading.error(row, col + 1, at, f"“{value}” 不是平台标识{excel_number_hint(value)}")
    return value


# ------------------------------------------------------------------ CSV


def _csv_rows(path: Path, reading: _Reading, limits: Limits) -> Iterator[_Row] | None:
    """CSV in UTF-8 (with or without BOM) or, as Excel on Chinese Windows saves it, GBK/GB18030; no more
    than ``limits.sheet_bytes`` read (the file may have grown since its size was looked at)."""
    try:
        raw = read_source(path, limits.sheet_bytes, lambda size: sheet_size_message(size, limits))
    except NotRead as exc:
        reading.error(1, 1, "", str(exc))
        return None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        guess = guess_encoding(raw)
        if guess is None or guess[1] not in ("gbk", "gb18030"):
            reading.error(1, 1, "", "表格不是 UTF-8 或 GBK 编码，请另存为“CSV UTF-8”")
            return None
        text = raw.decode("gb18030")
    # One look at the whole file spares one per row (a pattern per case: an alternation is 5× slower).
    reading.plain = _CONTROL_TEXT.search(text) is None and not any(mark in text for mark in ('="', "E+", "e+"))
    return _csv_records(text, reading)


def _csv_records(text: str, reading: _Reading) -> Iterator[_Row]:
    """Each record with the line it starts on. A record spanning lines (a quote left open, or a line
    break inside a quoted cell) is an error at its first line; reading resumes after it, or, for a
    quote never closed, on the next line: one stray quote never swallows the rows after it."""
    base, done, broken = 0, 0, 0  # lines before the reader's first; lines it had read at the last record
    reader = csv.reader(io.StringIO(text, newline=""))
    held: _Row | None = None  # the last record is held back: a quote opened on the last line ends it
    while True:
        start = base + done + 1
        failed: csv.Error | None = None
        try:
            cells = next(reader)
        except StopIteration:
            if held is not None and any("\n" in c or "\r" in c for c in held[1]):
                offset = _line_offset(text, held[0])
                reading.error(held[0], 1, "", _broken_record(text, offset, held[0], held[0], None, True))
            elif held is not None:
                yield held
            return
        except csv.Error as exc:
            failed = exc
        end = base + reader.line_num
        if failed is None and end == start:
            done = reader.line_num
            if held is not None:
                yield held
            held = (start, cells, _NO_NUMBERS)  # cells are bounded by csv's field limit, then by _checked
            continue
        broken += 1
        offset = _line_offset(text, start)
        unclosed = failed is not None or _runs_to_end(text, offset)
        reading.error(start, 1, "", _broken_record(text, offset, start, end, failed, unclosed))
        if broken >= _QUOTE_ERRORS_SHOWN:
            reading.error(start, 1, "", f"引号错误过多（{broken} 处），从这里起未检查；"
                                        "请用 Excel 打开后另存为“CSV UTF-8”")
            return
        if not unclosed:
            done = reader.line_num
            continue
        buffer = io.StringIO(text, newline="")  # resume on the line after the record's first
        buffer.seek(offset)
        buffer.readline()
        reader, base, done = csv.reader(buffer), start, 0


def _line_offset(text: str, line: int) -> int:
    """Where the 1-based ``line`` begins in ``text`` (lines as csv reads them: \\n, \\r\\n or \\r)."""
    buffer = io.StringIO(text, newline="")
    for _ in range(line - 1):
        buffer.readline()
    return buffer.tell()


def _broken_record(text: str, offset: int, start: int, end: int, failed: csv.Error | None,
                   unclosed: bool) -> str:
    """Why the record starting at line ``start`` (text ``offset``) could not be read as one line."""
    first = io.StringIO(text[offset:offset + 4 * CELL_CHARS], newline="").readline().rstrip("\r\n")
    if failed is not None and "field larger" in str(failed) and end == start:
        return f"有一格超过 {CELL_CHARS} 个字符，未读取这一行"
    if failed is not None and "NUL" in str(failed):
        return "这一行含有空字符（NUL）：文件可能已损坏，请用 Excel 另存为“CSV UTF-8”"
    quote = first.find('"')
    where = f"（“{_short(first[quote:], 24)}”）" if quote >= 0 else ""
    if unclosed:
        return (f"引号没有闭合{where}：其后各行都被当成了这一格；请删去多余的引号，或在这一格末尾补上引号"
                "（已跳过这一行，从下一行接着检查）")
    return (f"第 {start}–{end} 行被读成了同一行：引号内有换行{where}，而一格里只能有一行文字；"
            f"请删去多余的引号或换行（已跳过这 {end - start + 1} 行）")


def _runs_to_end(text: str, offset: int) -> bool:
    """Whether a quote opened in the record at ``offset`` is never closed (its cell runs to the end)."""
    reader = csv.reader(io.StringIO(text[offset:], newline=""), strict=True)
    try:
        next(reader)
    except StopIteration:
        return False
    except csv.Error as exc:
        return "unexpected end of data" in str(exc) or "field larger" in str(exc)
    return False


# ------------------------------------------------------------------ .xlsx


def _xlsx_rows(path: Path, reading: _Reading) -> Iterator[_Row] | None:
    """The people's (or units') worksheet's rows as text, streamed (read-only mode: the file is not
    held in memory). The archive is scanned first (:func:`_scan_xlsx`), so an oversized cell or a
    formula without its value is refused before openpyxl loads anything."""
    from zipfile import BadZipFile

    import openpyxl

    reading.letters = True
    why = "无法读取 Excel 文件（{}）：请用 Excel 另存为 .xlsx"
    try:
        scanned = _scan_xlsx(path, reading)
    except (BadZipFile, OSError, KeyError, ValueError) as exc:
        reading.error(1, 1, "", why.format(type(exc).__name__))
        return None
    if scanned is None:
        return None
    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except (BadZipFile, OSError, KeyError, ValueError, TypeError) as exc:
        reading.error(1, 1, "", why.format(type(exc).__name__))
        return None
    sheet = _pick_sheet(book, reading)
    if sheet is None:
        book.close()
        return None
    part = str(getattr(sheet, "_worksheet_path", "")).lstrip("/")
    return _sheet_rows(book, sheet, scanned.get(part, []), reading.formula_rows.get(part, set()))


def _sheet_rows(book: Any, sheet: Any, merged: list[tuple[int, int, int, int]],
                unknown: frozenset[int] | set[int] = frozenset()) -> Iterator[_Row]:
    """Rows with numbers; a merged range's value fills every cell of it (what the admin sees).
    A row in ``unknown`` (a formula without its value, said already) comes out blank, so is skipped."""
    pending = sorted(merged)  # (min_row, min_col, max_row, max_col), 1-based
    active: list[tuple[tuple[int, int, int, int], str]] = []
    try:
        for number, values in enumerate(sheet.iter_rows(values_only=True), start=1):
            cells = [_cell_text(v) for v in values]
            numeric = frozenset(i for i, v in enumerate(values)
                                if isinstance(v, (int, float)) and not isinstance(v, bool))
            while pending and pending[0][0] == number:
                box = pending.pop(0)
                active.append((box, cells[box[1] - 1] if box[1] - 1 < len(cells) else ""))
            while pending and pending[0][0] < number:
                pending.pop(0)
            active = [(box, value) for box, value in active if box[2] >= number]
            for (top, left, _bottom, right), value in active:
                if number == top:
                    continue
                for col in range(left - 1, min(right, len(cells))):
                    if not cells[col]:
                        cells[col] = value
            yield (number, [""] * len(cells), frozenset()) if number in unknown else (number, cells, numeric)
    finally:
        book.close()


def _pick_sheet(book: Any, reading: _Reading) -> Any:
    """The worksheet to read: the only one, or the one whose first row names the columns (preferring
    one titled 人员/people or 单位/units). Sheets left unread are named in a warning, never dropped silently."""
    sheets = list(book.worksheets)
    if len(sheets) == 1:
        return sheets[0]
    known = SECTIONS[reading.section]
    words = {w.lower(): field for field, names in known.items() for w in names}
    with_header, with_data = [], []
    known_words: dict[int, int] = {}  # id(sheet) -> how many of its first row's cells are our headings
    for sheet in sheets:
        first = next(sheet.iter_rows(max_row=1, values_only=True), ())
        fields = {words.get(_header_word(_cell_text(v))) for v in first}
        known_words[id(sheet)] = len(fields - {None})
        if all(f in fields for f in REQUIRED):
            with_header.append(sheet)
        elif any(v not in (None, "") for v in first) or sheet.max_row not in (None, 0, 1):
            with_data.append(sheet)
    titles = _PREFIXES[reading.section] + (_SHEET_TITLES[reading.section],)
    named = [s for s in with_header if s.title.strip().lower() in titles]
    chosen = with_header[0] if len(with_header) == 1 else (named[0] if len(named) == 1 else None)
    if chosen is None and not with_header:
        chosen = _likeliest(with_data, known_words)
    if chosen is None and with_header:
        names = "、".join(f"“{s.title}”" for s in with_header)
        reading.error(1, 1, "", f"有多个工作表的第一行都是列名（{names}），只能读取一个："
                                f"请把它们合并到一个工作表，或分成几个文件（如 {reading.section}_2.xlsx）")
        return None
    if chosen is None:
        names = "、".join(f"“{s.title}”" for s in sheets)
        need = "、".join(known[f][0] for f in REQUIRED)
        reading.error(1, 1, "", f"没有找到列名：各工作表（{names}）的第一行都不是列名（至少要有 {need}）")
        return None
    skipped = [s for s in [*with_header, *with_data] if s is not chosen]
    if skipped:
        names = "、".join(f"“{s.title}”" for s in skipped)
        reading.error(1, 1, "", f"只读取了工作表 “{chosen.title}”；工作表 {names} 的第一行不是列名，未读取"
                                "（若其中也有数据，请移到 “" + chosen.title + "” 或另存为单独的文件）", warning=True)
    return chosen


def _likeliest(sheets: list[Any], known_words: dict[int, int]) -> Any:
    """The sheet whose first row holds the most of our headings (a people sheet whose id column is
    misnamed, beside an instructions sheet), so its header is checked as a single sheet's would be;
    None when no sheet has one or two sheets tie."""
    counts = sorted((known_words[id(s)] for s in sheets), reverse=True)
    if not counts or counts[0] == 0 or (len(counts) > 1 and counts[1] == counts[0]):
        return None
    return next(s for s in sheets if known_words[id(s)] == counts[0])


_MERGE = re.compile(rb'<(?:\w+:)?mergeCell\s+ref="([A-Z]+)(\d+):([A-Z]+)(\d+)"')
_FORMULA_NO_VALUE = re.compile(
    rb'<(?:\w+:)?c\s[^>]*?r="([A-Z]+\d+)"[^>]*>\s*<(?:\w+:)?f(?:\s[^>]*)?(?:/>|>[^<]*</(?:\w+:)?f>)'
    rb'\s*(?:<(?:\w+:)?v\s*/>|<(?:\w+:)?v>\s*</(?:\w+:)?v>)?\s*</(?:\w+:)?c>')
_CHUNK = 1 << 20
_OVERLAP = 4096


def _scan_xlsx(path: Path, reading: _Reading) -> dict[str, list[tuple[int, int, int, int]]] | None:
    """Stream the worksheets and shared strings once, decompressing 1 MB at a time: refuse a cell
    longer than any cell may be (its text is never held whole) and formulas saved without their
    value; return each worksheet's merged ranges (min_row, min_col, max_row, max_col)."""
    from zipfile import ZipFile

    # No cell's text may exceed CELL_CHARS characters; in the XML one character takes at most
    # 10 bytes (&#1114111;), so a run of more bytes between tags is a cell over the bound.
    longest = 10 * CELL_CHARS
    merged: dict[str, list[tuple[int, int, int, int]]] = {}
    with ZipFile(path) as archive:
        for info in archive.infolist():
            name = info.filename
            if not (name.startswith("xl/worksheets/") and name.endswith(".xml")) and name != "xl/sharedStrings.xml":
                continue
            found = _scan_part(archive, name, longest, reading)
            if found is None:
                return None
            merged[name] = found
    return merged


def _scan_part(archive: Any, name: str, longest: int, reading: _Reading) -> list[tuple[int, int, int, int]] | None:
    """One XML part, read in pieces: None (with an error) when a cell's text is too long or a formula
    has no saved value, else the part's merged ranges.

    The stream is cut into aligned windows of ``longest`` bytes: one holding no ``<`` lies inside a
    text of at least that length, and a text twice as long always covers a whole window. Each window
    costs one ``bytes.find``; a longer cell that slips through is at most 2 × ``longest`` bytes and
    is refused, counted exactly, when its row is read.
    """
    merged: list[tuple[int, int, int, int]] = []
    formulas: list[str] = []
    context = longest + _OVERLAP  # kept before new data: a run found starts within ``longest`` of its window
    pending, tail = b"", b""
    with archive.open(name) as part:
        while True:
            chunk = part.read(_CHUNK)
            data = pending + chunk
            whole = len(data) if not chunk else len(data) - len(data) % longest
            for at in range(0, whole - longest + 1, longest):
                if data.find(b"<", at, at + longest) < 0:
                    window = tail + data[:at + longest]
                    start = window.rfind(b"<", 0, len(tail) + at) + 1
                    _too_long(name, window, start, reading)
                    return None
            window = tail + data[:whole]
            if name != "xl/sharedStrings.xml":
                _formulas_and_merges(window, formulas, merged)
            if not chunk:
                break
            tail, pending = window[-context:], data[whole:]
    if formulas:
        from openpyxl.utils import column_index_from_string

        cells = "、".join(list(dict.fromkeys(formulas))[:10]) + ("…" if len(set(formulas)) > 10 else "")
        letters = formulas[0].rstrip("0123456789")  # the error stands at the first cell named (B2: row 2, column 2)
        row, col = int(formulas[0][len(letters):]), column_index_from_string(letters)
        reading.error(row, col, "", f"单元格 {cells} 是公式，但文件中没有保存计算结果（文件由程序生成、"
                                "未在 Excel 中保存过）：请用 Excel 或 WPS 打开后保存一次，或把这些格“选择性粘贴为数值”")
        # The rest of the sheet is still read, so its other errors are said in the same run; the
        # rows holding such a cell are left out (their values are unknown: no error of their own).
        reading.formula_rows[name] = {int(cell.lstrip("ABCDEFGHIJKLMNOPQRSTUVWXYZ")) for cell in formulas}
    return merged


def _formulas_and_merges(window: bytes, formulas: list[str], merged: list[tuple[int, int, int, int]]) -> None:
    """Cells with a formula and no value, and merged ranges, found in ``window`` (windows overlap:
    callers see repeats). Each pattern is looked for only when its tag occurs at all."""
    from openpyxl.utils import column_index_from_string

    if b"<f" in window or b":f" in window:
        formulas.extend(m.group(1).decode() for m in _FORMULA_NO_VALUE.finditer(window))
    if b"mergeCell" in window:
        for m in _MERGE.finditer(window):
            box = (int(m.group(2)), column_index_from_string(m.group(1).decode()),
                   int(m.group(4)), column_index_from_string(m.group(3).decode()))
            if box not in merged:
                merged.append(box)


_CELL_REF = re.compile(rb'<(?:\w+:)?c\s[^>]*?r="([A-Z]+)(\d+)"')


def _too_long(name: str, window: bytes, start: int, reading: _Reading) -> None:
    """An error for a cell whose text begins at ``window[start]``, naming the cell when the worksheet does."""
    tag_end = window.find(b">", start, start + 40)  # a run begins inside its tag (<t>): skip the tag
    text = _short(window[tag_end + 1 if tag_end >= 0 else start:start + 80].decode("utf-8", "ignore"))
    refs = list(_CELL_REF.finditer(window, 0, start)) if name != "xl/sharedStrings.xml" else []
    row, col, cell = 1, 1, "有一格"
    if refs:
        from openpyxl.utils import column_index_from_string

        letters, number = refs[-1].group(1).decode(), refs[-1].group(2).decode()
        row, col, cell = int(number), column_index_from_string(letters), f"单元格 {letters}{number} "
    reading.error(row, col, "", f"{cell}超过 {CELL_CHARS} 个字符（开头是 “{text}”），未读取这个文件；请改短这一格")


def _cell_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # Excel stores 13800000000 as a float
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == datetime.min.time() else value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


# ------------------------------------------------------------------ templates for the admin


# Example rows that load as they are into the shipped schedules (their units, roles and channels
# exist there), so a new admin who drops a template into schedules/ sees 配置无误 first.
TEMPLATE_ROWS: dict[str, tuple[tuple[str, ...], ...]] = {
    "people": (
        ("p0001", "张三", "fgw_b1", "secretary", "支部书记", "13900000001", "ZhangSan", "", "", "", "", "gw_wecom"),
        ("p0002", "李四", "czj_b1", "worker", "党务干部", "13900000002", "", "0304050607", "", "", "", ""),
    ),
    "units": (
        ("fgw_b3", "市发展改革委机关第三党支部", "fgw", ""),
        ("czj_b2", "市财政局机关第二党支部", "czj", "zhao_ming"),
    ),
}
_SHEET_TITLES = _KIND_WORDS


def template_header(section: str = "people") -> list[str]:
    return [names[0] for names in SECTIONS[section].values()]


def template_csv(section: str = "people") -> bytes:
    """A people.csv or units.csv the admin fills in (UTF-8 with BOM, so Excel opens it with the right characters).

    A long number (a mobile) or one with a leading zero (a DingTalk id) is written ``="0304050607"``:
    Excel opening a plain ``0304050607`` makes it the number 304050607, and 13900000001 shows (and is
    saved back) as 1.39E+10. As a formula giving text it shows and saves as written; the reader
    takes ``="…"`` as the text inside (:func:`_unwrapped`).
    """
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(template_header(section))
    writer.writerows([[_as_text(cell) for cell in row] for row in TEMPLATE_ROWS[section]])
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def _as_text(cell: str) -> str:
    """A cell Excel would turn into a number, marked as text for Excel (see :func:`template_csv`)."""
    return f'="{cell}"' if cell.isdigit() and (len(cell) > 10 or cell.startswith("0")) else cell


def _unwrapped(value: str) -> str:
    """``="0304050607"`` (Excel's way to keep a number as text in a CSV) as 0304050607."""
    if value.startswith('="') and value.endswith('"') and len(value) >= 3 and '"' not in value[2:-1]:
        return value[2:-1]
    return value


def template_xlsx(section: str = "people") -> bytes:
    """The same template as .xlsx, every column formatted as text (ids and mobiles keep leading zeros)."""
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = _SHEET_TITLES[section]
    sheet.append(template_header(section))
    for row in TEMPLATE_ROWS[section]:
        sheet.append(list(row))
    for column in sheet.iter_cols(min_row=1, max_row=200):
        for cell in column:
            cell.number_format = "@"
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
