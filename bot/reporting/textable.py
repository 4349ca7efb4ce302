"""Plain-text tables that line up with Chinese text (wide characters count twice)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache

# ASCII that prints, the CJK Unified Ideographs assigned since Unicode 11 (every one wide) and the
# em dash (narrow: 1 column for 3 UTF-8 bytes, the tables' "no figure" — a report's place and rate):
# most cells of a Chinese table (names, units, statuses) are only these.
_PLAIN_CJK = re.compile("[\x20-\x7e\u4e00-\u9fef\u2014]*")
_DASH = "\u2014"


def _plain_width(text: str) -> int:
    """Columns of a cell of :data:`_PLAIN_CJK`: 1 per ASCII character (1 UTF-8 byte), 2 per ideograph
    (3 bytes), 1 per em dash (3 bytes), as wcswidth counts them."""
    return (len(text.encode()) + len(text)) // 2 - text.count(_DASH)


def width(text: str) -> int:
    """Columns the text takes in a terminal (wide characters count twice)."""
    if text.isascii():  # what wcswidth says for ASCII (control characters: its -1 falls back to len)
        return len(text)
    if _PLAIN_CJK.fullmatch(text):
        return _plain_width(text)
    return _wide_width(text)


@lru_cache(maxsize=65536)  # a 20,000-row board repeats its statuses and units
def _wide_width(text: str) -> int:
    # Imported on first use: a table of ASCII (or no table: `report` with nothing to count) needs
    # none of wcwidth's tables and regular expressions (10 ms at every start).
    from wcwidth import wcswidth

    w = wcswidth(text)
    return w if w >= 0 else len(text)


def one_line(text: str) -> str:
    """Free text (a note) as one table cell: each line break and tab a space, which would otherwise
    start a new line or jump a column in the middle of the table."""
    if text.isprintable():  # nearly every note: no line break, no tab
        return text
    return " ".join(text.replace("\t", " ").splitlines())


def pad(text: str, size: int) -> str:
    return text + " " * max(0, size - width(text))


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns two spaces apart, each as wide as its widest cell; trailing spaces cut.

    Column by column (each cell measured once, equal cells once per column): a 20,000-row board
    is 120,000 cells, and measuring each twice, cell by cell, was most of ``remindbot status``'s work.
    """
    # transposed at C speed; every row has a cell under each header
    by_column = list(zip(*rows, strict=True)) if rows else [() for _ in headers]
    columns = [[h, *map(str, cells)] for h, cells in zip(headers, by_column, strict=True)]
    sized = [_sized(column) for column in columns]
    # A column whose cells are one terminal column per character (ASCII, "—") is padded by the
    # line's format itself; the others (Chinese) take each distinct cell padded once. One format
    # per line, not a padded string per cell: a province's report is 200,000 cells.
    fmt = "  ".join("{}" if padded else f"{{:<{size}}}" for size, padded in sized)
    cells = [column if not padded else list(map(padded.__getitem__, column))
             for column, (_, padded) in zip(columns, sized, strict=True)]
    lines = [fmt.format(*line).rstrip() for line in zip(*cells, strict=True)]
    lines.insert(1, "  ".join("-" * size for size, _ in sized))
    return "\n".join(lines)


def _sized(column: list[str]) -> tuple[int, dict[str, str] | None]:
    """The column's width (the header's cell included), and each distinct cell padded to it with
    spaces where some cell's terminal width is not its length (None: padding by length is right)."""
    distinct = set(column)
    if _PLAIN_CJK.fullmatch("".join(distinct)):  # one check for the column, as width() checks a cell
        known = {text: _plain_width(text) for text in distinct}
    else:
        known = {text: width(text) for text in distinct}
    size = max(known.values())
    if all(w == len(text) for text, w in known.items()):
        return size, None
    return size, {text: text + " " * (size - w) for text, w in known.items()}
