"""The schedules' source files and the problems found in them: what reading the snapshot needs
too, without PyYAML (``bot/config/yamlsource.py`` reads the YAML and re-exports these)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import NamedTuple

from bot.sentences import sentence

_ENV_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


YAML_SUFFIXES = (".yaml", ".yml")
# Spreadsheets: people and units (bot/config/sheets.py). Formats it cannot read (.xls, .ods, …) are
# listed too, so a people.xls is skipped with a warning naming it rather than silently.
UNREADABLE_SHEET_SUFFIXES = (".xls", ".ods", ".numbers", ".et")
SOURCE_SUFFIXES = (*YAML_SUFFIXES, ".csv", ".xlsx", *UNREADABLE_SHEET_SUFFIXES)


def schedule_files(path: Path) -> list[Path]:
    """The schedules' source files under ``path`` (or ``path`` itself), sorted; no lock files.

    Everything named like one but a folder is listed, pipes, devices and broken symlinks included: the
    readers refuse those by name (``bot/config/sourcefile.py``) rather than skip them unsaid."""
    if not path.is_dir():
        return [path]
    return sorted(p for p in path.rglob("*") if p.suffix.lower() in SOURCE_SUFFIXES and not p.is_dir()
                  # Excel's, LibreOffice's and Emacs's lock files (Emacs's: a symlink to nowhere)
                  and not p.name.startswith(("~$", ".~", ".#")))


@dataclass(frozen=True)
class ConfigIssue:
    """One problem an admin must fix: where (file:line:column), which field, and what is wrong."""

    file: str
    line: int  # 1-based
    column: int  # 1-based
    field: str
    message: str
    warning: bool = False
    heading: str = ""  # a spreadsheet's issue: its column's heading as the file's first row writes it
    elsewhere: str = ""  # another file's label the message names (a duplicate id's first place), as written there
    named: str = ""  # ``field`` as shown, its entry named by id (``reminders[study-day].title``): with_entry_ids
    dated: bool = False  # true of today's date, not of the files (a one-off date past): bot/config/dated.py
    source: str = ""  # an issue of no field (a YAML syntax error): its line's text, stripped (problem_key)

    def __str__(self) -> str:
        where = f"{self.file}:{self.place()}"
        label = "警告" if self.warning else "错误"
        # Ended here, once, as the CLI's refusals are: the messages themselves are written without 。
        return f"{where}: {label}{self._field_shown()}{sentence(self.message)}"

    def place(self) -> str:
        """Where in the file: ``line:column`` as editors take it; in an Excel file the cell (``B7``), as
        the sheet's own letters and the messages (“单元格 B7”, “B 列”) name it."""
        if self.file.lower().endswith(".xlsx"):
            return f"{column_letters(self.column)}{self.line}"
        return f"{self.line}:{self.column}"

    def _field_shown(self) -> str:
        """`` 字段 people[9].mobile：`` in YAML; in a spreadsheet the column as its header names it
        (`` 列 “手机号码”：``, :attr:`heading`; else the column's usual name, `` 列 “手机”：``): the sheet
        has no ``people[9]`` (entry 9 sits on row 11) nor ``mobile``."""
        if not self.field:
            return " "
        if self.heading:
            return f" 列 “{self.heading}”："
        if (column := sheet_column(self.file, self.field)) is not None:
            from bot.config.columns import SECTIONS

            return f" 列 “{SECTIONS[column[0]][column[1]][0]}”："
        return f" 字段 {self.named or self.field}："


def column_letters(column: int) -> str:
    """Excel's letters for a 1-based column: 1 -> A, 27 -> AA (openpyxl not needed to show an issue)."""
    letters = ""
    while column > 0:
        column, rest = divmod(column - 1, 26)
        letters = chr(ord("A") + rest) + letters
    return letters or "A"


_SHEET_FIELD = re.compile(r"(people|units)\[\d+\]\.(\w+)(?:\.(\w+))?")


def sheet_column(file: str, field: str) -> tuple[str, str] | None:
    """(section, column's field) of a spreadsheet issue's field (``people[9].ids.dingtalk``:
    ``("people", "dingtalk")``), None for a YAML file's or a field no column holds."""
    if not file.lower().endswith((".csv", ".xlsx")) or (m := _SHEET_FIELD.match(field)) is None:
        return None
    from bot.config.columns import SECTIONS  # only when a spreadsheet's issue is shown

    return next(((m[1], key) for key in (m[3], m[2]) if key in SECTIONS[m[1]]), None)


def with_headings(issues: list[ConfigIssue], headings: dict[str, dict[str, str]]) -> list[ConfigIssue]:
    """Spreadsheet issues with their column named as the file's header writes it: ``headings`` is
    file label -> column's field -> heading (手机号码 for ``mobile``, as the admin wrote it)."""
    out = []
    for issue in issues:
        found = sheet_column(issue.file, issue.field) if issue.file in headings else None
        written = headings[issue.file].get(found[1], "") if found else ""
        out.append(replace(issue, heading=written) if written else issue)
    return out


