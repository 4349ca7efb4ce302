"""Bounds on what the schedules folder may ask of the service: file size, YAML aliases, nesting, entries.

A YAML file is read in two passes. The first (``scan``) only walks the parser's event stream, which
costs time linear in the file's length whatever it says, and counts what the aliases would expand
to without expanding them: an alias adds the node count of its anchor, known once the anchor is
closed. A file over a bound is refused there, with the line of the offending alias or node, before
anything is built from it. Only then is the node tree composed and the data constructed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bot.settings import Settings

DEFAULT_FILE_BYTES = 4 * 1024 * 1024
DEFAULT_ALIAS_NODES = 10_000
DEFAULT_ENTRIES = 20_000
DEFAULT_SHEET_BYTES = 64 * 1024 * 1024  # a people/units spreadsheet (CSV or .xlsx)
DEFAULT_SHEET_ROWS = 300_000
MAX_DEPTH = 64  # the schedules' format needs about 8 levels; a deeper file is a mistake or an attack
# The years a day or period an admin types may fall in (report's --period, every --date): outside them it is
# a typo, and near year 1 or 9999 the calendar's arithmetic leaves the range of Python's dates.
MIN_YEAR, MAX_YEAR = 1970, 2999
# How every YAML syntax error begins (bot/config/yamlerrors.py); nesting too deep is one, whichever
# parser notices it (our scan at level 65, or libyaml's own bound at 1,000 flow levels).
SYNTAX_LEAD = "YAML 语法错误："
DEPTH_WORDS = f"嵌套超过 {MAX_DEPTH} 层，请检查缩进或括号"



@dataclass(frozen=True)
class Limits:
    """What one validation may read and build (documented in the README's settings table).

    ``file_bytes``: largest schedules file (bytes); ``alias_nodes``: YAML nodes one file may reach
    through aliases (``*name``), counted as if expanded; ``entries``: units, people, channels and
    reminders together, across all YAML files (spreadsheet rows are not counted there); ``sheet_bytes``
    and ``sheet_rows``: largest people/units spreadsheet (CSV or .xlsx) in bytes, and data rows across
    all spreadsheets.
    """

    file_bytes: int = DEFAULT_FILE_BYTES
    alias_nodes: int = DEFAULT_ALIAS_NODES
    entries: int = DEFAULT_ENTRIES
    sheet_bytes: int = DEFAULT_SHEET_BYTES
    sheet_rows: int = DEFAULT_SHEET_ROWS

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(settings.max_schedule_file_bytes, settings.max_yaml_alias_nodes, settings.max_schedule_entries,
                   settings.max_sheet_bytes, settings.max_sheet_rows)


def size_message(size: int, limits: Limits) -> str:
    return (f"文件过大（{megabytes(size)}），超过上限 {megabytes(limits.file_bytes)}；"
            "请拆分或精简文件（上限可用 REMINDBOT_MAX_SCHEDULE_FILE_BYTES 调整）")


def entries_message(limits: Limits) -> str:
    return (f"条目过多：YAML 文件中的单位、人员、频道和提醒合计超过上限 {limits.entries} 条，从这里起未检查；"
            "请精简，或把人员、单位改放在表格中（上限可用 REMINDBOT_MAX_SCHEDULE_ENTRIES 调整）")


def sheet_size_message(size: int, limits: Limits) -> str:
    return (f"表格文件过大（{megabytes(size)}），超过上限 {megabytes(limits.sheet_bytes)}；"
            "请拆分文件（上限可用 REMINDBOT_MAX_SHEET_BYTES 调整）")


def sheet_rows_message(limits: Limits) -> str:
    return (f"表格行数过多：所有人员、单位表格合计超过上限 {limits.sheet_rows} 行，从这里起未检查；"
            "请精简（上限可用 REMINDBOT_MAX_SHEET_ROWS 调整）")


def megabytes(size: int) -> str:
    return f"{size / 1024 / 1024:.1f} MB" if size >= 100 * 1024 else f"{size} 字节"


@dataclass
class _Open:
    anchor: str | None
    nodes: int = 1


@dataclass(frozen=True)
class Refusal:
    """Where (1-based line and column) and why a file was refused before it was built."""

    line: int
    column: int
    message: str


def scan(text: str, limits: Limits) -> Refusal | None:
    """Walk the YAML events once; a Refusal when aliases or nesting go past a bound, else None.

    Syntax errors are left to the full parse, which words them for the admin.
    """

    # PyYAML imported here: the settings import this module's bounds, and a command that reads the
    # schedules' snapshot parses no YAML.
    import yaml

    opening = (yaml.SequenceStartEvent, yaml.MappingStartEvent)
    closing = (yaml.SequenceEndEvent, yaml.MappingEndEvent)

    def refuse(mark: Any, message: str) -> Refusal:
        return Refusal(mark.line + 1, mark.column + 1, message)

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)(text)
    anchors: dict[str, int] = {}  # anchor -> nodes it stands for (once closed)
    stack: list[_Open] = []
    through_aliases = 0
    try:
        while loader.check_event():
            event = loader.get_event()
            if isinstance(event, opening):
                stack.append(_Open(event.anchor))
                if len(stack) > MAX_DEPTH:
                    return refuse(event.start_mark, SYNTAX_LEAD + DEPTH_WORDS)
                continue
            nodes = 1
            if isinstance(event, closing):
                closed = stack.pop()
                nodes = closed.nodes
                if closed.anchor:
                    anchors[closed.anchor] = nodes
            elif isinstance(event, yaml.ScalarEvent):
                if event.anchor:
                    anchors[event.anchor] = 1
            elif isinstance(event, yaml.AliasEvent):
                if any(o.anchor == event.anchor for o in stack):
                    return refuse(event.start_mark, f"别名 *{event.anchor} 引用了包含它自己的内容（循环引用）")
                nodes = anchors.get(event.anchor, 1)  # an undefined alias is worded by the full parse
                through_aliases += nodes
                if through_aliases > limits.alias_nodes:
                    return refuse(event.start_mark, _alias_message(event.anchor, limits))
            else:
                continue
            if stack:
                stack[-1].nodes += nodes
    except yaml.YAMLError:
        return None
    finally:
        loader.dispose()
    return None


def _alias_message(anchor: str, limits: Limits) -> str:
    return (f"别名 *{anchor} 展开后的内容过多：本文件通过别名引用的节点超过 {limits.alias_nodes} 个，"
            "已拒绝（疑似“别名炸弹”）；请少用多层别名（上限可用 REMINDBOT_MAX_YAML_ALIAS_NODES 调整）")
