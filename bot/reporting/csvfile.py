"""CSV for Excel: the one writer behind ``remindbot report --format csv`` and the admin CSV downloads.

Both write the same bytes (:func:`excel_bytes`): UTF-8 with a byte-order mark, without which Excel on
a Chinese Windows reads the file in the local code page (GBK) and shows garbage.

A cell that Excel (or LibreOffice, WPS) would run as a formula — text starting with ``= + - @``,
after any leading spaces, or with a tab or line break — is written with a leading ``'``, so a unit
or a note named ``=cmd|' /C calc'!A0`` is shown as text, never executed.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n")


def cell(value: object) -> str:
    """One CSV cell as text, defused when a spreadsheet would read it as a formula."""
    text = "" if value is None else str(value)
    stripped = text.lstrip(" \u3000")
    return "'" + text if text.startswith(FORMULA_STARTS) or stripped.startswith(FORMULA_STARTS) else text


def csv_text(header: Sequence[object], rows: Iterable[Sequence[object]]) -> str:
    """Header and rows as CSV (CRLF line ends, RFC 4180), every cell passed through :func:`cell`."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([cell(v) for v in header])
    writer.writerows([cell(v) for v in row] for row in rows)
    return buffer.getvalue()


BOM = "\ufeff"


def excel_bytes(text: str) -> bytes:
    """CSV text as the bytes Excel opens as UTF-8: a byte-order mark, then UTF-8."""
    return (BOM + text).encode("utf-8")


def csv_bytes(header: Sequence[object], rows: Iterable[Sequence[object]]) -> bytes:
    """Header and rows as a CSV file for Excel (see :func:`csv_text`, :func:`excel_bytes`)."""
    return excel_bytes(csv_text(header, rows))