_ENTRY = re.compile(r"^(\w+)\[(\d+)\]")


def with_entry_ids(issues: list[ConfigIssue], ids: dict[str, dict[str, list[str | None]]]) -> list[ConfigIssue]:
    """YAML issues with their entry named by its id where it has one (``reminders[study-day].title``, not
    ``reminders[0].title``: the admin looks for the id, not a count of entries); ``ids`` is file label ->
    section -> each entry's id (None when it has none). ``field`` keeps the index (grouping, tests)."""
    out = []
    for issue in issues:
        found = _ENTRY.match(issue.field) if issue.file in ids else None
        entries = ids[issue.file].get(found[1], []) if found else []
        index = int(found[2]) if found else -1
        entry_id = entries[index] if 0 <= index < len(entries) else None
        out.append(replace(issue, named=f"{found[1]}[{entry_id}]{issue.field[found.end():]}")
                   if found and entry_id else issue)
    return out


class ConfigError(Exception):
    """The schedules are not valid. ``issues`` holds every problem found, not only the first."""

    def __init__(self, issues: list[ConfigIssue]) -> None:
        self.issues = issues
        super().__init__("\n".join(str(i) for i in issues))


GROUP_FROM = 3  # the same problem on this many rows of a file is one issue listing the rows
LINES_LISTED = 10  # rows named in a grouped issue; the rest are counted
_INDEX = re.compile(r"\[\d+\]")


def group_repeats(issues: list[ConfigIssue]) -> list[ConfigIssue]:
    """The same message for the same field on many rows of one file, as one issue at its first row:
    “未知的单位 “X”：第 3、4、7…… 行，共 N 行”. Thousands of rows with one wrong unit then read as one
    line, in ``validate``, the service log and the admin's notice alike."""
    groups: dict[tuple[str, bool, str, str], list[ConfigIssue]] = {}
    for issue in issues:
        groups.setdefault(_group_key(issue), []).append(issue)
    out = []
    for issue in issues:
        same = groups[_group_key(issue)]
        if len(same) < GROUP_FROM:
            out.append(issue)
        elif same[0] is issue:
            lines = sorted({i.line for i in same})
            listed = "、".join(str(n) for n in lines[:LINES_LISTED]) + ("……" if len(lines) > LINES_LISTED else "")
            unit = "行" if len(lines) == len(same) else "处"
            out.append(replace(issue, message=f"{issue.message}：第 {listed} 行，共 {len(same)} {unit}"))
    return out


def _group_key(issue: ConfigIssue) -> tuple[str, bool, str, str]:
    return issue.file, issue.warning, issue.message, _INDEX.sub("[]", issue.field)


class ProblemKey(NamedTuple):
    """What is wrong, as :func:`problem_key` names it: the admin channel's notice is keyed by ``key``."""

    key: str  # 16 hex digits
    # The key as versions before it made it (file, line, column and field): a service upgraded while the
    # folder is refused knows the notice that version sent, and tells no one again.
    earlier: str


def problem_key(errors: Iterable[ConfigIssue]) -> ProblemKey:
    """16 hex digits naming what is wrong, not how it is worded nor where it now sits: each error's
    file (as the check labels it) and field, its entry named by id where it has one. The admin channel's
    notice of refused schedules is keyed by it, so a release that rewords the messages, or an edit
    elsewhere in the file that moves the error down a few lines, tells no one again. An error of no
    field (a file that cannot be read or parsed, a check that timed out or crashed) is known by its
    line's text (:attr:`ConfigIssue.source`, when known) and its words with their numbers left out
    (“在第 12 行报错” names a line too): they are its kind."""
    errors = list(errors)
    digest, earlier = hashlib.sha256(), hashlib.sha256()
    for issue in errors:
        digest.update(f"{issue.file}\0{_problem(issue)}\n".encode())
        earlier.update(f"{issue.file}\0{issue.line}\0{issue.column}\0{issue.field or issue.message}\n".encode())
    return ProblemKey(digest.hexdigest()[:16], earlier.hexdigest()[:16])


_NUMBERS = re.compile(r"\d+")


def _problem(issue: ConfigIssue) -> str:
    """What is wrong in ``issue``'s file, with no line or column: see :func:`problem_key`."""
    if issue.field:
        return issue.named or issue.field
    return f"{issue.source}\0{_NUMBERS.sub('#', issue.message)}"


ISSUES_SHOWN = 200  # issues printed by a command or logged by a reload; the rest are counted


def bounded(issues: list[ConfigIssue], shown: int = ISSUES_SHOWN) -> tuple[list[ConfigIssue], str | None]:
    """The first ``shown`` issues (errors come first), and a line counting the rest, or None."""
    if len(issues) <= shown:
        return issues, None
    rest = issues[shown:]
    errors = sum(1 for i in rest if not i.warning)
    return issues[:shown], (f"……另有 {len(rest)} 处问题未列出（其中 {errors} 处错误）；"
                            "请先改正以上各处，再运行 remindbot validate 查看其余")
