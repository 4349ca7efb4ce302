"""The schedules' source files and the problems found in them: what reading the snapshot needs
too, without PyYAML (``bot/config/yamlsource.py`` reads the YAML and re-exports these)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

_ENV_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


YAML_SUFFIXES = (".yaml", ".yml")
SOURCE_SUFFIXES = (*YAML_SUFFIXES, ".csv", ".xlsx")  # spreadsheets: people and units (bot/config/sheets.py)


def schedule_files(path: Path) -> list[Path]:
    """The schedules' source files under ``path`` (or ``path`` itself), sorted; no lock files."""
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob("*") if p.suffix.lower() in SOURCE_SUFFIXES and p.is_file()
                  and not p.name.startswith(("~$", ".~")))  # Excel's and LibreOffice's lock files


@dataclass(frozen=True)
class ConfigIssue:
    """One problem an admin must fix: where (file:line:column), which field, and what is wrong."""

    file: str
    line: int  # 1-based
    column: int  # 1-based
    field: str
    message: str
    warning: bool = False

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}"
        label = "警告" if self.warning else "错误"
        field = f" 字段 {self.field}：" if self.field else " "
        return f"{where}: {label}{field}{self.message}"


class ConfigError(Exception):
    """The schedules are not valid. ``issues`` holds every problem found, not only the first."""

    def __init__(self, issues: list[ConfigIssue]) -> None:
        self.issues = issues
        super().__init__("\n".join(str(i) for i in issues))
