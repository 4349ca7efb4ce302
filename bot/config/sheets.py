"""People and units from spreadsheets (.csv, .xlsx) in the schedules folder.

At a city's or province's scale people come from the member-management system's export, not from
YAML. A file whose name starts with ``people`` (or 人员) holds people, ``units`` (or 单位) units; the
first row names the columns, in Chinese or English (:data:`PEOPLE_COLUMNS`, :data:`UNIT_COLUMNS`).

A sheet becomes a :class:`~bot.config.yamlsource.YamlDoc` like a YAML file: ``data`` is
``{"people": [row dicts]}`` and ``tree`` a node tree whose marks are the sheet's row (line) and
column, built lazily row by row, so the loader's validation, cross-checks and messages (file, row,
column, field, in Chinese) are the very same as for YAML. Every cell is text: an id or a mobile
number with a leading zero stays as written.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import yaml

from bot.config.limits import Limits, sheet_rows_message, sheet_size_message
from bot.config.yamlsource import ConfigIssue, YamlDoc, guess_encoding
from bot.platforms.registry import EDITIONS, PERSON_ID_FIELDS

SHEET_SUFFIXES = (".csv", ".xlsx")
_STR, _SEQ, _MAP = "tag:yaml.org,2002:str", "tag:yaml.org,2002:seq", "tag:yaml.org,2002:map"
PLATFORM_FIELDS = tuple(PERSON_ID_FIELDS)  # a person's ids, one column each (people[].ids)
LIST_FIELDS = ("roles", "channels", "leaders")
_SPLIT = re.compile(r"[,，;；、\s]+")

# field -> header words accepted (case-insensitive); the first Chinese one is used in the template.
PEOPLE_COLUMNS: dict[str, tuple[str, ...]] = {
    "id": ("标识", "id", "编号", "人员标识"),
    "name": ("姓名", "name"),
    "unit": ("单位", "unit", "所在单位", "支部", "单位标识"),
    "roles": ("角色", "roles", "role"),
    "title": ("职务", "title"),
    "mobile": ("手机", "mobile", "手机号", "手机号码"),
    **{name: EDITIONS[name].sheet_headers for name in PERSON_ID_FIELDS},  # each platform's own (spec.py)
    "channels": ("所在群", "channels", "频道", "群"),
}
UNIT_COLUMNS: dict[str, tuple[str, ...]] = {
    "id": ("标识", "id", "编号", "单位标识"),
    "name": ("名称", "name", "单位名称"),
    "parent": ("上级单位", "parent", "上级"),
    "leaders": ("分管领导", "leaders", "领导"),
}
SECTIONS = {"people": PEOPLE_COLUMNS, "units": UNIT_COLUMNS}
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
    """Where each field sits: its 1-based column, and the 1-based sheet row of each data row."""

    label: str
    columns: dict[str, int]
    rows: list[int]


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


def _tree(section: str, data: list[dict[str, Any]], layout: _Layout) -> yaml.MappingNode:
    start = _mark(layout.label, 1, 1)
    items = _LazySequence(_SEQ, _RowNodes(data, layout), _mark(layout.label, 2, 1), start)
    key = yaml.ScalarNode(_STR, section, start, start)
    return yaml.MappingNode(_MAP, [(key, items)], start, start)


# ------------------------------------------------------------------ reading


def read_sheet(path: Path, label: str, issues: list[ConfigIssue], limits: Limits,
               rows_left: int) -> YamlDoc | None:
    """One spreadsheet as a doc, or None (with issues) when it cannot be used.

    ``rows_left``: data rows still allowed across all sheets (``limits.sheet_rows`` minus earlier files).
    """
    section = section_of(path)
    if section is None:
        issues.append(ConfigIssue(label, 1, 1, "", "表格文件名应以 people（或“人员”）或 units（或“单位”）开头，"
                                                   "以便知道它列的是人员还是单位"))
        return None
    try:
        size = path.stat().st_size
    except OSError as exc:
        issues.append(ConfigIssue(label, 1, 1, "", f"无法读取文件（{exc.strerror or type(exc).__name__}）"))
        return None
    if size > limits.sheet_bytes:
        issues.append(ConfigIssue(label, 1, 1, "", sheet_size_message(size, limits)))
        return None
    rows = _xlsx_rows(path, label, issues) if path.suffix.lower() == ".xlsx" else _csv_rows(path, label, issues)
    if rows is None:
        return None
    return _build(path, label, section, rows, issues, limits, rows_left)


def _build(path: Path, label: str, section: str, rows: Iterator[list[str]], issues: list[ConfigIssue],
           limits: Limits, rows_left: int) -> YamlDoc | None:
    header = next(rows, None)
    if header is None:
        issues.append(ConfigIssue(label, 1, 1, "", "表格是空的：第一行应为列名（例如 标识、姓名）"))
        return None
    columns = _columns(header, SECTIONS[section], label, issues)
    if columns is None:
        return None
    data: list[dict[str, Any]] = []
    numbers: list[int] = []
    for number, cells in enumerate(rows, start=2):
        if not any(cells):
            continue  # blank lines between blocks are common in exports
        if len(data) >= rows_left:
            issues.append(ConfigIssue(label, number, 1, f"{section}[{len(data)}]", sheet_rows_message(limits)))
            return None
        data.append(_entry(cells, columns))
        numbers.append(number)
    layout = _Layout(label, {field: col + 1 for field, col in columns.items()}, numbers)
    return YamlDoc(path, label, _tree(section, data, layout), {section: data}, sheet=True)


def _columns(header: list[str], known: dict[str, tuple[str, ...]], label: str,
             issues: list[ConfigIssue]) -> dict[str, int] | None:
    """Field -> 0-based column; unknown and repeated columns are errors, a missing id or name too."""
    words = {w.lower(): field for field, names in known.items() for w in names}
    columns: dict[str, int] = {}
    for col, raw in enumerate(header):
        name = raw.strip().lstrip("\ufeff")
        if not name:
            continue
        field = words.get(name.lower())
        if field is None:
            allowed = "、".join(names[0] for names in known.values())
            issues.append(ConfigIssue(label, 1, col + 1, "", f"未知的列 “{name}”（可用的列：{allowed}）"))
        elif field in columns:
            issues.append(ConfigIssue(label, 1, col + 1, "", f"列 “{name}” 重复，已在第 {columns[field] + 1} 列出现"))
        else:
            columns[field] = col
    missing = [known[f][0] for f in REQUIRED if f not in columns]
    if missing:
        issues.append(ConfigIssue(label, 1, 1, "", f"缺少必需的列：{'、'.join(missing)}（第一行应为列名）"))
        return None
    return columns


def _entry(cells: list[str], columns: dict[str, int]) -> dict[str, Any]:
    entry: dict[str, Any] = {}
    ids: dict[str, str] = {}
    for field, col in columns.items():
        value = cells[col].strip() if col < len(cells) else ""
        if not value:
            continue
        if field in LIST_FIELDS:
            entry[field] = [v for v in _SPLIT.split(value) if v]
        elif field in PLATFORM_FIELDS:
            ids[field] = value
        else:
            entry[field] = value
    if ids:
        entry["ids"] = ids
    return entry


def _csv_rows(path: Path, label: str, issues: list[ConfigIssue]) -> Iterator[list[str]] | None:
    """CSV in UTF-8 (with or without BOM) or, as Excel on Chinese Windows saves it, GBK/GB18030."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        issues.append(ConfigIssue(label, 1, 1, "", f"无法读取文件（{exc.strerror or type(exc).__name__}）"))
        return None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        guess = guess_encoding(raw)
        if guess is None or guess[1] not in ("gbk", "gb18030"):
            issues.append(ConfigIssue(label, 1, 1, "", "表格不是 UTF-8 或 GBK 编码，请另存为“CSV UTF-8”"))
            return None
        text = raw.decode("gb18030")
    return iter(csv.reader(io.StringIO(text, newline="")))


def _xlsx_rows(path: Path, label: str, issues: list[ConfigIssue]) -> Iterator[list[str]] | None:
    """The first worksheet's rows as text (read-only mode: rows stream, the file is not held in memory)."""
    from zipfile import BadZipFile

    import openpyxl

    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except (BadZipFile, OSError, KeyError, ValueError) as exc:
        why = f"无法读取 Excel 文件（{type(exc).__name__}）：请用 Excel 另存为 .xlsx"
        issues.append(ConfigIssue(label, 1, 1, "", why))
        return None

    def rows() -> Iterator[list[str]]:
        try:
            for values in book.worksheets[0].iter_rows(values_only=True):
                yield [_cell_text(v) for v in values]
        finally:
            book.close()

    return rows()


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
_SHEET_TITLES = {"people": "人员", "units": "单位"}


def template_header(section: str = "people") -> list[str]:
    return [names[0] for names in SECTIONS[section].values()]


def template_csv(section: str = "people") -> bytes:
    """A people.csv or units.csv the admin fills in (UTF-8 with BOM, so Excel opens it with the right characters)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(template_header(section))
    writer.writerows(TEMPLATE_ROWS[section])
    return ("\ufeff" + out.getvalue()).encode("utf-8")


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
